package auth

import (
	"errors"
	"testing"

	"safedav/backend"
)

func TestAllowed(t *testing.T) {
	rules := []Rule{
		{Path: "/archive", Perm: ReadOnly},
		{Path: "/archive/inbox", Perm: ReadWrite},
		{Path: "/public", Perm: ReadWrite},
	}
	rw := &User{Name: "rw", Root: "/rw", Perm: ReadWrite, Rules: rules}
	ro := &User{Name: "ro", Root: "/ro", Perm: ReadOnly, Rules: rules}
	plainRO := &User{Name: "plain", Root: "/plain", Perm: ReadOnly}
	var zero User // fails closed: the zero Permission is ReadOnly

	tests := []struct {
		name  string
		user  *User
		path  string
		write bool
		want  bool
	}{
		{"rw_root_read", rw, "/", false, true},
		{"rw_root_write", rw, "/", true, true},
		{"rw_unruled_write", rw, "/docs/a.txt", true, true},
		{"rw_rule_itself_write", rw, "/archive", true, false},
		{"rw_rule_itself_read", rw, "/archive", false, true},
		{"rw_below_rule_write", rw, "/archive/2024/a.txt", true, false},
		{"rw_longest_prefix_wins", rw, "/archive/inbox/new.txt", true, true},
		{"rw_longest_prefix_exact", rw, "/archive/inbox", true, true},
		{"rw_boundary_arch", rw, "/arch", true, true},
		{"rw_boundary_archive2", rw, "/archive2/a", true, true},
		{"rw_boundary_inbox2", rw, "/archive/inbox2", true, false},
		{"ro_root_write", ro, "/", true, false},
		{"ro_root_read", ro, "/", false, true},
		{"ro_unruled_write", ro, "/docs/a.txt", true, false},
		{"ro_rule_grants_write", ro, "/public/a.txt", true, true},
		{"ro_rule_ro_write", ro, "/archive/x", true, false},
		{"ro_nested_rw_write", ro, "/archive/inbox/x", true, true},
		{"ro_boundary_publicity", ro, "/publicity", true, false},
		{"plain_ro_write", plainRO, "/x", true, false},
		{"plain_ro_read", plainRO, "/x", false, true},
		{"zero_user_write", &zero, "/x", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.user.Allowed(tt.path, tt.write); got != tt.want {
				t.Fatalf("Allowed(%q, write=%v) = %v, want %v", tt.path, tt.write, got, tt.want)
			}
		})
	}
}

func TestAllowedRuleOrderIrrelevant(t *testing.T) {
	// The longest prefix wins whatever order the rules come in.
	u := &User{Perm: ReadWrite, Rules: []Rule{
		{Path: "/a/b/c", Perm: ReadWrite},
		{Path: "/a", Perm: ReadOnly},
		{Path: "/a/b", Perm: ReadOnly},
	}}
	if !u.Allowed("/a/b/c/d", true) {
		t.Error("/a/b/c/d: the /a/b/c rule should win")
	}
	if u.Allowed("/a/b/x", true) {
		t.Error("/a/b/x: the /a/b rule should win")
	}
}

func TestAllowedTree(t *testing.T) {
	u := &User{Perm: ReadWrite, Rules: []Rule{
		{Path: "/a/frozen", Perm: ReadOnly},
		{Path: "/ro", Perm: ReadOnly},
		{Path: "/ro/open", Perm: ReadWrite},
	}}
	tests := []struct {
		path  string
		write bool
		want  bool
	}{
		{"/a", true, false}, // deleting /a would delete the read-only /a/frozen
		{"/a", false, true},
		{"/a/other", true, true},
		{"/a/frozen", true, false},
		{"/ab", true, true}, // "/a/frozen" is not below "/ab"
		{"/ro/open", true, true},
		{"/ro/open/x", true, true},
		{"/", true, false},
		{"/b", true, true},
	}
	for _, tt := range tests {
		if got := u.AllowedTree(tt.path, tt.write); got != tt.want {
			t.Errorf("AllowedTree(%q, write=%v) = %v, want %v", tt.path, tt.write, got, tt.want)
		}
	}
}

