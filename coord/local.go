package coord

import (
	"context"

	"safedav/locks"
	"safedav/server/idem"
)

// LocalLocks is the Locks of one process: a locks.Manager, whose lookups never fail.
func LocalLocks(m *locks.Manager) Locks { return localLocks{m} }

type localLocks struct{ *locks.Manager }

func (l localLocks) HasLock(_ context.Context, name, token string) (bool, error) {
	return l.Manager.HasLock(name, token), nil
}

func (l localLocks) Discover(_ context.Context, name string) ([]locks.Lock, error) {
	return l.Manager.Discover(name), nil
}

func (l localLocks) Removed(_ context.Context, name string) { l.Manager.Removed(name) }

// LocalIdempotency is the Idempotency of one process: an idem.Store.
func LocalIdempotency(s *idem.Store) Idempotency { return localIdem{s} }

type localIdem struct{ s *idem.Store }

func (l localIdem) Begin(_ context.Context, key string, fp idem.Fingerprint) (*idem.Record, Pending, error) {
	rec, p, err := l.s.Begin(key, fp)
	if p == nil {
		return rec, nil, err // never a typed nil in the interface
	}
	return rec, p, err
}

var (
	_ Uploads = (*UploadTable)(nil)
	_ Pending = (*idem.Pending)(nil)
)
