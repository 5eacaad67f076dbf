package server

import (
	"net/http/httptest"
	"slices"
	"testing"

	"safedav/backend"
	"safedav/overwrite"
)

// TestParseCopyMove runs the parse step of COPY and MOVE alone: the Destination,
// Depth and Overwrite headers, the pairs of names refused before storage is touched,
// and which error wins when several apply.
func TestParseCopyMove(t *testing.T) {
	const inf = backend.DepthInfinity
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string // Destination defaults to /b
		dst    string
		depth  int
		ow     overwriteHeader
		status int // 0: parses
		code   string
	}{
		{"destination_path [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": "/d/b"}, "/d/b", inf, overwriteAbsent, 0, ""},
		{"destination_absolute_url [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": "http://example.com/d/b"}, "/d/b", inf, overwriteAbsent, 0, ""},
		// Only the path is compared, so COPY and MOVE work behind a reverse proxy whose
		// public scheme and host differ from ours.
		{"destination_other_host [RFC4918 10.3]", "MOVE", "/a", map[string]string{"Destination": "https://proxy.example:8443/b"}, "/b", inf, overwriteAbsent, 0, ""},
		{"destination_escaped [RFC4918 8.3]", "COPY", "/a", map[string]string{"Destination": "/d/caf%C3%A9%20b.txt"}, "/d/café b.txt", inf, overwriteAbsent, 0, ""},
		{"destination_host_only_is_root [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": "http://example.com"}, "", 0, 0, 403, "root_protected"},
		{"destination_missing [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": ""}, "", 0, 0, 400, "invalid_destination"},
		{"destination_not_http [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": "ftp://example.com/b"}, "", 0, 0, 400, "invalid_destination"},
		{"destination_bad_url [RFC4918 10.3]", "COPY", "/a", map[string]string{"Destination": "http://[::1/b"}, "", 0, 0, 400, "invalid_destination"},
		{"destination_encoded_slash", "COPY", "/a", map[string]string{"Destination": "/d%2Fb"}, "", 0, 0, 400, "invalid_path"},
		{"destination_dot_dot", "MOVE", "/a", map[string]string{"Destination": "/d/../../b"}, "", 0, 0, 400, "invalid_name"},
		{"source_dot_dot", "COPY", "/%2e%2e/a", nil, "", 0, 0, 400, "invalid_name"},
		{"copy_depth_absent_is_infinity [RFC4918 9.8.3]", "COPY", "/a", nil, "/b", inf, overwriteAbsent, 0, ""},
		{"copy_depth_0 [RFC4918 9.8.3]", "COPY", "/a", map[string]string{"Depth": "0"}, "/b", backend.DepthZero, overwriteAbsent, 0, ""},
		{"copy_depth_infinity_any_case [RFC4918 10.2]", "COPY", "/a", map[string]string{"Depth": "Infinity"}, "/b", inf, overwriteAbsent, 0, ""},
		{"copy_depth_1 [RFC4918 9.8.3]", "COPY", "/a", map[string]string{"Depth": "1"}, "", 0, 0, 400, "bad_depth"},
		{"copy_depth_garbage [RFC4918 10.2]", "COPY", "/a", map[string]string{"Depth": "2"}, "", 0, 0, 400, "bad_depth"},
		{"move_depth_absent_is_infinity [RFC4918 9.9.2]", "MOVE", "/a", nil, "/b", inf, overwriteAbsent, 0, ""},
		{"move_depth_0 [RFC4918 9.9.2]", "MOVE", "/a", map[string]string{"Depth": "0"}, "", 0, 0, 400, "bad_depth"},
		{"move_depth_1 [RFC4918 9.9.2]", "MOVE", "/a", map[string]string{"Depth": "1"}, "", 0, 0, 400, "bad_depth"},
		{"overwrite_T [RFC4918 10.6]", "COPY", "/a", map[string]string{"Overwrite": "T"}, "/b", inf, overwriteT, 0, ""},
		{"overwrite_F [RFC4918 10.6]", "MOVE", "/a", map[string]string{"Overwrite": "F"}, "/b", inf, overwriteF, 0, ""},
		{"overwrite_lower_case [RFC4918 10.6]", "COPY", "/a", map[string]string{"Overwrite": "f"}, "/b", inf, overwriteF, 0, ""},
		{"overwrite_garbage [RFC4918 10.6]", "COPY", "/a", map[string]string{"Overwrite": "yes"}, "", 0, 0, 400, "bad_overwrite"},
		{"overwrite_padded [RFC4918 10.6]", "COPY", "/a", map[string]string{"Overwrite": "TF"}, "", 0, 0, 400, "bad_overwrite"},
		{"move_root [RFC4918 9.9.4]", "MOVE", "/", nil, "", 0, 0, 403, "root_protected"},
		{"copy_root_into_itself [RFC4918 9.8.5]", "COPY", "/", nil, "", 0, 0, 403, "destination_inside_source"},
		{"copy_onto_ancestor [RFC4918 9.8.5]", "COPY", "/a/b", map[string]string{"Destination": "/a"}, "", 0, 0, 403, "destination_contains_source"},
		{"same_source_and_destination [RFC4918 9.8.5]", "COPY", "/a", map[string]string{"Destination": "/a"}, "", 0, 0, 403, "same_source_and_destination"},
		{"same_after_trailing_slash [RFC4918 9.9.4]", "MOVE", "/a/", map[string]string{"Destination": "http://example.com/a"}, "", 0, 0, 403, "same_source_and_destination"},
		{"malformed_if_match [RFC9110 13.1.1]", "COPY", "/a", map[string]string{"If-Match": "no-quotes"}, "", 0, 0, 400, "bad_condition_header"},
		{"malformed_if [RFC4918 10.4.2]", "MOVE", "/a", map[string]string{"If": "(<unclosed"}, "", 0, 0, 400, "bad_condition_header"},
		// When several headers are wrong, the first in parse order is reported.
		{"destination_before_depth", "COPY", "/a", map[string]string{"Destination": "", "Depth": "1"}, "", 0, 0, 400, "invalid_destination"},
		{"depth_before_overwrite", "MOVE", "/a", map[string]string{"Depth": "0", "Overwrite": "x"}, "", 0, 0, 400, "bad_depth"},
		{"overwrite_before_same_name", "COPY", "/a", map[string]string{"Destination": "/a", "Overwrite": "x"}, "", 0, 0, 400, "bad_overwrite"},
		{"same_name_before_conditions", "COPY", "/a", map[string]string{"Destination": "/a", "If-Match": "x"}, "", 0, 0, 403, "same_source_and_destination"},
	}
	s := &Server{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Header.Set("Destination", "/b")
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			req, err := s.parseCopyMove(r)
			if tt.status != 0 {
				if err == nil {
					t.Fatalf("parsed as %+v, want %d %s", req, tt.status, tt.code)
				}
				if e := s.toError(r, err); e.Status != tt.status || e.Code != tt.code {
					t.Fatalf("%d %s (%v), want %d %s", e.Status, e.Code, err, tt.status, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if req.move != (tt.method == "MOVE") || req.dst != tt.dst || req.depth != tt.depth || req.overwrite != tt.ow {
				t.Fatalf("got move=%v dst=%q depth=%d overwrite=%d, want dst=%q depth=%d overwrite=%d",
					req.move, req.dst, req.depth, req.overwrite, tt.dst, tt.depth, tt.ow)
			}
		})
	}
}

