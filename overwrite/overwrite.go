// Package overwrite decides what happens when an upload (PUT, or COPY/MOVE without an
// Overwrite header) targets a name that already exists: replace it, reject the request
// with 409 name_exists, or store the upload under a free name such as "report (1).pdf".
//
// The package is pure: it chooses a policy and proposes names, but never looks at a
// store. Whether a name is free is decided by the backend at commit time (the server
// writes each candidate with Cond.IfNoneMatch), because a Stat followed by a write would
// let two racing uploads pick the same name.
package overwrite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Policy is what to do when the target of an upload exists.
type Policy int

// The policies. Replace is the zero value because it is what RFC 4918 prescribes for a
// PUT and for COPY/MOVE with an absent Overwrite header (which means T, RFC 4918 10.6),
// so a zero Rules behaves like a plain WebDAV server.
const (
	// Replace writes over the existing resource.
	Replace Policy = iota
	// Reject refuses the upload with 409 name_exists when the target exists.
	Reject
	// Rename stores the upload under the first free name from Candidates.
	Rename
)

// ErrUnknownPolicy is returned (wrapped, with the offending text) by ParsePolicy,
// ParseRule and Rules.For for a policy name other than replace, reject or rename. It is a
// sentinel so the caller can tell the client's mistake (a bad request header: 400) from
// a bad configuration (refuse to start) by where it came from, not by parsing text.
var ErrUnknownPolicy = errors.New("overwrite: unknown policy (want replace, reject or rename)")

// String returns the policy's name as ParsePolicy accepts it: "replace", "reject" or
// "rename"; a value outside the three prints as "Policy(N)" so a bug stays visible.
func (p Policy) String() string {
	switch p {
	case Replace:
		return "replace"
	case Reject:
		return "reject"
	case Rename:
		return "rename"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy parses a policy name, ignoring case and surrounding spaces (the same text
// comes from flags, config files and request headers, written by hand). Anything else
// fails with an error wrapping ErrUnknownPolicy.
func ParsePolicy(s string) (Policy, error) {
	t := strings.TrimSpace(s)
	for _, p := range []Policy{Replace, Reject, Rename} {
		if strings.EqualFold(t, p.String()) {
			return p, nil
		}
	}
	return Replace, fmt.Errorf("%w: %q", ErrUnknownPolicy, s)
}
