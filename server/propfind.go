package server

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"

	"safedav/backend"
	"safedav/locks"
	"safedav/overwrite"
	"safedav/server/davxml"
)

const davNS = "DAV:"

// Live properties safedav computes from backend.Info and the lock manager. They are
// protected: PROPPATCH cannot set or remove them (RFC 4918 §15).
var (
	propResourceType  = xml.Name{Space: davNS, Local: "resourcetype"}
	propContentLength = xml.Name{Space: davNS, Local: "getcontentlength"}
	propContentType   = xml.Name{Space: davNS, Local: "getcontenttype"}
	propETag          = xml.Name{Space: davNS, Local: "getetag"}
	propLastModified  = xml.Name{Space: davNS, Local: "getlastmodified"}
	propSupportedLock = xml.Name{Space: davNS, Local: "supportedlock"}
	propLockDiscovery = xml.Name{Space: davNS, Local: "lockdiscovery"}
)

// propOverwritePolicy tells a client what an upload onto an existing name does here:
// for a collection, for uploads into it; for a file, for that file. Not in allprop
// (RFC 4918 §9.1 lets a server leave its own live properties out).
var propOverwritePolicy = xml.Name{Space: davxml.SafedavNS, Local: "overwrite-policy"}

// policyFor is the overwrite policy that applies to uploads into a collection or onto
// a file (path rules only; a request header can still override it).
func (s *Server) policyFor(info backend.Info) overwrite.Policy {
	name := info.Name
	if info.Dir {
		name = backend.Join(name, "member")
	}
	p, _ := s.cfg.Overwrite.For(name, "")
	return p
}

var (
	collectionXML    = []byte("<D:collection/>")
	supportedLockXML = []byte(davxml.SupportedLock)
)

// isProtected reports whether PROPPATCH may not touch name.
func isProtected(name xml.Name) bool {
	if name.Space != davNS {
		return false
	}
	switch name.Local {
	case "resourcetype", "getcontentlength", "getcontenttype", "getetag", "getlastmodified",
		"supportedlock", "lockdiscovery", "creationdate", "quota-available-bytes", "quota-used-bytes":
		return true
	}
	return false
}

// liveNames lists the live properties of a resource, for propname and allprop.
func liveNames(dir bool) []xml.Name {
	if dir {
		return []xml.Name{propResourceType, propETag, propLastModified, propSupportedLock, propLockDiscovery}
	}
	return []xml.Name{propResourceType, propContentLength, propContentType, propETag, propLastModified, propSupportedLock, propLockDiscovery}
}

// liveProp computes one live property; ok is false when info has no such property.
// sc caches formatted values across the entries of one listing.
func (s *Server) liveProp(r *http.Request, info backend.Info, name xml.Name, sc *propScratch) (p davxml.Property, ok bool) {
	p.Name = name
	if name == propOverwritePolicy {
		p.Text = s.policyFor(info).String()
		return p, true
	}
	if name.Space != davNS {
		return p, false
	}
	switch name.Local {
	case "resourcetype":
		if info.Dir {
			p.InnerXML = collectionXML
		}
	case "getcontentlength":
		if info.Dir {
			return p, false
		}
		p.Text = strconv.FormatInt(info.Size, 10)
	case "getcontenttype":
		if info.Dir {
			return p, false
		}
		p.Text = info.ContentType
		if p.Text == "" {
			p.Text = sc.contentType(info.Name)
		}
	case "getetag":
		p.Text = info.ETag
	case "getlastmodified":
		p.Text = lastModified(info.ModTime)
	case "supportedlock":
		p.InnerXML = supportedLockXML
	case "lockdiscovery":
		p.InnerXML = davxml.LockDiscovery(s.activeLocks(r, info.Name))
	case "quota-available-bytes", "quota-used-bytes": // RFC 4331 §3, §4: collections only
		q, ok := s.b.(backend.Quotaer)
		if !ok || !info.Dir {
			return p, false
		}
		avail, used, err := q.Quota(r.Context(), info.Name)
		if err != nil {
			return p, false
		}
		if name.Local == "quota-used-bytes" {
			avail = used
		}
		p.Text = strconv.FormatInt(avail, 10)
	default:
		return p, false
	}
	return p, true
}

