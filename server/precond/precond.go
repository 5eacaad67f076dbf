// Package precond parses and evaluates the preconditions of an HTTP/WebDAV request:
// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since (RFC 9110 §13) and
// the WebDAV If header (RFC 4918 §10.4).
//
// Everything here is pure: the server observes a resource (State, Target), asks Check
// or IfHeader.Eval whether the request may proceed, and then asks Cond for the
// backend.Cond that carries the observed state down to the commit. A write that raced
// with ours between the check and the commit then fails at the commit with
// backend.ErrPrecondition instead of being silently overwritten (STYLE.md habit 1).
package precond

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"safedav/backend"
)

// ErrMalformed is wrapped by every parse error of this package; the server answers it
// with 400 Bad Request.
var ErrMalformed = errors.New("malformed precondition header")

// State is what the server observed of the target resource just now.
type State struct {
	Exists bool
	// ETag is the resource's current strong entity-tag, quoted (`"…"`), as in
	// backend.Info.ETag.
	ETag string
	// ModTime is the last modification time; zero when the store does not know it, in
	// which case the date conditions are ignored (RFC 9110 §13.1.3, §13.1.4).
	ModTime time.Time
}

// Request holds the parsed conditional headers of one request. The zero Request has no
// conditions.
type Request struct {
	// IfMatch and IfNoneMatch are nil when the header is absent, []string{"*"} for "*",
	// and otherwise the entity-tags as written (quoted, with any W/ prefix). A header
	// that is present but lists no tag ("If-Match: ,") is a non-nil empty slice: no tag
	// matches it, so If-Match fails and If-None-Match passes (RFC 9110 §13.1.1, §13.1.2).
	IfMatch, IfNoneMatch []string
	// IfUnmodifiedSince and IfModifiedSince are zero when the header is absent, is not
	// a valid HTTP-date, or has more than one line; RFC 9110 §13.1.3 and §13.1.4 say to
	// ignore such a field rather than reject the request.
	IfUnmodifiedSince, IfModifiedSince time.Time
	// If is the parsed WebDAV If header, nil when absent.
	If *IfHeader
}

// Canonical header keys: Parse reads the map directly, which costs no allocation. Every
// http.Header built by net/http (and by Header.Set/Add) uses these spellings.
const (
	hdrIfMatch           = "If-Match"
	hdrIfNoneMatch       = "If-None-Match"
	hdrIfModifiedSince   = "If-Modified-Since"
	hdrIfUnmodifiedSince = "If-Unmodified-Since"
	hdrIf                = "If"
)

// Parse reads the conditional headers of h. Several lines of one header are combined
// as RFC 9110 §5.3 allows (list elements joined; If header lists concatenated). It
// returns an error wrapping ErrMalformed for a malformed entity-tag list (including "*"
// mixed with tags) or If header; an invalid date is not an error but an absent header.
// A request without conditional headers allocates nothing.
func Parse(h http.Header) (Request, error) {
	var q Request
	var err error
	if v, ok := h[hdrIfMatch]; ok {
		if q.IfMatch, err = parseETagLines(v); err != nil {
			return Request{}, fmt.Errorf("If-Match: %w", err)
		}
	}
	if v, ok := h[hdrIfNoneMatch]; ok {
		if q.IfNoneMatch, err = parseETagLines(v); err != nil {
			return Request{}, fmt.Errorf("If-None-Match: %w", err)
		}
	}
	q.IfUnmodifiedSince = parseDate(h[hdrIfUnmodifiedSince])
	q.IfModifiedSince = parseDate(h[hdrIfModifiedSince])
	if v, ok := h[hdrIf]; ok && len(v) > 0 {
		s := v[0]
		if len(v) > 1 {
			// The If header is not a #list, but its lists simply concatenate, so several
			// lines mean the same as one line holding all of them.
			s = strings.Join(v, " ")
		}
		ih, err := ParseIf(s)
		if err != nil {
			return Request{}, fmt.Errorf("in the If header: %w", err)
		}
		q.If = &ih
	}
	return q, nil
}

