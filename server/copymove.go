package server

import (
	"errors"
	"net/http"

	"safedav/backend"
	"safedav/overwrite"
	"safedav/server/davxml"
	"safedav/server/precond"
)

// handleCopyMove implements COPY (RFC 4918 §9.8) and MOVE (§9.9). Conditions, locks
// and the overwrite policy apply to the destination, which is what gets written; MOVE
// also needs the right to remove the source.
func (s *Server) handleCopyMove(w http.ResponseWriter, r *http.Request) error {
	move := r.Method == "MOVE"
	src, err := s.targetName(r)
	if err != nil {
		return err
	}
	dst, err := s.urlName(r, r.Header.Get("Destination"))
	if err != nil {
		return err
	}
	depth, ok := depthOf(r)
	switch {
	case !ok || depth == 1:
		return errorf(http.StatusBadRequest, "bad_depth", "Depth must be 0 or infinity for COPY, infinity for MOVE.")
	case move && depth == backend.DepthZero:
		return errorf(http.StatusBadRequest, "bad_depth", "MOVE only supports Depth: infinity (RFC 4918 §9.9.2).")
	}
	// RFC 4918 §10.6: Overwrite is T or F; absent means T, unless an overwrite policy
	// says otherwise.
	ow := r.Header.Get("Overwrite")
	if ow != "" && ow != "T" && ow != "F" && ow != "t" && ow != "f" {
		return errorf(http.StatusBadRequest, "bad_overwrite", "The Overwrite header must be T or F.")
	}
	if src == "/" && move {
		return errorf(http.StatusForbidden, "root_protected", "The root collection cannot be moved.")
	}
	if dst == "/" {
		return errorf(http.StatusForbidden, "root_protected", "The root collection cannot be replaced.")
	}
	// The rules every backend applies to the names alone (the same source and
	// destination, a destination inside the source or containing it), checked before
	// anything is looked at, so every store gives the same answer whatever it holds,
	// whatever Overwrite or the overwrite policy say. toError maps each to a 403.
	if err := backend.CheckCopy(src, dst); err != nil {
		e := s.toError(r, err)
		e.Name = dst
		return e
	}
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	srcInfo, ok, err := s.stat(r, src)
	if err != nil {
		return err
	}
	if !ok {
		return backend.ErrNotExist
	}
	dstInfo, dstExists, err := s.statTarget(r, dst)
	if err != nil {
		return err
	}
	// Without an Overwrite header the overwrite policy decides (RFC 4918's default is
	// T, which is "replace").
	policy := overwrite.Replace
	if ow == "" {
		if policy, err = s.policy(r, dst); err != nil {
			return err
		}
	}
	// The HTTP preconditions guard the destination (the untagged If header lists refer
	// to the source). A conditional request names the version it replaces, so the rename
	// policy does not apply to it, as for PUT.
	qd := q
	qd.If = nil
	renaming := policy == overwrite.Rename && dstExists && !isConditional(qd)
	scopes := []lockScope{{name: dst, infinite: true}}
	if renaming {
		scopes = []lockScope{{name: backend.Parent(dst)}} // a new member beside dst
	}
	if !dstExists {
		scopes = append(scopes, lockScope{name: backend.Parent(dst)})
	}
	if move {
		scopes = append(scopes, lockScope{name: src, infinite: true}, lockScope{name: backend.Parent(src)})
	}
	if q.If != nil {
		if ok, _ := q.If.Eval(func(tag string) precond.Target { return s.ifTarget(r, tag, srcInfo, true) }); !ok {
			return s.preconditionFailed(srcInfo, true, "precondition_failed",
				"The If header's conditions do not hold: the lock token or ETag you sent no longer matches. Refresh, then retry.")
		}
	}
	cond, err := s.evalConditions(r, qd, r.Method, dstInfo, dstExists)
	if err != nil {
		return err
	}
	if err := s.checkLocks(r, q, scopes...); err != nil {
		return err
	}
	if dstExists && (ow == "F" || ow == "f") {
		return &Error{Status: http.StatusPreconditionFailed, Code: "destination_exists", Name: dst, Current: &dstInfo,
			Message: "The destination exists and Overwrite: F was sent. Pick another destination or send Overwrite: T."}
	}
	if ow == "F" || ow == "f" {
		cond.IfNoneMatch = true
	}
	if policy == overwrite.Reject {
		if dstExists {
			return s.nameExists(r, dstInfo)
		}
		cond.IfNoneMatch = true
	}
	if renaming {
		return s.copyMoveRenamed(w, r, src, dst, srcInfo, depth)
	}
	var created bool
	if move {
		created, err = s.b.Move(r.Context(), src, dst, cond)
	} else {
		created, err = s.b.Copy(r.Context(), src, dst, cond, depth)
	}
	if err != nil {
		var pe *backend.PathErrors
		switch {
		case errors.As(err, &pe):
			return s.writePathErrors(w, r, *pe)
		case errors.Is(err, backend.ErrPrecondition):
			return s.lostRace(r, dst, policy, cond)
		}
		return err
	}
	if move {
		s.locks.Removed(src)
	}
	if created {
		w.Header().Set("Location", s.href(r, dst, srcInfo.Dir))
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// copyMoveRenamed copies or moves src to the first free name after dst ("dst (1)"),
// create-only, moving on when another request takes a name first.
func (s *Server) copyMoveRenamed(w http.ResponseWriter, r *http.Request, src, dst string, srcInfo backend.Info, depth int) error {
	cond := backend.Cond{IfNoneMatch: true}
	for cand := range overwrite.Candidates(dst) {
		var err error
		if r.Method == "MOVE" {
			_, err = s.b.Move(r.Context(), src, cand, cond)
		} else {
			_, err = s.b.Copy(r.Context(), src, cand, cond, depth)
		}
		switch {
		case errors.Is(err, backend.ErrPrecondition), errors.Is(err, backend.ErrExist):
			continue
		case err != nil:
			return err
		}
		if r.Method == "MOVE" {
			s.locks.Removed(src)
		}
		info := backend.Info{Name: cand, Dir: srcInfo.Dir}
		if got, err := s.b.Stat(r.Context(), cand); err == nil {
			info = got
		}
		s.writeCreated(w, r, info, false)
		return nil
	}
	return &Error{Status: http.StatusConflict, Code: "no_free_name", Name: dst,
		Message: "Every candidate name for this destination is taken. Pick another destination."}
}

// writePathErrors answers a recursive operation that failed on some members with a
// 207 Multi-Status naming each (RFC 4918 §9.6.1, §9.8.8).
func (s *Server) writePathErrors(w http.ResponseWriter, r *http.Request, pe backend.PathErrors) error {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	ms := davxml.NewMultistatus(w)
	for _, e := range pe {
		if err := ms.Status(s.href(r, e.Name, false), s.toError(r, e.Err).Status, ""); err != nil {
			return nil
		}
	}
	_ = ms.Close()
	return nil
}
