package overwrite

import (
	"iter"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxCandidates bounds how many names Candidates yields, so that a Rename into a folder
// full of copies ends with an error instead of looping for ever.
const MaxCandidates = 10000

// maxSegmentBytes is the longest name segment every common file system accepts (NAME_MAX
// on Linux and ext4; APFS and NTFS count 255 characters, so bytes are the safe unit).
// Without it a candidate would fail with "name too long" exactly when the original was
// already near the limit, and Rename would give up on a name it could have stored.
const maxSegmentBytes = 255

// doubleExts are the extensions of two parts that must stay together: "x (1).tar.gz"
// still opens as a tarball, "x.tar (1).gz" does not.
var doubleExts = []string{".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.Z"}

// Candidates yields, in order, the names to try under Rename for name: "/d/report.pdf"
// gives "/d/report (1).pdf", "/d/report (2).pdf", … up to MaxCandidates names. The
// extension is kept, including the double ones in doubleExts ("a (1).tar.gz"); a
// dot-file's leading dot is not an extension (".bashrc (1)"); a trailing dot is kept
// ("x (1)."); an "extension" holding a space is taken as part of the name ("v2.0 final
// (1)"), since it is prose, not a type. A name that already ends in " (N)" before its
// extension continues from N+1, so renaming a renamed file gives "report (4).pdf" rather
// than "report (3) (1).pdf". A candidate that would exceed 255 bytes is shortened before
// the counter, at a rune boundary. Every candidate lies in name's directory, differs
// from name and from every other candidate; the root (or any name ending in "/") yields
// nothing.
func Candidates(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		i := strings.LastIndexByte(name, '/')
		dir, base := name[:i+1], name[i+1:]
		if base == "" {
			return
		}
		stem, ext := splitExt(base)
		root, next := splitCounter(stem)
		for k := range MaxCandidates {
			// Never name itself: a base ending in this counter would have made
			// splitCounter start past it (FuzzCandidates checks).
			if !yield(dir + candidate(root, next+k, ext)) {
				return
			}
		}
	}
}

// Suggest returns the first name from Candidates for which exists reports false, or ""
// when all MaxCandidates are taken. It is meant for the suggested name in a 409
// name_exists body: the answer is advice, already stale when the client reads it, so it
// must never stand in for a conditional write.
func Suggest(name string, exists func(string) bool) string {
	for c := range Candidates(name) {
		if !exists(c) {
			return c
		}
	}
	return ""
}

// splitExt splits a base name into stem and extension (with its dot; "" if none).
func splitExt(base string) (stem, ext string) {
	// Leading dots make a dot-file, not an extension: ".bashrc", ".config.json".
	rest := strings.TrimLeft(base, ".")
	dots := base[:len(base)-len(rest)]
	for _, d := range doubleExts {
		if len(rest) > len(d) && strings.EqualFold(rest[len(rest)-len(d):], d) {
			return dots + rest[:len(rest)-len(d)], rest[len(rest)-len(d):]
		}
	}
	j := strings.LastIndexByte(rest, '.')
	if j < 0 || strings.ContainsRune(rest[j:], ' ') {
		return base, ""
	}
	return dots + rest[:j], rest[j:]
}

// splitCounter recognises a stem we produced earlier, "report (3)", and returns the part
// before the counter and the next number. Only a canonical counter (1 to 9 digits, no
// leading zero) counts, so that "(007)" or "(0)" — probably the user's own text — is left
// alone, and the number cannot overflow.
func splitCounter(stem string) (root string, next int) {
	if !strings.HasSuffix(stem, ")") {
		return stem, 1
	}
	open := strings.LastIndex(stem, " (")
	if open < 0 {
		return stem, 1
	}
	digits := stem[open+2 : len(stem)-1]
	if len(digits) == 0 || len(digits) > 9 || digits[0] == '0' {
		return stem, 1
	}
	n := 0
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return stem, 1
		}
		n = n*10 + int(c-'0')
	}
	return stem[:open], n + 1
}

// candidate builds "root (n)ext", shortening root when the result would be too long for
// a file system. The counter and extension are never cut: they are what make the name
// distinct and usable.
func candidate(root string, n int, ext string) string {
	suffix := " (" + strconv.Itoa(n) + ")" + ext
	if over := len(root) + len(suffix) - maxSegmentBytes; over > 0 && over <= len(root) {
		cut := len(root) - over
		for cut > 0 && !utf8.RuneStart(root[cut]) {
			cut--
		}
		root = strings.TrimRight(root[:cut], " ")
	}
	return root + suffix
}
