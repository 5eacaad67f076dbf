package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"safedav/backend"
	"safedav/overwrite"
	"safedav/server/davxml"
	"safedav/server/precond"
)

// handlePut stores the body atomically (docs/design.md, "Atomic upload") in three
// steps: parsePut reads the request, decidePut checks it against what is at the name
// and returns the condition the commit carries, and commitPut (or putRenamed) has the
// backend store the body on that condition. Everything that can refuse the upload is
// decided before the body is read, so a client that sent Expect: 100-continue never
// sends a body that would be thrown away.
//
// The answers: 201 when the file is new (or stored under a free name by the rename
// policy), 204 when it was replaced; 400 for a bad name, a partial upload
// (Content-Range), a malformed conditional or Overwrite-Policy header, or a body
// shorter than its Content-Length; 405 for the root; 409 for a missing parent, a
// folder at the name, another upload of the name in progress, a name the reject
// policy keeps or no free name left; 412 for a failed condition or a file that
// changed before the commit; 413 for a body over the cap; 423 (or the configured
// status) for a lock whose token is missing; 507 for a full disk. On every error
// nothing is stored.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) error {
	req, err := s.parsePut(r)
	if err != nil {
		return err
	}
	done, err := s.beginUpload(r, req)
	if err != nil {
		return err
	}
	defer done()
	cond, err := s.decidePut(r, req)
	if err != nil {
		return err
	}
	if req.rename {
		return s.putRenamed(w, r, req)
	}
	return s.commitPut(w, r, req, cond)
}

// putRequest is a PUT as the client wrote it, before anything is looked up in storage.
type putRequest struct {
	name   string // storage name
	conds  precond.Request
	policy overwrite.Policy
	// rename stores the body under a free name rather than replace what is there: the
	// rename policy, for a request that is not conditional (a conditional one names the
	// version it replaces, so the policy does not apply to it).
	rename bool
	meta   backend.Meta
}

// parsePut reads a PUT from its request line and headers, refusing what no state of
// the tree could allow (the root, a partial upload, a declared size over the cap) and
// a malformed conditional or Overwrite-Policy header, before storage is touched.
func (s *Server) parsePut(r *http.Request) (req putRequest, err error) {
	if req.name, err = s.targetName(r); err != nil {
		return req, err
	}
	if req.name == "/" {
		return req, &Error{Status: http.StatusMethodNotAllowed, Code: "is_a_collection",
			Message: "The root is a collection; upload files into it.", Header: http.Header{"Allow": {allowedMethods}}}
	}
	if err = s.limitBody(r); err != nil {
		return req, err
	}
	if req.conds, err = parseConditions(r); err != nil {
		return req, err
	}
	if req.policy, err = s.policy(r, req.name); err != nil {
		return req, err
	}
	req.rename = req.policy == overwrite.Rename && !isConditional(req.conds)
	req.meta = uploadMeta(r)
	return req, nil
}

// limitBody refuses a body that could not be stored as the whole file within the
// upload cap, and caps a body of unknown length (chunked) so that it fails as soon as
// it passes the cap.
func (s *Server) limitBody(r *http.Request) error {
	// RFC 9110 §14.5: a partial PUT with Content-Range must be refused, or it would
	// replace the whole file with a fragment.
	if r.Header.Get("Content-Range") != "" {
		return errorf(http.StatusBadRequest, "content_range_unsupported",
			"Partial uploads with Content-Range are not supported; send the whole file.")
	}
	max := s.cfg.MaxUploadSize
	if max <= 0 {
		return nil
	}
	if r.ContentLength > max {
		return uploadTooLarge(max)
	}
	r.Body = &capReader{r: r.Body, left: max}
	return nil
}

// uploadMeta is what the backend stores with the body: its type, its declared size
// and the modification time the client asked for, if any.
func uploadMeta(r *http.Request) backend.Meta {
	meta := backend.Meta{ContentType: r.Header.Get("Content-Type"), Size: r.ContentLength}
	if mt, ok := clientModTime(r); ok {
		meta.ModTime = mt
	}
	return meta
}

// beginUpload allows one upload per name at a time: a second unconditional one is
// told 409 at once; a conditional one waits briefly for the first to commit, so that
// its condition is judged against the version that upload leaves (412 with the new
// ETag, usually). Under "rename" nothing is overwritten, so concurrent uploads of one
// name need not wait: each gets its own free name. done is never nil.
func (s *Server) beginUpload(r *http.Request, req putRequest) (done func(), err error) {
	if req.rename {
		return func() {}, nil
	}
	wait := time.Duration(0)
	if isConditional(req.conds) {
		wait = s.cfg.InflightWait
	}
	done, err = s.inflight.BeginWait(r.Context(), req.name, wait)
	if err != nil && r.Context().Err() != nil {
		return done, errClientGone
	}
	return done, err
}

// decidePut checks a parsed PUT against what is at its name, in this order: the
// parent exists and no folder is there; the conditions hold; the client has the
// tokens of the locks on what changes; the reject policy allows it. The If header is
// evaluated before the locks, as Apache mod_dav does: a false If header is 412 even
// on a locked resource; a true one without the lock's token 423. The Cond returned
// carries what was observed down to the commit.
func (s *Server) decidePut(r *http.Request, req putRequest) (backend.Cond, error) {
	cur, exists, err := s.putTarget(r, req.name)
	if err != nil {
		return backend.Cond{}, err
	}
	cond, err := s.evalConditions(r, req.conds, http.MethodPut, cur, exists)
	if err != nil {
		return backend.Cond{}, err
	}
	if err := s.checkLocks(r, req.conds, putScopes(req, exists)...); err != nil {
		return backend.Cond{}, err
	}
	// If-None-Match states what the client expects at the name itself, and it got the
	// RFC 9110 answer to that above; the policy speaks only when the client did not.
	if req.conds.IfNoneMatch == nil {
		switch overwriteRule(overwriteAbsent, req.policy, exists) {
		case refuseName:
			return backend.Cond{}, s.nameExists(r, cur)
		case createOnly:
			cond.IfNoneMatch = true // a racing creator must lose too
		}
	}
	return cond, nil
}

