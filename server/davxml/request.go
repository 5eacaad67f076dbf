package davxml

import (
	"encoding/xml"
	"io"

	"safedav/backend"
)

// The rules below follow the DTD fragments of RFC 4918 §14. Elements the RFC does not
// define for a place are ignored, in the DAV: namespace as in any other: RFC 4918 §17
// requires it so the protocol can be extended (litmus props/propextended sends
// <propfind><foobar/><allprop/></propfind> and expects a 207). What is rejected is a
// body that breaks the structure of the elements we do know: the wrong root, a missing
// or repeated required element, conflicting choices, non-blank character data in an
// element-only container.

// Propfind is a decoded PROPFIND request body (RFC 4918 §9.1, §14.20). Exactly one of
// AllProp, PropName or a prop list is requested; when both flags are false the request
// named the properties in Props, which is then non-nil though possibly empty (an empty
// DAV:prop asks for no property).
type Propfind struct {
	AllProp, PropName bool
	// Props are the names in DAV:prop, in document order, as sent.
	Props []xml.Name
	// Include are the names in DAV:include, only with AllProp (RFC 4918 §14.8).
	Include []xml.Name
}

// ReadPropfind decodes a PROPFIND body. An empty body (no bytes, or only white space)
// means allprop (RFC 4918 §9.1). Every error wraps ErrBadXML.
func ReadPropfind(r io.Reader) (Propfind, error) {
	root, err := parse(r)
	if err != nil {
		return Propfind{}, err
	}
	if root == nil {
		return Propfind{AllProp: true}, nil
	}
	if err := expectRoot(root, "propfind"); err != nil {
		return Propfind{}, err
	}
	var pf Propfind
	var haveProp, haveInclude bool
	err = davChildren(root, func(e *elem) error {
		switch e.name.Local {
		case "allprop", "propname":
			if pf.AllProp || pf.PropName {
				return badf("more than one allprop or propname in propfind")
			}
			if err := expectEmpty(e); err != nil {
				return err
			}
			pf.AllProp = e.name.Local == "allprop"
			pf.PropName = !pf.AllProp
		case "prop":
			if haveProp {
				return badf("more than one prop in propfind")
			}
			haveProp = true
			names, err := propNames(e)
			if err != nil {
				return err
			}
			pf.Props = names
		case "include":
			// Several include elements are not in the DTD; merging them is harmless.
			haveInclude = true
			names, err := propNames(e)
			if err != nil {
				return err
			}
			pf.Include = append(pf.Include, names...)
		}
		return nil
	})
	if err != nil {
		return Propfind{}, err
	}
	// <!ELEMENT propfind ( propname | (allprop, include?) | prop ) >
	switch {
	case haveProp && (pf.AllProp || pf.PropName):
		return Propfind{}, badf("propfind holds prop together with allprop or propname")
	case !haveProp && !pf.AllProp && !pf.PropName:
		return Propfind{}, badf("propfind holds none of allprop, propname, prop")
	case haveInclude && !pf.AllProp:
		return Propfind{}, badf("include is only allowed with allprop")
	}
	return pf, nil
}

// propNames returns the names of the children of a DAV:prop or DAV:include used to name
// properties. The children may be in any namespace, DAV: included; their content is
// ignored.
func propNames(e *elem) ([]xml.Name, error) {
	names := make([]xml.Name, 0, len(e.kids))
	for _, k := range e.kids {
		if k.el == nil {
			if !isAllSpace(k.text) {
				return nil, badf("character data in DAV:%s", e.name.Local)
			}
			continue
		}
		names = append(names, k.el.name)
	}
	return names, nil
}

