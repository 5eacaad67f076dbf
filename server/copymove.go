package server

import (
	"context"
	"errors"
	"net/http"

	"safedav/backend"
	"safedav/overwrite"
	"safedav/server/davxml"
	"safedav/server/precond"
)

// handleCopyMove implements COPY (RFC 4918 §9.8) and MOVE (§9.9) in three steps:
// parseCopyMove reads the request without touching storage, decideCopyMove checks it
// against what is there and returns the condition the destination must still meet,
// and commitCopyMove (or copyMoveRenamed) has the backend commit on that condition.
// Conditions, locks and the overwrite policy apply to the destination, which is what
// gets written; MOVE also needs the right to remove the source.
//
// The answers (§9.8.5, §9.9.4): 201 when the destination is new (or a free name
// chosen by the rename policy), 204 when it was replaced, 207 when a recursive
// operation failed on some members; 400 for a bad name or a malformed Destination,
// Depth, Overwrite, Overwrite-Policy or conditional header; 403 for the root, a
// destination equal to the source or inside it; 404 for a missing source; 409 for a
// missing destination parent, a name the reject policy keeps or no free name left;
// 412 for a failed condition, Overwrite: F on an existing destination or a
// destination that changed before the commit; 423 (or the configured status) for a
// lock whose token is missing.
func (s *Server) handleCopyMove(w http.ResponseWriter, r *http.Request) error {
	req, err := s.parseCopyMove(r)
	if err != nil {
		return err
	}
	plan, err := s.decideCopyMove(r, req)
	if err != nil {
		return err
	}
	if plan.rename {
		return s.copyMoveRenamed(w, r, req, plan.src)
	}
	return s.commitCopyMove(w, r, req, plan)
}

// copyMoveRequest is a COPY or MOVE as the client wrote it, before anything is looked
// up in storage.
type copyMoveRequest struct {
	move      bool   // MOVE; COPY otherwise
	src, dst  string // storage names
	depth     int    // backend.DepthZero or backend.DepthInfinity
	overwrite overwriteHeader
	conds     precond.Request
}

// overwriteHeader is the value of the Overwrite header (RFC 4918 §10.6).
type overwriteHeader int

const (
	overwriteAbsent overwriteHeader = iota // no header: the overwrite policy decides
	overwriteT                             // replace whatever is at the destination
	overwriteF                             // fail if anything is at the destination
)

// parseCopyMove reads a COPY or MOVE from its request line and headers alone, so a
// request that is malformed, or that no state of the tree could allow, is refused
// before storage is touched. The checks run in the order clients have always been
// answered: source, Destination, Depth, Overwrite, the pair of names, conditions.
func (s *Server) parseCopyMove(r *http.Request) (req copyMoveRequest, err error) {
	req.move = r.Method == "MOVE"
	if req.src, err = s.targetName(r); err != nil {
		return req, err
	}
	if req.dst, err = s.urlName(r, r.Header.Get("Destination")); err != nil {
		return req, err
	}
	if req.depth, err = copyMoveDepth(r, req.move); err != nil {
		return req, err
	}
	if req.overwrite, err = parseOverwrite(r.Header.Get("Overwrite")); err != nil {
		return req, err
	}
	if err = s.checkNames(r, req); err != nil {
		return req, err
	}
	req.conds, err = parseConditions(r)
	return req, err
}

// copyMoveDepth reads the Depth of a COPY (0 or infinity, RFC 4918 §9.8.3) or a MOVE
// (infinity only, §9.9.2); absent means infinity. Anything else is a 400 rather than
// a guess: a client that asked for less than the whole tree must not get all of it.
func copyMoveDepth(r *http.Request, move bool) (int, error) {
	depth, ok := depthOf(r)
	switch {
	case !ok || depth == 1:
		return 0, errorf(http.StatusBadRequest, "bad_depth", "Depth must be 0 or infinity for COPY, infinity for MOVE.")
	case move && depth == backend.DepthZero:
		return 0, errorf(http.StatusBadRequest, "bad_depth", "MOVE only supports Depth: infinity (RFC 4918 §9.9.2).")
	}
	return depth, nil
}

// parseOverwrite reads the Overwrite header (RFC 4918 §10.6): T or F, in either case
// since the RFC's literals are case-insensitive. Anything else is a 400, not a guess:
// reading a typo as T would replace what the client may have meant to keep.
func parseOverwrite(v string) (overwriteHeader, error) {
	switch v {
	case "":
		return overwriteAbsent, nil
	case "T", "t":
		return overwriteT, nil
	case "F", "f":
		return overwriteF, nil
	}
	return overwriteAbsent, errorf(http.StatusBadRequest, "bad_overwrite", "The Overwrite header must be T or F.")
}

