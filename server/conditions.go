package server

import (
	"errors"
	"net/http"
	"strings"

	"safedav/backend"
	"safedav/server/precond"
)

// parseConditions reads the conditional headers once per request; malformed ones are a
// 400, never silently ignored (a client that sent If-Match expects it to count).
func parseConditions(r *http.Request) (precond.Request, error) {
	q, err := precond.Parse(r.Header)
	if err != nil {
		return q, &Error{Status: http.StatusBadRequest, Code: "bad_condition_header",
			Message: "An If, If-Match or If-None-Match header is malformed. Check its syntax (ETags are quoted, lists are in parentheses).", Err: err}
	}
	return q, nil
}

// lockScope is one part of the namespace a write changes. infinite covers the whole
// subtree (DELETE or MOVE of a collection).
type lockScope struct {
	name     string
	infinite bool
}

// checkLocks refuses a write that lacks the token of a lock covering any of scopes
// (RFC 4918 §7): 423, or the configured conflict status.
func (s *Server) checkLocks(r *http.Request, q precond.Request, scopes ...lockScope) error {
	tokens := q.Tokens()
	for _, sc := range scopes {
		if err := s.locks.Check(r.Context(), principal(r), sc.name, sc.infinite, tokens); err != nil {
			return err
		}
	}
	return nil
}

// stat returns the current state of name; exists is false for a missing name, and any
// other error is returned.
func (s *Server) stat(r *http.Request, name string) (info backend.Info, exists bool, err error) {
	info, err = s.b.Stat(r.Context(), name)
	switch {
	case err == nil:
		return info, true, nil
	case errors.Is(err, backend.ErrNotExist), errors.Is(err, backend.ErrNotCollection):
		return backend.Info{Name: name}, false, nil
	}
	return info, false, err
}

// existing states the resource a write needs to exist (DELETE, PROPPATCH): 404 when it
// is missing, or 412 when the request held a condition on its version.
func (s *Server) existing(r *http.Request, q precond.Request, name string) (backend.Info, error) {
	cur, exists, err := s.stat(r, name)
	switch {
	case err != nil:
		return cur, err
	case exists:
		return cur, nil
	case q.IfMatch != nil || q.If != nil:
		return cur, s.preconditionFailed(cur, false, "", "The resource no longer exists, so the condition on its version cannot hold.")
	}
	return cur, backend.ErrNotExist
}

// evalConditions evaluates the WebDAV If header and the HTTP preconditions of a write
// against cur, the target's state as observed, and returns the backend.Cond that
// carries the observation down to the commit (docs/design.md, "The one rule"). method is
// the method whose RFC 9110 §13.2.2 rules apply.
func (s *Server) evalConditions(r *http.Request, q precond.Request, method string, cur backend.Info, exists bool) (backend.Cond, error) {
	st := precond.State{Exists: exists, ETag: cur.ETag, ModTime: cur.ModTime}
	var ifETag string
	if q.If != nil {
		var lookupErr error // a lock lookup that failed: the If header cannot be judged
		ok, matched := q.If.Eval(func(tag string) precond.Target {
			return s.ifTarget(r, tag, cur, exists, &lookupErr)
		})
		if lookupErr != nil {
			return backend.Cond{}, lookupErr
		}
		if !ok {
			return backend.Cond{}, s.preconditionFailed(cur, exists, "", "The If header's conditions do not hold: the lock token or ETag you sent no longer matches. Refresh, then retry with the current ETag or lock token.")
		}
		ifETag = matched
	}
	switch q.Check(method, st) {
	case precond.Fail:
		code, msg := "", "The resource changed since you last read it: its ETag no longer matches If-Match. Refresh to load the latest version, then retry with the new ETag."
		switch {
		case exists && q.IfNoneMatch != nil:
			code, msg = "precondition_failed", "Something already exists at this name and the request was create-only (If-None-Match). Pick another name, or fetch the current version before replacing it."
		case !exists:
			msg = "The resource no longer exists, so the condition on its version cannot hold. Refresh the folder listing."
		}
		return backend.Cond{}, s.preconditionFailed(cur, exists, code, msg)
	case precond.NotModified:
		now := cur // a copy, so that cur itself stays on the stack
		return backend.Cond{}, &Error{Status: http.StatusNotModified, Code: "not_modified", Current: &now}
	}
	return q.Cond(st, ifETag), nil
}

// ifTarget resolves one resource named by an If header tag ("" is the request URI).
// A lock lookup that fails (the coordination store is down) is stored in *lookupErr.
func (s *Server) ifTarget(r *http.Request, tag string, cur backend.Info, exists bool, lookupErr *error) precond.Target {
	name, request := cur.Name, true
	if tag != "" {
		n, err := s.urlName(r, tag)
		if err != nil {
			return precond.Target{}
		}
		if n != name {
			name, request = n, false
			info, ok, err := s.stat(r, name)
			if err != nil {
				ok = false
			}
			cur, exists = info, ok
		}
	}
	return precond.Target{
		Exists: exists,
		ETag:   cur.ETag,
		HasLock: func(token string) bool {
			ok, err := s.locks.HasLock(r.Context(), name, token)
			if err != nil && *lookupErr == nil {
				*lookupErr = err
			}
			return ok
		},
		Request: request,
	}
}

// preconditionFailed is the 412 of a failed condition; it shares the current ETag so
// the client can retry without another GET.
// Its code is version_conflict when the resource exists in another version, unless
// code says otherwise.
func (s *Server) preconditionFailed(cur backend.Info, exists bool, code, msg string) *Error {
	e := &Error{Status: http.StatusPreconditionFailed, Code: "precondition_failed", Message: msg}
	if exists {
		e.Code = "version_conflict"
		c := cur
		e.Current = &c
	}
	if code != "" {
		e.Code = code
	}
	return e
}

// depthOf reads the Depth header (RFC 4918 §10.2), case-insensitively; absent means
// infinity. ok is false for anything but 0, 1 or infinity; each method then says which
// of those it takes.
func depthOf(r *http.Request) (depth int, ok bool) {
	switch strings.ToLower(r.Header.Get("Depth")) {
	case "", "infinity":
		return backend.DepthInfinity, true
	case "0":
		return backend.DepthZero, true
	case "1":
		return 1, true
	}
	return 0, false
}

// isConditional reports whether a write depends on the state it finds: such a write
// waits its turn behind another upload to the same name rather than failing at once,
// and is never given a free name by the rename policy, since it names the version it
// replaces.
func isConditional(q precond.Request) bool {
	return q.IfMatch != nil || q.IfNoneMatch != nil || q.If != nil || !q.IfUnmodifiedSince.IsZero()
}
