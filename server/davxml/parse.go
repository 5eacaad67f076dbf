// Package davxml decodes WebDAV request bodies (PROPFIND, PROPPATCH, LOCK) strictly and
// within fixed bounds, and encodes response bodies (multistatus, lockdiscovery, DAV:error)
// by appending bytes directly, without encoding/xml's reflection, so a large PROPFIND
// listing stays fast and allocates little.
//
// Decoding first builds a small namespace-resolved tree of the whole body (the server has
// already limited its size with http.MaxBytesReader) and then interprets it against the
// RFC 4918 §14 element definitions. Namespace processing is our own, on top of
// encoding/xml's RawToken, because encoding/xml silently accepts things the XML
// Namespaces recommendation forbids (a prefix bound to the empty string, unbound
// prefixes, duplicate attributes) and does not strip a byte order mark.
package davxml

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds on a request body, on top of the byte limit the server imposes.
const (
	// MaxDepth is the deepest element nesting accepted; the root element is at depth 1.
	MaxDepth = 64
	// MaxElements is the most elements accepted in one body.
	MaxElements = 10000
	// MaxValueBytes is the most bytes of re-serialised property values (PROPPATCH) or
	// lock owner (LOCK) accepted in one body. The bound is on our output, not the input,
	// because re-serialisation repeats namespace declarations and could otherwise turn a
	// small body into a huge one.
	MaxValueBytes = 1 << 20
	// maxAttrs bounds the attributes (namespace declarations included) of one body, so a
	// body made of attributes cannot sidestep MaxElements.
	maxAttrs = 10000
)

// ErrBadXML is wrapped by every decoding error: the body is not well-formed XML, is not
// namespace-well-formed, uses another encoding than UTF-8, has the wrong root element,
// breaks RFC 4918's element definitions, or exceeds a bound. The server answers 400.
// When the underlying reader failed (for example with *http.MaxBytesError) that error is
// wrapped too, so errors.As still finds it.
var ErrBadXML = errors.New("davxml: malformed or invalid XML request body")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadXML, fmt.Sprintf(format, args...))
}

func badErr(err error) error {
	return fmt.Errorf("%w: %w", ErrBadXML, err)
}

// Namespace names with fixed meaning (Namespaces in XML 1.0 §3).
const (
	nsDAV   = "DAV:"
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// elem is one element of a parsed body, with names resolved to namespace URIs. The
// original prefixes are kept so re-serialised property values look like what the client
// sent (and QNames in content keep working in the common case).
type elem struct {
	name   xml.Name // Space is the namespace URI
	prefix string
	attrs  []attr // namespace declarations excluded
	lang   string // xml:lang in scope, inherited from ancestors (XML 1.0 §2.12)
	kids   []node
}

type attr struct {
	name   xml.Name
	prefix string
	value  string
}

// node is a child of an element: either an element or character data. Comments and
// processing instructions are dropped.
type node struct {
	el   *elem
	text string
}

type nsUndo struct {
	prefix string
	prev   string
	had    bool
}

type parser struct {
	d      *xml.Decoder
	ns     map[string]string // prefix → URI; "" is the default namespace
	undo   []nsUndo
	marks  []int
	stack  []*elem
	elems  int
	nattrs int
	text   []byte // character data not yet attached to the open element
}

func (p *parser) flushText() {
	if len(p.text) > 0 && len(p.stack) > 0 {
		top := p.stack[len(p.stack)-1]
		top.kids = append(top.kids, node{text: string(p.text)})
	}
	p.text = p.text[:0]
}

// parse reads a whole body. It returns (nil, nil) for an empty body: zero bytes, or only
// a byte order mark and white space, which RFC 4918 gives a meaning for PROPFIND (§9.1)
// and LOCK (§9.10.2).
func parse(r io.Reader) (*elem, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	// A UTF-8 byte order mark is allowed before the document (XML 1.0 §4.3.3, Appendix F);
	// encoding/xml would report it as character data before the root.
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, badErr(err)
		}
		if !isSpace(c) {
			br.UnreadByte()
			break
		}
	}

	p := &parser{d: xml.NewDecoder(br), ns: make(map[string]string)}
	p.d.Strict = true
	p.d.CharsetReader = charsetReader
	var root *elem
	for tokens := 0; ; tokens++ {
		tok, err := p.d.RawToken()
		if err == io.EOF {
			if root == nil {
				return nil, badf("no root element")
			}
			if len(p.stack) > 0 {
				return nil, badf("unexpected end of body inside <%s>", p.stack[len(p.stack)-1].name.Local)
			}
			return root, nil
		}
		if err != nil {
			return nil, badErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			p.flushText()
			if len(p.stack) == 0 && root != nil {
				return nil, badf("more than one root element")
			}
			e, err := p.start(t)
			if err != nil {
				return nil, err
			}
			if len(p.stack) == 0 {
				root = e
			} else {
				parent := p.stack[len(p.stack)-1]
				parent.kids = append(parent.kids, node{el: e})
			}
			p.stack = append(p.stack, e)
		case xml.EndElement:
			p.flushText()
			// RawToken does not match end tags with start tags: do it here.
			if len(p.stack) == 0 {
				return nil, badf("unexpected end tag </%s>", t.Name.Local)
			}
			top := p.stack[len(p.stack)-1]
			if t.Name.Space != top.prefix || t.Name.Local != top.name.Local {
				return nil, badf("end tag </%s> does not match <%s>",
					appendQName(nil, t.Name.Space, t.Name.Local), appendQName(nil, top.prefix, top.name.Local))
			}
			p.stack = p.stack[:len(p.stack)-1]
			p.end()
		case xml.CharData:
			if len(p.stack) == 0 {
				if !isAllSpace(t) {
					return nil, badf("character data outside the root element")
				}
				continue
			}
			// Buffered until the next tag, so text cut into many pieces by comments or
			// CDATA sections costs linear time, not quadratic.
			p.text = append(p.text, t...)
		case xml.ProcInst:
			if strings.EqualFold(t.Target, "xml") {
				// Only the XML declaration itself, and only first (XML 1.0 §2.8).
				if tokens != 0 || t.Target != "xml" {
					return nil, badf("misplaced XML declaration")
				}
				if err := checkDecl(t.Inst); err != nil {
					return nil, err
				}
			}
		case xml.Directive:
			// No DOCTYPE, hence no entity declarations to expand (billion laughs, external
			// entities): a WebDAV body never needs one.
			return nil, badf("DOCTYPE and other declarations are not allowed")
		case xml.Comment:
		}
	}
}

