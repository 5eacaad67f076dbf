package precond

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// tok, notTok, et and notET build conditions for the tables below.
func tok(s string) Condition    { return Condition{Token: s} }
func notTok(s string) Condition { return Condition{Not: true, Token: s} }
func et(s string) Condition     { return Condition{ETag: s} }
func notET(s string) Condition  { return Condition{Not: true, ETag: s} }

func lst(tag string, cs ...Condition) List { return List{Tag: tag, Conditions: cs} }

func TestParseIf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []List
	}{
		{"lock_token [RFC4918 10.4.2]", `(<opaquelocktoken:abc>)`,
			[]List{lst("", tok("opaquelocktoken:abc"))}},
		{"token_and_etag_or_not_nolock [RFC4918 10.4.7]", `(<urn:uuid:x> ["etag"]) (Not <DAV:no-lock> ["etag"])`,
			[]List{lst("", tok("urn:uuid:x"), et(`"etag"`)), lst("", notTok("DAV:no-lock"), et(`"etag"`))}},
		{"tagged_absolute_url [RFC4918 10.4.6]", `<http://127.0.0.1:8080/litmus/lockme> (<urn:uuid:x>)`,
			[]List{lst("http://127.0.0.1:8080/litmus/lockme", tok("urn:uuid:x"))}},
		{"not_no_lock [RFC4918 10.4.8]", `(Not <DAV:no-lock>)`,
			[]List{lst("", notTok("DAV:no-lock"))}},
		{"tagged_path_escaped_quotes [RFC4918 10.4.2]", `</a/b> (["W/\"x\""])`,
			[]List{lst("/a/b", et(`"W/\"x\""`))}},
		{"tagged_path_weak [RFC4918 10.4.2]", `</a/b> ([W/"x"])`,
			[]List{lst("/a/b", et(`W/"x"`))}},
		{"no_lock_alone [RFC4918 10.4.8]", `(<DAV:no-lock>)`,
			[]List{lst("", tok("DAV:no-lock"))}},
		{"not_case_insensitive [RFC4918 10.4.2]", `(nOt <urn:a> NOT["e"])`,
			[]List{lst("", notTok("urn:a"), notET(`"e"`))}},
		{"no_whitespace [RFC4918 10.4.2]", `</r>(<urn:a>)(["e"])</s>(Not<urn:b>)`,
			[]List{lst("/r", tok("urn:a")), lst("/r", et(`"e"`)), lst("/s", notTok("urn:b"))}},
		{"lws_everywhere [RFC4918 10.4.2]", " \t( <urn:a>\t[ \"e\" ] )\r\n ( Not  <urn:b> ) ",
			[]List{lst("", tok("urn:a"), et(`"e"`)), lst("", notTok("urn:b"))}},
		{"tag_with_query [RFC4918 10.4.2]", `</a?b=c> (<urn:a>)`,
			[]List{lst("/a?b=c", tok("urn:a"))}},
		{"same_tag_twice [RFC4918 10.4.2]", `</a> (<urn:a>) </a> (<urn:b>)`,
			[]List{lst("/a", tok("urn:a")), lst("/a", tok("urn:b"))}},
		{"utf8_tag_passed_through [RFC4918 10.4.2]", "</caf\xc3\xa9> (<urn:a>)",
			[]List{lst("/caf\xc3\xa9", tok("urn:a"))}},
		{"empty_etag [RFC9110 8.8.3]", `([""])`, []List{lst("", et(`""`))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIf(tt.in)
			if err != nil {
				t.Fatalf("ParseIf(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got.Lists, tt.want) {
				t.Fatalf("ParseIf(%q) =\n %#v\nwant\n %#v", tt.in, got.Lists, tt.want)
			}
			again, err := ParseIf(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip through %q = %#v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseIfMalformed(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty [RFC4918 10.4.2]", ``},
		{"blank [RFC4918 10.4.2]", "  \t "},
		{"empty_list [RFC4918 10.4.2]", `()`},
		{"empty_second_list [RFC4918 10.4.2]", `(<urn:a>) ( )`},
		{"unbalanced_open [RFC4918 10.4.2]", `(<urn:a>`},
		{"unbalanced_close [RFC4918 10.4.2]", `(<urn:a>))`},
		{"nested [RFC4918 10.4.2]", `((<urn:a>))`},
		{"token_without_brackets [RFC4918 10.4.2]", `(urn:a)`},
		{"etag_without_brackets [RFC4918 10.4.2]", `("e")`},
		{"unterminated_token [RFC4918 10.4.2]", `(<urn:a)`},
		{"unterminated_etag [RFC4918 10.4.2]", `(["e")`},
		{"unquoted_etag [RFC4918 10.4.2]", `([e])`},
		{"empty_brackets [RFC4918 10.4.2]", `([])`},
		{"empty_angle [RFC4918 10.4.2]", `(<>)`},
		{"relative_token [RFC4918 10.4.2]", `(<abc>)`},
		{"token_with_space [RFC4918 10.4.2]", `(<urn:a b>)`},
		{"token_bad_scheme [RFC4918 10.4.2]", `(<1urn:a>)`},
		{"relative_tag [RFC4918 10.4.2]", `<a/b> (<urn:a>)`},
		{"tag_without_list [RFC4918 10.4.2]", `</a>`},
		{"tag_then_tag [RFC4918 10.4.2]", `</a> </b> (<urn:a>)`},
		{"mixed_untagged_then_tagged [RFC4918 10.4.2]", `(<urn:a>) </b> (<urn:b>)`},
		{"mixed_tagged_then_garbage [RFC4918 10.4.2]", `</a> (<urn:a>) x`},
		{"not_alone [RFC4918 10.4.2]", `(Not)`},
		{"not_not [RFC4918 10.4.2]", `(Not Not <urn:a>)`},
		{"not_at_end [RFC4918 10.4.2]", `(Not`},
		{"notx [RFC4918 10.4.2]", `(Notx <urn:a>)`},
		{"garbage [RFC4918 10.4.2]", `garbage`},
		{"garbage_after [RFC4918 10.4.2]", `(<urn:a>) garbage`},
		{"and_keyword [RFC4918 10.4.2]", `(<urn:a> and ["e"])`},
		{"etag_trailing [RFC4918 10.4.2]", `(["e"x])`},
		{"etag_ctl [RFC9110 8.8.3]", "([\"e\x00\"])"},
		{"etag_escaped_ctl [RFC9110 8.8.3]", "([\"e\\\x01\"])"},
		{"too_long [RFC4918 10.4]", "(<urn:" + strings.Repeat("a", maxIfLen) + ">)"},
		{"too_many_conditions [RFC4918 10.4]", "(" + strings.Repeat("<urn:a>", maxIfConditions+1) + ")"},
		{"too_many_lists [RFC4918 10.4]", strings.Repeat(`(["e"])`, maxIfConditions+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIf(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseIf(%.60q) = %#v, %v; want ErrMalformed", tt.in, got, err)
			}
		})
	}
}

func TestParseIfAtLimits(t *testing.T) {
	in := "(" + strings.Repeat("<urn:a>", maxIfConditions) + ")"
	h, err := ParseIf(in)
	if err != nil || len(h.Lists[0].Conditions) != maxIfConditions {
		t.Fatalf("%d conditions: %v", maxIfConditions, err)
	}
	in = "(" + strings.Repeat(" ", maxIfLen-len("(<urn:a>)")) + "<urn:a>)"
	if _, err := ParseIf(in); err != nil {
		t.Fatalf("%d bytes: %v", len(in), err)
	}
}

// resource is a test resource for Eval.
type resource struct {
	exists bool
	etag   string
	locks  []string
	req    bool
}

func (r resource) target() Target {
	t := Target{Exists: r.exists, ETag: r.etag, Request: r.req}
	if r.locks != nil {
		t.HasLock = func(tok string) bool {
			for _, l := range r.locks {
				if l == tok {
					return true
				}
			}
			return false
		}
	}
	return t
}

func TestEval(t *testing.T) {
	self := resource{exists: true, etag: `"v1"`, locks: []string{"urn:uuid:L"}}
	world := map[string]resource{
		"":                        self,
		"/other":                  {exists: true, etag: `"o1"`, locks: []string{"urn:uuid:O"}},
		"http://host/dav/self":    {exists: true, etag: `"v1"`, locks: []string{"urn:uuid:L"}, req: true},
		"/gone":                   {},
		"http://elsewhere/x":      {}, // outside our namespace: zero Target
		"/unlocked":               {exists: true, etag: `"u1"`},
		"/locked-no-etag-support": {exists: true, locks: []string{"urn:uuid:N"}},
	}
	tests := []struct {
		name      string
		in        string
		wantOK    bool
		wantMatch string
	}{
		{"token_held [RFC4918 10.4.1]", `(<urn:uuid:L>)`, true, ""},
		{"token_unknown [RFC4918 10.4.1]", `(<urn:uuid:nope>)`, false, ""},
		{"not_token_unknown [RFC4918 10.4.1]", `(Not <urn:uuid:nope>)`, true, ""},
		{"not_token_held [RFC4918 10.4.1]", `(Not <urn:uuid:L>)`, false, ""},
		{"etag_matches [RFC4918 10.4.1]", `(["v1"])`, true, `"v1"`},
		{"etag_differs [RFC4918 10.4.1]", `(["v0"])`, false, ""},
		{"weak_etag_never [RFC4918 10.4.1]", `([W/"v1"])`, false, ""},
		{"not_etag_differs_no_match [RFC4918 10.4.1]", `(Not ["v0"])`, true, ""},
		{"token_and_etag [RFC4918 10.4.7]", `(<urn:uuid:L> ["v1"])`, true, `"v1"`},
		{"token_and_wrong_etag [RFC4918 10.4.7]", `(<urn:uuid:L> ["v0"])`, false, ""},
		{"no_lock_false [RFC4918 10.4.8]", `(<DAV:no-lock>)`, false, ""},
		{"not_no_lock_true [RFC4918 10.4.8]", `(Not <DAV:no-lock>)`, true, ""},
		{"litmus_cond_put_corrupt_token [RFC4918 10.4.8]", `(<urn:uuid:bad>) (Not <DAV:no-lock>)`, true, ""},
		{"litmus_fail_cond_put_unlocked [RFC4918 10.4.8]", `(<DAV:no-lock> ["v1"])`, false, ""},
		{"second_list_true [RFC4918 10.4.3]", `(["v0"]) (<urn:uuid:L> ["v1"])`, true, `"v1"`},
		{"etag_from_later_list [RFC4918 10.4.3]", `(<urn:uuid:L>) (["v1"])`, true, `"v1"`},
		{"tagged_other_resource_token [RFC4918 10.4.6]", `</other> (<urn:uuid:O>)`, true, ""},
		{"tagged_other_resource_etag_no_match [RFC4918 10.4.6]", `</other> (["o1"])`, true, ""},
		{"tagged_other_wrong_token [RFC4918 10.4.6]", `</other> (<urn:uuid:L>)`, false, ""},
		{"tagged_self_url_etag [RFC4918 10.4.6]", `<http://host/dav/self> (["v1"])`, true, `"v1"`},
		{"tagged_other_then_self [RFC4918 10.4.6]", `</other> (["o1"]) <http://host/dav/self> (["v1"])`, true, `"v1"`},
		{"tagged_all_false [RFC4918 10.4.6]", `</other> (["x"]) </unlocked> (<urn:uuid:O>)`, false, ""},
		{"etag_on_missing [RFC4918 10.4.1]", `</gone> ([""])`, false, ""},
		{"not_etag_on_missing [RFC4918 10.4.1]", `</gone> (Not ["g1"])`, true, ""},
		{"token_on_missing [RFC4918 10.4.1]", `</gone> (<urn:uuid:L>)`, false, ""},
		{"foreign_url [RFC4918 10.4.6]", `<http://elsewhere/x> (<urn:uuid:L>)`, false, ""},
		{"unlocked_resource_token [RFC4918 10.4.1]", `</unlocked> (<urn:uuid:O>)`, false, ""},
		{"empty_etag_store [RFC9110 8.8.3.2]", `</locked-no-etag-support> ([""])`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseIf(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]int{}
			ok, match := h.Eval(func(tag string) Target {
				calls[tag]++
				r, found := world[tag]
				if !found {
					t.Fatalf("resolve(%q): unexpected tag", tag)
				}
				return r.target()
			})
			if ok != tt.wantOK || match != tt.wantMatch {
				t.Errorf("Eval(%s) = %v, %q; want %v, %q", tt.in, ok, match, tt.wantOK, tt.wantMatch)
			}
			for tag, n := range calls {
				if n > 1 {
					t.Errorf("resolve(%q) called %d times", tag, n)
				}
			}
		})
	}
}

func TestEvalZeroIsFalse(t *testing.T) {
	if ok, _ := (IfHeader{}).Eval(func(string) Target { return Target{} }); ok {
		t.Error("zero IfHeader evaluated true")
	}
}

func TestParseIfListsDoNotAlias(t *testing.T) {
	h, err := ParseIf(`(<urn:a>) (<urn:b>)`)
	if err != nil {
		t.Fatal(err)
	}
	h.Lists[0].Conditions = append(h.Lists[0].Conditions, tok("urn:c"))
	if h.Lists[1].Conditions[0].Token != "urn:b" {
		t.Fatal("appending to one list overwrote the next")
	}
}
