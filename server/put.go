package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"safedav/backend"
	"safedav/overwrite"
	"safedav/server/davxml"
)

// handlePut stores the body atomically (DESIGN.md, "The flow of a PUT"): everything
// that can refuse the upload is decided before the body is read, so a client that sent
// Expect: 100-continue never sends a body that would be thrown away.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	if name == "/" {
		return &Error{Status: http.StatusMethodNotAllowed, Code: "is_a_collection",
			Message: "The root is a collection; upload files into it.", Header: http.Header{"Allow": {allowedMethods}}}
	}
	// RFC 9110 §14.5: a partial PUT with Content-Range must be refused, or it would
	// replace the whole file with a fragment.
	if r.Header.Get("Content-Range") != "" {
		return errorf(http.StatusBadRequest, "content_range_unsupported",
			"Partial uploads with Content-Range are not supported; send the whole file.")
	}
	if max := s.cfg.MaxUploadSize; max > 0 {
		if r.ContentLength > max {
			return uploadTooLarge(max)
		}
		r.Body = &capReader{r: r.Body, left: max}
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	policy, err := s.policy(r, name)
	if err != nil {
		return err
	}
	// One upload per name at a time: a second unconditional one is told 409 at once; a
	// conditional one waits briefly for the first to commit, so that its condition is
	// judged against the version that upload leaves (412 with the new ETag, usually).
	// Under "rename" nothing is overwritten, so concurrent uploads of one name need not
	// wait: each gets its own free name. A conditional request names the version it
	// replaces, so the policy does not apply to it.
	renaming := policy == overwrite.Rename && !isConditional(q)
	if !renaming {
		wait := time.Duration(0)
		if isConditional(q) {
			wait = s.cfg.InflightWait
		}
		done, err := s.inflight.BeginWait(r.Context(), name, wait)
		if err != nil {
			if r.Context().Err() != nil {
				return errClientGone
			}
			return err
		}
		defer done()
	}
	cur, exists, err := s.statTarget(r, name)
	if err != nil {
		return err
	}
	if exists && cur.Dir {
		dir := cur // a copy, so that cur itself stays on the stack
		return &Error{Status: http.StatusConflict, Code: "is_a_collection", Current: &dir,
			Message: "A folder exists at this path, so a file cannot be written here. Pick another name."}
	}
	scopes := []lockScope{{name: name}}
	switch {
	case renaming && exists:
		scopes = []lockScope{{name: backend.Parent(name)}} // a new member, not a change of name
	case !exists:
		scopes = append(scopes, lockScope{name: backend.Parent(name)})
	}
	// The If header is evaluated before the locks, as Apache mod_dav does: a false If
	// header is 412 even on a locked resource; a true one without the lock's token 423.
	cond, err := s.evalConditions(r, q, http.MethodPut, cur, exists)
	if err != nil {
		return err
	}
	if err := s.checkLocks(r, q, scopes...); err != nil {
		return err
	}
	meta := backend.Meta{ContentType: r.Header.Get("Content-Type"), Size: r.ContentLength}
	if mt, ok := clientModTime(r); ok {
		meta.ModTime = mt
	}
	if renaming {
		return s.putRenamed(w, r, name, meta)
	}
	if policy == overwrite.Reject && q.IfNoneMatch == nil {
		if exists {
			return s.nameExists(r, cur)
		}
		cond.IfNoneMatch = true // a racing creator must lose too
	}
	info, created, err := s.b.Put(r.Context(), name, bodyReader(r), cond, meta)
	if err != nil {
		if errors.Is(err, backend.ErrPrecondition) {
			return s.lostRace(r, name, policy, cond)
		}
		if r.Context().Err() != nil {
			return errClientGone
		}
		return err
	}
	h := w.Header()
	h.Set("ETag", info.ETag)
	h.Set("Last-Modified", lastModified(info.ModTime))
	if !meta.ModTime.IsZero() {
		h.Set("X-OC-Mtime", "accepted")
	}
	status := http.StatusNoContent
	if created {
		status = http.StatusCreated
		h.Set("Location", s.href(r, name, false))
	}
	w.WriteHeader(status)
	return nil
}

// putRenamed stores the upload under name or, if that exists, under the first free
// name of the form "report (1).pdf", race-free: the backend commits create-only and
// moves on to the next name when another upload took one first.
func (s *Server) putRenamed(w http.ResponseWriter, r *http.Request, name string, meta backend.Meta) error {
	names := func(yield func(string) bool) {
		if !yield(name) {
			return
		}
		for c := range overwrite.Candidates(name) {
			if !yield(c) {
				return
			}
		}
	}
	info, err := s.b.Create(r.Context(), names, bodyReader(r), meta)
	if err != nil {
		if errors.Is(err, backend.ErrExist) {
			return &Error{Status: http.StatusConflict, Code: "no_free_name",
				Message: "Every candidate name for this upload is taken. Pick another name."}
		}
		if r.Context().Err() != nil {
			return errClientGone
		}
		return err
	}
	s.writeCreated(w, r, info, !meta.ModTime.IsZero())
	return nil
}