// activeLocks converts the live locks covering name for DAV:lockdiscovery.
func (s *Server) activeLocks(r *http.Request, name string) []davxml.ActiveLock {
	ls, err := s.locks.Discover(r.Context(), name)
	if err != nil {
		// Lock discovery is advisory in a listing: a listing stays available while
		// the coordination store is down, without the locks it cannot see.
		s.log.Warn("lock discovery failed", "request_id", stateOf(r).id, "name", name, "error", err)
	}
	if len(ls) == 0 {
		return nil
	}
	out := make([]davxml.ActiveLock, len(ls))
	for i, l := range ls {
		out[i] = s.activeLock(r, l)
	}
	return out
}

func (s *Server) activeLock(r *http.Request, l locks.Lock) davxml.ActiveLock {
	a := davxml.ActiveLock{Shared: l.Shared, Depth: l.Depth, Owner: l.Owner, Token: l.Token, Root: s.href(r, l.Root, false)}
	if !l.Expires.IsZero() {
		a.Timeout = max(l.Expires.Sub(s.now()), 0)
	}
	return a
}

// handlePropfind answers PROPFIND (RFC 4918 §9.1) as a streamed 207: one Stat, then
// one List per collection; the live properties come from backend.Info, so no member is
// opened unless its dead properties are asked for.
func (s *Server) handlePropfind(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	depth, ok := depthOf(r)
	if !ok {
		return errorf(http.StatusBadRequest, "bad_depth", "Depth must be 0, 1 or infinity.")
	}
	// RFC 4918 §9.1: a server may refuse infinite depth, which would let one request
	// walk the whole store.
	if depth == backend.DepthInfinity && !s.cfg.AllowInfiniteDepth {
		return &Error{Status: http.StatusForbidden, Code: "propfind_finite_depth",
			Conditions: []string{"<D:propfind-finite-depth/>"},
			Message:    "PROPFIND with Depth: infinity (or without Depth) is disabled here. Send Depth: 0 or 1 and walk the folders one level at a time."}
	}
	pf, err := davxml.ReadPropfind(s.xmlBody(w, r))
	if err != nil {
		return xmlError(err)
	}
	info, err := s.b.Stat(r.Context(), name)
	if err != nil {
		return err
	}
	// The 207 goes out with the first bytes of the body, once 128 KiB of it are
	// ready: a listing that fails before then is answered with its error instead.
	lw := &lazyMultistatus{w: w}
	bw := bufio.NewWriterSize(lw, 128<<10) // large writes: fewer system calls and wake-ups of the reader
	ms := davxml.NewMultistatus(bw)
	n := 0
	var scratch propScratch // reused: Response writes each entry before the next
	var walk func(info backend.Info, href string, depth int, dead deadProps) error
	walk = func(info backend.Info, href string, depth int, dead deadProps) error {
		if n >= s.cfg.MaxPropfindEntries {
			return errTooMany
		}
		n++
		stats := s.propstats(r, info, pf, dead, &scratch)
		if scratch.err != nil {
			return fmt.Errorf("properties of %s: %w", info.Name, scratch.err)
		}
		if err := ms.Response(href, stats); err != nil {
			return err
		}
		if !info.Dir || depth == 0 {
			return nil
		}
		type sub struct {
			info backend.Info
			href string
		}
		var dirs []sub
		// A member's href is its folder's plus one escaped segment: the folder's is
		// computed once, not per member.
		prefix := strings.TrimSuffix(href, "/") + "/"
		member := func(m backend.Info, dead deadProps) error {
			h := prefix + escapeSegment(backend.Base(m.Name))
			if m.Dir {
				h += "/"
			}
			if m.Dir && depth != 1 {
				dirs = append(dirs, sub{m, h}) // recurse after this listing closes
				return nil
			}
			return walk(m, h, 0, dead)
		}
		var err error
		if lister, ok := s.b.(backend.PropLister); ok && s.needsDead(pf) {
			err = lister.ListProps(r.Context(), info.Name, func(m backend.Info, props []backend.Prop) error {
				return member(m, deadProps{props: props, known: true})
			})
		} else {
			// Dead properties, if asked for, are read per member (deadProps unknown).
			err = s.b.List(r.Context(), info.Name, func(m backend.Info) error { return member(m, deadProps{}) })
		}
		switch {
		case err == nil:
		case info.Name != name && (errors.Is(err, backend.ErrNotExist) || errors.Is(err, backend.ErrNotCollection)):
			// A member folder removed or replaced since its folder was listed: the
			// listing describes it as it was, like every member that changes meanwhile.
			return nil
		default:
			return fmt.Errorf("listing %s: %w", info.Name, err) // the log names the folder
		}
		for _, d := range dirs {
			if err := walk(d.info, d.href, depth-1, deadProps{}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(info, s.href(r, name, info.Dir), depth, deadProps{}); err != nil {
		switch {
		case errors.Is(err, errTooMany):
			_ = ms.Status(s.href(r, name, info.Dir), http.StatusInsufficientStorage,
				"<D:number-of-matches-within-limits/>")
		case !lw.sent:
			// Nothing is sent yet: the client gets the error, never a listing with
			// members missing (a sync client would delete what it did not see).
			return err
		default:
			abortListing(s, r, err)
		}
	}
	if err := ms.Close(); err != nil {
		return nil
	}
	_ = bw.Flush()
	return nil
}

// lazyMultistatus sends the 207 status and headers with the first bytes of the body,
// so that until then a failure can still be answered with its own status.
type lazyMultistatus struct {
	w    http.ResponseWriter
	sent bool
}

func (l *lazyMultistatus) Write(p []byte) (int, error) {
	if !l.sent {
		l.sent = true
		l.w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		l.w.WriteHeader(http.StatusMultiStatus)
	}
	return l.w.Write(p)
}

// abortListing ends a multistatus that failed after its first bytes were sent: the
// status cannot change any more, and a document closed there would be a well-formed
// listing with members missing. Panicking with http.ErrAbortHandler makes net/http
// close the connection without ending the chunked body (HTTP/1.1) or reset the stream
// (HTTP/2), so every client sees a broken response, never a complete one.
func abortListing(s *Server, r *http.Request, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "listing failed after its 207 was sent; response aborted",
		slog.String("request_id", stateOf(r).id), slog.String("error", err.Error()))
	panic(http.ErrAbortHandler)
}

var errTooMany = errors.New("too many entries")

// deadProps are a resource's dead properties when a listing already read them.
type deadProps struct {
	props []backend.Prop
	known bool
}

// needsDead reports whether a PROPFIND answer includes dead properties.
func (s *Server) needsDead(pf davxml.Propfind) bool {
	if s.props == nil {
		return false
	}
	if pf.AllProp || pf.PropName {
		return true
	}
	for _, n := range pf.Props {
		if n.Space != davNS && n != propOverwritePolicy {
			return true
		}
	}
	return false
}

// propScratch holds the slices one <response> is built in, reused across the entries
// of a listing so that a 10,000-entry PROPFIND does not allocate them 10,000 times.
type propScratch struct {
	ok, missing []davxml.Property
	stats       [2]davxml.Propstat

	// The content type already found: the members of a folder often share an
	// extension. (Dates are cached by lastModified itself.)
	ext     string
	extType string

	// err is the first error reading dead properties, which fails the listing.
	err error
}

func (sc *propScratch) contentType(name string) string {
	if ext := path.Ext(name); ext != sc.ext || sc.extType == "" {
		sc.ext, sc.extType = ext, contentType(name)
	}
	return sc.extType
}

// propstats computes one <response>'s propstats for the kind of PROPFIND asked; the
// result lives in sc until the next call.
func (s *Server) propstats(r *http.Request, info backend.Info, pf davxml.Propfind, dp deadProps, sc *propScratch) []davxml.Propstat {
	dead := func() []backend.Prop {
		if dp.known {
			return dp.props
		}
		ps, err := s.deadProps(r, info.Name)
		if err != nil && sc.err == nil {
			sc.err = err
		}
		return ps
	}
	ok := davxml.Propstat{Status: http.StatusOK, Props: sc.ok[:0]}
	defer func() { sc.ok = ok.Props[:0] }()
	switch {
	case pf.PropName:
		for _, n := range liveNames(info.Dir) {
			ok.Props = append(ok.Props, davxml.Property{Name: n})
		}
		ok.Props = append(ok.Props, davxml.Property{Name: propOverwritePolicy})
		for _, p := range dead() {
			ok.Props = append(ok.Props, davxml.Property{Name: p.Name})
		}
		sc.stats[0] = ok
		return sc.stats[:1]
	case pf.AllProp:
		for _, n := range liveNames(info.Dir) {
			if p, found := s.liveProp(r, info, n, sc); found {
				ok.Props = append(ok.Props, p)
			}
		}
		for _, p := range dead() {
			ok.Props = append(ok.Props, davxml.Property{Name: p.Name, Lang: p.Lang, InnerXML: p.InnerXML})
		}
		// <include> names live properties allprop leaves out; ours are all in.
		sc.stats[0] = ok
		return sc.stats[:1]
	}
	missing := davxml.Propstat{Status: http.StatusNotFound, Props: sc.missing[:0]}
	defer func() { sc.missing = missing.Props[:0] }()
	var loaded []backend.Prop
	deadLoaded := false
	for _, n := range pf.Props {
		if p, found := s.liveProp(r, info, n, sc); found {
			ok.Props = append(ok.Props, p)
			continue
		}
		if !deadLoaded {
			loaded, deadLoaded = dead(), true
		}
		found := false
		for _, d := range loaded {
			if d.Name == n {
				ok.Props = append(ok.Props, davxml.Property{Name: d.Name, Lang: d.Lang, InnerXML: d.InnerXML})
				found = true
				break
			}
		}
		if !found {
			missing.Props = append(missing.Props, davxml.Property{Name: n})
		}
	}
	out := sc.stats[:0]
	if len(ok.Props) > 0 {
		out = append(out, ok)
	}
	if len(missing.Props) > 0 {
		out = append(out, missing)
	}
	return out
}

// deadProps returns name's dead properties: none for a member that vanished since it
// was listed. Any other error fails the listing: leaving the properties out would
// tell the client they were removed.
func (s *Server) deadProps(r *http.Request, name string) ([]backend.Prop, error) {
	if s.props == nil {
		return nil, nil
	}
	ps, err := s.props.Props(r.Context(), name)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	return ps, err
}

// xmlBody bounds an XML request body (bound everything a client can make the server hold).
func (s *Server) xmlBody(w http.ResponseWriter, r *http.Request) io.Reader {
	if r.Body == nil {
		return http.NoBody
	}
	if r.ContentLength > s.cfg.MaxXMLBody {
		return errReader{errBodyTooLarge}
	}
	return &limitReader{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxXMLBody)}
}

var errBodyTooLarge = errors.New("request body too large")

// limitReader turns MaxBytesReader's error into errBodyTooLarge, for a 413.
type limitReader struct{ r io.Reader }

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errBodyTooLarge
	}
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// xmlError maps an XML decoding failure to 400, or 413 for an oversized body.
func xmlError(err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return err
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_xml",
		Message: "The XML request body is malformed or not what this method expects: " + err.Error(), Err: err}
}
