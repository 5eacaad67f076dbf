package backend

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Reserved reports whether a segment of name (a name or a path relative to the store)
// starts with ReservedPrefix, so that stores hide and refuse it.
func Reserved(name string) bool {
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, ReservedPrefix) {
			return true
		}
	}
	return false
}

// ReservedPrefix starts every name safedav keeps for itself inside a store (temporary
// upload files, the metadata folder). Such names are never served, listed or written.
const ReservedPrefix = ".safedav"

// CleanName turns a percent-decoded request path into a backend name: absolute, no
// trailing slash, no empty, "." or ".." segment, Unicode NFC (so a name sent by macOS in
// NFD finds the file stored in NFC). It fails with ErrInvalidName for invalid UTF-8, NUL
// or other control bytes, backslashes (a Windows separator that must not smuggle a
// "..\" past us), ".." segments, and reserved names.
func CleanName(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", ErrInvalidName
	}
	// clean: p is already in the form built below, so it is returned as it is (most
	// requests' paths; no allocation).
	clean := len(p) > 1 && p[0] == '/'
	lead := true // the segment before the first slash: "" when clean
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "" || seg == ".":
			clean = clean && lead
			lead = false
			continue
		case seg == "..":
			return "", ErrInvalidName
		case strings.HasPrefix(seg, ReservedPrefix):
			return "", ErrInvalidName
		}
		lead = false
		for _, r := range seg {
			if r < 0x20 || r == 0x7f || r == '\\' {
				return "", ErrInvalidName
			}
		}
	}
	if clean {
		return norm.NFC.String(p), nil
	}
	var b strings.Builder
	b.Grow(len(p) + 1)
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." {
			continue
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return norm.NFC.String(b.String()), nil
}

// Parent returns the collection that holds name ("/" for a top-level name and for "/").
func Parent(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 {
		return "/"
	}
	return name[:i]
}

// Base returns the last segment of name ("" for the root).
func Base(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

// Join appends a member's base name to a collection name.
func Join(dir, base string) string {
	if dir == "/" {
		return "/" + base
	}
	return dir + "/" + base
}

// Within reports whether name is dir or lies below it.
func Within(name, dir string) bool {
	if dir == "/" || name == dir {
		return true
	}
	return strings.HasPrefix(name, dir) && name[len(dir)] == '/'
}