// checkNames refuses the pairs of names that no state of the tree could allow: a MOVE
// of the root, which would leave the server without one, a destination that is the
// root, and the rules of backend.CheckCopy (the same name, RFC 4918 §9.8.5, §9.9.4; a
// destination inside the source or containing it). All are 403, as retrying cannot
// help.
func (s *Server) checkNames(r *http.Request, req copyMoveRequest) error {
	if req.src == "/" && req.move {
		return errorf(http.StatusForbidden, "root_protected", "The root collection cannot be moved.")
	}
	if req.dst == "/" {
		return errorf(http.StatusForbidden, "root_protected", "The root collection cannot be replaced.")
	}
	// The rules every backend applies to the names alone (the same source and
	// destination, a destination inside the source or containing it), so every store
	// gives the same answer whatever it holds, whatever Overwrite or the overwrite
	// policy say. toError maps each to a 403.
	if err := backend.CheckCopy(req.src, req.dst); err != nil {
		e := s.toError(r, err)
		e.Name = req.dst
		return e
	}
	return nil
}

// destConds are the conditions that guard the destination: the HTTP preconditions.
// The If header is left out because its untagged lists are about the request URI,
// the source (RFC 4918 §10.4.2); checkSourceIf evaluates it.
func (req copyMoveRequest) destConds() precond.Request {
	q := req.conds
	q.If = nil
	return q
}

// copyMovePlan is what decideCopyMove allows; the commit needs nothing more.
type copyMovePlan struct {
	src    backend.Info     // the source as observed
	policy overwrite.Policy // the destination's policy, to explain a lost race
	cond   backend.Cond     // what must still hold at the destination at the commit
	rename bool             // store under the first free name after dst instead
}

// decideCopyMove checks a parsed COPY or MOVE against what is there, in this order:
// the source and the destination's parent exist, the overwrite policy is known, the
// conditions hold, the client has the tokens of the locks on every part of the
// namespace that changes, and the Overwrite header or the policy allow what is at the
// destination. The plan's Cond carries what was observed of the destination down to
// the commit, so a destination that changes in between makes the commit fail.
func (s *Server) decideCopyMove(r *http.Request, req copyMoveRequest) (copyMovePlan, error) {
	src, err := s.copyMoveSource(r, req)
	if err != nil {
		return copyMovePlan{}, err
	}
	dst, dstExists, err := s.statTarget(r, req.dst)
	if err != nil {
		return copyMovePlan{}, err
	}
	policy, err := s.copyMovePolicy(r, req)
	if err != nil {
		return copyMovePlan{}, err
	}
	// A conditional request names the version it replaces, so the rename policy does
	// not apply to it, as for PUT.
	rename := policy == overwrite.Rename && dstExists && !isConditional(req.destConds())
	cond, err := s.copyMoveConditions(r, req, src, dst, dstExists)
	if err != nil {
		return copyMovePlan{}, err
	}
	if err := s.checkLocks(r, req.conds, copyMoveScopes(req, dstExists, rename)...); err != nil {
		return copyMovePlan{}, err
	}
	switch overwriteRule(req.overwrite, policy, dstExists) {
	case refuseExisting:
		return copyMovePlan{}, &Error{Status: http.StatusPreconditionFailed, Code: "destination_exists", Name: req.dst, Current: &dst,
			Message: "The destination exists and Overwrite: F was sent. Pick another destination or send Overwrite: T."}
	case refuseName:
		return copyMovePlan{}, s.nameExists(r, dst)
	case createOnly:
		cond.IfNoneMatch = true
	}
	return copyMovePlan{src: src, policy: policy, cond: cond, rename: rename}, nil
}

// copyMoveSource states the source, which must exist (404). What its name alone rules
// out (into itself, onto an ancestor, the root) checkNames refused already.
func (s *Server) copyMoveSource(r *http.Request, req copyMoveRequest) (backend.Info, error) {
	src, ok, err := s.stat(r, req.src)
	if err != nil {
		return src, err
	}
	if !ok {
		return src, backend.ErrNotExist
	}
	return src, nil
}

// copyMovePolicy is the overwrite policy at the destination. An Overwrite header is
// the client's explicit choice and wins: T replaces, and F becomes a precondition in
// overwriteRule. Only without one does the configured policy decide (RFC 4918's
// default, T, is the policy "replace").
func (s *Server) copyMovePolicy(r *http.Request, req copyMoveRequest) (overwrite.Policy, error) {
	if req.overwrite != overwriteAbsent {
		return overwrite.Replace, nil
	}
	return s.policy(r, req.dst)
}

// copyMoveConditions evaluates the If header against the source, then the HTTP
// preconditions against the destination, and returns the Cond the destination's
// commit carries. A false If header is 412 even when a lock would also refuse the
// request, as for PUT.
func (s *Server) copyMoveConditions(r *http.Request, req copyMoveRequest, src, dst backend.Info, dstExists bool) (backend.Cond, error) {
	if err := s.checkSourceIf(r, req.conds.If, src); err != nil {
		return backend.Cond{}, err
	}
	return s.evalConditions(r, req.destConds(), r.Method, dst, dstExists)
}

