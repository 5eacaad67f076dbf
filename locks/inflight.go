package locks

import (
	"errors"
	"sync"
)

// ErrBusy means another upload to the same name has begun and not ended; the server
// answers 409 upload_in_progress rather than let two bodies race for one name, where
// the later commit would silently discard the earlier upload.
var ErrBusy = errors.New("locks: upload in progress")

// Inflight registers the names being written. Its zero value is ready to use and it is
// safe for concurrent use.
type Inflight struct {
	mu   sync.Mutex
	busy map[string]uint64 // name → id of the Begin holding it
	seq  uint64
}

// Begin marks name as being written until done is called. It fails with ErrBusy if an
// earlier Begin for name has not ended. done is idempotent, and a done called late
// never releases a later Begin of the same name. On error done is a no-op, so a
// deferred call is always safe.
func (r *Inflight) Begin(name string) (done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.busy[name]; ok {
		return func() {}, ErrBusy
	}
	if r.busy == nil {
		r.busy = make(map[string]uint64)
	}
	r.seq++
	id := r.seq
	r.busy[name] = id
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.busy[name] == id {
			delete(r.busy, name)
		}
	}, nil
}