// putTarget states the target of a PUT: the collection that would hold it must exist,
// and a folder at the name cannot be written as a file (409 for both).
func (s *Server) putTarget(r *http.Request, name string) (cur backend.Info, exists bool, err error) {
	cur, exists, err = s.statTarget(r, name)
	if err == nil && exists && cur.Dir {
		dir := cur // a copy, so that cur itself stays on the stack
		err = &Error{Status: http.StatusConflict, Code: "is_a_collection", Current: &dir,
			Message: "A folder exists at this path, so a file cannot be written here. Pick another name."}
	}
	return cur, exists, err
}

// putScopes is the namespace a PUT changes, each part of which may be locked (RFC 4918
// §7.4, §7.5): the name, even while nothing is there, and the collection that gains
// it when it is new; under the rename policy, when the name is taken, only that
// collection, since a new name beside it leaves the file alone.
func putScopes(req putRequest, exists bool) []lockScope {
	switch {
	case req.rename && exists:
		return []lockScope{{name: backend.Parent(req.name)}}
	case !exists:
		return []lockScope{{name: req.name}, {name: backend.Parent(req.name)}}
	}
	return []lockScope{{name: req.name}}
}

// commitPut streams the body to the backend, which stores it only if cond still
// holds. A file changed in between is a lost race, answered with what is there now; a
// client that went away is not answered.
func (s *Server) commitPut(w http.ResponseWriter, r *http.Request, req putRequest, cond backend.Cond) error {
	body := bodyReader(r)
	info, created, err := s.b.Put(r.Context(), req.name, body, cond, req.meta)
	if err != nil {
		if errors.Is(err, backend.ErrPrecondition) {
			return s.lostRace(r, req.name, req.policy, cond)
		}
		return bodyErr(r, body, err)
	}
	s.writeStored(w, r, req, info, created)
	return nil
}

// writeStored answers a PUT stored under its own name: 201 with Location when the
// file is new, 204 when it was replaced, with the new ETag and Last-Modified either
// way so that the client's next conditional request needs no GET.
func (s *Server) writeStored(w http.ResponseWriter, r *http.Request, req putRequest, info backend.Info, created bool) {
	h := w.Header()
	h.Set("ETag", info.ETag)
	h.Set("Last-Modified", lastModified(info.ModTime))
	if !req.meta.ModTime.IsZero() {
		h.Set("X-OC-Mtime", "accepted")
	}
	status := http.StatusNoContent
	if created {
		status = http.StatusCreated
		h.Set("Location", s.href(r, req.name, false))
	}
	w.WriteHeader(status)
}

// putRenamed stores the upload under its name or, if that exists, under the first
// free name of the form "report (1).pdf", race-free: the backend commits create-only
// and moves on to the next name when another upload took one first.
func (s *Server) putRenamed(w http.ResponseWriter, r *http.Request, req putRequest) error {
	names := func(yield func(string) bool) {
		if !yield(req.name) {
			return
		}
		for c := range overwrite.Candidates(req.name) {
			if !yield(c) {
				return
			}
		}
	}
	body := bodyReader(r)
	info, err := s.b.Create(r.Context(), names, body, req.meta)
	if err != nil {
		if errors.Is(err, backend.ErrExist) {
			return &Error{Status: http.StatusConflict, Code: "no_free_name",
				Message: "Every candidate name for this upload is taken. Pick another name."}
		}
		return bodyErr(r, body, err)
	}
	s.writeCreated(w, r, info, !req.meta.ModTime.IsZero())
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

// uploadTooLarge is the 413 of a body over the cap; it names the cap so the client
// knows what would fit.
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

// The failures of an upload's body as the client sent it, each a 400 (toError):
// errIncompleteBody when it ended early (the connection closed or broke, the client
// went away), errMalformedBody when net/http could not decode it (bad chunked
// encoding). Neither is the server's fault, so neither is logged as an error.
var (
	errIncompleteBody = errors.New("upload body incomplete")
	errMalformedBody  = errors.New("upload body malformed")
)

// bodyReader is the request body, never nil.
func bodyReader(r *http.Request) *uploadBody {
	if r.Body == nil {
		return &uploadBody{r: http.NoBody}
	}
	return &uploadBody{r: r.Body}
}

// uploadBody remembers the error reading the client's body failed with, so that a
// failed store can be told apart from a body that never arrived whole.
type uploadBody struct {
	r   io.Reader
	err error
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// bodyErr explains a failed upload by its body when reading the body failed: the
// upload cap passed, the body cut short, or malformed. Otherwise err stands.
func bodyErr(r *http.Request, body *uploadBody, err error) error {
	var ne net.Error
	switch {
	case body.err == nil && r.Context().Err() != nil:
		return fmt.Errorf("%w: %w", errIncompleteBody, err) // gone between two reads
	case body.err == nil:
		return err
	case errors.Is(body.err, errUploadTooLarge):
		return body.err
	case errors.Is(body.err, io.ErrUnexpectedEOF), errors.As(body.err, &ne), r.Context().Err() != nil,
		errors.Is(body.err, http.ErrBodyReadAfterClose):
		return fmt.Errorf("%w: %w", errIncompleteBody, body.err)
	}
	return fmt.Errorf("%w: %w", errMalformedBody, body.err)
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