func (p *parser) start(t xml.StartElement) (*elem, error) {
	p.elems++
	if p.elems > MaxElements {
		return nil, badf("more than %d elements", MaxElements)
	}
	if len(p.stack)+1 > MaxDepth {
		return nil, badf("elements nested deeper than %d", MaxDepth)
	}
	p.nattrs += len(t.Attr)
	if p.nattrs > maxAttrs {
		return nil, badf("more than %d attributes", maxAttrs)
	}
	// Unique Att Spec (XML 1.0 §3.1), on the names as written.
	if hasDup(t.Attr, func(a xml.Attr) xml.Name { return a.Name }) {
		return nil, badf("duplicate attribute in <%s>", t.Name.Local)
	}

	// Declarations take effect on the element that carries them, so apply them first.
	p.marks = append(p.marks, len(p.undo))
	n := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns":
			if err := p.declare(a.Name.Local, a.Value); err != nil {
				return nil, err
			}
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if err := p.declare("", a.Value); err != nil {
				return nil, err
			}
		default:
			n++
		}
	}

	e := &elem{prefix: t.Name.Space}
	if t.Name.Space == "xmlns" {
		return nil, badf("element <%s:%s> uses the reserved prefix xmlns", t.Name.Space, t.Name.Local)
	}
	space, err := p.resolve(t.Name, true)
	if err != nil {
		return nil, err
	}
	e.name = xml.Name{Space: space, Local: t.Name.Local}
	if len(p.stack) > 0 {
		e.lang = p.stack[len(p.stack)-1].lang
	}
	if n > 0 {
		e.attrs = make([]attr, 0, n)
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		space, err := p.resolve(a.Name, false)
		if err != nil {
			return nil, err
		}
		name := xml.Name{Space: space, Local: a.Name.Local}
		if name == (xml.Name{Space: nsXML, Local: "lang"}) {
			e.lang = a.Value
		}
		e.attrs = append(e.attrs, attr{name: name, prefix: a.Name.Space, value: a.Value})
	}
	// Two prefixes bound to one URI must not name the same attribute (Namespaces §6.3).
	if hasDup(e.attrs, func(a attr) xml.Name { return a.name }) {
		return nil, badf("duplicate attribute in <%s>", t.Name.Local)
	}
	return e, nil
}

