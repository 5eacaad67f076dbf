package server

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"safedav/server/auth"
)

// usersServer serves with four users: alice and bob (read-write, each in their own
// root; alice's /archive is read-only), reader (read-only over /shared) and admin ("/").
func usersServer(t *testing.T) *testServer {
	t.Helper()
	hash := func(pw string) string {
		h, err := auth.HashPassword(pw, 4)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	yaml := fmt.Sprintf(`users:
  - name: alice
    password: %q
    rules:
      - path: /archive
        permissions: read-only
  - name: bob
    password: %q
  - name: reader
    password: %q
    root: /shared
    permissions: read-only
  - name: admin
    password: %q
    root: /
`, hash("alice-pw"), hash("bob-pw"), hash("reader-pw"), hash("admin-pw"))
	path := filepath.Join(t.TempDir(), "users.yaml")
	os.WriteFile(path, []byte(yaml), 0o600)
	users, err := auth.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *Config) {
		c.Users = users
		c.Limiter = auth.NewLimiter(5, time.Minute, nil)
	})
	for _, d := range []string{"alice/archive", "bob", "shared"} {
		os.MkdirAll(filepath.Join(ts.root, d), 0o755)
	}
	os.WriteFile(filepath.Join(ts.root, "alice", "mine.txt"), []byte("alice's"), 0o644)
	os.WriteFile(filepath.Join(ts.root, "alice", "archive", "old.txt"), []byte("archived"), 0o644)
	os.WriteFile(filepath.Join(ts.root, "bob", "secret.txt"), []byte("bob's"), 0o644)
	os.WriteFile(filepath.Join(ts.root, "shared", "doc.txt"), []byte("shared"), 0o644)
	return ts
}

func (ts *testServer) as(user, method, path string, hdr map[string]string, body string) result {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	return ts.send(req)
}

