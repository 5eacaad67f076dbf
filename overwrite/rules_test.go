package overwrite

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		in      string
		want    Rule
		wantErr string // substring of the error; "" means success
		is      error  // sentinel the error must wrap, when there is one
	}{
		{in: "/inbox/**=rename", want: Rule{"/inbox/**", Rename}},
		{in: " /backups/** = Reject ", want: Rule{"/backups/**", Reject}},
		{in: "/exact/name.txt=replace", want: Rule{"/exact/name.txt", Replace}},
		{in: "/**/*.pdf=rename", want: Rule{"/**/*.pdf", Rename}},
		{in: "/inbox/*=reject", want: Rule{"/inbox/*", Reject}},
		{in: "/=reject", want: Rule{"/", Reject}},
		{in: "/**=rename", want: Rule{"/**", Rename}},
		{in: "/a=b/c.txt=rename", want: Rule{"/a=b/c.txt", Rename}}, // split at the last "="
		{in: "/[*]star=reject", want: Rule{"/[*]star", Reject}},
		{in: "/caf\u0065\u0301/**=rename", want: Rule{"/caf\u00e9/**", Rename}}, // NFD config → NFC
		{in: "/données/*.pdf=rename", want: Rule{"/données/*.pdf", Rename}},

		{in: "", wantErr: `missing "="`},
		{in: "/inbox/**", wantErr: `missing "="`},
		{in: "=rename", wantErr: "empty pattern"},
		{in: "inbox/**=rename", wantErr: `must start with "/"`},
		{in: "*.pdf=rename", wantErr: `must start with "/"`},
		{in: "/inbox/=rename", wantErr: `must not end with "/"`},
		{in: "/a//b=rename", wantErr: "empty segment"},
		{in: "/a/../b=rename", wantErr: `".." segment`},
		{in: "/a/./b=rename", wantErr: `"." segment`},
		{in: "/a**=rename", wantErr: "whole segment"},
		{in: "/a/[x=rename", wantErr: "segment", is: path.ErrBadPattern},
		{in: `/a\*=rename`, wantErr: "backslash"},
		{in: "/a\x01b=rename", wantErr: "not a valid name"},
		{in: "/.safedav/**=rename", wantErr: "not a valid name"},
		{in: "/inbox/**=", wantErr: "unknown policy", is: ErrUnknownPolicy},
		{in: "/inbox/**=overwrite", wantErr: "unknown policy", is: ErrUnknownPolicy},
		{in: "/inbox/**=rename=", wantErr: "unknown policy", is: ErrUnknownPolicy},
	}
	for _, tt := range tests {
		got, err := ParseRule(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseRule(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseRule(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("ParseRule(%q) error = %v; want it to wrap %v", tt.in, err, tt.is)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "overwrite: rule ") {
			t.Errorf("ParseRule(%q) error = %v; want it to name the rule", tt.in, err)
		}
	}
}

func mustRules(t *testing.T, def Policy, specs ...string) Rules {
	t.Helper()
	r := Rules{Default: def}
	for _, s := range specs {
		rule, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Rules = append(r.Rules, rule)
	}
	return r
}

func TestRulesFor(t *testing.T) {
	rules := mustRules(t, Replace,
		"/backups/**=reject",
		"/inbox/*=rename",
		"/exact/name.txt=reject",
		"/docs/**/*.pdf=rename",
		"/docs/**/draft.pdf=replace", // more literal segments than the rule above
		"/tie/*=reject",
		"/tie/**=rename", // same literal count as /tie/*: the later rule wins
		"/nested/**=reject",
		"/nested/keep/**=replace", // more specific though earlier rules match too
	)
	tests := []struct {
		name, header string
		want         Policy
	}{
		{name: "/backups", want: Reject}, // "**" matches zero segments: the folder itself
		{name: "/backups/a", want: Reject},
		{name: "/backups/a/b", want: Reject},
		{name: "/backupsx", want: Replace},
		{name: "/inbox/x", want: Rename},
		{name: "/inbox/x/y", want: Replace}, // "*" is one segment only
		{name: "/inbox", want: Replace},
		{name: "/exact/name.txt", want: Reject},
		{name: "/exact/name.txt.bak", want: Replace},
		{name: "/docs/a.pdf", want: Rename},
		{name: "/docs/x/y/a.pdf", want: Rename},
		{name: "/docs/x/y/a.txt", want: Replace},
		{name: "/docs/x/draft.pdf", want: Replace},
		{name: "/tie/a", want: Rename},
		{name: "/tie/a/b", want: Rename},
		{name: "/nested/a", want: Reject},
		{name: "/nested/keep/a", want: Replace},
		{name: "/other", want: Replace},
		{name: "/", want: Replace},

		// The request header beats every rule and the default.
		{name: "/backups/a", header: "replace", want: Replace},
		{name: "/other", header: " RENAME ", want: Rename},
		{name: "/inbox/x", header: "reject", want: Reject},
		{name: "/inbox/x", header: "  ", want: Rename}, // blank header = absent
	}
	for _, tt := range tests {
		got, err := rules.For(tt.name, tt.header)
		if err != nil || got != tt.want {
			t.Errorf("For(%q, %q) = %v, %v; want %v", tt.name, tt.header, got, err, tt.want)
		}
	}

	if _, err := rules.For("/inbox/x", "sometimes"); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("For with a bad header: err = %v; want ErrUnknownPolicy", err)
	}
}

