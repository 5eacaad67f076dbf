package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
	"safedav/internal/faultproxy"
)

// leftovers lists, with a client that bypasses any proxy, the multipart uploads and
// the staging objects under s's prefix.
func leftovers(t *testing.T, s *Store) (uploads, staging []string) {
	t.Helper()
	raw := rawClient(t)
	for u := range raw.ListIncompleteUploads(t.Context(), s.bucket, s.prefix, true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		uploads = append(uploads, u.Key)
	}
	return uploads, rawKeys(t, s, s.stagingDir())
}

// waitClean waits up to d for s's prefix to hold no upload and no staging object.
func waitClean(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		u, st := leftovers(t, s)
		if len(u) == 0 && len(st) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: uploads %q and staging objects %q remain", d, u, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// endless yields zeros until ctx is done, closing started once it has produced more
// than n bytes (a part has been sent and the next is being read).
func endless(n int, started chan<- struct{}) io.Reader {
	var once sync.Once
	read := 0
	return readerFunc(func(p []byte) (int, error) {
		if read += len(p); read > n {
			once.Do(func() { close(started) })
		}
		clear(p)
		return len(p), nil
	})
}

// The store goes away while several uploads are writing parts (issue 20): some fail
// because their client goes away, the others because the store does not answer, and
// one Create has just staged its body. The aborts the store could not take are
// retried once it answers again, and nothing remains.
func TestOutageLeavesNothing(t *testing.T) {
	opt := testOptions(t)
	opt.PartSize = MinPartSize
	px, err := faultproxy.New(opt.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() }) // after the store's cleanup, which goes through it
	opt.Endpoint = px.Addr()
	s := newStore(t, opt)
	s.clean.abortWait, s.clean.minBackoff = 300*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { s.Close() })

	const puts = 6
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	starts := make([]chan struct{}, puts)
	errs := make([]error, puts+1)
	for i := range puts {
		starts[i] = make(chan struct{})
		pctx := t.Context()
		if i%2 == 0 {
			pctx = ctx // these clients go away when the store does
		}
		body := endless(2*MinPartSize, starts[i])
		wg.Go(func() {
			_, _, errs[i] = s.Put(pctx, "/big"+string(rune('a'+i)), body, backend.Cond{}, backend.Meta{Size: -1})
		})
	}
	for _, c := range starts {
		<-c
	}
	// A Create whose body is staged: the store goes away as it looks for a free name.
	staged := make(chan struct{})
	names := func(yield func(string) bool) { px.Cut(); close(staged); yield("/created") }
	wg.Go(func() {
		_, errs[puts] = s.Create(t.Context(), names, bytes.NewReader(make([]byte, MinPartSize+1)), backend.Meta{Size: -1})
	})
	<-staged
	cut := time.Now()
	cancel()
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("upload %d succeeded through an outage", i)
		}
	}
	if u, st := leftovers(t, s); len(u) < puts || len(st) != 1 {
		t.Fatalf("during the outage: %d uploads, staging %q; want %d and one", len(u), st, puts+1)
	}
	// Longer than minio-go's own retries of one request, so only a retry after the
	// outage can clean up.
	time.Sleep(time.Until(cut.Add(12 * time.Second)))
	px.Restore()
	waitClean(t, s, 15*time.Second)
	if n := s.pending(); n != 0 {
		t.Errorf("%d aborts still queued", n)
	}
}

