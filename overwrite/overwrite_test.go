package overwrite

import (
	"errors"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		bad  bool
	}{
		{in: "replace", want: Replace},
		{in: "reject", want: Reject},
		{in: "rename", want: Rename},
		{in: "RENAME", want: Rename},
		{in: "  Reject\t", want: Reject},
		{in: "", bad: true},
		{in: "   ", bad: true},
		{in: "renamed", bad: true},
		{in: "T", bad: true}, // the Overwrite header's values are not policies
		{in: "re place", bad: true},
	}
	for _, tt := range tests {
		got, err := ParsePolicy(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrUnknownPolicy) {
				t.Errorf("ParsePolicy(%q) = %v, %v; want ErrUnknownPolicy", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestPolicyString(t *testing.T) {
	for p, want := range map[Policy]string{Replace: "replace", Reject: "reject", Rename: "rename", 7: "Policy(7)"} {
		if got := p.String(); got != want {
			t.Errorf("Policy(%d).String() = %q; want %q", int(p), got, want)
		}
	}
	// String and ParsePolicy round-trip, so a policy can be printed into a config.
	for _, p := range []Policy{Replace, Reject, Rename} {
		if q, err := ParsePolicy(p.String()); err != nil || q != p {
			t.Errorf("ParsePolicy(%v.String()) = %v, %v", p, q, err)
		}
	}
}
