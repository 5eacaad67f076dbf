package coord

import (
	"context"
	"sync"
	"time"
)

// UploadTable registers the names whose upload is in progress: a body is still being read
// and staged, and the commit has not happened. It is not a WebDAV lock (package locks):
// nobody holds a token for it, it lasts one request, and it only keeps two PUTs of one
// name from racing. It is the in-process Uploads. Its zero value is ready to use and it is safe for concurrent use.
type UploadTable struct {
	mu   sync.Mutex
	busy map[string]*upload
}

// upload is matched by pointer, so a late done cannot end a later Begin's upload.
type upload struct {
	ended chan struct{} // closed by done
}

// Begin marks name as being uploaded until done is called. It fails with
// ErrUploadInProgress if an earlier Begin for name has not ended. done is idempotent,
// and a done called late never ends a later Begin of the same name. On error done is a
// no-op, so a deferred call is always safe.
func (u *UploadTable) Begin(name string) (done func(), err error) {
	return u.BeginWait(context.Background(), name, 0)
}

// BeginWait is Begin, but when name is busy it waits up to wait for the earlier
// upload to end before failing with ErrUploadInProgress (or ctx's error). A
// conditional write waits: once the upload ahead of it commits, its condition can be
// answered exactly (usually 412) instead of with a 409 that says nothing about its
// version.
func (u *UploadTable) BeginWait(ctx context.Context, name string, wait time.Duration) (done func(), err error) {
	var timer *time.Timer
	for {
		u.mu.Lock()
		up, ok := u.busy[name]
		if !ok {
			if u.busy == nil {
				u.busy = make(map[string]*upload)
			}
			up = &upload{ended: make(chan struct{})}
			u.busy[name] = up
			u.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return func() { u.end(name, up) }, nil
		}
		u.mu.Unlock()
		if wait <= 0 {
			return func() {}, ErrUploadInProgress
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-up.ended:
		case <-timer.C:
			return func() {}, ErrUploadInProgress
		case <-ctx.Done():
			timer.Stop()
			return func() {}, ctx.Err()
		}
	}
}

func (u *UploadTable) end(name string, up *upload) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy[name] == up {
		delete(u.busy, name)
		close(up.ended)
	}
}

// Busy reports whether an upload to name has begun and not ended.
func (u *UploadTable) Busy(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.busy[name]
	return ok
}
