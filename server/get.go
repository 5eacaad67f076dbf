package server

import (
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"

	"safedav/backend"
	"safedav/server/precond"
)

// handleOptions advertises WebDAV class 1 and 2 (RFC 4918 §10.1, §18).
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("DAV", "1, 2")
	h.Set("MS-Author-Via", "DAV") // Windows' Web Folders client looks for it
	h.Set("Allow", allowedMethods)
	h.Set("Accept-Ranges", "bytes")
	if name, err := s.targetName(r); err == nil {
		info, err := s.b.Stat(r.Context(), name)
		if err != nil {
			info = backend.Info{Name: name}
		}
		h.Set("Overwrite-Policy", s.policyFor(info).String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// handleGet serves a file with Range and conditional GET support, or an HTML listing
// for a collection (the browser page).
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	f, info, err := s.b.Open(r.Context(), name)
	if errors.Is(err, backend.ErrIsCollection) {
		info, err = s.b.Stat(r.Context(), name)
		if err != nil {
			return err
		}
		return s.serveListing(w, r, q, info)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.checkRead(r, q, info); err != nil {
		return err
	}
	h := w.Header()
	ct := info.ContentType
	if ct == "" {
		ct = contentType(name)
	}
	if info.Size <= smallFile && r.Header.Get("Range") == "" {
		return s.serveSmall(w, r, f, info, ct)
	}
	h.Set("ETag", info.ETag)
	h.Set("Content-Type", ct)
	// ServeContent does Range, If-Range and the remaining conditionals with the ETag we
	// set; we checked If-Match/If-None-Match ourselves to answer with a structured body.
	// ServeContent copies an *os.File into the ResponseWriter with io.Copy, and
	// net/http's response (through statusWriter.ReadFrom) hands it to sendfile(2): the
	// file leaves without passing through user space. Corked, the headers and the file
	// leave in full-sized segments.
	defer cork(r)()
	http.ServeContent(w, r, "", info.ModTime, f)
	return nil
}

// smallFile is the size up to which GET reads the file into memory and sends headers
// and body in one write, instead of a header write plus sendfile.
const smallFile = 64 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// serveSmall answers a whole-file GET or HEAD of a small file (conditions already
// checked).
func (s *Server) serveSmall(w http.ResponseWriter, r *http.Request, f io.Reader, info backend.Info, contentType string) error {
	h := w.Header()
	// The fields' values live in the request's state, allocated anyway: this is the
	// hottest answer there is.
	v := &stateOf(r).smallHdr
	*v = [5]string{info.ETag, contentType, lastModified(info.ModTime), "bytes", strconv.FormatInt(info.Size, 10)}
	h["Etag"] = v[0:1:1]
	h["Content-Type"] = v[1:2:2]
	h["Last-Modified"] = v[2:3:3]
	h["Accept-Ranges"] = v[3:4:4]
	h["Content-Length"] = v[4:5:5]
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	n, err := io.ReadFull(f, (*bp)[:info.Size])
	if err != nil {
		// The file changed size under us: nothing was sent yet, so fail cleanly.
		h.Del("Content-Length")
		return fmt.Errorf("reading %s: %w after %d bytes", info.Name, err, n)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write((*bp)[:n])
	return nil
}

// checkRead evaluates the preconditions of a GET or HEAD: 304 or 412 (RFC 9110 §13.2.2).
func (s *Server) checkRead(r *http.Request, q precond.Request, info backend.Info) error {
	switch q.Check(r.Method, precond.State{Exists: true, ETag: info.ETag, ModTime: info.ModTime}) {
	case precond.NotModified:
		h := make(http.Header)
		h.Set("Cache-Control", "no-cache")
		cur := info // a copy, so that info itself stays on the stack
		return &Error{Status: http.StatusNotModified, Code: "not_modified", Current: &cur, Header: h}
	case precond.Fail:
		return s.preconditionFailed(info, true, "", "The resource changed: its ETag no longer matches If-Match. Fetch it again without conditions.")
	}
	return nil
}

// contentType guesses a file's media type from its extension.
func contentType(name string) string {
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

var listingTmpl = template.Must(template.New("listing").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Path}} – safedav</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;width:100%}
td,th{padding:.3em .6em;text-align:left;border-bottom:1px solid #ddd}td.n{text-align:right;font-variant-numeric:tabular-nums}</style>
</head><body><h1>{{.Path}}</h1>
<table><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>
{{if .Parent}}<tr><td><a href="{{.Parent}}">../</a></td><td></td><td></td></tr>{{end}}
{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Name}}{{if .Dir}}/{{end}}</a></td><td class="n">{{if not .Dir}}{{.Size}}{{end}}</td><td>{{.Mod}}</td></tr>
{{end}}</table>
<p><small>safedav – mount this address as a network drive with any WebDAV client.</small></p>
</body></html>
`))

type listingEntry struct {
	Name, Href, Size, Mod string
	Dir                   bool
}

// serveListing renders a collection as a small HTML page for browsers.
func (s *Server) serveListing(w http.ResponseWriter, r *http.Request, q precond.Request, info backend.Info) error {
	if err := s.checkRead(r, q, info); err != nil {
		return err
	}
	var entries []listingEntry
	err := s.b.List(r.Context(), info.Name, func(m backend.Info) error {
		entries = append(entries, listingEntry{
			Name: backend.Base(m.Name), Href: s.href(r, m.Name, m.Dir), Dir: m.Dir,
			Size: strconv.FormatInt(m.Size, 10), Mod: m.ModTime.UTC().Format("2006-01-02 15:04:05"),
		})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b listingEntry) int {
		if a.Dir != b.Dir {
			if a.Dir {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	data := struct {
		Path, Parent string
		Entries      []listingEntry
	}{Path: info.Name, Entries: entries}
	if info.Name != "/" {
		data.Parent = s.href(r, backend.Parent(info.Name), true)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("ETag", info.ETag)
	h.Set("Last-Modified", lastModified(info.ModTime))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	return listingTmpl.Execute(w, data)
}
