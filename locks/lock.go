// Package locks implements WebDAV write locks (RFC 4918 §6, §7): exclusive and shared
// locks of depth 0 or infinity, urn:uuid lock tokens, bounded timeouts and lock
// discovery, kept in memory by a Manager and persisted through a Store so they survive a
// restart. An upload in progress is not a lock: the server keeps those itself, for the
// length of one request, with no token.
//
// Names are backend names ("/" is the root, "/a/b" a member, no trailing slash): the
// server cleaned them before they reach this package.
package locks

import (
	"errors"
	"time"

	"safedav/backend"
)

// Infinite, given as Lock.Timeout to Create or as d to Refresh, stands for the client's
// "Timeout: Infinite" (RFC 4918 §10.7). It is never granted as such: the lock gets
// Options.MaxTimeout, because an infinite lock whose client has vanished would block
// the resource until an administrator intervened.
const Infinite time.Duration = -1

// Lock is one write lock (RFC 4918 §6.1, §7).
type Lock struct {
	// Token is the lock token, "urn:uuid:" and a random version 4 UUID (RFC 4918 §6.5),
	// assigned by Create; whatever the caller put there is ignored.
	Token string
	// Root is the backend name of the locked resource, the lock-root of RFC 4918 §6.1.
	Root string
	// Owner is the inner XML of the DAV:owner element exactly as the client sent it; the
	// server echoes it in DAV:lockdiscovery and never interprets it (RFC 4918 §14.17).
	Owner []byte
	// Principal is the authenticated user who created the lock, "" when anonymous. Only
	// that principal may use, refresh or remove the lock (RFC 4918 §6.4).
	Principal string
	// Depth is backend.DepthZero (the root only) or backend.DepthInfinity (the root and
	// everything below it, RFC 4918 §9.10.3).
	Depth int
	// Shared is true for a shared lock, false for an exclusive one (RFC 4918 §6.2).
	Shared bool
	// Timeout is the granted timeout, always positive and at most Options.MaxTimeout.
	// In the Lock passed to Create it is the request: 0 when the client sent no Timeout
	// header (Options.DefaultTimeout is granted), Infinite for "Infinite", otherwise the
	// requested duration, capped.
	Timeout time.Duration
	// Expires is when the lock stops existing unless refreshed: the time it was granted
	// or last refreshed plus Timeout (RFC 4918 §6.6). Set by Create and Refresh.
	Expires time.Time
}

// covers reports whether name is within the lock's scope: its root, or anything below
// the root for a depth-infinity lock (RFC 4918 §6.1 items 2-3).
func (l *Lock) covers(name string) bool {
	return name == l.Root || (l.Depth == backend.DepthInfinity && backend.Within(name, l.Root))
}

// live reports whether the lock has not yet expired at now.
func (l *Lock) live(now time.Time) bool { return now.Before(l.Expires) }

// clone returns a copy that shares no memory with l, so callers cannot change the
// Manager's state through the Owner slice.
func (l *Lock) clone() Lock {
	c := *l
	if l.Owner != nil {
		c.Owner = append([]byte(nil), l.Owner...)
	}
	return c
}

// ErrLocked means the request conflicts with a lock whose token was not submitted by its
// principal; the server answers 423 Locked (RFC 4918 §11.3). Errors returned by this
// package wrap it in a *LockedError that names the conflicting lock's root.
var ErrLocked = errors.New("locks: resource is locked")

// ErrNoSuchLock means a refresh or unlock named a token that is not a live lock, or a
// lock whose scope does not contain the request's name. The server chooses the status:
// 409 with DAV:lock-token-matches-request-uri for UNLOCK (RFC 4918 §9.11.1), 412 for a
// refresh whose If header matches no lock (RFC 4918 §9.10.2, §10.4.4).
var ErrNoSuchLock = errors.New("locks: no such lock")

// ErrNotOwner means the lock exists but was created by another principal, who alone may
// refresh or remove it (RFC 4918 §6.4); the server answers 403.
var ErrNotOwner = errors.New("locks: lock belongs to another principal")

// ErrInvalidLock means Create was given a lock it cannot grant: a root that is not a
// backend name or a depth other than 0 or infinity. The server validates LOCK requests
// before calling Create, so this signals a bug there; it maps to 400.
var ErrInvalidLock = errors.New("locks: invalid lock request")

// ErrTooManyLocks means the Manager already holds Options.MaxLocks live locks and Create
// refuses another, so that no client can grow the lock table (and the file rewritten on
// every change) without bound; the server answers 503.
var ErrTooManyLocks = errors.New("locks: too many locks")

// LockedError reports a conflict with an existing lock. It wraps ErrLocked, and Root
// names the conflicting lock's root so the server can list it in
// <D:lock-token-submitted><D:href> (Check) or <D:no-conflicting-lock> (Create), as
// RFC 4918 §16 asks.
type LockedError struct {
	Root   string // the lock-root of the conflicting lock
	Shared bool   // whether the conflicting lock is shared
}

// Error describes the conflict; the root is a name the client may see anyway.
func (e *LockedError) Error() string {
	if e.Shared {
		return "locks: " + e.Root + " is locked (shared)"
	}
	return "locks: " + e.Root + " is locked (exclusive)"
}

// Unwrap returns ErrLocked, so errors.Is(err, ErrLocked) holds.
func (e *LockedError) Unwrap() error { return ErrLocked }

func lockedBy(l *Lock) error { return &LockedError{Root: l.Root, Shared: l.Shared} }
