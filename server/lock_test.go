package server

import (
	"net/http"
	"strings"
	"testing"
)

func lockToken(t *testing.T, r result) string {
	t.Helper()
	tok := r.Header.Get("Lock-Token")
	if !strings.HasPrefix(tok, "<urn:uuid:") || !strings.HasSuffix(tok, ">") {
		t.Fatalf("Lock-Token %q", tok)
	}
	return tok[1 : len(tok)-1]
}

// Lock tokens are enforced on every write path (RFC 4918 §7), and the 423 names the
// lock root in DAV:lock-token-submitted.
func TestLockEnforcedOnEveryWrite(t *testing.T) {
	ts := newTestServer(t)
	ts.do("MKCOL", "/dir", nil, "").must(t, http.StatusCreated)
	ts.do("PUT", "/dir/f.txt", nil, "x").must(t, http.StatusCreated)
	ts.do("PUT", "/other.txt", nil, "x").must(t, http.StatusCreated)
	tok := lockToken(t, ts.do("LOCK", "/dir", map[string]string{"Depth": "infinity"}, lockBody).must(t, http.StatusOK))
	writes := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
	}{
		{"put_member", "PUT", "/dir/f.txt", nil, "y"},
		{"put_new_member", "PUT", "/dir/new.txt", nil, "y"},
		{"delete_member", "DELETE", "/dir/f.txt", nil, ""},
		{"delete_collection", "DELETE", "/dir", nil, ""},
		{"mkcol_inside", "MKCOL", "/dir/sub", nil, ""},
		{"proppatch_member", "PROPPATCH", "/dir/f.txt", nil, proppatchBody},
		{"copy_into", "COPY", "/other.txt", map[string]string{"Destination": "/dir/copy.txt"}, ""},
		{"move_into", "MOVE", "/other.txt", map[string]string{"Destination": "/dir/moved.txt"}, ""},
		{"move_out", "MOVE", "/dir/f.txt", map[string]string{"Destination": "/out.txt"}, ""},
		{"lock_member_exclusive", "LOCK", "/dir/f.txt", nil, lockBody},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			r := ts.do(w.method, w.path, w.hdr, w.body).must(t, http.StatusLocked)
			e := r.davError(t)
			if e.Code != "locked" {
				t.Fatalf("code %q", e.Code)
			}
			if w.method != "LOCK" && (e.LockTokenS == nil || len(e.LockTokenS.Href) != 1 || e.LockTokenS.Href[0] != "/dir") {
				t.Fatalf("lock-token-submitted %+v, want /dir\n%s", e.LockTokenS, r.body)
			}
		})
	}
	// With the token, the same writes go through.
	ifh := map[string]string{"If": "(<" + tok + ">)"}
	ts.do("PUT", "/dir/f.txt", ifh, "z").must(t, http.StatusNoContent)
	ts.do("PUT", "/dir/new.txt", ifh, "z").must(t, http.StatusCreated)
	ts.do("MKCOL", "/dir/sub", ifh, "").must(t, http.StatusCreated)
	// A refreshed lock keeps its token.
	r := ts.do("LOCK", "/dir", map[string]string{"If": "(<" + tok + ">)", "Timeout": "Second-100"}, "").must(t, http.StatusOK)
	if !strings.Contains(r.body, tok) {
		t.Fatalf("refresh body lacks the token:\n%s", r.body)
	}
	// UNLOCK with a wrong token is refused; with the right one the writes are free.
	ts.do("UNLOCK", "/dir", map[string]string{"Lock-Token": "<urn:uuid:00000000-0000-0000-0000-000000000000>"}, "").must(t, http.StatusConflict)
	ts.do("UNLOCK", "/dir", map[string]string{"Lock-Token": "<" + tok + ">"}, "").must(t, http.StatusNoContent)
	ts.do("DELETE", "/dir", nil, "").must(t, http.StatusNoContent)
}

func TestLockConflictStatus409(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.LockConflictStatus = http.StatusConflict })
	ts.do("PUT", "/f", nil, "x").must(t, http.StatusCreated)
	ts.do("LOCK", "/f", nil, lockBody).must(t, http.StatusOK)
	r := ts.do("PUT", "/f", map[string]string{"Accept": "application/json"}, "y").must(t, http.StatusConflict)
	if m := r.jsonError(t); m["code"] != "locked" {
		t.Fatalf("body %v", m)
	}
}

func TestSharedLocks(t *testing.T) {
	ts := newTestServer(t)
	ts.do("PUT", "/s", nil, "x").must(t, http.StatusCreated)
	shared := strings.Replace(lockBody, "<D:exclusive/>", "<D:shared/>", 1)
	t1 := lockToken(t, ts.do("LOCK", "/s", nil, shared).must(t, http.StatusOK))
	t2 := lockToken(t, ts.do("LOCK", "/s", nil, shared).must(t, http.StatusOK))
	ts.do("LOCK", "/s", nil, lockBody).must(t, http.StatusLocked) // exclusive conflicts
	ts.do("PUT", "/s", nil, "y").must(t, http.StatusLocked)
	ts.do("PUT", "/s", map[string]string{"If": "(<" + t1 + ">)"}, "y").must(t, http.StatusNoContent)
	ts.do("PUT", "/s", map[string]string{"If": "(<" + t2 + ">)"}, "z").must(t, http.StatusNoContent)
	ms := ts.do("PROPFIND", "/s", map[string]string{"Depth": "0"}, `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`).must(t, http.StatusMultiStatus)
	if !strings.Contains(ms.body, t1) || !strings.Contains(ms.body, t2) {
		t.Fatalf("lockdiscovery lacks a token:\n%s", ms.body)
	}
}

// A lock on an unmapped URL creates an empty resource (RFC 4918 §7.3).
func TestLockUnmapped(t *testing.T) {
	ts := newTestServer(t)
	tok := lockToken(t, ts.do("LOCK", "/new.txt", nil, lockBody).must(t, http.StatusCreated))
	if g := ts.do("GET", "/new.txt", nil, "").must(t, http.StatusOK); g.body != "" {
		t.Fatalf("body %q", g.body)
	}
	ts.do("PUT", "/new.txt", nil, "x").must(t, http.StatusLocked)
	ts.do("PUT", "/new.txt", map[string]string{"If": "(<" + tok + ">)"}, "x").must(t, http.StatusNoContent)
	if r := ts.do("LOCK", "/missing/new.txt", nil, lockBody).must(t, http.StatusConflict); !strings.Contains(r.body, "parent_missing") {
		t.Errorf("LOCK under a missing folder: %s", r.body)
	}
	ts.do("PUT", "/plain.txt", nil, "x").must(t, http.StatusCreated)
	if r := ts.do("LOCK", "/plain.txt/x", nil, lockBody).must(t, http.StatusConflict); !strings.Contains(r.body, "not_a_collection") {
		t.Errorf("LOCK under a file: %s", r.body)
	}
	// The refused LOCKs left no lock behind.
	ts.do("MKCOL", "/missing", nil, "").must(t, http.StatusCreated)
	ts.do("LOCK", "/missing/new.txt", nil, lockBody).must(t, http.StatusCreated)
}
