package server

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// Bad input gets a clear 4xx with a structured body, never a panic or a 500.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxXMLBody = 4096 })
	ts.do("PUT", "/f", nil, "x").must(t, http.StatusCreated)
	ts.do("MKCOL", "/d", nil, "").must(t, http.StatusCreated)
	d1 := map[string]string{"Depth": "1"}
	huge := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:getetag/>", 1000) + `</D:prop></D:propfind>`
	tests := []struct {
		name         string
		method, path string
		hdr          map[string]string
		body         string
		want         int
		code         string
	}{
		{"propfind_not_xml", "PROPFIND", "/", d1, "this is not xml", 400, "bad_xml"},
		{"propfind_wrong_root", "PROPFIND", "/", d1, `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"/>`, 400, "bad_xml"},
		{"propfind_huge", "PROPFIND", "/", d1, huge, 413, "body_too_large"},
		{"propfind_infinite_refused [RFC4918 9.1]", "PROPFIND", "/", nil, "", 403, "propfind_finite_depth"},
		{"propfind_bad_depth", "PROPFIND", "/", map[string]string{"Depth": "2"}, "", 400, "bad_depth"},
		{"proppatch_garbage", "PROPPATCH", "/f", nil, "<<<", 400, "bad_xml"},
		{"proppatch_empty", "PROPPATCH", "/f", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"/>`, 0, ""},
		{"lock_garbage", "LOCK", "/f", nil, "<D:lockinfo", 400, "bad_xml"},
		{"lock_bad_depth", "LOCK", "/f", map[string]string{"Depth": "1"}, lockBody, 400, "bad_depth"},
		{"lock_refresh_without_token", "LOCK", "/f", nil, "", 400, "lock_token_missing"},
		{"unlock_without_token", "UNLOCK", "/f", nil, "", 400, "lock_token_missing"},
		{"unlock_bad_token", "UNLOCK", "/f", map[string]string{"Lock-Token": "nonsense"}, "", 400, "lock_token_missing"},
		{"copy_no_destination", "COPY", "/f", nil, "", 400, "invalid_destination"},
		{"copy_bad_destination", "COPY", "/f", map[string]string{"Destination": "ftp://x/y"}, "", 400, "invalid_destination"},
		{"copy_destination_dotdot", "COPY", "/f", map[string]string{"Destination": "/../../etc/passwd"}, "", 400, "invalid_name"},
		{"copy_bad_depth", "COPY", "/d", map[string]string{"Destination": "/d2", "Depth": "1"}, "", 400, "bad_depth"},
		{"move_depth_0", "MOVE", "/d", map[string]string{"Destination": "/d2", "Depth": "0"}, "", 400, "bad_depth"},
		{"copy_bad_overwrite", "COPY", "/f", map[string]string{"Destination": "/g", "Overwrite": "maybe"}, "", 400, "bad_overwrite"},
		{"copy_onto_itself", "COPY", "/f", map[string]string{"Destination": "/f"}, "", 403, "same_source_and_destination"},
		{"move_into_itself", "MOVE", "/d", map[string]string{"Destination": "/d/inner"}, "", 403, "destination_inside_source"},
		{"copy_overwrite_f", "COPY", "/f", map[string]string{"Destination": "/d", "Overwrite": "F"}, "", 412, "destination_exists"},
		{"copy_missing_parent", "COPY", "/f", map[string]string{"Destination": "/no/where"}, "", 409, "parent_missing"},
		{"delete_bad_depth", "DELETE", "/d", map[string]string{"Depth": "0"}, "", 400, "bad_depth"},
		{"delete_root", "DELETE", "/", nil, "", 403, "root_protected"},
		{"mkcol_with_body", "MKCOL", "/m", nil, "body", 415, "mkcol_body_unsupported"},
		{"mkcol_exists", "MKCOL", "/d", nil, "", 405, "already_exists"},
		{"mkcol_no_parent", "MKCOL", "/a/b/c", nil, "", 409, "parent_missing"},
		{"unknown_method", "BREW", "/f", nil, "", 405, "method_not_allowed"},
		{"get_missing", "GET", "/nope", nil, "", 404, "not_found"},
		{"bad_if_header", "DELETE", "/f", map[string]string{"If": "garbage"}, "", 400, "bad_condition_header"},
		{"unknown_overwrite_policy", "PUT", "/f", map[string]string{"Overwrite-Policy": "yolo"}, "x", 400, "unknown_overwrite_policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.hdr, tt.body)
			if tt.want == 0 {
				if r.StatusCode >= 500 {
					t.Fatalf("status %d:\n%s", r.StatusCode, r.body)
				}
				return
			}
			r.must(t, tt.want)
			if e := r.davError(t); e.Code != tt.code {
				t.Fatalf("code %q, want %q", e.Code, tt.code)
			}
			if r.Header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID")
			}
		})
	}
}

