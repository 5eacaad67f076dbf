// Package auth holds safedav's users: who may log in (bcrypt password hashes read from a
// YAML or htpasswd file), which part of the storage each user sees (a root), what they
// may do there (read-only or read-write, refined per path by rules), and a limiter that
// slows down password guessing. The HTTP middleware lives in package server; this
// package has no HTTP in it so every decision can be tested as a plain function.
package auth

import (
	"fmt"

	"safedav/backend"
)

// Permission is what a user may do below a path. The zero value is ReadOnly so a User
// or Rule built without one fails closed.
type Permission int

const (
	// ReadOnly allows the methods that do not change anything (GET, HEAD, OPTIONS,
	// PROPFIND).
	ReadOnly Permission = iota
	// ReadWrite also allows every method that changes the storage or its locks.
	ReadWrite
)

// String returns the spelling used in the users file ("read-only", "read-write").
func (p Permission) String() string {
	switch p {
	case ReadOnly:
		return "read-only"
	case ReadWrite:
		return "read-write"
	}
	return fmt.Sprintf("Permission(%d)", int(p))
}

// parsePermission is the inverse of String; only the two spellings are accepted so a
// typo such as "readonly" is an error rather than a silent read-write.
func parsePermission(s string) (Permission, bool) {
	switch s {
	case "read-only":
		return ReadOnly, true
	case "read-write":
		return ReadWrite, true
	}
	return 0, false
}

// User is one account. Values handed out by Users are shared and must not be modified.
type User struct {
	// Name is the login name, compared byte for byte (case-sensitive).
	Name string
	// Root is the backend name the user sees as "/"; "/" gives access to everything.
	Root string
	// Perm applies wherever no rule matches.
	Perm Permission
	// Rules refine Perm below some paths; the longest matching Path wins.
	Rules []Rule
}

// Rule sets the permission for a path and everything below it.
type Rule struct {
	// Path is a clean name relative to the user's root ("/archive").
	Path string
	// Perm is the permission at and below Path.
	Perm Permission
}

// permAt returns the permission that governs name: that of the longest rule whose path
// is name or an ancestor of it, else u.Perm. Within compares whole segments, so a rule
// for "/arch" does not cover "/archive".
func (u *User) permAt(name string) Permission {
	perm, best := u.Perm, -1
	for _, r := range u.Rules {
		if len(r.Path) > best && backend.Within(name, r.Path) {
			perm, best = r.Perm, len(r.Path)
		}
	}
	return perm
}

// Allowed reports whether the user may read (write false) or change (write true) name,
// a clean name relative to the user's root ("/" is the root itself). Reading is always
// allowed inside the root; writing needs ReadWrite from the most specific rule, or from
// u.Perm when no rule matches.
//
// Allowed looks at name only. A method that changes a whole tree (DELETE, MOVE, COPY
// onto an existing collection) must use AllowedTree, or a read-only rule on a
// descendant could be bypassed by deleting its parent.
func (u *User) Allowed(name string, write bool) bool {
	return !write || u.permAt(name) == ReadWrite
}

// AllowedTree is Allowed for name and everything below it: when write is true it also
// requires that no rule for a path strictly inside name is read-only.
func (u *User) AllowedTree(name string, write bool) bool {
	if !u.Allowed(name, write) {
		return false
	}
	if !write {
		return true
	}
	for _, r := range u.Rules {
		if r.Perm != ReadWrite && r.Path != name && backend.Within(r.Path, name) {
			return false
		}
	}
	return true
}

// MapName turns a name as the user sees it ("/" = their root) into the storage name
// the backend uses. name is cleaned with backend.CleanName first, so whatever the
// caller passes the result is a clean name inside u.Root. It fails with an error
// wrapping backend.ErrInvalidName when name does not clean, when u.Root is not itself a
// clean name, or (which cleaning should make impossible) when the result would lie
// outside the root; the server uses it for every path, Destination, If-header tag and
// lock root, so this check is the one place that confines a user.
func MapName(u *User, name string) (string, error) {
	if root, err := backend.CleanName(u.Root); err != nil || root != u.Root {
		return "", fmt.Errorf("auth: user %q has an invalid root %q: %w", u.Name, u.Root, backend.ErrInvalidName)
	}
	clean, err := backend.CleanName(name)
	if err != nil {
		return "", err
	}
	storage := u.Root
	if clean != "/" {
		storage = backend.Join(u.Root, clean[1:])
	}
	if !backend.Within(storage, u.Root) {
		return "", fmt.Errorf("auth: %q lies outside the root of user %q: %w", name, u.Name, backend.ErrInvalidName)
	}
	return storage, nil
}

// UnmapName is the reverse of MapName: it turns a storage name into the name the user
// sees, or reports false when storage lies outside u.Root (the server must then not
// show it at all, not even in an error). Roots compare by whole segments: "/alice2" is
// outside "/alice".
func UnmapName(u *User, storage string) (string, bool) {
	// A root that is not absolute or ends in "/" is not clean; Within would then match
	// too much (an empty root) or nothing, so refuse it outright rather than guess.
	badRoot := u.Root == "" || u.Root[0] != '/' || (u.Root != "/" && u.Root[len(u.Root)-1] == '/')
	if badRoot || !backend.Within(storage, u.Root) {
		return "", false
	}
	switch {
	case u.Root == "/":
		return storage, true
	case storage == u.Root:
		return "/", true
	}
	return storage[len(u.Root):], true
}
