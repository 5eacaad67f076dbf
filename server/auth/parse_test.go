package auth

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// testHash is a bcrypt hash at MinCost of a random password; parsing needs a valid hash,
// not the password.
const testHash = "$2a$04$U0ScDLSVnUfieuf884X.f.ZVR6uvU7n8/X7pZTLPg4qgg.Vgk6VJS"

// testHash2y is the same hash under the $2y$ prefix that Apache's htpasswd writes.
var testHash2y = "$2y$" + testHash[4:]

func TestParseUsers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []User
	}{
		{
			name: "yaml_full",
			in: `# safedav users
users:
  - name: alice
    password: "` + testHash + `"
    root: /alice
    permissions: read-write
    rules:
      - path: /archive
        permissions: read-only
      - path: inbox/
        permissions: read-write
  - name: bob
    password: '` + testHash2y + `'
    permissions: read-only
  - name: admin
    password: ` + testHash + `
    root: /
`,
			want: []User{
				{Name: "alice", Root: "/alice", Perm: ReadWrite, Rules: []Rule{
					{Path: "/archive", Perm: ReadOnly},
					{Path: "/inbox", Perm: ReadWrite},
				}},
				{Name: "bob", Root: "/bob", Perm: ReadOnly},
				{Name: "admin", Root: "/", Perm: ReadWrite},
			},
		},
		{
			name: "yaml_literal_scalars",
			in:   "users:\n  - name: 007\n    password: " + testHash + "\n    root: shared//docs/\n    rules: []\n",
			want: []User{{Name: "007", Root: "/shared/docs", Perm: ReadWrite}},
		},
		{
			name: "yaml_document_marker_and_bom",
			in:   "\xef\xbb\xbf---\nusers:\n- {name: carol, password: \"" + testHash + "\"}\n",
			want: []User{{Name: "carol", Root: "/carol", Perm: ReadWrite}},
		},
		{
			name: "yaml_unicode_name",
			in:   "users:\n  - name: zoë\n    password: " + testHash + "\n",
			want: []User{{Name: "zoë", Root: "/zoë", Perm: ReadWrite}},
		},
		{
			name: "htpasswd",
			in:   "# made by htpasswd -B\n\nalice:" + testHash2y + "\r\n  # indented comment\nbob:" + testHash + "  \nusers:" + testHash + "\n",
			want: []User{
				{Name: "alice", Root: "/alice", Perm: ReadWrite},
				{Name: "bob", Root: "/bob", Perm: ReadWrite},
				{Name: "users", Root: "/users", Perm: ReadWrite},
			},
		},
		{
			name: "htpasswd_2b_no_trailing_newline",
			in:   "dave:$2b$" + testHash[4:],
			want: []User{{Name: "dave", Root: "/dave", Perm: ReadWrite}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUsers([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseUsers: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseUsers:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseUsersErrors(t *testing.T) {
	yamlUser := func(extra string) string {
		return "users:\n  - name: alice\n    password: " + testHash + "\n" + extra
	}
	const secret = "hunter2"
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		// Both formats.
		{"empty", "", []string{"no users"}},
		{"only_comments", "# nobody\n\n", []string{"no users"}},

		// YAML structure.
		{"yaml_users_null", "users:\n", []string{"no users"}},
		{"yaml_users_empty", "users: []\n", []string{"no users"}},
		{"yaml_syntax", "users:\n  - name: [alice\n", []string{"users file", "yaml"}},
		{"yaml_top_unknown_key", "user:\n  - name: alice\n", []string{"line 1", `unknown key "user"`}},
		{"yaml_top_list", "- name: alice\n  password: x\n", []string{"line 1", "must be a mapping"}},
		{"yaml_users_not_list", "users: alice\n", []string{"line 1", "must be a list"}},
		{"yaml_user_not_mapping", "users:\n  - alice\n", []string{"line 2", "must be a mapping"}},
		{"yaml_second_document", yamlUser("---\nusers: []\n"), []string{"line 4", "second YAML document"}},
		{"yaml_alias", "users:\n  - &a {name: alice, password: \"" + testHash + "\"}\n  - *a\n", []string{"line 3", "aliases"}},
		{"yaml_unknown_user_key", yamlUser("    permission: read-only\n"), []string{"line 4", `unknown key "permission"`}},
		{"yaml_repeated_key", yamlUser("    root: /a\n    root: /b\n"), []string{"line 5", `key "root" repeated`}},

		// YAML names.
		{"yaml_missing_name", "users:\n  - password: " + testHash + "\n", []string{"line 2", "without a name"}},
		{"yaml_name_colon", "users:\n  - name: 'a:b'\n    password: " + testHash + "\n", []string{"line 2", "':' or '/'"}},
		{"yaml_name_slash", "users:\n  - name: a/b\n    password: " + testHash + "\n", []string{"':' or '/'"}},
		{"yaml_name_control", "users:\n  - name: \"a\\tb\"\n    password: " + testHash + "\n", []string{"control"}},
		{"yaml_name_dot", "users:\n  - name: '.'\n    password: " + testHash + "\n", []string{"reserved"}},
		{"yaml_name_spaces", "users:\n  - name: ' alice'\n    password: " + testHash + "\n", []string{"leading or trailing"}},
		{"yaml_name_long", "users:\n  - name: " + strings.Repeat("a", 300) + "\n    password: " + testHash + "\n", []string{"longer than"}},
		{"yaml_name_reserved_root", "users:\n  - name: .safedav-x\n    password: " + testHash + "\n", []string{`user ".safedav-x"`, "default root", "root:"}},
		{"yaml_duplicate", yamlUser("  - name: alice\n    password: " + testHash + "\n"), []string{`user "alice" (line 4)`, "already defined on line 2"}},

		// YAML passwords.
		{"yaml_plain_password", "users:\n  - name: alice\n    password: " + secret + "\n", []string{`user "alice" (line 3)`, "plain-text", "safedav hash-password"}},
		{"yaml_missing_password", "users:\n  - name: alice\n", []string{`user "alice"`, "password is missing"}},
		{"yaml_sha_password", "users:\n  - name: alice\n    password: '{SHA}abc='\n", []string{`user "alice"`, "{SHA}"}},
		{"yaml_password_list", "users:\n  - name: alice\n    password: [a]\n", []string{`user "alice"`, "single value"}},
		{"yaml_bcrypt_2x", "users:\n  - name: alice\n    password: $2x$" + testHash[4:] + "\n", []string{"$2x$"}},
		{"yaml_bcrypt_short", "users:\n  - name: alice\n    password: " + testHash[:59] + "\n", []string{"not a well-formed bcrypt hash"}},
		{"yaml_bcrypt_bad_char", "users:\n  - name: alice\n    password: '" + testHash[:59] + "!'\n", []string{"not a well-formed bcrypt hash"}},
		{"yaml_bcrypt_bad_cost", "users:\n  - name: alice\n    password: $2a$x4$" + testHash[7:] + "\n", []string{"not a well-formed bcrypt hash"}},
		{"yaml_bcrypt_cost_low", "users:\n  - name: alice\n    password: $2a$03$" + testHash[7:] + "\n", []string{"not a well-formed bcrypt hash"}},
		{"yaml_bcrypt_cost_high", "users:\n  - name: alice\n    password: $2a$17$" + testHash[7:] + "\n", []string{"cost 17", "limit 16"}},

		// YAML roots and permissions.
		{"yaml_root_dotdot", yamlUser("    root: /a/../b\n"), []string{`user "alice" (line 4)`, "root", "not a valid storage name"}},
		{"yaml_root_reserved", yamlUser("    root: /.safedav\n"), []string{`user "alice"`, "root"}},
		{"yaml_root_control", yamlUser("    root: \"/a\\x01\"\n"), []string{`user "alice"`, "root"}},
		{"yaml_bad_permissions", yamlUser("    permissions: readonly\n"), []string{`user "alice" (line 4)`, `"readonly"`, "read-only or read-write"}},

		// YAML rules.
		{"yaml_rules_not_list", yamlUser("    rules: /archive\n"), []string{`user "alice" (line 4)`, "list"}},
		{"yaml_rule_bad_path", yamlUser("    rules:\n      - path: /x/../y\n        permissions: read-only\n"), []string{`user "alice" (line 5)`, "rule path"}},
		{"yaml_rule_no_path", yamlUser("    rules:\n      - permissions: read-only\n"), []string{`user "alice" (line 5)`, "without a path"}},
		{"yaml_rule_no_permissions", yamlUser("    rules:\n      - path: /x\n"), []string{`user "alice" (line 5)`, `rule for "/x"`, "read-only or read-write"}},
		{"yaml_rule_bad_permissions", yamlUser("    rules:\n      - path: /x\n        permissions: write\n"), []string{`"write"`}},
		{"yaml_rule_unknown_key", yamlUser("    rules:\n      - path: /x\n        perm: read-only\n"), []string{`unknown key "perm"`}},
		{"yaml_rule_duplicate", yamlUser("    rules:\n      - {path: /x, permissions: read-only}\n      - {path: x/, permissions: read-write}\n"), []string{`user "alice" (line 6)`, "already on line 5"}},

		// htpasswd.
		{"htpasswd_sha", "alice:" + testHash + "\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", []string{`line 2 (user "bob")`, "{SHA}", "htpasswd -B"}},
		{"htpasswd_apr1", "bob:$apr1$abc$def\n", []string{"line 1", "$apr1$", "htpasswd -B"}},
		{"htpasswd_md5crypt", "bob:$1$abc$def\n", []string{"MD5-crypt"}},
		{"htpasswd_sha512crypt", "bob:$6$abc$def\n", []string{"SHA-crypt"}},
		{"htpasswd_des", "bob:rqXexS6ZhobKA\n", []string{"DES crypt"}},
		{"htpasswd_plain", "\n\nbob:" + secret + "\n", []string{`line 3 (user "bob")`, "plain text", "htpasswd -B"}},
		{"htpasswd_empty_hash", "bob:\n", []string{"users file", "bob"}}, // looks like YAML: an unknown key
		{"htpasswd_no_colon", "alice:" + testHash + "\nbob\n", []string{"line 2", "name:bcrypt-hash"}},
		{"htpasswd_duplicate", "alice:" + testHash + "\n# x\nalice:" + testHash + "\n", []string{"line 3", `"alice"`, "already defined on line 1"}},
		{"htpasswd_empty_name", ":" + testHash + "\n", []string{"line 1", "empty user name"}},
		{"htpasswd_control_name", "al\x01ice:" + testHash + "\n", []string{"line 1", "control"}},
		{"htpasswd_dot_name", "..:" + testHash + "\n", []string{"reserved"}},
		{"htpasswd_backslash_name", "a\\b:" + testHash + "\n", []string{"line 1", "default root"}},
		{"htpasswd_invalid_utf8", "\xff:" + testHash + "\n", []string{"UTF-8"}},
		{"htpasswd_extra_field", "alice:" + testHash + ":comment\n", []string{`user "alice"`, "not a well-formed bcrypt hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUsers([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseUsers succeeded with %+v, want an error", got)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q echoes the password", msg)
			}
		})
	}
}

func TestLooksLikeYAML(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"users:\n", true},
		{"users: []\n", true},
		{"  # c\n\nusers:\t\n", true},
		{"---\n", true},
		{"%YAML 1.2\n---\n", true},
		{"{users: []}", true},
		{"alice:" + testHash, false},
		{"users:" + testHash, false}, // an htpasswd user called "users"
		{"# only a comment", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := looksLikeYAML([]byte(tt.in)); got != tt.want {
			t.Errorf("looksLikeYAML(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestHtpasswdTool checks that a file written by Apache's own tool (Debian's
// apache2-utils writes $2y$) loads and authenticates.
func TestHtpasswdTool(t *testing.T) {
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("htpasswd not on PATH; CI must install apache2-utils")
		}
		t.Skip("htpasswd not on PATH (install apache2-utils)")
	}
	out, err := exec.Command(bin, "-nbB", "alice", "secret").Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	users := loadTestUsers(t, string(out))
	if u, ok := users.Authenticate("alice", "secret"); !ok || u.Name != "alice" || u.Root != "/alice" || u.Perm != ReadWrite {
		t.Fatalf("Authenticate(alice, secret) = %+v, %v", u, ok)
	}
	if _, ok := users.Authenticate("alice", "Secret"); ok {
		t.Fatal("Authenticate with a wrong password succeeded")
	}
}