// parseDate returns the HTTP-date of a single-line header, or zero when it is absent,
// repeated or invalid (RFC 9110 §13.1.3, §13.1.4: "the recipient MUST ignore").
func parseDate(v []string) time.Time {
	if len(v) != 1 {
		return time.Time{}
	}
	t, err := http.ParseTime(strings.TrimSpace(v[0]))
	if err != nil {
		return time.Time{}
	}
	if t.IsZero() {
		// "Mon, 01 Jan 0001 00:00:00 GMT" is a valid date equal to the zero Time, which
		// would read as "absent"; nudge it so the condition is still evaluated. Dates
		// compare at one-second resolution, so the nanosecond changes no outcome.
		t = t.Add(time.Nanosecond)
	}
	return t
}

// parseETagLines parses the lines of an If-Match or If-None-Match header as one
// combined list: "*" / #entity-tag (RFC 9110 §13.1.1). "*" must stand alone.
func parseETagLines(lines []string) ([]string, error) {
	n := 0
	for _, l := range lines {
		n += strings.Count(l, ",") + 1
	}
	tags := make([]string, 0, n)
	star := false
	var err error
	for _, l := range lines {
		if tags, star, err = appendETagList(tags, star, l); err != nil {
			return nil, err
		}
	}
	if star && len(tags) != 1 {
		return nil, fmt.Errorf("%w: \"*\" combined with entity-tags", ErrMalformed)
	}
	return tags, nil
}

// ParseETagList parses the value of an If-Match or If-None-Match header: "*" alone, or
// a comma-separated list of entity-tags (RFC 9110 §8.8.3), which may be empty and may
// contain empty elements (§5.6.1). Tags are returned as written, quoted, with any W/
// prefix. A malformed value returns an error wrapping ErrMalformed.
func ParseETagList(s string) ([]string, error) {
	return parseETagLines([]string{s})
}

// appendETagList appends the elements of one header line to tags; star records
// whether a "*" element was seen.
func appendETagList(tags []string, star bool, s string) ([]string, bool, error) {
	i := 0
	for {
		i = skipOWS(s, i)
		if i == len(s) {
			return tags, star, nil
		}
		if s[i] == ',' { // empty element (RFC 9110 §5.6.1.2: recipients accept them)
			i++
			continue
		}
		start := i
		if s[i] == '*' {
			star = true
			i++
		} else {
			end, ok := scanETag(s, i, false)
			if !ok {
				return nil, false, fmt.Errorf("%w: bad entity-tag at offset %d", ErrMalformed, i)
			}
			i = end
		}
		tags = append(tags, s[start:i])
		i = skipOWS(s, i)
		if i == len(s) {
			return tags, star, nil
		}
		if s[i] != ',' {
			return nil, false, fmt.Errorf("%w: expected ',' at offset %d", ErrMalformed, i)
		}
		i++
	}
}

// skipOWS skips optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// scanETag scans entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE starting at s[i] and
// returns the index after it. etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3).
// With quotedPair, a backslash escapes the next byte as in the RFC 2616 quoted-string
// that RFC 4918's If header grammar still references.
func scanETag(s string, i int, quotedPair bool) (int, bool) {
	if strings.HasPrefix(s[i:], "W/") {
		i += 2
	}
	if i >= len(s) || s[i] != '"' {
		return 0, false
	}
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return i + 1, true
		case quotedPair && c == '\\':
			// quoted-pair = "\" CHAR; it may escape a DQUOTE but not a control.
			if i+1 >= len(s) || (s[i+1] < 0x20 && s[i+1] != '\t') || s[i+1] == 0x7f {
				return 0, false
			}
			i++
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return 0, false
		}
	}
	return 0, false
}

// isWeak reports whether tag carries the W/ prefix.
func isWeak(tag string) bool { return strings.HasPrefix(tag, "W/") }

// strongMatch is the strong comparison of RFC 9110 §8.8.3.2: both tags strong and
// identical. An empty current tag (a store without ETags) matches nothing.
func strongMatch(tag, cur string) bool {
	return cur != "" && tag == cur && !isWeak(tag)
}

// weakMatch is the weak comparison of RFC 9110 §8.8.3.2: opaque-tags identical, either
// or both may be weak.
func weakMatch(tag, cur string) bool {
	return cur != "" && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(cur, "W/")
}