// TestOverwriteRule: what the Overwrite header and the overwrite policy allow at a
// destination that exists or not. With an Overwrite header the policy is always
// replace (copyMovePolicy), so F never meets reject or rename.
func TestOverwriteRule(t *testing.T) {
	tests := []struct {
		name   string
		ow     overwriteHeader
		policy overwrite.Policy
		exists bool
		want   overwriteVerdict
	}{
		{"overwrite_T_exists [RFC4918 10.6]", overwriteT, overwrite.Replace, true, mayReplace},
		{"overwrite_T_new [RFC4918 10.6]", overwriteT, overwrite.Replace, false, mayReplace},
		{"overwrite_F_exists [RFC4918 9.8.5]", overwriteF, overwrite.Replace, true, refuseExisting},
		{"overwrite_F_new_is_create_only [RFC4918 10.6]", overwriteF, overwrite.Replace, false, createOnly},
		{"absent_means_T [RFC4918 10.6]", overwriteAbsent, overwrite.Replace, true, mayReplace},
		{"reject_exists", overwriteAbsent, overwrite.Reject, true, refuseName},
		{"reject_new_is_create_only", overwriteAbsent, overwrite.Reject, false, createOnly},
		{"rename_exists_goes_elsewhere", overwriteAbsent, overwrite.Rename, true, mayReplace},
		{"rename_new", overwriteAbsent, overwrite.Rename, false, mayReplace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overwriteRule(tt.ow, tt.policy, tt.exists); got != tt.want {
				t.Fatalf("overwriteRule = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCopyMoveScopes: which parts of the namespace must be free of others' locks, in
// the order they are checked.
func TestCopyMoveScopes(t *testing.T) {
	dstTree := lockScope{name: "/d/b", infinite: true}
	dstParent := lockScope{name: "/d"}
	srcTree := lockScope{name: "/s/a", infinite: true}
	srcParent := lockScope{name: "/s"}
	tests := []struct {
		name      string
		move      bool
		dstExists bool
		rename    bool
		want      []lockScope
	}{
		{"copy_over_existing [RFC4918 7.5]", false, true, false, []lockScope{dstTree}},
		{"copy_to_new_member [RFC4918 7.5]", false, false, false, []lockScope{dstTree, dstParent}},
		{"copy_renamed_beside_existing [RFC4918 7.5]", false, true, true, []lockScope{dstParent}},
		{"move_over_existing [RFC4918 7.7]", true, true, false, []lockScope{dstTree, srcTree, srcParent}},
		{"move_to_new_member [RFC4918 7.7]", true, false, false, []lockScope{dstTree, dstParent, srcTree, srcParent}},
		{"move_renamed_beside_existing [RFC4918 7.7]", true, true, true, []lockScope{dstParent, srcTree, srcParent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := copyMoveRequest{move: tt.move, src: "/s/a", dst: "/d/b"}
			if got := copyMoveScopes(req, tt.dstExists, tt.rename); !slices.Equal(got, tt.want) {
				t.Fatalf("scopes %+v, want %+v", got, tt.want)
			}
		})
	}
}
