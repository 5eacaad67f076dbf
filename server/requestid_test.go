package server

import (
	"strings"
	"testing"
)

// A client's request ID is kept when it is sane, and replaced by a new unique one
// otherwise.
func TestRequestID(t *testing.T) {
	tests := []struct {
		in   []string
		keep bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"abc-123"}, true},
		{[]string{strings.Repeat("a", 128)}, true},
		{[]string{strings.Repeat("a", 129)}, false},
		{[]string{"has space"}, false},
		{[]string{"tab\there"}, false},
		{[]string{"caf\u00e9"}, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := requestID(tt.in)
		if tt.keep {
			if got != tt.in[0] {
				t.Errorf("requestID(%q) = %q, want it kept", tt.in, got)
			}
			continue
		}
		if len(got) != 24 || strings.Trim(got, "0123456789abcdef") != "" || seen[got] {
			t.Errorf("requestID(%q) = %q, want a new 24-digit hex ID", tt.in, got)
		}
		seen[got] = true
	}
}
