package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"safedav/coord"
	"safedav/overwrite"
	"safedav/server/idem"
)

func withPolicy(def overwrite.Policy, rules ...string) func(*Config) {
	return func(c *Config) {
		c.Overwrite.Default = def
		for _, r := range rules {
			rule, err := overwrite.ParseRule(r)
			if err != nil {
				panic(err)
			}
			c.Overwrite.Rules = append(c.Overwrite.Rules, rule)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), ".safedav") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Policy × method × (exists/missing) × (where the policy comes from).
func TestOverwritePolicies(t *testing.T) {
	type source int
	const (
		fromDefault source = iota
		fromRule
		fromHeader
	)
	tests := []struct {
		policy   overwrite.Policy
		method   string
		exists   bool
		want     int
		code     string
		wantName string // where the upload landed ("" = nowhere)
	}{
		{overwrite.Replace, "PUT", false, 201, "", "report.pdf"},
		{overwrite.Replace, "PUT", true, 204, "", "report.pdf"},
		{overwrite.Reject, "PUT", false, 201, "", "report.pdf"},
		{overwrite.Reject, "PUT", true, 409, "name_exists", ""},
		{overwrite.Rename, "PUT", false, 201, "", "report.pdf"},
		{overwrite.Rename, "PUT", true, 201, "", "report (1).pdf"},
		{overwrite.Replace, "COPY", false, 201, "", "report.pdf"},
		{overwrite.Replace, "COPY", true, 204, "", "report.pdf"},
		{overwrite.Reject, "COPY", true, 409, "name_exists", ""},
		{overwrite.Rename, "COPY", true, 201, "", "report (1).pdf"},
		{overwrite.Replace, "MOVE", true, 204, "", "report.pdf"},
		{overwrite.Reject, "MOVE", true, 409, "name_exists", ""},
		{overwrite.Rename, "MOVE", true, 201, "", "report (1).pdf"},
		{overwrite.Rename, "MOVE", false, 201, "", "report.pdf"},
	}
	for _, tt := range tests {
		for _, src := range []source{fromDefault, fromRule, fromHeader} {
			name := fmt.Sprintf("%s/%s/exists=%v/%v", tt.policy, tt.method, tt.exists, []string{"default", "rule", "header"}[src])
			t.Run(name, func(t *testing.T) {
				var mod func(*Config)
				hdr := map[string]string{}
				switch src {
				case fromDefault:
					mod = withPolicy(tt.policy)
				case fromRule:
					// A less specific rule says otherwise; the most specific one wins.
					mod = withPolicy(overwrite.Replace, "/**=reject", "/in/**="+tt.policy.String())
					if tt.policy == overwrite.Reject {
						mod = withPolicy(overwrite.Replace, "/**=rename", "/in/**=reject")
					}
				case fromHeader:
					mod = withPolicy(overwrite.Reject, "/in/**=rename")
					if tt.policy == overwrite.Rename {
						mod = withPolicy(overwrite.Reject)
					}
					hdr["Overwrite-Policy"] = tt.policy.String()
				}
				ts := newTestServer(t, mod)
				if err := os.Mkdir(filepath.Join(ts.root, "in"), 0o755); err != nil {
					t.Fatal(err)
				}
				if tt.exists {
					os.WriteFile(filepath.Join(ts.root, "in", "report.pdf"), []byte("old"), 0o644)
				}
				os.WriteFile(filepath.Join(ts.root, "src.pdf"), []byte("new"), 0o644)
				path := "/in/" + escapeSegment("report.pdf")
				var r result
				if tt.method == "PUT" {
					r = ts.do("PUT", path, hdr, "new")
				} else {
					hdr["Destination"] = path
					r = ts.do(tt.method, "/src.pdf", hdr, "")
				}
				r.must(t, tt.want)
				if tt.code != "" {
					e := r.davError(t)
					if e.Code != tt.code || e.ETag == "" {
						t.Fatalf("error %+v, want code %s with the ETag", e, tt.code)
					}
					if !strings.Contains(r.body, "report (1).pdf") {
						t.Fatalf("no suggested name in\n%s", r.body)
					}
				}
				files := listDir(t, filepath.Join(ts.root, "in"))
				if tt.exists {
					if b, _ := os.ReadFile(filepath.Join(ts.root, "in", "report.pdf")); tt.wantName != "report.pdf" && string(b) != "old" {
						t.Fatalf("the existing file was overwritten under %s", tt.policy)
					}
				}
				if tt.wantName != "" {
					if b, _ := os.ReadFile(filepath.Join(ts.root, "in", tt.wantName)); string(b) != "new" {
						t.Fatalf("%s holds %q, want the upload; files %v", tt.wantName, b, files)
					}
					if tt.want == 201 {
						loc, _ := url.PathUnescape(r.Header.Get("Location"))
						if loc != "/in/"+tt.wantName {
							t.Fatalf("Location %q, want /in/%s", r.Header.Get("Location"), tt.wantName)
						}
					}
				}
				srcLeft := fileExists(filepath.Join(ts.root, "src.pdf"))
				if tt.method == "MOVE" && srcLeft == (tt.want < 300) {
					t.Fatalf("MOVE answered %d but source exists=%v", tt.want, srcLeft)
				}
			})
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// If-None-Match: * keeps its create-only meaning (412) under every policy.
func TestCreateOnlyUnderRename(t *testing.T) {
	ts := newTestServer(t, withPolicy(overwrite.Rename))
	ts.do("PUT", "/a.txt", nil, "1").must(t, http.StatusCreated)
	ts.do("PUT", "/a.txt", map[string]string{"If-None-Match": "*"}, "2").must(t, http.StatusPreconditionFailed)
	if got := listDir(t, ts.root); len(got) != 1 {
		t.Fatalf("files %v", got)
	}
}

// Under "rename", a COPY or MOVE that names the destination's version with If-Match
// replaces it, and one with If-None-Match: * is refused (412), as a PUT would be.
func TestConditionalCopyMoveUnderRename(t *testing.T) {
	for _, method := range []string{"COPY", "MOVE"} {
		t.Run(method, func(t *testing.T) {
			ts := newTestServer(t, withPolicy(overwrite.Rename))
			ts.do("PUT", "/src.txt", nil, "new").must(t, http.StatusCreated)
			etag := ts.do("PUT", "/b.txt", nil, "old").must(t, http.StatusCreated).Header.Get("ETag")
			ts.do(method, "/src.txt", map[string]string{"Destination": "/b.txt", "If-None-Match": "*"}, "").must(t, http.StatusPreconditionFailed)
			ts.do(method, "/src.txt", map[string]string{"Destination": "/b.txt", "If-Match": etag}, "").must(t, http.StatusNoContent)
			want := map[string]string{"COPY": "b.txt|src.txt", "MOVE": "b.txt"}[method]
			if got := strings.Join(listDir(t, ts.root), "|"); got != want {
				t.Fatalf("files %s, want %s", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(ts.root, "b.txt")); string(b) != "new" {
				t.Fatalf("b.txt holds %q", b)
			}
		})
	}
}

// 50 concurrent uploads of one name under "rename" give 50 distinct files, each with
// the right content.
func TestRenameRace(t *testing.T) {
	ts := newTestServer(t, withPolicy(overwrite.Rename))
	renameRace(t, []*testServer{ts})
	if got := listDir(t, ts.root); len(got) != 50 {
		t.Fatalf("%d files, want 50: %v", len(got), got)
	}
}

func renameRace(t *testing.T, servers []*testServer) {
	ts := servers[0]
	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	locations := make([]string, n)
	for i := range n {
		wg.Go(func() {
			<-start
			ts := servers[i%len(servers)]
			req, _ := http.NewRequest("PUT", ts.URL+"/"+escapeSegment("report.pdf"), strings.NewReader(fmt.Sprint("upload ", i)))
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("upload %d answered %d", i, resp.StatusCode)
				return
			}
			locations[i] = resp.Header.Get("Location")
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i, loc := range locations {
		if seen[loc] {
			t.Fatalf("two uploads were stored at %s", loc)
		}
		seen[loc] = true
		if g := ts.do("GET", loc, nil, ""); g.body != fmt.Sprint("upload ", i) {
			t.Fatalf("%s holds %q, want upload %d", loc, g.body, i)
		}
	}
}

func TestPolicyVisible(t *testing.T) {
	ts := newTestServer(t, withPolicy(overwrite.Replace, "/inbox/**=rename"))
	ts.do("MKCOL", "/inbox", nil, "").must(t, http.StatusCreated)
	if r := ts.do("OPTIONS", "/inbox/", nil, ""); r.Header.Get("Overwrite-Policy") != "rename" {
		t.Fatalf("OPTIONS Overwrite-Policy %q", r.Header.Get("Overwrite-Policy"))
	}
	if r := ts.do("OPTIONS", "/", nil, ""); r.Header.Get("Overwrite-Policy") != "replace" {
		t.Fatalf("OPTIONS / Overwrite-Policy %q", r.Header.Get("Overwrite-Policy"))
	}
	body := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:S="https://safedav.dev/ns"><D:prop><S:overwrite-policy/></D:prop></D:propfind>`
	r := ts.do("PROPFIND", "/inbox/", map[string]string{"Depth": "0"}, body).must(t, http.StatusMultiStatus)
	if !strings.Contains(r.body, ">rename<") {
		t.Fatalf("PROPFIND:\n%s", r.body)
	}
}

// A retried upload with the same Idempotency-Key is not applied again, under every
// policy: the client gets the first answer.
func TestIdempotentRetries(t *testing.T) {
	for _, pol := range []overwrite.Policy{overwrite.Replace, overwrite.Reject, overwrite.Rename} {
		t.Run(pol.String(), func(t *testing.T) {
			ts := newTestServer(t, withPolicy(pol))
			ts.do("PUT", "/r.pdf", nil, "existing").must(t, http.StatusCreated)
			key := map[string]string{"Idempotency-Key": "k-" + pol.String()}
			first := ts.do("PUT", "/r.pdf", key, "upload")
			// A 409 is not recorded (it depends on passing state, idem.ShouldRecord):
			// the retry is evaluated again and gets the same answer.
			replayed := first.StatusCode != http.StatusConflict
			for range 3 {
				again := ts.do("PUT", "/r.pdf", key, "upload")
				if again.StatusCode != first.StatusCode || again.Header.Get("Location") != first.Header.Get("Location") ||
					again.Header.Get("ETag") != first.Header.Get("ETag") || (again.Header.Get("Idempotent-Replayed") == "true") != replayed {
					t.Fatalf("retry answered %d %v, first %d %v", again.StatusCode, again.Header, first.StatusCode, first.Header)
				}
			}
			want := map[overwrite.Policy][]string{
				overwrite.Replace: {"r.pdf"},
				overwrite.Reject:  {"r.pdf"},
				overwrite.Rename:  {"r (1).pdf", "r.pdf"},
			}[pol]
			if got := listDir(t, ts.root); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("files %v, want %v", got, want)
			}
			// The same key for other content or another path is refused.
			if replayed {
				r := ts.do("PUT", "/r.pdf", key, "different").must(t, http.StatusUnprocessableEntity)
				if r.davError(t).Code != "idempotency_key_reused" {
					t.Fatal(r.body)
				}
				ts.do("PUT", "/other.pdf", key, "upload").must(t, http.StatusUnprocessableEntity)
			}
			// COPY with a key replays too.
			ck := map[string]string{"Idempotency-Key": "copy-" + pol.String(), "Destination": "/c.pdf"}
			c1 := ts.do("COPY", "/r.pdf", ck, "")
			c2 := ts.do("COPY", "/r.pdf", ck, "")
			if c1.StatusCode != 201 || c2.StatusCode != 201 || c2.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("COPY retries answered %d then %d", c1.StatusCode, c2.StatusCode)
			}
			ck["Destination"] = "/elsewhere.pdf"
			ts.do("COPY", "/r.pdf", ck, "").must(t, http.StatusUnprocessableEntity)
		})
	}
}

// Keys survive a restart within the retention window.
func TestIdempotencyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *idem.Store {
		st, err := idem.Open(idem.Options{Path: filepath.Join(dir, "idem.log")})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	ts := newTestServer(t, withPolicy(overwrite.Rename), func(c *Config) { c.Idempotency = coord.LocalIdempotency(st) })
	ts.do("PUT", "/a.txt", nil, "x").must(t, http.StatusCreated)
	key := map[string]string{"Idempotency-Key": "restart-1"}
	first := ts.do("PUT", "/a.txt", key, "y").must(t, http.StatusCreated)
	st.Close()

	st2 := open()
	defer st2.Close()
	ts.srv.idem = coord.LocalIdempotency(st2) // the same data, a new process's store
	again := ts.do("PUT", "/a.txt", key, "y").must(t, http.StatusCreated)
	if again.Header.Get("Location") != first.Header.Get("Location") || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after restart: %v, first %v", again.Header, first.Header)
	}
	if got := listDir(t, ts.root); len(got) != 2 {
		t.Fatalf("files %v", got)
	}
}
