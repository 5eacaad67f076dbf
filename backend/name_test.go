package backend

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: "/"},
		{in: "/", want: "/"},
		{in: "/a/b/", want: "/a/b"},
		{in: "//a//./b", want: "/a/b"},
		{in: "/a b/#%?&+'\"", want: "/a b/#%?&+'\""},
		{in: "/caf\u0065\u0301", want: "/caf\u00e9"}, // NFD in, NFC out
		{in: "/\U0001F600.txt", want: "/\U0001F600.txt"},
		{in: "/a/../b", bad: true},
		{in: "/..", bad: true},
		{in: "/a\\..\\b", bad: true},
		{in: "/a\x00b", bad: true},
		{in: "/a\nb", bad: true},
		{in: "/\xff", bad: true},
		{in: "/.safedav", bad: true},
		{in: "/x/.safedav-tmp-123", bad: true},
		{in: "/.safedavish", bad: true},
		{in: "/.hidden", want: "/.hidden"},
		{in: "/a.../b", want: "/a.../b"},
	}
	for _, tt := range tests {
		got, err := CleanName(tt.in)
		if tt.bad {
			if err != ErrInvalidName {
				t.Errorf("CleanName(%q) = %q, %v; want ErrInvalidName", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPathHelpers(t *testing.T) {
	if Parent("/a/b") != "/a" || Parent("/a") != "/" || Parent("/") != "/" {
		t.Error("Parent")
	}
	if Base("/a/b") != "b" || Base("/") != "" {
		t.Error("Base")
	}
	if Join("/", "a") != "/a" || Join("/a", "b") != "/a/b" {
		t.Error("Join")
	}
	for _, c := range []struct {
		name, dir string
		want      bool
	}{{"/a/b", "/a", true}, {"/a", "/a", true}, {"/ab", "/a", false}, {"/x", "/", true}} {
		if Within(c.name, c.dir) != c.want {
			t.Errorf("Within(%q, %q) != %v", c.name, c.dir, c.want)
		}
	}
}

// cleanNameRef is CleanName without its shortcut for names already clean: FuzzCleanName
// checks that the shortcut changes no answer.
func cleanNameRef(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", ErrInvalidName
	}
	var b strings.Builder
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..", strings.HasPrefix(seg, ReservedPrefix):
			return "", ErrInvalidName
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f || r == '\\' {
				return "", ErrInvalidName
			}
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if b.Len() == 0 {
		return "/", nil
	}
	name := norm.NFC.String(b.String())
	for seg := range strings.SplitSeq(name, "/") {
		if len(seg) > MaxSegment {
			return "", ErrNameTooLong
		}
	}
	return name, nil
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"", "/", "//", "/a", "a", "a/b", "/a/", "/./a", "./a", ".", "/.",
		"/a/.", "/..", "/a/../b", "/.safedav", "/x/\x00", "/caf\u0065\u0301", "/a\\b", "\xff",
		strings.Repeat("0", MaxSegment+1), "/a/" + strings.Repeat("e\u0301", MaxSegment/3)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := CleanName(p)
		want, werr := cleanNameRef(p)
		if got != want || err != werr {
			t.Fatalf("CleanName(%q) = %q, %v; want %q, %v", p, got, err, want, werr)
		}
		// CheckName accepts exactly what CleanName leaves as it is, and all it gives.
		if cerr := CheckName(p); (cerr == nil) != (err == nil && got == p) {
			t.Fatalf("CheckName(%q) = %v, but CleanName gives %q, %v", p, cerr, got, err)
		}
		if err == nil && CheckName(got) != nil {
			t.Fatalf("CheckName refuses %q, which CleanName(%q) gave", got, p)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"/", "/a", "/a/b", "/a b/#%?&+'\"", "/caf\u00e9", "/.hidden", "/a.../b", "/\U0001F600"} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{
		"", "a", "a/b", "//", "/a/", "//a", "/a//b", "/./a", "/a/.", "/a/..", "/../a",
		"/a\x00b", "/a\nb", "/a\x7fb", "/a\\b", "/\xff", "/caf\u0065\u0301",
		"/.safedav", "/a/.safedav-tmp-1", "/.safedavish", "/.safedav/props",
	} {
		if err := CheckName(name); err != ErrInvalidName {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestCheckCopy(t *testing.T) {
	for _, tc := range []struct {
		name, src, dst string
		want           error
	}{
		{"sibling", "/a/b", "/a/c", nil},
		{"elsewhere", "/a/b", "/x/y/z", nil},
		{"prefix_is_not_parent", "/a", "/ab", nil},
		{"prefix_is_not_child", "/ab", "/a", nil},
		{"same [RFC4918 9.8.5]", "/a", "/a", ErrSameName},
		{"same_root", "/", "/", ErrSameName},
		{"into_self", "/a", "/a/b", ErrIntoSelf},
		{"into_descendant", "/a", "/a/b/c", ErrIntoSelf},
		{"root_anywhere", "/", "/a", ErrIntoSelf},
		{"onto_parent", "/a/b", "/a", ErrOntoAncestor},
		{"onto_ancestor", "/a/b/c", "/a", ErrOntoAncestor},
		{"onto_root", "/a", "/", ErrOntoAncestor},
		{"invalid_src", "/a/", "/b", ErrInvalidName},
		{"invalid_dst", "/a", "b", ErrInvalidName},
		{"reserved_src", "/.safedav", "/b", ErrInvalidName},
		{"reserved_dst", "/a", "/a/.safedav-x", ErrInvalidName}, // before ErrIntoSelf
	} {
		if err := CheckCopy(tc.src, tc.dst); err != tc.want {
			t.Errorf("%s: CheckCopy(%q, %q) = %v, want %v", tc.name, tc.src, tc.dst, err, tc.want)
		}
	}
	if CheckRemove("/") != ErrInvalidName || CheckRemove("/.safedav") != ErrInvalidName || CheckRemove("/a") != nil {
		t.Error("CheckRemove")
	}
}

// Backends call the checks on every request: they must not allocate.
func TestCheckNameAllocs(t *testing.T) {
	names := []string{"/", "/photos/2026/holiday/IMG_0001.jpg", "/caf\u00e9/\U0001F600.txt", "/a/.safedav", "/a/"}
	if n := testing.AllocsPerRun(100, func() {
		for _, name := range names {
			_ = CheckName(name)
			_ = CheckCopy(name, "/x/y")
		}
	}); n != 0 {
		t.Errorf("CheckName and CheckCopy allocate %v times", n)
	}
}

func BenchmarkCleanName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CleanName("/photos/2026/holiday/IMG_0001.jpg")
	}
}

func BenchmarkCheckName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CheckName("/photos/2026/holiday/IMG_0001.jpg")
	}
}

// A segment of more than MaxSegment bytes (in NFC) is ErrNameTooLong, which is also
// ErrInvalidName; CleanName and CheckName agree on it.
func TestNameTooLong(t *testing.T) {
	ok := "/" + strings.Repeat("a", MaxSegment)
	long := "/d/" + strings.Repeat("a", MaxSegment+1)
	wide := "/" + strings.Repeat("é", 128) // 256 bytes in UTF-8, 128 characters
	for _, name := range []string{long, long + "/x", wide} {
		if _, err := CleanName(name); !errors.Is(err, ErrNameTooLong) || !errors.Is(err, ErrInvalidName) {
			t.Errorf("CleanName(%d bytes): %v", len(name), err)
		}
		if err := CheckName(name); !errors.Is(err, ErrNameTooLong) {
			t.Errorf("CheckName(%d bytes): %v", len(name), err)
		}
	}
	if _, err := CleanName(ok); err != nil {
		t.Errorf("CleanName(255-byte segment): %v", err)
	}
	if err := CheckName(ok); err != nil {
		t.Errorf("CheckName(255-byte segment): %v", err)
	}
}
