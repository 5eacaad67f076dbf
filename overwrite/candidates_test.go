package overwrite

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// first returns the first n candidates for name.
func first(name string, n int) []string {
	var got []string
	for c := range Candidates(name) {
		got = append(got, c)
		if len(got) == n {
			break
		}
	}
	return got
}

func TestCandidates(t *testing.T) {
	tests := []struct {
		name string
		want []string // the first candidates, in order
	}{
		{"/d/report.pdf", []string{"/d/report (1).pdf", "/d/report (2).pdf", "/d/report (3).pdf"}},
		{"/report.pdf", []string{"/report (1).pdf", "/report (2).pdf"}},
		{"/d/archive.tar.gz", []string{"/d/archive (1).tar.gz", "/d/archive (2).tar.gz"}},
		{"/d/a.tar.bz2", []string{"/d/a (1).tar.bz2"}},
		{"/d/a.tar.xz", []string{"/d/a (1).tar.xz"}},
		{"/d/a.tar.zst", []string{"/d/a (1).tar.zst"}},
		{"/d/a.tar.lz", []string{"/d/a (1).tar.lz"}},
		{"/d/a.tar.Z", []string{"/d/a (1).tar.Z"}},
		{"/d/A.TAR.GZ", []string{"/d/A (1).TAR.GZ"}},
		{"/d/a.tar", []string{"/d/a (1).tar"}},
		{"/d/a.tgz", []string{"/d/a (1).tgz"}},
		{"/d/README", []string{"/d/README (1)", "/d/README (2)"}},
		{"/d/.bashrc", []string{"/d/.bashrc (1)", "/d/.bashrc (2)"}},
		{"/d/.config.json", []string{"/d/.config (1).json"}},
		{"/d/.tar.gz", []string{"/d/.tar (1).gz"}}, // a dot-file named "tar.gz": no double extension left
		{"/d/a.b.c.txt", []string{"/d/a.b.c (1).txt"}},
		{"/d/x.", []string{"/d/x (1).", "/d/x (2)."}},
		{"/d/...", []string{"/d/... (1)"}},

		// Continue from an existing counter.
		{"/d/report (3).pdf", []string{"/d/report (4).pdf", "/d/report (5).pdf"}},
		{"/d/report (1)", []string{"/d/report (2)"}},
		{"/d/archive (9).tar.gz", []string{"/d/archive (10).tar.gz"}},
		{"/d/.bashrc (2)", []string{"/d/.bashrc (3)"}},
		{"/d/report (999999999).pdf", []string{"/d/report (1000000000).pdf"}},
		// Not our counter: left alone, a new one is added.
		{"/d/report (0).pdf", []string{"/d/report (0) (1).pdf"}},
		{"/d/report (007).pdf", []string{"/d/report (007) (1).pdf"}},
		{"/d/report (+3).pdf", []string{"/d/report (+3) (1).pdf"}},
		{"/d/report (1234567890).pdf", []string{"/d/report (1234567890) (1).pdf"}},
		{"/d/report(3).pdf", []string{"/d/report(3) (1).pdf"}},
		{"/d/report (draft).pdf", []string{"/d/report (draft) (1).pdf"}},
		{"/d/ (3).pdf", []string{"/d/ (4).pdf"}},

		// Spaces and Unicode.
		{"/my docs/annual report.pdf", []string{"/my docs/annual report (1).pdf"}},
		{"/d/Version 2.0 final", []string{"/d/Version 2.0 final (1)"}}, // ".0 final" is prose
		{"/d/Mr. Smith", []string{"/d/Mr. Smith (1)"}},
		{"/照片/假期.jpeg", []string{"/照片/假期 (1).jpeg"}},
		{"/d/Überblick 2024.xlsx", []string{"/d/Überblick 2024 (1).xlsx"}},
		{"/d/café.tar.gz", []string{"/d/café (1).tar.gz"}},
		{"/d/\U0001F600", []string{"/d/\U0001F600 (1)"}},
		{"/d/résumé.файл", []string{"/d/résumé (1).файл"}},

		// Nothing to rename.
		{"/", nil},
	}
	for _, tt := range tests {
		got := first(tt.name, len(tt.want))
		if tt.want == nil {
			got = first(tt.name, 5)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Candidates(%q) = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestCandidatesBoundAndStop(t *testing.T) {
	var all []string
	for c := range Candidates("/d/a.txt") {
		all = append(all, c)
	}
	if len(all) != MaxCandidates {
		t.Fatalf("yielded %d candidates; want %d", len(all), MaxCandidates)
	}
	if last := all[len(all)-1]; last != fmt.Sprintf("/d/a (%d).txt", MaxCandidates) {
		t.Errorf("last candidate = %q", last)
	}
	seen := make(map[string]bool, len(all))
	for _, c := range all {
		if seen[c] {
			t.Fatalf("%q yielded twice", c)
		}
		seen[c] = true
	}

	// Breaking out of the loop stops the iterator (a yield after false would panic).
	var got []string
	for c := range Candidates("/d/a.txt") {
		got = append(got, c)
		if len(got) == 3 {
			break
		}
	}
	if want := []string{"/d/a (1).txt", "/d/a (2).txt", "/d/a (3).txt"}; !slices.Equal(got, want) {
		t.Errorf("after break after 3: %q; want %q", got, want)
	}
}

func TestCandidatesLongName(t *testing.T) {
	// A name at the file-system limit: the candidate is shortened before the counter,
	// at a rune boundary, and keeps its extension.
	stem := strings.Repeat("é", 125) // 250 bytes
	name := "/d/" + stem + ".pdf"    // 254-byte segment
	got := first(name, 1)[0]
	base := got[len("/d/"):]
	if len(base) > maxSegmentBytes || !utf8.ValidString(base) || !strings.HasSuffix(base, " (1).pdf") {
		t.Errorf("long candidate = %q (%d bytes)", base, len(base))
	}
	if !strings.HasPrefix(base, strings.Repeat("é", 100)) {
		t.Errorf("long candidate lost its start: %q", base)
	}
}

func TestSuggest(t *testing.T) {
	taken := map[string]bool{"/d/a (1).txt": true, "/d/a (2).txt": true, "/d/a (4).txt": true}
	if got := Suggest("/d/a.txt", func(n string) bool { return taken[n] }); got != "/d/a (3).txt" {
		t.Errorf("Suggest = %q; want /d/a (3).txt", got)
	}
	if got := Suggest("/d/a (4).txt", func(n string) bool { return taken[n] }); got != "/d/a (5).txt" {
		t.Errorf("Suggest continuing = %q; want /d/a (5).txt", got)
	}
	calls := 0
	if got := Suggest("/d/a.txt", func(string) bool { calls++; return true }); got != "" || calls != MaxCandidates {
		t.Errorf("Suggest with everything taken = %q after %d calls; want \"\" after %d", got, calls, MaxCandidates)
	}
	if got := Suggest("/", func(string) bool { return false }); got != "" {
		t.Errorf("Suggest(/) = %q", got)
	}
}

func FuzzCandidates(f *testing.F) {
	for _, s := range []string{
		"/d/report.pdf", "/d/archive.tar.gz", "/README", "/.bashrc", "/a.b.c.txt", "/x.",
		"/d/report (3).pdf", "/照片/假期.jpeg", "/d/my file.txt", "/", "", "noslash.txt",
		"/d/ (1)", "/d/(1)", "/d/..", "/d/.", "/d/a (1) (2).tar.gz", "/d/.tar.gz",
		"/d/" + strings.Repeat("x", 300) + ".pdf", "/d/a (999999999)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		i := strings.LastIndexByte(name, '/')
		dir := name[:i+1]
		n := 0
		for c := range Candidates(name) {
			if c == name {
				t.Fatalf("Candidates(%q) yielded the input", name)
			}
			if !strings.HasPrefix(c, dir) {
				t.Fatalf("Candidates(%q) left the directory: %q", name, c)
			}
			base := c[len(dir):]
			if base == "" || base == "." || base == ".." || strings.Contains(base, "/") {
				t.Fatalf("Candidates(%q) yielded %q: not a single segment", name, c)
			}
			if utf8.ValidString(name) && !utf8.ValidString(c) {
				t.Fatalf("Candidates(%q) yielded invalid UTF-8 %q", name, c)
			}
			if n++; n == 50 { // the first few are where the cases differ; keep fuzzing fast
				break
			}
		}
	})
}