// writeCreated answers 201 for a resource stored under info.Name, which may differ from
// the request path: Location and the body say where it went.
func (s *Server) writeCreated(w http.ResponseWriter, r *http.Request, info backend.Info, mtime bool) {
	h := w.Header()
	href := s.href(r, info.Name, info.Dir)
	h.Set("Location", href)
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
		h.Set("Last-Modified", lastModified(info.ModTime))
	}
	if mtime {
		h.Set("X-OC-Mtime", "accepted")
	}
	base := backend.Base(info.Name)
	if prefersJSON(r.Header.Get("Accept")) {
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": 201, "name": base, "href": href, "etag": info.ETag})
		return
	}
	h.Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<S:created xmlns:S=\"%s\"><S:name>%s</S:name><S:href>%s</S:href><S:etag>%s</S:etag></S:created>\n",
		davxml.SafedavNS, xmlText(base), xmlText(href), xmlText(info.ETag))
}

func uploadTooLarge(max int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "upload_too_large",
		Message: "This upload is larger than the server accepts (" + strconv.FormatInt(max, 10) + " bytes). Nothing was changed."}
}

// capReader fails a body (a chunked one, whose length is unknown up front) as soon as
// it passes the upload cap; the backend then discards what it staged.
type capReader struct {
	r    io.ReadCloser
	left int64
}

var errUploadTooLarge = errors.New("upload too large")

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, errUploadTooLarge
		}
		return c.r.Read(p)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capReader) Close() error { return c.r.Close() }

// errClientGone marks a request abandoned by its client: nothing to answer.
var errClientGone = errors.New("client closed the connection")

// bodyReader is the request body, never nil.
func bodyReader(r *http.Request) io.Reader {
	if r.Body == nil {
		return http.NoBody
	}
	return r.Body
}

// clientModTime reads a modification time a client asked for on upload: X-OC-Mtime
// (Unix seconds; rclone, ownCloud and Nextcloud clients send it).
func clientModTime(r *http.Request) (time.Time, bool) {
	v := r.Header.Get("X-OC-Mtime")
	if v == "" {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// statTarget states the target of a write that may create it: when it does not exist,
// the collection that would hold it must (409 otherwise).
func (s *Server) statTarget(r *http.Request, name string) (info backend.Info, exists bool, err error) {
	info, exists, err = s.stat(r, name)
	if err == nil && !exists {
		err = s.needParent(r, name)
	}
	return info, exists, err
}

// needParent answers 409 when the collection that would hold name does not exist
// (RFC 4918 §9.7.1, §9.3.1), or when a file stands in its place.
func (s *Server) needParent(r *http.Request, name string) error {
	p := backend.Parent(name)
	info, ok, err := s.stat(r, p)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusConflict, Code: "parent_missing", Name: name,
			Message: "The parent folder " + s.userName(r, p) + " does not exist. Create it first (MKCOL), then retry."}
	}
	if !info.Dir {
		return &Error{Status: http.StatusConflict, Code: "not_a_collection", Name: name,
			Message: "The parent " + s.userName(r, p) + " is a file, not a folder. Pick another path."}
	}
	return nil
}

// nameExists is the 409 of the reject policy: the existing file's version and a free
// name the client can use instead.
func (s *Server) nameExists(r *http.Request, cur backend.Info) error {
	e := &Error{Status: http.StatusConflict, Code: "name_exists", Name: cur.Name, Current: &cur,
		Message: "A file with this name already exists and this path does not allow overwriting. Pick another name (one is suggested), or delete the existing file first."}
	ctx := r.Context()
	if free := overwrite.Suggest(cur.Name, func(n string) bool { return s.exists(ctx, n) }); free != "" {
		e.Extra = map[string]string{"suggested-name": backend.Base(free), "suggested-href": s.href(r, free, false)}
	}
	return e
}

func (s *Server) exists(ctx context.Context, name string) bool {
	_, err := s.b.Stat(ctx, name)
	return err == nil
}

// lostRace explains a commit that the backend refused because the state the request
// was checked against changed in between.
func (s *Server) lostRace(r *http.Request, name string, policy overwrite.Policy, cond backend.Cond) error {
	cur, exists, _ := s.stat(r, name)
	if cond.IfNoneMatch && exists && policy == overwrite.Reject && r.Header.Get("If-None-Match") == "" {
		return s.nameExists(r, cur)
	}
	e := s.preconditionFailed(cur, exists, "version_conflict",
		"Another client changed this resource while your request was being applied; nothing of yours was written. Refresh to load the latest version, then retry.")
	return e
}