func TestPropfindInfiniteDepthAllowed(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AllowInfiniteDepth = true })
	ts.do("MKCOL", "/a", nil, "").must(t, http.StatusCreated)
	ts.do("MKCOL", "/a/b", nil, "").must(t, http.StatusCreated)
	ts.do("PUT", "/a/b/c.txt", nil, "x").must(t, http.StatusCreated)
	ms := ts.do("PROPFIND", "/", map[string]string{"Depth": "infinity"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 4 {
		t.Fatalf("%d responses, want 4", len(ms.Responses))
	}
}

func TestUploadSizeCap(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxUploadSize = 1000 })
	ts.do("PUT", "/ok", nil, strings.Repeat("x", 1000)).must(t, http.StatusCreated)
	r := ts.do("PUT", "/big", nil, strings.Repeat("x", 1001)).must(t, http.StatusRequestEntityTooLarge)
	if r.davError(t).Code != "upload_too_large" {
		t.Fatal(r.body)
	}
	req, _ := http.NewRequest("PUT", ts.URL+"/chunked", io.MultiReader(strings.NewReader(strings.Repeat("y", 5000))))
	req.ContentLength = -1
	ts.send(req).must(t, http.StatusRequestEntityTooLarge)
	if fileExists(filepath.Join(ts.root, "big")) || fileExists(filepath.Join(ts.root, "chunked")) || len(tempFiles(t, ts.root)) > 0 {
		t.Fatal("an oversized upload left a file behind")
	}
}

func TestRequestIDEchoed(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("GET", "/nope", map[string]string{"X-Request-ID": "abc-123"}, "").must(t, http.StatusNotFound)
	if r.Header.Get("X-Request-ID") != "abc-123" || r.davError(t).RequestID != "abc-123" {
		t.Fatalf("request ID not echoed: %q", r.Header.Get("X-Request-ID"))
	}
	// A write with an Idempotency-Key is answered through a buffer; its error body
	// carries the ID too.
	r = ts.do("PUT", "/missing/f", map[string]string{"X-Request-ID": "abc-456", "Idempotency-Key": "k"}, "x").must(t, http.StatusConflict)
	if r.Header.Get("X-Request-ID") != "abc-456" || r.davError(t).RequestID != "abc-456" {
		t.Fatalf("request ID not in the error of an idempotent write: %q", r.davError(t).RequestID)
	}
}

func TestOptions(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("OPTIONS", "/", nil, "").must(t, http.StatusOK)
	if r.Header.Get("DAV") != "1, 2" || r.Header.Get("MS-Author-Via") != "DAV" || !strings.Contains(r.Header.Get("Allow"), "PROPPATCH") {
		t.Fatalf("OPTIONS headers %v", r.Header)
	}
}

// The Depth header is case-insensitive for every method (RFC 4918 §10.2 values are
// tokens): DELETE with "INFINITY" deletes, as PROPFIND, LOCK and COPY accept it.
func TestDepthCaseInsensitive(t *testing.T) {
	ts := newTestServer(t)
	ts.do("MKCOL", "/d", nil, "").must(t, http.StatusCreated)
	up := map[string]string{"Depth": "INFINITY"}
	ts.do("COPY", "/d", map[string]string{"Depth": "INFINITY", "Destination": "/e"}, "").must(t, http.StatusCreated)
	ts.do("DELETE", "/d", up, "").must(t, http.StatusNoContent)
	ts.do("DELETE", "/e", map[string]string{"Depth": "1"}, "").must(t, http.StatusBadRequest)
}