// Outcome is the result of Check.
type Outcome int

// The outcomes of Check.
const (
	// Pass means every evaluated condition held: perform the method.
	Pass Outcome = iota
	// Fail means answer 412 Precondition Failed.
	Fail
	// NotModified means answer 304 Not Modified (GET and HEAD only).
	NotModified
)

// String returns the outcome's name, for logs and test failures.
func (o Outcome) String() string {
	switch o {
	case Pass:
		return "Pass"
	case Fail:
		return "Fail(412)"
	case NotModified:
		return "NotModified(304)"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// condResult is the tri-state of one header's evaluation: absent/ignored, true, false.
type condResult int

const (
	condNone condResult = iota
	condTrue
	condFalse
)

func boolCond(b bool) condResult {
	if b {
		return condTrue
	}
	return condFalse
}

// Check evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since
// against cur in the order of RFC 9110 §13.2.2 and returns the first failure, or Pass.
// A failed If-None-Match or If-Modified-Since gives NotModified for GET and HEAD and
// Fail for every other method; a failed If-Match or If-Unmodified-Since always gives
// Fail. The If header is not evaluated here: it needs lock state, see IfHeader.Eval.
//
// The caller applies RFC 9110 §13.2.1 itself: a request that would fail without its
// conditions (a GET of a missing resource: 404) is answered without calling Check.
func (q Request) Check(method string, cur State) Outcome {
	switch method {
	case http.MethodConnect, http.MethodOptions, http.MethodTrace:
		// RFC 9110 §13.2.1: these do not select or modify a representation, so the
		// preconditions are ignored.
		return Pass
	}
	read := method == http.MethodGet || method == http.MethodHead
	// Step 1 and 2: If-Match, else If-Unmodified-Since; false → 412 for every method.
	if r := q.checkIfMatch(cur); r == condFalse {
		return Fail
	} else if r == condNone && q.checkIfUnmodifiedSince(cur) == condFalse {
		return Fail
	}
	// Step 3: If-None-Match; false → 304 for GET/HEAD, 412 otherwise.
	if r := q.checkIfNoneMatch(cur); r == condFalse {
		if read {
			return NotModified
		}
		return Fail
	} else if r == condNone && read && q.checkIfModifiedSince(cur) == condFalse {
		// Step 4: If-Modified-Since, only for GET/HEAD and only without If-None-Match.
		return NotModified
	}
	return Pass
}

// checkIfMatch: RFC 9110 §13.1.1. "*" is true iff the resource exists (net/http
// assumes it does; for writes we must not); tags use the strong comparison.
func (q Request) checkIfMatch(cur State) condResult {
	if q.IfMatch == nil {
		return condNone
	}
	if isStar(q.IfMatch) {
		return boolCond(cur.Exists)
	}
	if !cur.Exists {
		return condFalse
	}
	for _, t := range q.IfMatch {
		if strongMatch(t, cur.ETag) {
			return condTrue
		}
	}
	return condFalse
}

// checkIfNoneMatch: RFC 9110 §13.1.2. "*" is false iff the resource exists; tags use
// the weak comparison and the condition is false when any of them matches.
func (q Request) checkIfNoneMatch(cur State) condResult {
	if q.IfNoneMatch == nil {
		return condNone
	}
	if isStar(q.IfNoneMatch) {
		return boolCond(!cur.Exists)
	}
	if !cur.Exists {
		return condTrue
	}
	for _, t := range q.IfNoneMatch {
		if weakMatch(t, cur.ETag) {
			return condFalse
		}
	}
	return condTrue
}

// checkIfUnmodifiedSince: RFC 9110 §13.1.4. Ignored without a valid date or without a
// modification date of the resource (a missing resource has none).
func (q Request) checkIfUnmodifiedSince(cur State) condResult {
	if q.IfUnmodifiedSince.IsZero() || !cur.Exists || cur.ModTime.IsZero() {
		return condNone
	}
	// HTTP dates have one-second resolution; a file modified at 10:00:00.7 is not
	// "modified since 10:00:00" as the client, who only saw the rounded date, means it.
	return boolCond(!secs(cur.ModTime).After(secs(q.IfUnmodifiedSince)))
}

// checkIfModifiedSince: RFC 9110 §13.1.3; the method restriction is in Check.
func (q Request) checkIfModifiedSince(cur State) condResult {
	if q.IfModifiedSince.IsZero() || !cur.Exists || cur.ModTime.IsZero() {
		return condNone
	}
	return boolCond(secs(cur.ModTime).After(secs(q.IfModifiedSince)))
}

func secs(t time.Time) time.Time { return t.Truncate(time.Second) }

func isStar(tags []string) bool { return len(tags) == 1 && tags[0] == "*" }

// Cond turns the conditions of q, which passed against cur, into the backend.Cond the
// backend re-checks at the commit, so that a write racing between the check and the
// commit makes the commit fail (412) instead of being lost. ifETag is the second result
// of IfHeader.Eval for the resource being written ("" when there is no If header or no
// entity-tag condition held).
//
// Each condition contributes what it relied on:
//
//	If-Match: *                      → the resource must exist
//	If-Match: tags                   → it must still have cur.ETag
//	If-None-Match: *                 → it must still not exist
//	If-None-Match: tags, cur exists  → it must still have cur.ETag
//	If-None-Match: tags, cur missing → it must still not exist
//	If-Unmodified-Since, cur exists  → it must still have cur.ETag (only when evaluated:
//	                                   If-Match absent and cur.ModTime known)
//	If-Unmodified-Since, cur missing → it must still not exist (a resource created
//	                                   meanwhile is "modified since")
//	If header etag (ifETag != "")    → it must still have ifETag
//
// and they combine by precedence: a pinned ETag (ifETag first, then cur.ETag) beats
// "must exist" ("*"), which a pinned ETag implies. If cur.ETag is empty (a store
// without ETags) pinning degrades to "*". "Must not exist" is set alone, since it is
// only derived from a missing cur. If-Modified-Since contributes nothing: it only
// applies to GET and HEAD, which do not commit.
//
// Cond is meaningful only after Check returned Pass and the If header (if any)
// evaluated true; on inputs that contradict each other it returns a Cond with both
// IfMatch and IfNoneMatch set, which no state satisfies, so the commit fails.
func (q Request) Cond(cur State, ifETag string) backend.Cond {
	var mustExist, pin, mustNotExist bool
	if q.IfMatch != nil {
		if isStar(q.IfMatch) {
			mustExist = true
		} else {
			pin = true
		}
	}
	if q.IfNoneMatch != nil {
		if isStar(q.IfNoneMatch) || !cur.Exists {
			mustNotExist = true
		} else {
			pin = true
		}
	}
	if q.IfMatch == nil && !q.IfUnmodifiedSince.IsZero() {
		if !cur.Exists {
			mustNotExist = true
		} else if !cur.ModTime.IsZero() {
			pin = true
		}
	}
	var c backend.Cond
	switch {
	case ifETag != "":
		c.IfMatch = ifETag
	case pin && cur.ETag != "":
		c.IfMatch = cur.ETag
	case pin || mustExist:
		c.IfMatch = "*"
	}
	c.IfNoneMatch = mustNotExist
	return c
}

// Tokens returns every state token named in the If header, whether under Not or not,
// de-duplicated, in order of first appearance; nil without an If header. The lock check
// treats them as submitted (RFC 4918 §10.4, §7.5). "DAV:no-lock" is left out since it
// never names a lock.
func (q Request) Tokens() []string {
	if q.If == nil {
		return nil
	}
	var out []string
	var seen map[string]bool // only for long headers; linear search is cheaper below
	for _, l := range q.If.Lists {
		for _, c := range l.Conditions {
			if c.Token == "" || isNoLock(c.Token) {
				continue
			}
			if seen != nil {
				if seen[c.Token] {
					continue
				}
				seen[c.Token] = true
			} else {
				dup := false
				for _, t := range out {
					if t == c.Token {
						dup = true
						break
					}
				}
				if dup {
					continue
				}
				if len(out) == 16 {
					seen = make(map[string]bool, 32)
					for _, t := range out {
						seen[t] = true
					}
					seen[c.Token] = true
				}
			}
			out = append(out, c.Token)
		}
	}
	return out
}
