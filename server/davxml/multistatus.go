package davxml

import (
	"bufio"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
)

const xmlHeader = `<?xml version="1.0" encoding="utf-8"?>` + "\n"

// Property is one property in a PROPFIND or PROPPATCH response.
type Property struct {
	Name xml.Name
	// Lang is written as xml:lang on the property element when set (RFC 4918 §4.3).
	Lang string
	// InnerXML is already-serialised content: a dead property's self-contained value, or
	// a live property's markup such as `<D:collection/>`, which may rely on the prefix D
	// being bound to DAV: as it is on every document this package writes. It is trusted
	// and written as it is.
	InnerXML []byte
	// Text is plain text content, escaped on write; used when InnerXML is empty.
	Text string
}

// Propstat groups properties that share one status (RFC 4918 §14.22).
type Propstat struct {
	Status int
	Props  []Property
	// Error is optional inner XML of a DAV:error element, trusted, e.g.
	// `<D:cannot-modify-protected-property/>` (RFC 4918 §16).
	Error string
	// Description is optional text for DAV:responsedescription, escaped on write.
	Description string
}

// Multistatus streams a 207 Multi-Status body (RFC 4918 §13) one response at a time, so a
// listing of any size is written in constant memory. Each response is built in a reused
// buffer and copied to a bufio.Writer: no reflection, no per-entry allocation once the
// buffer has grown to the largest response. Errors are sticky: after the first write
// error every method returns it.
type Multistatus struct {
	w       *bufio.Writer
	buf     []byte
	started bool
	closed  bool
	err     error
}

// NewMultistatus returns a Multistatus writing to w. When w is already a *bufio.Writer it
// is used directly, otherwise it is wrapped in one. Nothing is written until the first
// Response, Status or Close.
func NewMultistatus(w io.Writer) *Multistatus {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 32<<10)
	}
	return &Multistatus{w: bw, buf: make([]byte, 0, 2048)}
}

var errClosed = errors.New("davxml: multistatus already closed")

func (m *Multistatus) begin() []byte {
	b := m.buf[:0]
	if !m.started {
		m.started = true
		b = append(b, xmlHeader...)
		b = append(b, `<D:multistatus xmlns:D="DAV:">`...)
	}
	return b
}

func (m *Multistatus) flush(b []byte) error {
	_, m.err = m.w.Write(b)
	if cap(b) > 1<<20 {
		b = make([]byte, 0, 2048) // do not keep one huge response's buffer for the rest
	}
	m.buf = b[:0]
	return m.err
}

// Response writes one DAV:response for href with its propstats, which should not be
// empty (RFC 4918 §14.24 requires at least one). href must already be percent-encoded;
// it is XML-escaped here. It returns the first write error.
func (m *Multistatus) Response(href string, propstats []Propstat) error {
	if m.err != nil {
		return m.err
	}
	if m.closed {
		return errClosed
	}
	b := m.begin()
	b = append(b, "<D:response><D:href>"...)
	b = AppendEscape(b, href)
	b = append(b, "</D:href>"...)
	for i := range propstats {
		ps := &propstats[i]
		b = append(b, "<D:propstat><D:prop>"...)
		for j := range ps.Props {
			b = appendProperty(b, &ps.Props[j])
		}
		b = append(b, "</D:prop><D:status>"...)
		b = appendStatusLine(b, ps.Status)
		b = append(b, "</D:status>"...)
		if ps.Error != "" {
			b = append(b, "<D:error>"...)
			b = append(b, ps.Error...)
			b = append(b, "</D:error>"...)
		}
		if ps.Description != "" {
			b = append(b, "<D:responsedescription>"...)
			b = AppendEscape(b, ps.Description)
			b = append(b, "</D:responsedescription>"...)
		}
		b = append(b, "</D:propstat>"...)
	}
	b = append(b, "</D:response>"...)
	return m.flush(b)
}

// Status writes a DAV:response carrying only href and a status, the form used for the
// members a DELETE, COPY, MOVE or LOCK could not handle (RFC 4918 §9.6.1, §9.8.5,
// §9.10.9). errorXML, when not empty, is trusted inner XML of a DAV:error element.
func (m *Multistatus) Status(href string, status int, errorXML string) error {
	if m.err != nil {
		return m.err
	}
	if m.closed {
		return errClosed
	}
	b := m.begin()
	b = append(b, "<D:response><D:href>"...)
	b = AppendEscape(b, href)
	b = append(b, "</D:href><D:status>"...)
	b = appendStatusLine(b, status)
	b = append(b, "</D:status>"...)
	if errorXML != "" {
		b = append(b, "<D:error>"...)
		b = append(b, errorXML...)
		b = append(b, "</D:error>"...)
	}
	b = append(b, "</D:response>"...)
	return m.flush(b)
}

// Close ends the document, writing the whole of it if no response was written (an empty
// multistatus is valid), and flushes the buffered writer. Calling it again does nothing.
func (m *Multistatus) Close() error {
	if m.err != nil || m.closed {
		return m.err
	}
	b := m.begin()
	b = append(b, "</D:multistatus>\n"...)
	m.closed = true
	if m.flush(b) != nil {
		return m.err
	}
	m.err = m.w.Flush()
	return m.err
}

// appendProperty writes one property element. A DAV: name uses the prefix D bound on the
// root; any other namespace is declared on the element itself with the prefix P (never D,
// so live values written with D: keep their meaning); a name in no namespace undeclares
// the default namespace with xmlns="" (litmus props/propnullns checks this one).
func appendProperty(b []byte, p *Property) []byte {
	var prefix string
	b = append(b, '<')
	switch p.Name.Space {
	case nsDAV:
		prefix = "D"
		b = append(b, "D:"...)
		b = append(b, p.Name.Local...)
	case "":
		b = append(b, p.Name.Local...)
		b = append(b, ` xmlns=""`...)
	case nsXML:
		// The xml prefix is always bound and no other prefix may be bound to its
		// namespace (Namespaces in XML 1.0 §3), so a name there cannot use P.
		prefix = "xml"
		b = append(b, "xml:"...)
		b = append(b, p.Name.Local...)
	default:
		prefix = "P"
		b = append(b, "P:"...)
		b = append(b, p.Name.Local...)
		b = append(b, ` xmlns:P="`...)
		b = appendEscape(b, p.Name.Space, true)
		b = append(b, '"')
	}
	if p.Lang != "" {
		b = append(b, ` xml:lang="`...)
		b = appendEscape(b, p.Lang, true)
		b = append(b, '"')
	}
	switch {
	case len(p.InnerXML) > 0:
		b = append(b, '>')
		b = append(b, p.InnerXML...)
	case p.Text != "":
		b = append(b, '>')
		b = AppendEscape(b, p.Text)
	default:
		return append(b, "/>"...)
	}
	b = append(b, "</"...)
	if prefix != "" {
		b = append(b, prefix...)
		b = append(b, ':')
	}
	b = append(b, p.Name.Local...)
	return append(b, '>')
}

// appendStatusLine writes an HTTP status line as DAV:status holds it (RFC 4918 §14.28).
func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	return append(b, http.StatusText(code)...)
}
