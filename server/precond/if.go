package precond

import (
	"fmt"
	"strings"
)

// Bounds on the If header, so a hostile header cannot make parsing or evaluation (which
// may consult the lock manager per condition) expensive.
const (
	maxIfLen        = 64 << 10
	maxIfConditions = 1000
)

// IfHeader is a parsed WebDAV If header (RFC 4918 §10.4). ParseIf never returns one
// without lists, and never mixes tagged and untagged lists.
type IfHeader struct {
	Lists []List
}

// List is one parenthesised list of conditions; it is true when all its conditions
// are.
type List struct {
	// Tag is the resource tag the list applies to, as written between < and > (an
	// absolute URL or an absolute path); "" for an untagged list, which applies to the
	// request URI.
	Tag        string
	Conditions []Condition // never empty
}

// Condition is one condition of a List: exactly one of Token and ETag is set.
type Condition struct {
	Not bool
	// Token is a state token without its angle brackets, e.g. "urn:uuid:…",
	// "opaquelocktoken:…" or "DAV:no-lock".
	Token string
	// ETag is an entity-tag as written between [ and ]: quoted, with any W/ prefix.
	ETag string
}

// ParseIf parses the value of an If header:
//
//	If          = ( 1*No-tag-list | 1*Tagged-list )
//	No-tag-list = List
//	Tagged-list = Resource-Tag 1*List
//	List        = "(" 1*Condition ")"
//	Condition   = ["Not"] ( State-token | "[" entity-tag "]" )
//	State-token = "<" absolute-URI ">"
//	Resource-Tag = "<" Simple-ref ">"
//
// (RFC 4918 §10.4.2). Whitespace is allowed between tokens and "Not" is matched
// case-insensitively. Entity-tags follow RFC 9110 §8.8.3 but also accept the
// backslash escapes of the RFC 2616 quoted-string RFC 4918 was written against. Errors
// wrap ErrMalformed: syntax errors, tagged and untagged lists mixed, a value over 64 KiB
// or with more than 1000 conditions.
func ParseIf(s string) (IfHeader, error) {
	if len(s) > maxIfLen {
		return IfHeader{}, fmt.Errorf("%w: If header longer than %d bytes", ErrMalformed, maxIfLen)
	}
	// Size both slices from an upper bound, so a parse costs two allocations. Every
	// list opens with '(' and every condition with '<' or '['.
	nl := strings.Count(s, "(")
	nc := strings.Count(s, "<") + strings.Count(s, "[")
	if nc > maxIfConditions {
		// Still an upper bound (resource tags also start with '<'), so cap the
		// allocation and let the parser count exactly.
		nc = maxIfConditions
	}
	p := ifParser{s: s, lists: make([]List, 0, nl), conds: make([]Condition, 0, nc)}
	if err := p.parse(); err != nil {
		return IfHeader{}, err
	}
	return IfHeader{Lists: p.lists}, nil
}

type ifParser struct {
	s     string
	i     int
	lists []List
	conds []Condition // backing store of every list's Conditions
}

func (p *ifParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), p.i)
}

// skipLWS skips linear whitespace. Header folding is undone by net/http, but a
// stray CR or LF in a value built by hand is still only whitespace.
func (p *ifParser) skipLWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *ifParser) parse() error {
	p.skipLWS()
	if p.i == len(p.s) {
		return p.errorf("empty If header")
	}
	switch p.s[p.i] {
	case '(':
		for {
			if err := p.list(""); err != nil {
				return err
			}
			p.skipLWS()
			if p.i == len(p.s) {
				return nil
			}
			if p.s[p.i] == '<' {
				return p.errorf("tagged list after untagged list")
			}
		}
	case '<':
		for {
			tag, err := p.resourceTag()
			if err != nil {
				return err
			}
			p.skipLWS()
			if p.i == len(p.s) || p.s[p.i] != '(' {
				return p.errorf("resource tag without a list")
			}
			for p.i < len(p.s) && p.s[p.i] == '(' {
				if err := p.list(tag); err != nil {
					return err
				}
				p.skipLWS()
			}
			if p.i == len(p.s) {
				return nil
			}
			if p.s[p.i] != '<' {
				return p.errorf("unexpected %q", p.s[p.i])
			}
		}
	default:
		return p.errorf("expected '(' or '<'")
	}
}