func TestMapName(t *testing.T) {
	alice := &User{Name: "alice", Root: "/alice"}
	admin := &User{Name: "admin", Root: "/"}
	deep := &User{Name: "deep", Root: "/teams/x"}
	tests := []struct {
		name    string
		user    *User
		in      string
		want    string
		wantErr bool
	}{
		{"root", alice, "/", "/alice", false},
		{"file", alice, "/a.txt", "/alice/a.txt", false},
		{"nested", alice, "/d/e/f", "/alice/d/e/f", false},
		{"uncleaned_slashes", alice, "//d/./e/", "/alice/d/e", false},
		{"relative", alice, "d", "/alice/d", false},
		{"empty", alice, "", "/alice", false},
		{"dotdot", alice, "/../bob", "", true},
		{"dotdot_inner", alice, "/d/../../bob", "", true},
		{"backslash", alice, "/..\\bob", "", true},
		{"nul", alice, "/a\x00b", "", true},
		{"reserved", alice, "/.safedav-tmp-1", "", true},
		{"admin_root", admin, "/", "/", false},
		{"admin_file", admin, "/alice/a", "/alice/a", false},
		{"deep_root", deep, "/", "/teams/x", false},
		{"deep_file", deep, "/y", "/teams/x/y", false},
		{"bad_root_relative", &User{Root: "alice"}, "/a", "", true},
		{"bad_root_trailing", &User{Root: "/alice/"}, "/a", "", true},
		{"bad_root_empty", &User{}, "/a", "", true},
		{"bad_root_dotdot", &User{Root: "/a/.."}, "/a", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MapName(tt.user, tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("MapName(%q) = %q, want an error", tt.in, got)
				}
				if !errors.Is(err, backend.ErrInvalidName) {
					t.Fatalf("MapName(%q) error %v does not wrap ErrInvalidName", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("MapName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if !backend.Within(got, tt.user.Root) {
				t.Fatalf("MapName(%q) = %q is outside %q", tt.in, got, tt.user.Root)
			}
			back, ok := UnmapName(tt.user, got)
			if clean, _ := backend.CleanName(tt.in); !ok || back != clean {
				t.Fatalf("UnmapName(%q) = %q, %v; want %q", got, back, ok, clean)
			}
		})
	}
}

func TestUnmapName(t *testing.T) {
	alice := &User{Name: "alice", Root: "/alice"}
	admin := &User{Name: "admin", Root: "/"}
	tests := []struct {
		name   string
		user   *User
		in     string
		want   string
		wantOK bool
	}{
		{"root", alice, "/alice", "/", true},
		{"file", alice, "/alice/a/b", "/a/b", true},
		{"sibling_prefix", alice, "/alice2", "", false},
		{"sibling_prefix_file", alice, "/alice2/a", "", false},
		{"other", alice, "/bob/a", "", false},
		{"parent", alice, "/", "", false},
		{"shorter", alice, "/ali", "", false},
		{"admin_root", admin, "/", "/", true},
		{"admin_file", admin, "/alice2/a", "/alice2/a", true},
		{"bad_root_empty", &User{}, "/alice", "", false},
		{"bad_root_relative", &User{Root: "alice"}, "/alice", "", false},
		{"bad_root_trailing", &User{Root: "/alice/"}, "/alice/x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := UnmapName(tt.user, tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("UnmapName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPermissionString(t *testing.T) {
	for _, p := range []Permission{ReadOnly, ReadWrite} {
		if q, ok := parsePermission(p.String()); !ok || q != p {
			t.Errorf("parsePermission(%q) = %v, %v", p.String(), q, ok)
		}
	}
	if s := Permission(7).String(); s != "Permission(7)" {
		t.Errorf("Permission(7).String() = %q", s)
	}
}
