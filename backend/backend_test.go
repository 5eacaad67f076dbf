package backend

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

func TestCondCheck(t *testing.T) {
	const tag = `"v1"`
	for _, tc := range []struct {
		name   string
		c      Cond
		exists bool
		ok     bool
	}{
		{"unconditional, absent", Cond{}, false, true},
		{"unconditional, present", Cond{}, true, true},
		{"create-only, absent", Cond{IfNoneMatch: true}, false, true},
		{"create-only, present", Cond{IfNoneMatch: true}, true, false},
		{"must exist, present", Cond{IfMatch: "*"}, true, true},
		{"must exist, absent", Cond{IfMatch: "*"}, false, false},
		{"version, matches", Cond{IfMatch: tag}, true, true},
		{"version, other", Cond{IfMatch: `"v2"`}, true, false},
		{"version, absent", Cond{IfMatch: tag}, false, false},
	} {
		calls := 0
		err := tc.c.Check(tc.exists, func() string { calls++; return tag })
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrPrecondition)) {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if calls > 0 && (!tc.exists || tc.c.IfMatch == "" || tc.c.IfMatch == "*") {
			t.Errorf("%s: the ETag was computed though not needed", tc.name)
		}
	}
}

func TestReserved(t *testing.T) {
	for name, want := range map[string]bool{
		"/a/b":                   false,
		"/.safedav":              true,
		"/a/.safedav-tmp-x/b":    true,
		".safedav/staging/3":     true,
		"/a/x.safedav":           false,
		"/.safedavish/ok-or-not": true, // the prefix, not the whole segment
	} {
		if got := Reserved(name); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestApplyPatches(t *testing.T) {
	p := func(local, v string) Prop {
		return Prop{Name: xml.Name{Space: "urn:z", Local: local}, InnerXML: []byte(v)}
	}
	in := []Prop{p("a", "1"), p("b", "2"), p("c", "3")}
	got := ApplyPatches(in, []PropPatch{
		{Prop: p("b", "22")},             // replaced in place
		{Remove: true, Prop: p("a", "")}, // removed
		{Prop: p("d", "4")},              // appended
		{Remove: true, Prop: p("d", "")}, // then removed again: order counts
		{Remove: true, Prop: p("x", "")}, // absent: nothing
	})
	var s []string
	for _, g := range got {
		s = append(s, g.Name.Local+"="+string(g.InnerXML))
	}
	if strings.Join(s, ",") != "b=22,c=3" {
		t.Fatalf("ApplyPatches = %v", s)
	}
}
