package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"safedav/backend"
	"safedav/coord"
	"safedav/locks"
	"safedav/server/davxml"
)

// Error is what a handler returns when it refuses a request. One renderer, writeError,
// turns it into a response: the status, a DAV:error XML or JSON body with a stable
// code, and the resource's current ETag and Last-Modified where sharing them is safe.
type Error struct {
	Status  int
	Code    string // stable, machine-readable: "parent_missing", "version_conflict", …
	Message string // what happened and what to do next, for a person
	Name    string // the backend name the error is about ("" = the request's)
	// Current is the resource's current state, shared in the body and as ETag and
	// Last-Modified headers so a client can retry without another round trip.
	Current *backend.Info
	// Conditions are RFC 4918 §16 precondition elements, already serialised.
	Conditions []string
	Extra      map[string]string // more safedav elements, e.g. "suggested-name"
	Header     http.Header       // extra response headers (Allow, Retry-After, …)
	Err        error             // the cause, logged, never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// errorf is a shorthand for the common case.
func errorf(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// toError maps any error a handler returned to an *Error. Sentinel errors from the
// backend, locks and parsers each get one status and code; anything unknown is a 500
// whose text is logged but never sent.
func (s *Server) toError(r *http.Request, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var le *locks.LockedError
	var pe *backend.PathErrors
	switch {
	case errors.As(err, &le):
		return s.lockedError(r, le.Root, err)
	case errors.As(err, &pe):
		// Callers that can answer 207 handle PathErrors themselves.
		return &Error{Status: http.StatusInternalServerError, Code: "partial_failure",
			Message: "Some members could not be processed; the operation was partly done. Retry it.", Err: err}
	case errors.Is(err, backend.ErrNotExist):
		return &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "Nothing exists at this path. Check the name, or refresh the folder listing.", Err: err}
	case errors.Is(err, backend.ErrParentMissing):
		return &Error{Status: http.StatusConflict, Code: "parent_missing",
			Message: "The parent folder does not exist. Create it first (MKCOL), then retry.", Err: err}
	case errors.Is(err, backend.ErrNotCollection):
		return &Error{Status: http.StatusConflict, Code: "not_a_collection",
			Message: "A file stands where a folder is needed in this path. Rename or remove it, then retry.", Err: err}
	case errors.Is(err, backend.ErrIsCollection):
		return &Error{Status: http.StatusConflict, Code: "is_a_collection",
			Message: "A folder exists at this path, so it cannot be written as a file. Pick another name.", Err: err}
	case errors.Is(err, backend.ErrPrecondition):
		return &Error{Status: http.StatusPreconditionFailed, Code: "version_conflict",
			Message: "The resource changed while your request was being applied. Refresh to load the latest version, then retry.", Err: err}
	case errors.Is(err, backend.ErrExist):
		return &Error{Status: http.StatusPreconditionFailed, Code: "exists",
			Message: "Something already exists at this path.", Err: err}
	case errors.Is(err, backend.ErrNoSpace), errors.Is(err, syscall.ENOSPC): // ENOSPC: a state file
		return &Error{Status: http.StatusInsufficientStorage, Code: "insufficient_storage",
			Message: "The server has no space left for this upload. Nothing was changed; free some space or ask the administrator.", Err: err}
	case errors.Is(err, backend.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: "storage_unavailable",
			Message: "The storage behind this server cannot be reached or did not answer in time. Nothing was changed by this request; retry later.",
			Header:  http.Header{"Retry-After": {retryUnavailable}}, Err: err}
	case errors.Is(err, backend.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: "storage_forbidden",
			Message: "The storage refused this operation (permissions, or a read-only volume). Retrying will not help; ask the administrator.", Err: err}
	case errors.Is(err, errIncompleteBody):
		return &Error{Status: http.StatusBadRequest, Code: "incomplete_body",
			Message: "The upload's body ended before it was complete (the connection was closed or broken). Nothing was changed; send the upload again.", Err: err}
	case errors.Is(err, errMalformedBody):
		return &Error{Status: http.StatusBadRequest, Code: "malformed_body",
			Message: "The upload's body is malformed (invalid chunked encoding). Nothing was changed; send the upload again.", Err: err}
	case errors.Is(err, backend.ErrShortBody):
		return &Error{Status: http.StatusBadRequest, Code: "incomplete_body",
			Message: "The body was shorter or longer than Content-Length said. Nothing was changed; send the upload again.", Err: err}
	case errors.Is(err, backend.ErrNameTooLong): // wraps ErrInvalidName: first
		return &Error{Status: http.StatusBadRequest, Code: "name_too_long",
			Message: "A segment of this name is longer than 255 bytes (UTF-8), or the whole name longer than the storage holds. Pick a shorter name.", Err: err}
	case errors.Is(err, backend.ErrInvalidName):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_name",
			Message: "This name is not allowed: it has a control character, a backslash, a '..' segment or a name starting with .safedav, which the server keeps for itself. Pick another name.", Err: err}
	// RFC 4918 §9.8.5 and §9.9.4: 403 for a COPY or MOVE that can never succeed.
	case errors.Is(err, backend.ErrSameName):
		return &Error{Status: http.StatusForbidden, Code: "same_source_and_destination",
			Message: "The source and the destination are the same (RFC 4918 §9.8.5). Pick another destination.", Err: err}
	case errors.Is(err, backend.ErrIntoSelf):
		return &Error{Status: http.StatusForbidden, Code: "destination_inside_source",
			Message: "The destination lies inside the source: nothing can be copied or moved into itself. Pick a destination outside it.", Err: err}
	case errors.Is(err, backend.ErrOntoAncestor):
		return &Error{Status: http.StatusForbidden, Code: "destination_contains_source",
			Message: "The destination is a folder that contains the source: replacing it would delete the source. Pick a destination outside that folder.", Err: err}
	case errors.Is(err, backend.ErrUnsupported):
		return &Error{Status: http.StatusForbidden, Code: "unsupported",
			Message: "The storage behind this server does not support this operation.", Err: err}
	case errors.Is(err, coord.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: "coordination_unavailable",
			Message: "This server cannot reach the coordination service (etcd) that the replicas share, so it cannot check this write against the others. Nothing was changed; retry shortly.",
			Header:  http.Header{"Retry-After": {"5"}}, Err: err}
	case errors.Is(err, backend.ErrBusy):
		return &Error{Status: http.StatusConflict, Code: "namespace_busy",
			Message: "Another operation on this folder or file is still running (a move, copy or delete of a folder can take a while). Nothing was changed; retry shortly.",
			Header:  http.Header{"Retry-After": {"1"}}, Err: err}
	case errors.Is(err, coord.ErrUploadInProgress):
		return &Error{Status: http.StatusConflict, Code: "upload_in_progress",
			Message: "Another upload to this path is still in progress. Wait for it to finish, then retry.",
			Header:  http.Header{"Retry-After": {"1"}}, Err: err}
	case errors.Is(err, locks.ErrNotOwner):
		return &Error{Status: http.StatusForbidden, Code: "lock_not_owned",
			Message: "This lock belongs to another user.", Err: err}
	case errors.Is(err, errBodyTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: "The XML request body is larger than this server accepts.", Err: err}
	case errors.Is(err, errUploadTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "upload_too_large",
			Message: "This upload is larger than the server accepts. Nothing was changed.", Err: err}
	case errors.Is(err, errClientGone), errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return &Error{Status: 499, Code: "client_closed", Message: "The client closed the connection; nothing was changed.", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "The server failed to handle this request. Nothing should have changed; retry, and report the request ID if it persists.", Err: err}
}

// retryUnavailable is the Retry-After, in seconds, of a 503 storage_unavailable: long
// enough not to hammer a store that is restarting, short enough for a sync client.
const retryUnavailable = "5"

// lockedError answers a write without the token of someone else's lock: 423 by
// default (RFC 4918 §11.3), or the status set with --lock-conflict-status.
func (s *Server) lockedError(r *http.Request, root string, err error) *Error {
	return &Error{
		Status:     s.cfg.LockConflictStatus,
		Code:       "locked",
		Message:    "This resource is locked by someone else. Wait for the lock to be released or to expire, or submit its lock token in an If header.",
		Conditions: []string{"<D:lock-token-submitted><D:href>" + xmlText(s.href(r, root, false)) + "</D:href></D:lock-token-submitted>"},
		Err:        err,
	}
}

// writeError renders err for the client, in JSON when its Accept prefers it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := s.toError(r, err)
	status := e.Status
	if status == 499 { // nobody is listening; the access log records 499
		if sw, ok := w.(*statusWriter); ok && sw.status == 0 {
			sw.status = status
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "client went away", slog.String("request_id", stateOf(r).id), slog.String("error", err.Error()))
		return
	}
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	path := "/"
	if e.Name != "" {
		path = s.href(r, e.Name, false)
	} else if name, err := s.targetName(r); err == nil {
		path = s.href(r, name, false)
	}
	doc := davxml.ErrorDoc{
		Conditions: e.Conditions,
		Code:       e.Code,
		Message:    e.Message,
		Path:       path,
		RequestID:  stateOf(r).id,
		Extra:      e.Extra,
	}
	if e.Current != nil && e.Current.ETag != "" {
		doc.ETag = e.Current.ETag
		doc.LastModified = e.Current.ModTime.UTC().Format(http.TimeFormat)
		h.Set("ETag", doc.ETag)
		h.Set("Last-Modified", doc.LastModified)
	}
	switch {
	case status == http.StatusServiceUnavailable:
		// The store's fault, not ours: worth a warning, not a bug report.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "storage unavailable", slog.String("request_id", doc.RequestID),
			slog.String("path", doc.Path), slog.String("error", err.Error()))
	case status >= 500:
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("request_id", doc.RequestID), slog.String("error", err.Error()))
	case e.Code == "storage_forbidden":
		// Nothing the client can fix: the administrator needs the name and the errno.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "storage refused", slog.String("request_id", doc.RequestID),
			slog.String("path", doc.Path), slog.String("error", err.Error()))
	case e.Code == "incomplete_body" || e.Code == "malformed_body":
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "upload body incomplete", slog.String("request_id", doc.RequestID),
			slog.String("path", doc.Path), slog.String("error", err.Error()))
	}
	h.Del("Content-Length")
	if r.Method == http.MethodHead || status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	if prefersJSON(r.Header.Get("Accept")) {
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		body := map[string]any{"status": status, "code": doc.Code, "message": doc.Message, "path": doc.Path, "request_id": doc.RequestID}
		if doc.ETag != "" {
			body["etag"] = doc.ETag
			body["last_modified"] = doc.LastModified
		}
		for k, v := range doc.Extra {
			body[strings.ReplaceAll(k, "-", "_")] = v
		}
		if e.Header.Get("Retry-After") != "" {
			body["retry_after"], _ = strconv.Atoi(e.Header.Get("Retry-After"))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
		return
	}
	h.Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	_ = davxml.WriteError(w, doc)
}

// prefersJSON reports whether an Accept header ranks application/json above XML
// (RFC 9110 §12.5.1): a client that asks for JSON gets JSON; everyone else, and every
// WebDAV client, gets the DAV:error document RFC 4918 defines.
func prefersJSON(accept string) bool {
	if accept == "" || !strings.Contains(accept, "json") {
		return false
	}
	var jsonQ, xmlQ float64 = -1, -1
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch {
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			jsonQ = max(jsonQ, q)
		case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
			xmlQ = max(xmlQ, q)
		}
	}
	return jsonQ > 0 && jsonQ >= xmlQ
}

// lastModified formats t for Last-Modified and DAV:getlastmodified.
func lastModified(t time.Time) string {
	sec := t.Unix()
	e := &httpDates[uint64(sec)%uint64(len(httpDates))]
	if d := e.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &httpDate{sec: sec, text: t.UTC().Format(http.TimeFormat)}
	e.Store(d)
	return d.text
}

// httpDates keeps dates formatted lately, by second: files read together were mostly
// written together, and formatting is a good part of a small GET's own work.
var httpDates [64]atomic.Pointer[httpDate]

type httpDate struct {
	sec  int64
	text string
}
