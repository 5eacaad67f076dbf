package server

import (
	"errors"
	"net/http"

	"safedav/backend"
	"safedav/overwrite"
)

// policy is the overwrite policy for an upload to name: the Overwrite-Policy request
// header, then the most specific path rule, then the server default.
func (s *Server) policy(r *http.Request, name string) (overwrite.Policy, error) {
	p, err := s.cfg.Overwrite.For(name, r.Header.Get("Overwrite-Policy"))
	if err != nil {
		return p, &Error{Status: http.StatusBadRequest, Code: "unknown_overwrite_policy",
			Message: "Overwrite-Policy must be replace, reject or rename.", Err: err}
	}
	return p, nil
}

// handleDelete removes a file or a whole collection (RFC 4918 §9.6).
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	if name == "/" {
		return errorf(http.StatusForbidden, "root_protected", "The root collection cannot be deleted.")
	}
	// RFC 4918 §9.6.1: DELETE on a collection acts as Depth: infinity; any other
	// Depth is a client error, not a hint to delete less.
	if d, ok := depthOf(r); !ok || d != backend.DepthInfinity {
		return errorf(http.StatusBadRequest, "bad_depth", "DELETE only supports Depth: infinity.")
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	cur, err := s.existing(r, q, name)
	if err != nil {
		return err
	}
	cond, err := s.evalConditions(r, q, http.MethodDelete, cur, true)
	if err != nil {
		return err
	}
	if err := s.checkLocks(r, q, lockScope{name: name, infinite: true}, lockScope{name: backend.Parent(name)}); err != nil {
		return err
	}
	if err := s.b.Remove(r.Context(), name, cond); err != nil {
		var pe *backend.PathErrors
		if errors.As(err, &pe) {
			return s.writePathErrors(w, r, *pe)
		}
		if errors.Is(err, backend.ErrPrecondition) {
			return s.lostRace(r, name, overwrite.Replace, cond)
		}
		return err
	}
	s.locks.Removed(r.Context(), name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleMkcol creates a collection (RFC 4918 §9.3).
func (s *Server) handleMkcol(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	// RFC 4918 §9.3: a body we do not understand is 415.
	if r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody) {
		return errorf(http.StatusUnsupportedMediaType, "mkcol_body_unsupported",
			"MKCOL with a request body is not supported; send MKCOL without a body.")
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	cur, exists, err := s.statTarget(r, name)
	if err != nil {
		return err
	}
	if exists {
		return &Error{Status: http.StatusMethodNotAllowed, Code: "already_exists", Current: &cur,
			Message: "Something already exists at this path. Pick another name for the new folder.",
			Header:  http.Header{"Allow": {allowedMethods}}}
	}
	cond, err := s.evalConditions(r, q, "MKCOL", cur, false)
	if err != nil {
		return err
	}
	if err := s.checkLocks(r, q, lockScope{name: name}, lockScope{name: backend.Parent(name)}); err != nil {
		return err
	}
	cond.IfNoneMatch = true
	if _, err := s.b.Mkdir(r.Context(), name, cond); err != nil {
		if errors.Is(err, backend.ErrExist) || errors.Is(err, backend.ErrPrecondition) {
			cur, _, _ := s.stat(r, name)
			return &Error{Status: http.StatusMethodNotAllowed, Code: "already_exists", Current: &cur,
				Message: "Something was created at this path at the same moment. Pick another name for the new folder.",
				Header:  http.Header{"Allow": {allowedMethods}}}
		}
		return err
	}
	w.Header().Set("Location", s.href(r, name, true))
	w.WriteHeader(http.StatusCreated)
	return nil
}
