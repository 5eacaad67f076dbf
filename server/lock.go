package server

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"safedav/backend"
	"safedav/locks"
	"safedav/server/davxml"
)

// handleLock creates or refreshes a write lock (RFC 4918 §9.10).
func (s *Server) handleLock(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	depth, ok := depthOf(r)
	if !ok || depth == 1 {
		return errorf(http.StatusBadRequest, "bad_depth", "LOCK supports Depth 0 or infinity only (RFC 4918 §9.10.3).")
	}
	timeout := parseTimeout(r.Header.Get("Timeout"))
	q, err := parseConditions(r)
	if err != nil {
		return err
	}
	li, isNew, err := davxml.ReadLockInfo(s.xmlBody(w, r))
	if err != nil {
		return xmlError(err)
	}
	if !isNew {
		return s.refreshLock(w, r, name, q.Tokens(), timeout)
	}
	// Not statTarget: a missing parent fails the creation below with the same 409, and
	// asking first costs a lock cycle three system calls.
	cur, exists, err := s.stat(r, name)
	if err != nil {
		return err
	}
	if _, err := s.evalConditions(r, q, "LOCK", cur, exists); err != nil {
		return err
	}
	if !exists {
		// Creating the empty resource of an unmapped-URL lock changes the parent's
		// membership, which the parent's lock protects (RFC 4918 §7.3).
		if err := s.checkLocks(r, q, lockScope{name: backend.Parent(name)}); err != nil {
			return err
		}
	}
	l, err := s.locks.Create(r.Context(), locks.Lock{
		Root: name, Owner: li.Owner, Principal: principal(r), Depth: depth, Shared: li.Shared, Timeout: timeout,
	})
	if err != nil {
		var le *locks.LockedError
		if errors.As(err, &le) {
			e := s.lockedError(r, le.Root, err)
			e.Conditions = []string{"<D:no-conflicting-lock><D:href>" + xmlText(s.href(r, le.Root, false)) + "</D:href></D:no-conflicting-lock>"}
			e.Message = "Someone else holds a lock that conflicts with this one. Wait for it to be released or to expire."
			return e
		}
		return err
	}
	status := http.StatusOK
	if !exists {
		// RFC 4918 §7.3: a lock on an unmapped URL creates an empty resource.
		_, _, err := s.b.Put(r.Context(), name, http.NoBody, backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
		if err != nil && !errors.Is(err, backend.ErrPrecondition) {
			_ = s.locks.Unlock(r.Context(), name, l.Token, l.Principal)
			return err
		}
		if err == nil {
			status = http.StatusCreated
		}
	}
	w.Header().Set("Lock-Token", "<"+l.Token+">")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	return davxml.WriteLockResponse(w, []davxml.ActiveLock{s.activeLock(r, l)})
}

// refreshLock extends the lock whose token the If header names (RFC 4918 §9.10.2).
func (s *Server) refreshLock(w http.ResponseWriter, r *http.Request, name string, tokens []string, timeout time.Duration) error {
	if len(tokens) == 0 {
		return errorf(http.StatusBadRequest, "lock_token_missing",
			"A LOCK without a body refreshes a lock: send its token in an If header, e.g. If: (<urn:uuid:…>).")
	}
	for _, t := range tokens {
		// Refresh itself tells a token that names no live lock covering name: checking
		// first would race with the lock's expiry.
		l, err := s.locks.Refresh(r.Context(), name, t, principal(r), timeout)
		if errors.Is(err, locks.ErrNoSuchLock) {
			continue
		}
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return davxml.WriteLockResponse(w, []davxml.ActiveLock{s.activeLock(r, l)})
	}
	return &Error{Status: http.StatusPreconditionFailed, Code: "lock_not_found",
		Conditions: []string{"<D:lock-token-matches-request-uri/>"},
		Message:    "No lock with this token covers this resource; it may have expired. Lock it again."}
}

// handleUnlock removes a lock (RFC 4918 §9.11).
func (s *Server) handleUnlock(w http.ResponseWriter, r *http.Request) error {
	name, err := s.targetName(r)
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(r.Header.Get("Lock-Token"))
	if len(tok) < 3 || tok[0] != '<' || tok[len(tok)-1] != '>' {
		return errorf(http.StatusBadRequest, "lock_token_missing", "UNLOCK needs a Lock-Token header: Lock-Token: <urn:uuid:…>.")
	}
	err = s.locks.Unlock(r.Context(), name, tok[1:len(tok)-1], principal(r))
	if errors.Is(err, locks.ErrNoSuchLock) {
		return &Error{Status: http.StatusConflict, Code: "lock_not_found",
			Conditions: []string{"<D:lock-token-matches-request-uri/>"},
			Message:    "No lock with this token covers this resource; it may have expired or been released already."}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseTimeout reads the Timeout header (RFC 4918 §10.7): the first value we
// understand wins; 0 leaves the choice to the lock manager.
func parseTimeout(h string) time.Duration {
	for v := range strings.SplitSeq(h, ",") {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "Infinite") {
			return locks.Infinite // the manager grants its maximum
		}
		if len(v) > 7 && strings.EqualFold(v[:7], "Second-") {
			if n, err := strconv.ParseInt(v[7:], 10, 64); err == nil && n > 0 {
				return time.Duration(min(n, 1<<32)) * time.Second
			}
		}
	}
	return 0
}