// list parses List = "(" 1*Condition ")"; p.s[p.i] is '('.
func (p *ifParser) list(tag string) error {
	p.i++
	start := len(p.conds)
	for {
		p.skipLWS()
		if p.i == len(p.s) {
			return p.errorf("unterminated list")
		}
		if p.s[p.i] == ')' {
			p.i++
			if len(p.conds) == start {
				return p.errorf("empty list")
			}
			// Cap the capacity so appending to one list never overwrites the next.
			n := len(p.conds)
			p.lists = append(p.lists, List{Tag: tag, Conditions: p.conds[start:n:n]})
			return nil
		}
		if len(p.conds) == maxIfConditions {
			return p.errorf("more than %d conditions", maxIfConditions)
		}
		c, err := p.condition()
		if err != nil {
			return err
		}
		p.conds = append(p.conds, c)
	}
}

// condition parses Condition = ["Not"] (State-token | "[" entity-tag "]").
func (p *ifParser) condition() (Condition, error) {
	var c Condition
	if len(p.s)-p.i >= 3 && strings.EqualFold(p.s[p.i:p.i+3], "not") {
		c.Not = true
		p.i += 3
		p.skipLWS()
		if p.i == len(p.s) {
			return c, p.errorf("Not without a condition")
		}
	}
	switch p.s[p.i] {
	case '<':
		uri, err := p.angle()
		if err != nil {
			return c, err
		}
		if !isAbsoluteURI(uri) {
			return c, p.errorf("state token is not an absolute URI")
		}
		c.Token = uri
	case '[':
		p.i++
		p.skipLWS()
		start := p.i
		end, ok := 0, false
		if p.i < len(p.s) {
			end, ok = scanETag(p.s, p.i, true)
		}
		if !ok {
			return c, p.errorf("bad entity-tag")
		}
		c.ETag = p.s[start:end]
		p.i = end
		p.skipLWS()
		if p.i == len(p.s) || p.s[p.i] != ']' {
			return c, p.errorf("expected ']'")
		}
		p.i++
	default:
		return c, p.errorf("expected '<', '[' or Not")
	}
	return c, nil
}

// resourceTag parses Resource-Tag = "<" Simple-ref ">", Simple-ref = absolute-URI |
// path-absolute [ "?" query ].
func (p *ifParser) resourceTag() (string, error) {
	ref, err := p.angle()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(ref, "/") && !isAbsoluteURI(ref) {
		return "", p.errorf("resource tag is neither an absolute URI nor an absolute path")
	}
	return ref, nil
}

// angle returns the text between '<' (at p.i) and the next '>'. URIs contain no
// whitespace, controls or angle brackets; other bytes, including raw UTF-8 that some
// clients send in place of percent-encoding, are let through for the server to map.
func (p *ifParser) angle() (string, error) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '>' {
			v := p.s[start:p.i]
			p.i++
			if v == "" {
				return "", p.errorf("empty <>")
			}
			return v, nil
		}
		if c <= ' ' || c == 0x7f || c == '<' {
			return "", p.errorf("invalid byte %q in <>", c)
		}
		p.i++
	}
	return "", p.errorf("unterminated <")
}