// ReadProppatch decodes a PROPPATCH body (RFC 4918 §9.2, §14.19): the set and remove
// instructions in document order, which the server must apply in that order, all or
// nothing. A set property's value is re-serialised to be self-contained (see
// backend.Prop) and its Lang is the xml:lang in scope on the property element. The values
// of one body may total at most MaxValueBytes. Every error wraps ErrBadXML.
func ReadProppatch(r io.Reader) ([]backend.PropPatch, error) {
	root, err := parse(r)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, badf("empty propertyupdate body")
	}
	if err := expectRoot(root, "propertyupdate"); err != nil {
		return nil, err
	}
	w := &innerWriter{budget: MaxValueBytes}
	var patches []backend.PropPatch
	// <!ELEMENT propertyupdate (remove | set)+ >
	err = davChildren(root, func(op *elem) error {
		var remove bool
		switch op.name.Local {
		case "set":
		case "remove":
			remove = true
		default:
			return nil
		}
		// <!ELEMENT set (prop) >; several prop elements are tolerated and taken in order.
		nprop := 0
		err := davChildren(op, func(prop *elem) error {
			if prop.name.Local != "prop" {
				return nil
			}
			nprop++
			n := 0
			for _, k := range prop.kids {
				if k.el == nil {
					if !isAllSpace(k.text) {
						return badf("character data in DAV:prop")
					}
					continue
				}
				n++
				p := backend.PropPatch{Remove: remove, Prop: backend.Prop{Name: k.el.name}}
				if !remove {
					p.Prop.Lang = k.el.lang
					v, err := w.content(k.el.kids)
					if err != nil {
						return err
					}
					p.Prop.InnerXML = v
				}
				patches = append(patches, p)
			}
			if n == 0 {
				return badf("DAV:prop in %s names no property", op.name.Local)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if nprop == 0 {
			return badf("DAV:%s without DAV:prop", op.name.Local)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(patches) == 0 {
		return nil, badf("propertyupdate holds no set or remove")
	}
	return patches, nil
}

// LockInfo is a decoded LOCK request body (RFC 4918 §9.10, §14.11). Only write locks
// exist, so the type is not recorded.
type LockInfo struct {
	Shared bool
	// Owner is the self-contained inner XML of DAV:owner, to be returned as it is in
	// DAV:lockdiscovery; nil when the body has no owner, empty but non-nil when the
	// owner element is empty.
	Owner []byte
}

// ReadLockInfo decodes a LOCK body. An empty body means a lock refresh (RFC 4918
// §9.10.2) and returns ok false; otherwise a DAV:lockinfo with one lockscope (exclusive or
// shared) and one locktype (write) is required and ok is true. The owner may total at most
// MaxValueBytes. Every error wraps ErrBadXML.
func ReadLockInfo(r io.Reader) (li LockInfo, ok bool, err error) {
	root, err := parse(r)
	if err != nil {
		return LockInfo{}, false, err
	}
	if root == nil {
		return LockInfo{}, false, nil
	}
	if err := expectRoot(root, "lockinfo"); err != nil {
		return LockInfo{}, false, err
	}
	// <!ELEMENT lockinfo (lockscope, locktype, owner?) >
	var haveScope, haveType, haveOwner bool
	err = davChildren(root, func(e *elem) error {
		switch e.name.Local {
		case "lockscope":
			if haveScope {
				return badf("more than one lockscope")
			}
			haveScope = true
			// <!ELEMENT lockscope (exclusive | shared) >
			n := 0
			err := davChildren(e, func(s *elem) error {
				switch s.name.Local {
				case "exclusive", "shared":
					li.Shared = s.name.Local == "shared"
				default:
					return nil
				}
				n++
				return expectEmpty(s)
			})
			if err != nil {
				return err
			}
			if n != 1 {
				return badf("lockscope must hold exactly one of exclusive, shared")
			}
		case "locktype":
			if haveType {
				return badf("more than one locktype")
			}
			haveType = true
			// <!ELEMENT locktype (write) >
			n := 0
			err := davChildren(e, func(t *elem) error {
				if t.name.Local != "write" {
					return nil
				}
				n++
				return expectEmpty(t)
			})
			if err != nil {
				return err
			}
			if n != 1 {
				return badf("locktype must hold exactly one write")
			}
		case "owner":
			if haveOwner {
				return badf("more than one owner")
			}
			haveOwner = true
			w := &innerWriter{budget: MaxValueBytes}
			v, err := w.content(e.kids)
			if err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			li.Owner = v
		}
		return nil
	})
	if err != nil {
		return LockInfo{}, false, err
	}
	if !haveScope || !haveType {
		return LockInfo{}, false, badf("lockinfo needs lockscope and locktype")
	}
	return li, true, nil
}

func expectRoot(root *elem, local string) error {
	if root.name.Space != nsDAV || root.name.Local != local {
		return badf("root element is {%s}%s, want {DAV:}%s", root.name.Space, root.name.Local, local)
	}
	return nil
}

// davChildren calls fn for each DAV: child element of the element-only container e,
// skipping elements in other namespaces and failing on non-blank character data. fn
// ignores the DAV: elements it does not know.
func davChildren(e *elem, fn func(*elem) error) error {
	for _, k := range e.kids {
		if k.el == nil {
			if !isAllSpace(k.text) {
				return badf("character data in DAV:%s", e.name.Local)
			}
			continue
		}
		if k.el.name.Space != nsDAV {
			continue
		}
		if err := fn(k.el); err != nil {
			return err
		}
	}
	return nil
}

// expectEmpty checks an element the RFC declares EMPTY: no character data; extension
// elements are ignored.
func expectEmpty(e *elem) error {
	return davChildren(e, func(*elem) error { return nil })
}
