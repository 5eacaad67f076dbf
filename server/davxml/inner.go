package davxml

// innerWriter re-serialises element content (a property value, a lock owner) so that it is
// self-contained: it can be written under any parent element, with any prefixes in scope,
// and still parse to the same namespaced infoset. RFC 4918 §4.3 asks servers to keep a
// dead property's value with its namespaces intact, and a value stored on disk is later
// written into a multistatus whose prefixes have nothing to do with the PROPPATCH body.
//
// Every top-level element declares the namespaces it uses (including xmlns="" for an
// element in no namespace, since the outer default namespace is unknown); a nested element
// declares only what differs from what the fragment itself has declared. Original prefixes
// are kept. Comments and processing instructions are dropped.
type innerWriter struct {
	buf    []byte
	budget int       // bytes left for all values of the request
	start  int       // where the value being written begins in buf
	scope  []binding // declarations made so far in this fragment, innermost last
}

type binding struct{ prefix, uri string }

func (w *innerWriter) content(kids []node) ([]byte, error) {
	start := len(w.buf)
	w.start = start
	for _, k := range kids {
		if err := w.node(k); err != nil {
			return nil, err
		}
	}
	out := w.buf[start:]
	w.budget -= len(out)
	if w.budget < 0 {
		return nil, badf("property values exceed %d bytes", MaxValueBytes)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// Values share one buffer; cap the slice so an append by the caller cannot overwrite
	// the next value.
	return out[:len(out):len(out)], nil
}

func (w *innerWriter) node(k node) error {
	if k.el == nil {
		w.buf = appendEscape(w.buf, k.text, false)
		return w.check()
	}
	e := k.el
	mark := len(w.scope)
	w.buf = append(w.buf, '<')
	w.buf = appendQName(w.buf, e.prefix, e.name.Local)
	if e.prefix != "xml" {
		w.declare(e.prefix, e.name.Space)
	}
	for _, a := range e.attrs {
		if a.prefix != "" && a.prefix != "xml" {
			w.declare(a.prefix, a.name.Space)
		}
	}
	for _, a := range e.attrs {
		w.buf = append(w.buf, ' ')
		w.buf = appendQName(w.buf, a.prefix, a.name.Local)
		w.buf = append(w.buf, `="`...)
		w.buf = appendEscape(w.buf, a.value, true)
		w.buf = append(w.buf, '"')
	}
	if err := w.check(); err != nil {
		return err
	}
	if len(e.kids) == 0 {
		w.buf = append(w.buf, "/>"...)
	} else {
		w.buf = append(w.buf, '>')
		for _, kk := range e.kids {
			if err := w.node(kk); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, "</"...)
		w.buf = appendQName(w.buf, e.prefix, e.name.Local)
		w.buf = append(w.buf, '>')
	}
	w.scope = w.scope[:mark]
	return w.check()
}

// declare writes a namespace declaration on the element being opened unless the fragment
// already binds prefix to uri.
func (w *innerWriter) declare(prefix, uri string) {
	for i := len(w.scope) - 1; i >= 0; i-- {
		if w.scope[i].prefix == prefix {
			if w.scope[i].uri == uri {
				return
			}
			break
		}
	}
	w.scope = append(w.scope, binding{prefix, uri})
	if prefix == "" {
		w.buf = append(w.buf, ` xmlns="`...)
	} else {
		w.buf = append(w.buf, ` xmlns:`...)
		w.buf = append(w.buf, prefix...)
		w.buf = append(w.buf, `="`...)
	}
	w.buf = appendEscape(w.buf, uri, true)
	w.buf = append(w.buf, '"')
}

// check stops a value early once it is over budget, so repeated declarations of a long
// namespace URI cannot make us build a huge buffer before noticing.
func (w *innerWriter) check() error {
	if len(w.buf)-w.start > w.budget {
		return badf("property values exceed %d bytes", MaxValueBytes)
	}
	return nil
}

func appendQName(b []byte, prefix, local string) []byte {
	if prefix != "" {
		b = append(b, prefix...)
		b = append(b, ':')
	}
	return append(b, local...)
}