// isAbsoluteURI checks the scheme of absolute-URI = scheme ":" hier-part [ "?" query ],
// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1, §4.3). The rest
// was checked by angle.
func isAbsoluteURI(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// isNoLock reports whether token is "DAV:no-lock" (RFC 4918 §10.4.8), the state token
// that never names a lock. URI schemes are case-insensitive.
func isNoLock(token string) bool {
	return len(token) == len("DAV:no-lock") &&
		strings.EqualFold(token[:4], "DAV:") && token[4:] == "no-lock"
}

// String formats h back into an If header value that ParseIf reads as h, grouping
// consecutive lists with the same tag.
func (h IfHeader) String() string {
	var b strings.Builder
	for i, l := range h.Lists {
		if i > 0 {
			b.WriteByte(' ')
		}
		if l.Tag != "" && (i == 0 || h.Lists[i-1].Tag != l.Tag) {
			b.WriteString("<" + l.Tag + "> ")
		}
		b.WriteByte('(')
		for j, c := range l.Conditions {
			if j > 0 {
				b.WriteByte(' ')
			}
			if c.Not {
				b.WriteString("Not ")
			}
			if c.Token != "" {
				b.WriteString("<" + c.Token + ">")
			} else {
				b.WriteString("[" + c.ETag + "]")
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Target is what IfHeader.Eval needs to know about one resource the If header names.
type Target struct {
	Exists bool
	ETag   string // current strong entity-tag, quoted
	// HasLock reports whether token names a lock that currently covers the resource.
	// nil means the resource has no locks.
	HasLock func(token string) bool
	// Request marks the resource the request writes, whose Cond Eval's matchedETag
	// feeds. Untagged lists always apply to the request URI; set Request when a tag
	// (often an absolute URL) maps to it too.
	Request bool
}

// Eval evaluates the If header (RFC 4918 §10.4): it is true when any list is true; a
// list is true when all its conditions are. A token condition is true when the
// resource's HasLock accepts the token ("DAV:no-lock" never names a lock); an ETag
// condition is true when the resource exists and its ETag equals the condition's by the
// strong comparison (a W/ tag never matches); Not negates either.
//
// resolve maps a list's tag to its resource; "" is the request URI. The server maps
// tags, which may be absolute URLs, and answers a tag outside its namespace with a
// zero Target (no resource, no locks). resolve is called at most once per distinct tag.
//
// matchedETag is the non-Not ETag condition of the first true list that applies to the
// request URI (untagged, or tagged with a Target whose Request is set) and has one; ""
// when none. Pass it to Request.Cond, so the commit re-checks what the client relied
// on. The zero IfHeader, with no lists, evaluates to false.
func (h IfHeader) Eval(resolve func(tag string) Target) (ok bool, matchedETag string) {
	// Lists of one tag are usually adjacent; cache by tag so resolve, which may Stat a
	// resource, runs once per tag.
	type entry struct {
		tag string
		t   Target
	}
	var cache []entry
	lookup := func(tag string) Target {
		for i := len(cache) - 1; i >= 0; i-- {
			if cache[i].tag == tag {
				return cache[i].t
			}
		}
		t := resolve(tag)
		cache = append(cache, entry{tag, t})
		return t
	}
	for _, l := range h.Lists {
		t := lookup(l.Tag)
		self := l.Tag == "" || t.Request
		if ok && (!self || matchedETag != "") {
			// The answer is settled; only the matched ETag can still change, and only
			// through a list on the request URI.
			continue
		}
		if !evalList(l, t) {
			continue
		}
		ok = true
		if self && matchedETag == "" {
			for _, c := range l.Conditions {
				if !c.Not && c.ETag != "" {
					matchedETag = c.ETag
					break
				}
			}
		}
		if matchedETag != "" {
			break
		}
	}
	return ok, matchedETag
}

// evalList reports whether every condition of l holds for t.
func evalList(l List, t Target) bool {
	for _, c := range l.Conditions {
		var v bool
		if c.Token != "" {
			v = t.HasLock != nil && !isNoLock(c.Token) && t.HasLock(c.Token)
		} else {
			v = t.Exists && strongMatch(c.ETag, t.ETag)
		}
		if v == c.Not {
			return false
		}
	}
	return true
}