func TestRulesForDefault(t *testing.T) {
	var zero Rules
	if p, err := zero.For("/a", ""); err != nil || p != Replace {
		t.Errorf("zero Rules: For = %v, %v; want replace", p, err)
	}
	r := mustRules(t, Reject, "/public/**=replace")
	for name, want := range map[string]Policy{"/a": Reject, "/public/a": Replace, "/publicity": Reject} {
		if p, _ := r.For(name, ""); p != want {
			t.Errorf("For(%q) = %v; want %v", name, p, want)
		}
	}
	// A hand-built rule with a broken glob matches nothing rather than panicking.
	bad := Rules{Default: Reject, Rules: []Rule{{Pattern: "/a/[", Policy: Rename}}}
	if p, _ := bad.For("/a/[", ""); p != Reject {
		t.Errorf("broken pattern matched: %v", p)
	}
}

func TestMatchSegments(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"/", "/", true},
		{"/", "/a", false},
		{"/**", "/", true},
		{"/**", "/a/b/c", true},
		{"/a/**/b", "/a/b", true},
		{"/a/**/b", "/a/x/y/b", true},
		{"/a/**/b", "/a/x/y/c", false},
		{"/**/b/**/c", "/x/b/y/b/z/c", true},
		{"/**/b/**/c", "/x/b/y/b/z/d", false},
		{"/*", "/a", true},
		{"/*", "/a/b", false},
		{"/*/*.txt", "/d/ü.txt", true},
		{"/[*]", "/*", true},
		{"/[*]", "/a", false},
		{"/a?c", "/abc", true},
	}
	for _, tt := range tests {
		if got := matchSegments(segments(tt.pat), segments(tt.name)); got != tt.want {
			t.Errorf("match(%q, %q) = %v; want %v", tt.pat, tt.name, got, tt.want)
		}
	}
	// Many "**" must not blow up: the matcher is linear in each dimension.
	pat := "/" + strings.Repeat("**/", 200) + "z"
	name := "/" + strings.Repeat("a/", 2000) + "b"
	if matchSegments(segments(pat), segments(name)) {
		t.Error("pathological pattern matched")
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"/inbox/**=rename", "/a/*=reject", "/**/*.pdf=replace", "=", "/=reject",
		"/a//b=x", "/a/[=rename", "/caf\u0065\u0301=rename", "x=y=z", "/a\\b=rename",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		// A parsed rule is usable: it round-trips and never panics when applied.
		again, err := ParseRule(r.Pattern + "=" + r.Policy.String())
		if err != nil || again != r {
			t.Fatalf("ParseRule(%q) = %+v, but its own text parses to %+v, %v", s, r, again, err)
		}
		rules := Rules{Rules: []Rule{r}}
		for _, name := range []string{"/", "/a", "/a/b/c", r.Pattern} {
			if _, err := rules.For(name, ""); err != nil {
				t.Fatal(err)
			}
		}
		// A literal pattern matches itself.
		if !strings.ContainsAny(r.Pattern, "*?[") && !matchSegments(segments(r.Pattern), segments(r.Pattern)) {
			t.Fatalf("literal pattern %q does not match itself", r.Pattern)
		}
	})
}
