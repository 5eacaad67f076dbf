package precond

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"safedav/backend"
)

var ifSeeds = []string{
	`(<opaquelocktoken:abc>)`,
	`(<urn:uuid:x> ["etag"]) (Not <DAV:no-lock> ["etag"])`,
	`<http://127.0.0.1:8080/litmus/lockme> (<urn:uuid:x>)`,
	`(Not <DAV:no-lock>)`,
	`</a/b> (["W/\"x\""])`,
	`</a/b> ([W/"x"]) (<urn:a>) </c> (Not ["y"])`,
	`()`,
	`(<urn:a>`,
	`(<urn:a>) </b> (<urn:b>)`,
	`([e])`,
	`garbage`,
}

// FuzzParseIf checks that ParseIf never panics, fails only with ErrMalformed, and that
// what it accepts satisfies the grammar's invariants and survives a String round trip.
func FuzzParseIf(f *testing.F) {
	for _, s := range ifSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseIf(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		checkIfInvariants(t, s, h)
	})
}

func checkIfInvariants(t *testing.T, s string, h IfHeader) {
	t.Helper()
	if len(s) > maxIfLen {
		t.Fatalf("accepted %d bytes", len(s))
	}
	if len(h.Lists) == 0 {
		t.Fatal("no lists")
	}
	tagged := h.Lists[0].Tag != ""
	n := 0
	for _, l := range h.Lists {
		if (l.Tag != "") != tagged {
			t.Fatalf("tagged and untagged lists mixed: %#v", h)
		}
		if l.Tag != "" && !strings.HasPrefix(l.Tag, "/") && !isAbsoluteURI(l.Tag) {
			t.Fatalf("bad tag %q", l.Tag)
		}
		if len(l.Conditions) == 0 {
			t.Fatalf("empty list: %#v", h)
		}
		for _, c := range l.Conditions {
			n++
			switch {
			case (c.Token == "") == (c.ETag == ""):
				t.Fatalf("condition with both or neither token and etag: %#v", c)
			case c.Token != "":
				if !isAbsoluteURI(c.Token) || strings.ContainsAny(c.Token, " \t\r\n<>") {
					t.Fatalf("bad token %q", c.Token)
				}
			default:
				if end, ok := scanETag(c.ETag, 0, true); !ok || end != len(c.ETag) {
					t.Fatalf("bad etag %q", c.ETag)
				}
			}
			if !strings.Contains(s, c.Token) || !strings.Contains(s, c.ETag) {
				t.Fatalf("condition %#v not taken from the input", c)
			}
		}
	}
	if n > maxIfConditions {
		t.Fatalf("%d conditions accepted", n)
	}
	again, err := ParseIf(h.String())
	if err != nil || !reflect.DeepEqual(again, h) {
		t.Fatalf("round trip through %q: %#v, %v", h.String(), again, err)
	}
	// Eval must not panic, whatever the resources; tokens must be unique and real.
	for _, hasLocks := range []bool{false, true} {
		ok, match := h.Eval(func(tag string) Target {
			tg := Target{Exists: len(tag)%2 == 0, ETag: `"e"`, Request: tag == ""}
			if hasLocks {
				tg.HasLock = func(tok string) bool { return len(tok)%2 == 1 }
			}
			return tg
		})
		if match != "" && (!ok || match != `"e"`) {
			t.Fatalf("Eval = %v, %q", ok, match)
		}
	}
	q := Request{If: &h}
	seen := map[string]bool{}
	for _, tok := range q.Tokens() {
		if seen[tok] || isNoLock(tok) || tok == "" {
			t.Fatalf("Tokens() = %q", q.Tokens())
		}
		seen[tok] = true
	}
}

// FuzzParse feeds arbitrary values to every conditional header, then checks that
// Check and Cond agree: whenever a write passes Check, the Cond it carries down holds
// for the state it was checked against (otherwise every such write would fail at
// commit), and GET-only outcomes never reach a write.
func FuzzParse(f *testing.F) {
	f.Add(`"a"`, "*", date0, before, `(<urn:a> ["a"])`)
	f.Add("*", `W/"a", "b"`, "garbage", after, `</x> (Not <DAV:no-lock>)`)
	f.Add(``, `,,`, "", "", "")
	f.Add(`"a", *`, `"`, date0+", "+date0, "Mon, 01 Jan 0001 00:00:00 GMT", "()")
	f.Fuzz(func(t *testing.T, im, inm, ius, ims, ifh string) {
		h := http.Header{}
		for _, kv := range [][2]string{{"If-Match", im}, {"If-None-Match", inm},
			{"If-Unmodified-Since", ius}, {"If-Modified-Since", ims}, {"If", ifh}} {
			// An empty fuzz string stands for an absent header, except for the tag
			// lists, where "-" does, so that empty lists are explored too.
			if kv[1] == "" && kv[0] != "If-Match" && kv[0] != "If-None-Match" || kv[1] == "-" {
				continue
			}
			for _, line := range strings.Split(kv[1], "\n") {
				h.Add(kv[0], line)
			}
		}
		q, err := Parse(h)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for _, tags := range [][]string{q.IfMatch, q.IfNoneMatch} {
			for _, tg := range tags {
				if tg == "*" {
					if len(tags) != 1 {
						t.Fatalf("* among tags: %q", tags)
					}
					continue
				}
				if end, ok := scanETag(tg, 0, false); !ok || end != len(tg) {
					t.Fatalf("bad tag %q", tg)
				}
			}
		}
		if q.If != nil {
			checkIfInvariants(t, strings.Join(h["If"], " "), *q.If)
		}
		states := []State{
			{},
			{Exists: true, ETag: `"a"`, ModTime: t0},
			{Exists: true, ETag: `"a"`},
			{Exists: true, ModTime: t0.Add(time.Hour)},
		}
		for _, tags := range [][]string{q.IfMatch, q.IfNoneMatch} {
			if len(tags) > 0 && tags[0] != "*" {
				states = append(states, State{Exists: true, ETag: strings.TrimPrefix(tags[0], "W/"), ModTime: t0})
			}
		}
		for _, cur := range states {
			for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "PROPFIND"} {
				o := q.Check(m, cur)
				switch {
				case o != Pass && o != Fail && o != NotModified:
					t.Fatalf("Check = %v", o)
				case o == NotModified && m != "GET" && m != "HEAD":
					t.Fatalf("Check(%s) = NotModified", m)
				}
				if o == Pass && m != "GET" && m != "HEAD" {
					if c := q.Cond(cur, ""); !holds(c, cur) {
						t.Fatalf("Check(%s, %+v) passed but Cond %+v does not hold for it", m, cur, c)
					}
				}
			}
		}
	})
}

// holds reports whether a backend committing against cur would accept c.
func holds(c backend.Cond, cur State) bool {
	if c.IfNoneMatch && cur.Exists {
		return false
	}
	switch c.IfMatch {
	case "":
		return true
	case "*":
		return cur.Exists
	default:
		return cur.Exists && c.IfMatch == cur.ETag
	}
}
