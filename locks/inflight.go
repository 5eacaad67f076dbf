package locks

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrBusy means another upload to the same name has begun and not ended; the server
// answers 409 upload_in_progress rather than let two bodies race for one name, where
// the later commit would silently discard the earlier upload.
var ErrBusy = errors.New("locks: upload in progress")

// Inflight registers the names being written. Its zero value is ready to use and it is
// safe for concurrent use.
type Inflight struct {
	mu   sync.Mutex
	busy map[string]*slot
}

// slot is matched by pointer, so a late done cannot end a later Begin's slot.
type slot struct {
	ended chan struct{} // closed by done
}

// Begin marks name as being written until done is called. It fails with ErrBusy if an
// earlier Begin for name has not ended. done is idempotent, and a done called late
// never releases a later Begin of the same name. On error done is a no-op, so a
// deferred call is always safe.
func (r *Inflight) Begin(name string) (done func(), err error) {
	return r.BeginWait(context.Background(), name, 0)
}

// BeginWait is Begin, but when name is busy it waits up to wait for the earlier
// upload to end before failing with ErrBusy (or ctx's error). A conditional write
// waits: once the upload ahead of it commits, its condition can be answered exactly
// (usually 412) instead of with a 409 that says nothing about its version.
func (r *Inflight) BeginWait(ctx context.Context, name string, wait time.Duration) (done func(), err error) {
	var timer *time.Timer
	for {
		r.mu.Lock()
		s, ok := r.busy[name]
		if !ok {
			if r.busy == nil {
				r.busy = make(map[string]*slot)
			}
			s = &slot{ended: make(chan struct{})}
			r.busy[name] = s
			r.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return func() { r.end(name, s) }, nil
		}
		r.mu.Unlock()
		if wait <= 0 {
			return func() {}, ErrBusy
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-s.ended:
		case <-timer.C:
			return func() {}, ErrBusy
		case <-ctx.Done():
			timer.Stop()
			return func() {}, ctx.Err()
		}
	}
}

func (r *Inflight) end(name string, s *slot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[name] == s {
		delete(r.busy, name)
		close(s.ended)
	}
}

// Busy reports whether an upload to name has begun and not ended.
func (r *Inflight) Busy(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.busy[name]
	return ok
}
