package auth

import (
	"strings"
	"testing"

	"safedav/backend"
)

// FuzzParseUsers checks that ParseUsers never panics and that whatever it accepts
// upholds the invariants the server relies on: valid distinct names, clean roots, clean
// rule paths and known permissions.
func FuzzParseUsers(f *testing.F) {
	seeds := []string{
		"",
		"users:\n  - name: alice\n    password: " + testHash + "\n    root: /\n    permissions: read-only\n    rules:\n      - {path: /a, permissions: read-write}\n",
		"alice:" + testHash + "\n# c\n\nbob:" + testHash2y + "\r\n",
		"users:\n  - &a {name: a, password: x}\n  - *a\n",
		"users: [{name: '.', password: '" + testHash + "'}]",
		"---\nusers: []\n---\n",
		"bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
		"users:\n  - name: a\n    password: $2a$99$" + testHash[7:] + "\n",
		"%YAML 1.2\n---\n{users: [{name: b, password: \"" + testHash + "\", rules: [{path: /x/../y}]}]}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseUsers(data)
		if err != nil {
			if users != nil {
				t.Fatalf("ParseUsers returned users with error %v", err)
			}
			return
		}
		if len(users) == 0 {
			t.Fatal("ParseUsers accepted a file without users")
		}
		seen := map[string]bool{}
		for _, u := range users {
			if checkName(u.Name) != nil || seen[u.Name] {
				t.Fatalf("accepted bad or duplicate name %q", u.Name)
			}
			seen[u.Name] = true
			if c, err := backend.CleanName(u.Root); err != nil || c != u.Root {
				t.Fatalf("user %q: root %q is not clean", u.Name, u.Root)
			}
			if u.Perm != ReadOnly && u.Perm != ReadWrite {
				t.Fatalf("user %q: permission %d", u.Name, u.Perm)
			}
			for _, r := range u.Rules {
				if c, err := backend.CleanName(r.Path); err != nil || c != r.Path {
					t.Fatalf("user %q: rule path %q is not clean", u.Name, r.Path)
				}
				if r.Perm != ReadOnly && r.Perm != ReadWrite {
					t.Fatalf("user %q: rule permission %d", u.Name, r.Perm)
				}
			}
			if mapped, err := MapName(&u, "/x"); err != nil || !strings.HasPrefix(mapped, strings.TrimSuffix(u.Root, "/")+"/") {
				t.Fatalf("user %q: MapName(/x) = %q, %v", u.Name, mapped, err)
			}
		}
	})
}
