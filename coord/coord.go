// Package coord names the state a safedav process shares with the other replicas of
// a cluster, so that the server uses one interface whether that state lives in this
// process (one server, the default) or in etcd (package cluster): WebDAV locks, the
// uploads in progress, and idempotency records. The namespace claims of the storage
// commit have their own interface, claims.Claimer.
package coord

import (
	"context"
	"errors"
	"time"

	"safedav/locks"
	"safedav/server/idem"
)

// ErrUnavailable means the coordination store cannot be reached (or did not answer in
// time), so a write cannot be checked against the other replicas. Nothing was
// changed; the server answers 503 coordination_unavailable with Retry-After.
var ErrUnavailable = errors.New("coordination store unavailable")

// ErrUploadInProgress means another upload to the same name has begun and not ended,
// on this replica or another.
var ErrUploadInProgress = errors.New("upload in progress")

// Locks grants, checks and discovers WebDAV locks (RFC 4918 §6–7). locks.Manager is
// the in-process implementation. Create, Refresh, Unlock and Check are linearizable:
// a lock granted by any replica is enforced by every replica's next Check.
type Locks interface {
	Create(ctx context.Context, l locks.Lock) (locks.Lock, error)
	Refresh(ctx context.Context, name, token, principal string, d time.Duration) (locks.Lock, error)
	Unlock(ctx context.Context, name, token, principal string) error
	// Check fails with a *locks.LockedError when a live lock covering name (or, with
	// infinite, anything below it) is neither one of tokens nor held by principal.
	Check(ctx context.Context, principal, name string, infinite bool, tokens []string) error
	// HasLock reports whether token names a live lock covering name (for the If
	// header's state tokens).
	HasLock(ctx context.Context, name, token string) (bool, error)
	// Discover lists the live locks covering name (lockdiscovery).
	Discover(ctx context.Context, name string) ([]locks.Lock, error)
	// Removed drops the locks at and below name, which was deleted or moved away.
	Removed(ctx context.Context, name string)
}

// Uploads registers the names whose upload is in progress (a body being read and
// staged, not yet committed), so that two uploads of one name never race.
type Uploads interface {
	// BeginWait marks name as being uploaded until done is called. When an upload of
	// name is already in progress it waits up to wait for it to end, then fails with
	// ErrUploadInProgress (or ctx's error). done is idempotent and never nil.
	BeginWait(ctx context.Context, name string, wait time.Duration) (done func(), err error)
}

// Idempotency stores the responses of writes sent with an Idempotency-Key so that a
// retry, on any replica, replays the first response instead of applying it again.
// idem.Store is the in-process implementation; see it for the semantics of Begin,
// Reserve, Done and Abort, which every implementation keeps.
type Idempotency interface {
	Begin(ctx context.Context, key string, fp idem.Fingerprint) (replay *idem.Record, p Pending, err error)
}

// Pending is a request being applied under an Idempotency-Key.
type Pending interface {
	// Reserve makes the reservation durable before the write changes anything: a
	// crash after it leaves the key answered "outcome unknown", never applied twice.
	Reserve() error
	// Done stores the response to replay.
	Done(rec idem.Record) error
	// Abort forgets the reservation, so that a retry runs again; after Done, a no-op.
	Abort()
}

// Deadline bounds one call to the coordination store on a request's path, so that
// a store that stopped answering turns into ErrUnavailable instead of a hung request.
const Deadline = 3 * time.Second
