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
// upload files, the metadata folder). Such names are never served, listed or written:
// every operation refuses them with ErrInvalidName (see CheckName).
const ReservedPrefix = ".safedav"

// validSegment reports whether seg, a non-empty segment other than ".", may be part
// of a name: not ".." or reserved (dotOrReserved), no forbidden byte (badByte).
func validSegment(seg string) bool {
	if dotOrReserved(seg) {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if badByte(seg[i]) {
			return false
		}
	}
	return true
}

// dotOrReserved reports whether seg is ".." or reserved.
func dotOrReserved(seg string) bool {
	return seg == ".." || strings.HasPrefix(seg, ReservedPrefix)
}

// badByte reports whether c may not appear in a name: a control byte, or a backslash
// (a Windows separator that must not smuggle a "..\" past us). In valid UTF-8 these
// bytes only ever stand for themselves.
func badByte(c byte) bool {
	return c < 0x20 || c == 0x7f || c == '\\'
}

// CleanName turns a percent-decoded request path into a backend name: absolute, no
// trailing slash, no empty, "." or ".." segment, Unicode NFC (so a name sent by macOS in
// NFD finds the file stored in NFC). It fails with ErrInvalidName for invalid UTF-8, NUL
// or other control bytes, backslashes (a Windows separator that must not smuggle a
// "..\" past us), ".." segments, and reserved names; with ErrNameTooLong (which wraps
// ErrInvalidName) for a segment longer than MaxSegment bytes. What it returns is what
// CheckName accepts (FuzzCleanName checks it).
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
		case !validSegment(seg):
			return "", ErrInvalidName
		}
		lead = false
	}
	if clean {
		return checkLength(norm.NFC.String(p))
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
	return checkLength(norm.NFC.String(b.String()))
}

// checkLength returns name, or ErrNameTooLong when a segment of it is longer than
// MaxSegment bytes. It is checked on the NFC form, which is what a store holds.
func checkLength(name string) (string, error) {
	for seg := range strings.SplitSeq(name, "/") {
		if len(seg) > MaxSegment {
			return "", ErrNameTooLong
		}
	}
	return name, nil
}

// CheckName returns ErrInvalidName unless name is a backend name exactly as CleanName
// gives it: "/", or "/"-separated segments that are neither empty, ".", nor ".."
// (so no trailing slash), with no control character or backslash, none reserved,
// valid UTF-8 in Unicode NFC; ErrNameTooLong for a segment longer than MaxSegment
// bytes. Every backend calls it first in each operation, so that
// the disk and the bucket refuse the same names the same way, before looking at what
// is stored. It does not allocate.
//
// A reserved name is ErrInvalidName for reads too, not ErrNotExist: the prefix is
// fixed and public, so the answer reveals nothing of what the store keeps, and it is
// the answer the server gives at the edge (CleanName) for every method. A client thus
// never sees a name "missing" on GET that it then cannot create with PUT.
func CheckName(name string) error {
	if name == "/" {
		return nil
	}
	if len(name) < 2 || name[0] != '/' {
		return ErrInvalidName
	}
	// One pass over the bytes, a segment checked at each '/' and at the end.
	ascii := true
	seg := 1 // where the current segment starts
	for i := 1; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			c := name[i]
			if badByte(c) {
				return ErrInvalidName
			}
			ascii = ascii && c < utf8.RuneSelf
			continue
		}
		if s := name[seg:i]; s == "" || s == "." || dotOrReserved(s) {
			return ErrInvalidName
		} else if len(s) > MaxSegment {
			return ErrNameTooLong
		}
		seg = i + 1
	}
	if ascii {
		return nil // ASCII is valid UTF-8 and in NFC
	}
	if !utf8.ValidString(name) {
		return ErrInvalidName
	}
	// QuickSpanString does not allocate (IsNormalString does); when it cannot decide
	// (a combining mark), compare with the normal form.
	if norm.NFC.QuickSpanString(name) != len(name) && norm.NFC.String(name) != name {
		return ErrInvalidName
	}
	return nil
}

// CheckCopy returns the error Copy and Move give for src and dst from the names
// alone, before the store is looked at (nil when the names allow the operation):
//
//   - ErrInvalidName when either fails CheckName;
//   - ErrSameName when dst is src (RFC 4918 §9.8.5, §9.9.4: 403);
//   - ErrIntoSelf when dst lies inside src: a tree copied into itself would never
//     end, and a collection cannot be moved below itself. Refused at Depth 0 too,
//     and for a file (whose "members" could only fail later with ErrNotCollection),
//     so the answer depends on the names only;
//   - ErrOntoAncestor when src lies inside dst: replacing dst as a whole (§9.8.4,
//     §9.9.3) would delete the source's own parent, and the source with it, during
//     the operation. Apache's mod_dav answers it 403 as well.
//
// The root follows from these: it cannot be moved or copied anywhere (everything lies
// inside it), nor replaced (it contains everything).
func CheckCopy(src, dst string) error {
	if err := CheckName(src); err != nil {
		return err
	}
	if err := CheckName(dst); err != nil {
		return err
	}
	switch {
	case src == dst:
		return ErrSameName
	case Within(dst, src):
		return ErrIntoSelf
	case Within(src, dst):
		return ErrOntoAncestor
	}
	return nil
}

// CheckRemove returns the error Remove gives for name from the name alone:
// ErrInvalidName when it fails CheckName or is the root, which no store removes.
func CheckRemove(name string) error {
	if name == "/" {
		return ErrInvalidName
	}
	return CheckName(name)
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