// checkSourceIf evaluates the If header of a COPY or MOVE with the source as the
// request URI (RFC 4918 §10.4.2); a tagged list may still name the destination. A nil
// header holds.
func (s *Server) checkSourceIf(r *http.Request, h *precond.IfHeader, src backend.Info) error {
	if h == nil {
		return nil
	}
	var lookupErr error
	ok, _ := h.Eval(func(tag string) precond.Target { return s.ifTarget(r, tag, src, true, &lookupErr) })
	if lookupErr != nil {
		return lookupErr
	}
	if !ok {
		return s.preconditionFailed(src, true, "precondition_failed",
			"The If header's conditions do not hold: the lock token or ETag you sent no longer matches. Refresh, then retry.")
	}
	return nil
}

// copyMoveScopes is the namespace a COPY or MOVE changes, each part of which may be
// locked (RFC 4918 §7.5, §7.7): the destination and everything below it, and the
// collection that gains it when it is new; under the rename policy only that
// collection, since a new name beside dst leaves dst alone; for MOVE also the source
// and everything below it, and the collection that loses it. Locks are checked, and
// so reported, in this order.
func copyMoveScopes(req copyMoveRequest, dstExists, rename bool) []lockScope {
	scopes := []lockScope{{name: req.dst, infinite: true}}
	if rename {
		scopes = []lockScope{{name: backend.Parent(req.dst)}} // a new member beside dst
	}
	if !dstExists {
		scopes = append(scopes, lockScope{name: backend.Parent(req.dst)})
	}
	if req.move {
		scopes = append(scopes, lockScope{name: req.src, infinite: true}, lockScope{name: backend.Parent(req.src)})
	}
	return scopes
}

// overwriteVerdict is what the Overwrite header and the overwrite policy allow at a
// destination.
type overwriteVerdict int

const (
	mayReplace     overwriteVerdict = iota // commit over whatever is there
	createOnly                             // commit only if nothing is there still
	refuseExisting                         // 412 destination_exists: Overwrite: F
	refuseName                             // 409 name_exists: the reject policy
)

// overwriteRule decides what a COPY or MOVE may do to its destination. Overwrite: F on
// an existing destination is a failed precondition (RFC 4918 §9.8.5: 412); the reject
// policy is the server's rule, not the client's, so it is a 409 that suggests a free
// name. When nothing is there yet both commit create-only, so that a destination
// created in between is not replaced after all.
func overwriteRule(ow overwriteHeader, policy overwrite.Policy, exists bool) overwriteVerdict {
	switch {
	case ow == overwriteF && exists:
		return refuseExisting
	case ow == overwriteF:
		return createOnly
	case policy == overwrite.Reject && exists:
		return refuseName
	case policy == overwrite.Reject:
		return createOnly
	}
	return mayReplace
}

// commitCopyMove has the backend copy or move on the condition decideCopyMove
// observed at the destination. A destination that changed in between makes the
// backend refuse (ErrPrecondition), answered as a lost race; a recursive operation
// that failed on some members is answered 207 naming them.
func (s *Server) commitCopyMove(w http.ResponseWriter, r *http.Request, req copyMoveRequest, plan copyMovePlan) error {
	created, err := s.copyOrMove(r.Context(), req, req.dst, plan.cond)
	var pe *backend.PathErrors
	switch {
	case errors.As(err, &pe):
		return s.writePathErrors(w, r, *pe)
	case errors.Is(err, backend.ErrPrecondition):
		return s.lostRace(r, req.dst, plan.policy, plan.cond)
	case err != nil:
		return err
	}
	if req.move {
		s.locks.Removed(r.Context(), req.src) // a lock does not move with its resource (RFC 4918 §7.7)
	}
	if created {
		w.Header().Set("Location", s.href(r, req.dst, plan.src.Dir))
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// copyOrMove is the one backend call of a COPY or MOVE: to dst, only if cond holds.
func (s *Server) copyOrMove(ctx context.Context, req copyMoveRequest, dst string, cond backend.Cond) (created bool, err error) {
	if req.move {
		return s.b.Move(ctx, req.src, dst, cond)
	}
	return s.b.Copy(ctx, req.src, dst, cond, req.depth)
}

// copyMoveRenamed copies or moves the source to the first free name after dst
// ("dst (1)"), create-only, moving on when another request takes a name first.
func (s *Server) copyMoveRenamed(w http.ResponseWriter, r *http.Request, req copyMoveRequest, srcInfo backend.Info) error {
	cond := backend.Cond{IfNoneMatch: true}
	for cand := range overwrite.Candidates(req.dst) {
		_, err := s.copyOrMove(r.Context(), req, cand, cond)
		switch {
		case errors.Is(err, backend.ErrPrecondition), errors.Is(err, backend.ErrExist):
			continue
		case err != nil:
			return err
		}
		if req.move {
			s.locks.Removed(r.Context(), req.src)
		}
		info := backend.Info{Name: cand, Dir: srcInfo.Dir}
		if got, err := s.b.Stat(r.Context(), cand); err == nil {
			info = got
		}
		s.writeCreated(w, r, info, false)
		return nil
	}
	return &Error{Status: http.StatusConflict, Code: "no_free_name", Name: req.dst,
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