func (p *parser) end() {
	mark := p.marks[len(p.marks)-1]
	p.marks = p.marks[:len(p.marks)-1]
	for i := len(p.undo) - 1; i >= mark; i-- {
		u := p.undo[i]
		if u.had {
			p.ns[u.prefix] = u.prev
		} else {
			delete(p.ns, u.prefix)
		}
	}
	p.undo = p.undo[:mark]
}

// declare applies one namespace declaration, enforcing the constraints of Namespaces in
// XML 1.0 §3 that encoding/xml does not check.
func (p *parser) declare(prefix, uri string) error {
	switch {
	case strings.Contains(prefix, ":"):
		return badf("invalid namespace prefix %q", prefix)
	case prefix == "xmlns":
		return badf("the prefix xmlns must not be declared")
	case prefix == "xml":
		if uri != nsXML {
			return badf("the prefix xml must not be bound to another namespace")
		}
		return nil // always bound; nothing to record
	case uri == nsXML || uri == nsXMLNS:
		return badf("namespace %q must not be bound to another prefix", uri)
	case prefix != "" && uri == "":
		// Namespaces in XML 1.0 §3 ("The attribute value in a namespace declaration for a
		// prefix MUST NOT be empty"); litmus props/propfind_invalid2 sends exactly this.
		return badf("prefix %q bound to the empty namespace name", prefix)
	}
	prev, had := p.ns[prefix]
	p.undo = append(p.undo, nsUndo{prefix: prefix, prev: prev, had: had})
	p.ns[prefix] = uri
	return nil
}

// resolve returns the namespace URI of a raw name. Unprefixed attributes are in no
// namespace; unprefixed elements are in the default namespace (Namespaces §6.2).
func (p *parser) resolve(n xml.Name, element bool) (string, error) {
	if strings.Contains(n.Local, ":") {
		return "", badf("invalid qualified name %q", n.Local)
	}
	switch n.Space {
	case "":
		if !element {
			return "", nil
		}
		return p.ns[""], nil
	case "xml":
		return nsXML, nil
	}
	uri, ok := p.ns[n.Space]
	if !ok {
		return "", badf("undeclared namespace prefix %q", n.Space)
	}
	return uri, nil
}

// hasDup reports whether two items have the same name: pairwise for the usual handful,
// with a map for many so a hostile element cannot make this quadratic.
func hasDup[T any](items []T, name func(T) xml.Name) bool {
	if len(items) <= 16 {
		for i := range items {
			for j := i + 1; j < len(items); j++ {
				if name(items[i]) == name(items[j]) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[xml.Name]struct{}, len(items))
	for _, it := range items {
		n := name(it)
		if _, ok := seen[n]; ok {
			return true
		}
		seen[n] = struct{}{}
	}
	return false
}

// checkDecl rejects an XML declaration naming another encoding than UTF-8 or US-ASCII.
// encoding/xml already consults charsetReader for such names, but its pseudo-attribute
// scan gives up on forms like `encoding = 'x'` and then silently assumes UTF-8.
func checkDecl(inst []byte) error {
	s := string(inst)
	i := strings.Index(s, "encoding")
	if i < 0 {
		return nil
	}
	s = strings.TrimLeft(s[i+len("encoding"):], " \t\r\n")
	if !strings.HasPrefix(s, "=") {
		return badf("malformed XML declaration")
	}
	s = strings.TrimLeft(s[1:], " \t\r\n")
	if s == "" || s[0] != '"' && s[0] != '\'' {
		return badf("malformed XML declaration")
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return badf("malformed XML declaration")
	}
	if enc := s[1 : 1+end]; !acceptedCharset(enc) {
		return badf("unsupported encoding %q (only UTF-8)", enc)
	}
	return nil
}

func acceptedCharset(label string) bool {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// charsetReader lets encoding/xml accept labels that name a subset of UTF-8; every other
// encoding is refused. US-ASCII input is checked to be 7-bit.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8":
		return r, nil
	case "us-ascii", "ascii":
		return asciiReader{r}, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (only UTF-8)", label)
}

type asciiReader struct{ r io.Reader }

func (a asciiReader) Read(b []byte) (int, error) {
	n, err := a.r.Read(b)
	for _, c := range b[:n] {
		if c >= 0x80 {
			return 0, errors.New("non-ASCII byte in a body declared US-ASCII")
		}
	}
	return n, err
}

// isSpace reports whether c is XML white space (XML 1.0 §2.3, production S).
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isAllSpace[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}