// snapshot hashes every file and folder under root, to prove a refused request changed
// nothing.
func snapshot(t *testing.T, root string) string {
	var lines []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if err != nil || strings.HasPrefix(rel, ".safedav") {
			return nil
		}
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		b, _ := os.ReadFile(p)
		lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var everyMethod = []struct {
	method string
	hdr    map[string]string
	body   string
}{
	{"GET", nil, ""}, {"HEAD", nil, ""}, {"OPTIONS", nil, ""},
	{"PROPFIND", map[string]string{"Depth": "1"}, ""},
	{"PUT", nil, "new content"}, {"DELETE", nil, ""}, {"MKCOL", nil, ""},
	{"PROPPATCH", nil, proppatchBody}, {"LOCK", nil, lockBody},
	{"UNLOCK", map[string]string{"Lock-Token": "<urn:uuid:00000000-0000-0000-0000-000000000000>"}, ""},
	{"COPY", map[string]string{"Destination": "/copy.txt"}, ""},
	{"MOVE", map[string]string{"Destination": "/moved.txt"}, ""},
}

// Without credentials, with a wrong password, every method is 401 and changes nothing.
func TestAuthRequired(t *testing.T) {
	ts := usersServer(t)
	before := snapshot(t, ts.root)
	for _, m := range everyMethod {
		r := ts.as("", m.method, "/mine.txt", m.hdr, m.body).must(t, http.StatusUnauthorized)
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Basic realm="safedav"`) {
			t.Fatalf("%s: WWW-Authenticate %q", m.method, r.Header.Get("WWW-Authenticate"))
		}
	}
	if snapshot(t, ts.root) != before {
		t.Fatal("an unauthenticated request changed the store")
	}
}

func TestLoginRateLimit(t *testing.T) {
	ts := usersServer(t)
	for range 5 {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.SetBasicAuth("alice", "wrong")
		ts.send(req).must(t, http.StatusUnauthorized)
	}
	r := ts.as("alice", "GET", "/", nil, "").must(t, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" || r.davError(t).Code != "too_many_failed_logins" {
		t.Fatalf("429 without Retry-After or code: %v %s", r.Header, r.body)
	}
}

// Each user sees only their root: paths, hrefs, Destination and If tags all resolve
// inside it.
func TestUserRoots(t *testing.T) {
	ts := usersServer(t)
	if g := ts.as("alice", "GET", "/mine.txt", nil, "").must(t, http.StatusOK); g.body != "alice's" {
		t.Fatalf("alice GET /mine.txt = %q", g.body)
	}
	ts.as("bob", "GET", "/mine.txt", nil, "").must(t, http.StatusNotFound)
	ts.as("bob", "GET", "/secret.txt", nil, "").must(t, http.StatusOK)
	ms := ts.as("alice", "PROPFIND", "/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	var hrefs []string
	for _, r := range ms.Responses {
		hrefs = append(hrefs, r.Href)
	}
	sort.Strings(hrefs)
	if strings.Join(hrefs, " ") != "/ /archive/ /mine.txt" {
		t.Fatalf("alice's listing: %v", hrefs)
	}
	ts.as("alice", "PUT", "/new.txt", nil, "hi").must(t, http.StatusCreated)
	if b, _ := os.ReadFile(filepath.Join(ts.root, "alice", "new.txt")); string(b) != "hi" {
		t.Fatal("alice's upload did not land in her root")
	}
	// Every way out of the root fails and touches nothing of bob's.
	before := snapshot(t, filepath.Join(ts.root, "bob"))
	escapes := []struct {
		method, path string
		hdr          map[string]string
	}{
		{"GET", "/../bob/secret.txt", nil},
		{"GET", "/%2e%2e/bob/secret.txt", nil},
		{"COPY", "/mine.txt", map[string]string{"Destination": "/../bob/stolen.txt"}},
		{"COPY", "/mine.txt", map[string]string{"Destination": ts.URL + "/%2e%2e/bob/secret.txt", "Overwrite": "T"}},
		{"MOVE", "/mine.txt", map[string]string{"Destination": "/bob/secret.txt"}}, // = /alice/bob/…: no such folder
		{"COPY", "/../bob/secret.txt", map[string]string{"Destination": "/got.txt"}},
		{"DELETE", "/bob/secret.txt", nil},
		{"PUT", "/..%2fbob%2fsecret.txt", nil},
		{"PROPFIND", "/../", map[string]string{"Depth": "1"}},
	}
	for _, e := range escapes {
		r := ts.as("alice", e.method, e.path, e.hdr, "")
		if r.StatusCode != 400 && r.StatusCode != 403 && r.StatusCode != 404 && r.StatusCode != 409 {
			t.Errorf("alice %s %s %v answered %d", e.method, e.path, e.hdr, r.StatusCode)
		}
		if strings.Contains(r.body, "bob's") {
			t.Errorf("alice %s %s read bob's file", e.method, e.path)
		}
	}
	if snapshot(t, filepath.Join(ts.root, "bob")) != before {
		t.Fatal("alice changed bob's files")
	}
	// A new user's root is created on first use.
	os.RemoveAll(filepath.Join(ts.root, "bob"))
	ts.as("bob", "PUT", "/first.txt", nil, "x").must(t, http.StatusCreated)
}

// Permission × method: read-only users and read-only paths refuse every write with 403
// read_only and change nothing; reads work.
func TestPermissions(t *testing.T) {
	ts := usersServer(t)
	cases := []struct {
		user, path string
		write      bool // allowed to write path?
		copyOK     bool // allowed to COPY it to /copy.txt (a write of the destination only)
	}{
		{"reader", "/doc.txt", false, false},
		{"alice", "/archive/old.txt", false, true},
		{"alice", "/mine.txt", true, true},
		{"admin", "/alice/mine.txt", true, true},
	}
	for _, c := range cases {
		for _, m := range everyMethod {
			t.Run(c.user+"/"+m.method+c.path, func(t *testing.T) {
				before := snapshot(t, ts.root)
				r := ts.as(c.user, m.method, c.path, m.hdr, m.body)
				write := writeMethods[m.method] || m.method == "COPY"
				allowed := c.write
				if m.method == "COPY" {
					allowed = c.copyOK
				}
				switch {
				case !write:
					if r.StatusCode >= 400 {
						t.Fatalf("read %s answered %d:\n%s", m.method, r.StatusCode, r.body)
					}
				case !allowed:
					r.must(t, http.StatusForbidden)
					if e := r.davError(t); e.Code != "read_only" {
						t.Fatalf("code %q", e.Code)
					}
					if snapshot(t, ts.root) != before {
						t.Fatal("a refused write changed the store")
					}
				default:
					if r.StatusCode == http.StatusForbidden || r.StatusCode == http.StatusUnauthorized {
						t.Fatalf("allowed write %s answered %d:\n%s", m.method, r.StatusCode, r.body)
					}
				}
			})
		}
	}
	// Deleting or moving a folder that holds a read-only path is refused as a whole.
	ts.as("alice", "DELETE", "/", nil, "").must(t, http.StatusForbidden)
	ts.as("alice", "MKCOL", "/box", nil, "").must(t, http.StatusCreated)
	ts.as("alice", "MOVE", "/box", map[string]string{"Destination": "/archive/box"}, "").must(t, http.StatusForbidden)
}

// Locks belong to their owner: another user's token does not let a write through.
func TestLockOwnerIsPrincipal(t *testing.T) {
	ts := usersServer(t)
	tok := lockToken(t, ts.as("alice", "LOCK", "/mine.txt", nil, lockBody).must(t, http.StatusOK))
	ifh := map[string]string{"If": "(<" + tok + ">)"}
	ts.as("admin", "PUT", "/alice/mine.txt", ifh, "admin").must(t, http.StatusLocked)
	ts.as("admin", "UNLOCK", "/alice/mine.txt", map[string]string{"Lock-Token": "<" + tok + ">"}, "").must(t, http.StatusForbidden)
	ts.as("alice", "PUT", "/mine.txt", ifh, "alice again").must(t, http.StatusNoContent)
	// lockdiscovery shows the lock root in the viewer's own namespace.
	r := ts.as("admin", "PROPFIND", "/alice/mine.txt", map[string]string{"Depth": "0"}, "").must(t, http.StatusMultiStatus)
	if !strings.Contains(r.body, "<D:href>/alice/mine.txt</D:href>") {
		t.Fatalf("admin's lockdiscovery:\n%s", r.body)
	}
}

// Idempotency keys are per user.
func TestIdempotencyPerUser(t *testing.T) {
	ts := usersServer(t)
	k := map[string]string{"Idempotency-Key": "same-key"}
	ts.as("alice", "PUT", "/k.txt", k, "a").must(t, http.StatusCreated)
	ts.as("bob", "PUT", "/k.txt", k, "b").must(t, http.StatusCreated)
	if b, _ := os.ReadFile(filepath.Join(ts.root, "bob", "k.txt")); string(b) != "b" {
		t.Fatalf("bob's upload was replayed from alice's key: %q", b)
	}
}
