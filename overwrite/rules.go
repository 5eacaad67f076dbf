package overwrite

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"safedav/backend"
)

// Rule maps a path pattern to a policy.
//
// A pattern is "/"-rooted and matched segment by segment against a backend name:
//   - "**" (a whole segment) matches any number of segments, none included, so
//     "/backups/**" matches "/backups" itself and everything below it;
//   - any other segment is a path.Match pattern confined to one segment, so "/inbox/*"
//     matches "/inbox/x" but not "/inbox/x/y", and "/**/*.pdf" matches every PDF;
//   - a segment without "*", "?" or "[" is literal: "/exact/name.txt".
//
// Backslash escapes are not allowed (names never contain a backslash); match a literal
// metacharacter with a class instead: "[*]", "[?]", "[[]".
type Rule struct {
	Pattern string
	Policy  Policy
}

// ParseRule parses "PATTERN=POLICY", for example "/inbox/**=rename", as written in a
// flag or config file. Spaces around the whole text, the pattern and the policy are
// ignored. The split is at the last "=", so a pattern may contain "=" (names can). The
// pattern must start with "/", have no empty, "." or ".." segment and no trailing "/",
// use "**" only as a whole segment, be a valid path.Match pattern in every segment, and
// be a name backend.CleanName accepts; it is stored in Unicode NFC so that it matches the
// NFC names the server hands us whatever form the config file was saved in. An unknown
// policy fails with an error wrapping ErrUnknownPolicy, a bad glob with one wrapping
// path.ErrBadPattern.
func ParseRule(s string) (Rule, error) {
	t := strings.TrimSpace(s)
	i := strings.LastIndexByte(t, '=')
	if i < 0 {
		return Rule{}, fmt.Errorf("overwrite: rule %q: missing \"=\" (want PATTERN=POLICY, e.g. /inbox/**=rename)", s)
	}
	// The policy is checked first: a stray "=" at the end ("/a/**=rename=") is the
	// likelier slip, and "unknown policy \"\"" names it better than a pattern error.
	p, err := ParsePolicy(t[i+1:])
	if err != nil {
		return Rule{}, fmt.Errorf("overwrite: rule %q: %w", s, err)
	}
	pattern, err := cleanPattern(strings.TrimSpace(t[:i]))
	if err != nil {
		return Rule{}, fmt.Errorf("overwrite: rule %q: %w", s, err)
	}
	return Rule{Pattern: pattern, Policy: p}, nil
}

// cleanPattern validates a pattern and returns it in NFC. The structural checks come
// first so that the message names the actual mistake; CleanName then catches control
// characters and reserved names, and normalises.
func cleanPattern(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty pattern")
	case p[0] != '/':
		return "", fmt.Errorf("pattern %q must start with \"/\" (use /**/%s to match at any depth)", p, p)
	case strings.ContainsRune(p, '\\'):
		return "", fmt.Errorf("pattern %q: backslash is not allowed (match a literal * ? [ with [*] [?] [[])", p)
	case len(p) > 1 && strings.HasSuffix(p, "/"):
		return "", fmt.Errorf("pattern %q must not end with \"/\" (use %s** for a folder and everything below it)", p, p)
	}
	if p != "/" {
		for seg := range strings.SplitSeq(p[1:], "/") {
			switch {
			case seg == "":
				return "", fmt.Errorf("pattern %q has an empty segment", p)
			case seg == "." || seg == "..":
				return "", fmt.Errorf("pattern %q has a %q segment", p, seg)
			case seg != "**" && strings.Contains(seg, "**"):
				return "", fmt.Errorf("pattern %q: \"**\" must be a whole segment, as in /a/**/b", p)
			}
			if _, err := path.Match(seg, ""); err != nil {
				return "", fmt.Errorf("pattern %q: segment %q: %w", p, seg, err)
			}
		}
	}
	clean, err := backend.CleanName(p)
	if err != nil {
		return "", fmt.Errorf("pattern %q is not a valid name (no control characters or reserved %s names): %w", p, backend.ReservedPrefix, err)
	}
	return clean, nil
}

// Rules is the configured overwrite behaviour: a default and path rules. The zero value
// replaces everywhere, like any WebDAV server.
type Rules struct {
	Default Policy
	Rules   []Rule
}

// For returns the policy for an upload to name (a cleaned backend name). A non-empty
// header (the client's per-request choice; whitespace only counts as absent) wins, since
// the client knows what it is uploading; it fails with an error wrapping ErrUnknownPolicy
// if it does not parse, and the server answers 400 rather than guess. Otherwise the most
// specific matching rule applies: the one with the most literal segments, so "/a/b/**"
// beats "/a/**" whatever the order; among equally specific rules the later one wins, so
// a rule appended to a list overrides what came before. With no match, Default applies.
// A rule whose pattern is invalid (built without ParseRule) matches nothing.
func (r Rules) For(name, header string) (Policy, error) {
	if strings.TrimSpace(header) != "" {
		return ParsePolicy(header)
	}
	p, best := r.Default, -1
	nameSegs := segments(name)
	for _, rule := range r.Rules {
		patSegs := segments(rule.Pattern)
		if !matchSegments(patSegs, nameSegs) {
			continue
		}
		if n := literalSegments(patSegs); n >= best {
			p, best = rule.Policy, n
		}
	}
	return p, nil
}

// segments splits a "/"-rooted name or pattern; the root has no segments.
func segments(s string) []string {
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return nil
	}
	return strings.Split(s, "/")
}

// literalSegments counts the segments that match exactly one text.
func literalSegments(pat []string) int {
	n := 0
	for _, seg := range pat {
		if !strings.ContainsAny(seg, "*?[") {
			n++
		}
	}
	return n
}

// matchSegments reports whether name matches pat, where "**" stands for any run of
// segments. It is the classic wildcard match with backtracking to the last "**" only,
// which is O(len(pat)·len(name)) however many "**" a pattern holds, so a hostile or
// careless config cannot make a request slow.
func matchSegments(pat, name []string) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		switch {
		case p < len(pat) && pat[p] == "**":
			starP, starN = p, n
			p++
		case p < len(pat) && matchSegment(pat[p], name[n]):
			p++
			n++
		case starP >= 0:
			// Let the last "**" swallow one more segment and retry after it.
			starN++
			p, n = starP+1, starN
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == "**" {
		p++
	}
	return p == len(pat)
}

func matchSegment(pat, seg string) bool {
	ok, err := path.Match(pat, seg)
	return ok && err == nil
}