// The periodic sweep removes what is idle for longer than StaleAfter and this
// instance's unused staging objects, but leaves alone a live upload of another
// process (its parts keep coming, though it began long ago), another process's young
// staging object, and this process's own upload whose body pauses for longer.
func TestPeriodicSweep(t *testing.T) {
	opt := testOptions(t)
	opt.PartSize = MinPartSize
	opt.SweepInterval = 200 * time.Millisecond
	opt.StaleAfter = 2 * time.Second
	s := newStore(t, opt)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	core := &minio.Core{Client: rawClient(t)}

	liveKey, idleKey := s.prefix+"other-live", s.prefix+"other-idle"
	liveID, err := core.NewMultipartUpload(ctx, s.bucket, liveKey, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idleID, err := core.NewMultipartUpload(ctx, s.bucket, idleKey, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, s.bucket, idleKey, idleID, 1, strings.NewReader("idle"), 4, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	ownStaging := s.stagingKey()
	otherStaging := s.stagingDir() + "other-instance/" + newVersion()
	putRaw(t, s, strings.TrimPrefix(ownStaging, s.prefix), "mine, unused")

	// Our own Put: a part, then a pause longer than StaleAfter, then the rest.
	var putErr error
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Go(func() {
		body := readerFunc(func(p []byte) (int, error) {
			n := sent.Load()
			switch {
			case n >= 2*MinPartSize:
				return 0, io.EOF
			case n == MinPartSize:
				time.Sleep(4 * time.Second)
			}
			k := min(int64(len(p)), MinPartSize-n%MinPartSize)
			clear(p[:k])
			sent.Add(k)
			return int(k), nil
		})
		_, _, putErr = s.Put(ctx, "/mine", body, backend.Cond{}, backend.Meta{Size: -1})
	})

	// The other process writes a part every 300 ms until the check is done, however
	// long a loaded machine takes to get there: it is never idle for StaleAfter.
	stop := make(chan struct{})
	var otherErr error
	var other sync.WaitGroup
	other.Go(func() {
		for i := 1; ; i++ {
			if _, err := core.PutObjectPart(ctx, s.bucket, liveKey, liveID, i, strings.NewReader("live"), 4, minio.PutObjectPartOptions{}); err != nil {
				otherErr = fmt.Errorf("the live upload's part %d: %w", i, err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	wg.Wait()
	if putErr != nil {
		t.Errorf("our own paused Put: %v", putErr)
	}
	// Another instance's staging object, young: sweeps run (every 200 ms) and keep it.
	putRaw(t, s, strings.TrimPrefix(otherStaging, s.prefix), "another's, in use")
	time.Sleep(3 * opt.SweepInterval)
	uploads, staging := leftovers(t, s)
	if len(uploads) != 1 || uploads[0] != liveKey {
		t.Errorf("uploads left %q, want only %s", uploads, liveKey)
	}
	if len(staging) != 1 || staging[0] != otherStaging {
		t.Errorf("staging objects left %q, want only %s", staging, otherStaging)
	}
	close(stop)
	other.Wait()
	if otherErr != nil {
		t.Error(otherErr)
	}
	if err := core.AbortMultipartUpload(ctx, s.bucket, liveKey, liveID); err != nil {
		t.Errorf("the live upload is gone: %v", err)
	}
}

// Close makes a last attempt at the aborts still queued.
func TestCloseRetriesQueuedAborts(t *testing.T) {
	opt := testOptions(t)
	px, err := faultproxy.New(opt.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() }) // after the store's cleanup, which goes through it
	opt.Endpoint = px.Addr()
	s := newStore(t, opt)
	s.clean.abortWait, s.clean.minBackoff = 300*time.Millisecond, time.Hour
	id, err := s.core.NewMultipartUpload(t.Context(), s.bucket, s.prefix+"f", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	px.Cut()
	s.abandon(s.prefix+"f", id)
	if s.pending() != 1 {
		t.Fatalf("pending = %d, want the abort queued", s.pending())
	}
	px.Restore()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if u, _ := leftovers(t, s); len(u) != 0 {
		t.Fatalf("after Close: %q", u)
	}
	if err := s.Close(); err != nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Close: %v", err)
	}
}

// A negative interval or bound is refused before any request (a ticker would panic).
func TestNewRefusesNegativeCleanupOptions(t *testing.T) {
	for _, opt := range []Options{{SweepInterval: -time.Second}, {StaleAfter: -time.Second}, {CloseTimeout: -time.Second}} {
		opt.Endpoint, opt.Bucket = "127.0.0.1:1", "b"
		if _, err := New(t.Context(), opt); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("New(%+v) = %v, want a refusal", opt, err)
		}
	}
}
