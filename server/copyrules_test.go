package server

import (
	"net/http"
	"slices"
	"testing"
)

// eachBackend runs f against a server over each backend: a folder, and the S3 server
// of SAFEDAV_TEST_S3_* (skipped without one). mod changes both servers' Config.
func eachBackend(t *testing.T, f func(t *testing.T, ts *testServer), mod ...func(*Config)) {
	t.Run("local", func(t *testing.T) { f(t, newTestServer(t, mod...)) })
	t.Run("s3", func(t *testing.T) { f(t, s3Servers(t, 1, mod...)[0]) })
}

// A COPY or MOVE that the namespace rules refuse (backend.CheckCopy) gets the same
// status and code on every backend, whatever Overwrite, Depth and the overwrite policy
// say, and changes nothing. Onto an ancestor it is 403, as Apache's mod_dav answers:
// replacing the destination would delete the source's own parent.
func TestCopyMoveNameRules(t *testing.T) {
	type answer struct {
		status int
		code   string
	}
	cases := []struct {
		name, method, src, dst string
		hdr                    map[string]string
		want                   answer
	}{
		{"copy_same [RFC4918 9.8.5]", "COPY", "/a", "/a", nil, answer{403, "same_source_and_destination"}},
		{"move_same_file [RFC4918 9.9.4]", "MOVE", "/a/b/f", "/a/b/f", nil, answer{403, "same_source_and_destination"}},
		{"copy_into_self", "COPY", "/a", "/a/x", nil, answer{403, "destination_inside_source"}},
		{"copy_into_descendant", "COPY", "/a", "/a/b/x", nil, answer{403, "destination_inside_source"}},
		{"copy_into_self_depth_0", "COPY", "/a", "/a/x", map[string]string{"Depth": "0"}, answer{403, "destination_inside_source"}},
		{"move_into_self", "MOVE", "/a", "/a/x", nil, answer{403, "destination_inside_source"}},
		{"copy_file_into_itself", "COPY", "/a/g", "/a/g/x", nil, answer{403, "destination_inside_source"}},
		{"copy_onto_parent [RFC4918 9.8.4]", "COPY", "/a/b", "/a", nil, answer{403, "destination_contains_source"}},
		{"copy_onto_parent_overwrite_t", "COPY", "/a/b", "/a", map[string]string{"Overwrite": "T"}, answer{403, "destination_contains_source"}},
		{"copy_onto_parent_overwrite_f", "COPY", "/a/b", "/a", map[string]string{"Overwrite": "F"}, answer{403, "destination_contains_source"}},
		{"copy_onto_parent_rename_policy", "COPY", "/a/b", "/a", map[string]string{"Overwrite-Policy": "rename"}, answer{403, "destination_contains_source"}},
		{"copy_file_onto_ancestor", "COPY", "/a/b/f", "/a", nil, answer{403, "destination_contains_source"}},
		{"move_onto_parent [RFC4918 9.9.3]", "MOVE", "/a/b", "/a", nil, answer{403, "destination_contains_source"}},
		{"move_onto_ancestor", "MOVE", "/a/b/f", "/a", nil, answer{403, "destination_contains_source"}},
		{"copy_onto_root", "COPY", "/a/b", "/", nil, answer{403, "root_protected"}},
		{"move_root", "MOVE", "/", "/z", nil, answer{403, "root_protected"}},
		{"copy_root", "COPY", "/", "/z", nil, answer{403, "destination_inside_source"}},
		{"copy_to_reserved", "COPY", "/a/g", "/.safedav", nil, answer{400, "invalid_name"}},
	}
	got := map[string][]answer{}
	eachBackend(t, func(t *testing.T, ts *testServer) {
		ts.do("MKCOL", "/a", nil, "").must(t, http.StatusCreated)
		ts.do("MKCOL", "/a/b", nil, "").must(t, http.StatusCreated)
		ts.do("PUT", "/a/b/f", nil, "f").must(t, http.StatusCreated)
		ts.do("PUT", "/a/g", nil, "g").must(t, http.StatusCreated)
		var answers []answer
		for _, tc := range cases {
			hdr := map[string]string{"Destination": ts.URL + tc.dst}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			r := ts.do(tc.method, tc.src, hdr, "")
			a := answer{r.StatusCode, r.davError(t).Code}
			if a != tc.want {
				t.Errorf("%s: %s %s to %s = %d %s, want %d %s", tc.name, tc.method, tc.src, tc.dst, a.status, a.code, tc.want.status, tc.want.code)
			}
			answers = append(answers, a)
		}
		// Nothing changed.
		for path, want := range map[string]string{"/a/b/f": "f", "/a/g": "g"} {
			if r := ts.do("GET", path, nil, "").must(t, http.StatusOK); r.body != want {
				t.Errorf("GET %s = %q, want %q", path, r.body, want)
			}
		}
		for _, path := range []string{"/a/x", "/a/b/x", "/a/g/x", "/z", "/a (1)"} {
			ts.do("GET", path, nil, "").must(t, http.StatusNotFound)
		}
		got[t.Name()] = answers
	})
	if a, b := got[t.Name()+"/local"], got[t.Name()+"/s3"]; a != nil && b != nil && !slices.Equal(a, b) {
		t.Errorf("local and S3 answer differently:\nlocal %v\n   s3 %v", a, b)
	}
}
