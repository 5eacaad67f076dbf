package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
)

// Cleanup of what failed uploads leave behind: multipart uploads (their parts cost
// storage until aborted) and staging objects.
//
// Every Store has a random instance ID. A failed upload's abort (or a staging object's
// removal) is tried at once on a fresh context; when the store does not answer, it is
// queued and retried with backoff by a background worker, and tried a last time by
// Close. The worker also sweeps every SweepInterval: it removes this instance's staging
// objects that no Create is using, and any multipart upload or staging object under the
// prefix idle for longer than StaleAfter, other than this instance's live uploads. An
// upload's idle time counts from its last part (ListParts), not from its initiation,
// since parts are written as the body arrives: a long upload that is still being
// written is never stale. New runs the same sweep once at start-up, which removes what
// a killed process left.

// Defaults of the cleanup options.
const (
	// DefaultSweepInterval is Options.SweepInterval when unset.
	DefaultSweepInterval = 5 * time.Minute
	// DefaultStaleAfter is Options.StaleAfter when unset: far longer than a live
	// upload waits between two parts unless its client sends less than a part an
	// hour.
	DefaultStaleAfter = time.Hour
	// DefaultCloseTimeout is Options.CloseTimeout when unset.
	DefaultCloseTimeout = 30 * time.Second
)

const (
	// abortTimeout bounds the attempt made at once, on the request's path, to abort a
	// failed upload; when it fails the abort is queued rather than holding the
	// response longer.
	abortTimeout = 5 * time.Second
	// maxLeftovers bounds the queue of aborts waiting for the store; beyond it a
	// leftover waits for the sweep (StaleAfter).
	maxLeftovers = 4096
	maxBackoff   = time.Minute
)

// leftover is an abort (uploadID set) or a staging object removal (uploadID empty)
// the store has not yet acknowledged.
type leftover struct {
	key, uploadID string
	wait          time.Duration // the backoff before the next attempt
	next          time.Time
}

// cleaner is the Store's record of its live uploads and of the leftovers to retry.
type cleaner struct {
	instance   string
	interval   time.Duration
	staleAfter time.Duration
	closeWait  time.Duration
	abortWait  time.Duration // abortTimeout; shorter in tests
	minBackoff time.Duration

	mu     sync.Mutex
	live   map[string]bool // upload IDs and staging keys in use by this process
	queue  []leftover
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

func newCleaner(opt Options) *cleaner {
	c := &cleaner{
		instance:   newVersion(),
		interval:   opt.SweepInterval,
		staleAfter: opt.StaleAfter,
		closeWait:  opt.CloseTimeout,
		abortWait:  abortTimeout,
		minBackoff: time.Second,
		live:       make(map[string]bool),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if c.interval == 0 {
		c.interval = DefaultSweepInterval
	}
	if c.staleAfter == 0 {
		c.staleAfter = DefaultStaleAfter
	}
	if c.closeWait == 0 {
		c.closeWait = DefaultCloseTimeout
	}
	return c
}

// hold records id (an upload ID or a staging key) as in use, so no sweep touches it.
func (s *Store) hold(id string) {
	s.clean.mu.Lock()
	s.clean.live[id] = true
	s.clean.mu.Unlock()
}

// unhold forgets id once it is completed or removed.
func (s *Store) unhold(id string) {
	s.clean.mu.Lock()
	delete(s.clean.live, id)
	s.clean.mu.Unlock()
}

// abandon aborts the multipart upload id of key (uploadID empty: removes the staging
// object key) at once on a fresh context, and queues it for the background worker
// when the store does not acknowledge it.
func (s *Store) abandon(key, uploadID string) {
	c := s.clean
	ctx, cancel := context.WithTimeout(context.Background(), c.abortWait)
	err := s.discard(ctx, key, uploadID)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if uploadID != "" {
		delete(c.live, uploadID)
	} else {
		delete(c.live, key)
	}
	if err == nil || len(c.queue) >= maxLeftovers {
		return // a full queue leaves it to the sweep of stale uploads
	}
	c.queue = append(c.queue, leftover{key: key, uploadID: uploadID, wait: c.minBackoff, next: time.Now().Add(c.minBackoff)})
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// discard aborts one upload or removes one staging object. An upload already gone is
// success.
func (s *Store) discard(ctx context.Context, key, uploadID string) error {
	if uploadID == "" {
		return s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	}
	err := mapErr(s.core.AbortMultipartUpload(ctx, s.bucket, key, uploadID))
	if errors.Is(err, backend.ErrNotExist) {
		return nil
	}
	return err
}

// work retries queued leftovers when due and sweeps every interval, until Close.
func (s *Store) work() {
	c := s.clean
	defer close(c.done)
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		c.mu.Lock()
		var due time.Time
		for _, l := range c.queue {
			if due.IsZero() || l.next.Before(due) {
				due = l.next
			}
		}
		c.mu.Unlock()
		if !due.IsZero() {
			retry.Reset(time.Until(due))
		}
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-retry.C:
			s.retry(context.Background(), false)
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.interval)
			s.sweep(ctx, time.Now())
			cancel()
		}
	}
}

// retry tries the queued leftovers that are due (all of them when all is set) and
// keeps those that fail, with a doubled backoff.
func (s *Store) retry(ctx context.Context, all bool) {
	c := s.clean
	c.mu.Lock()
	var due, keep []leftover
	now := time.Now()
	for _, l := range c.queue {
		if all || !l.next.After(now) {
			due = append(due, l)
		} else {
			keep = append(keep, l)
		}
	}
	c.queue = keep
	c.mu.Unlock()
	for _, l := range due {
		actx, cancel := context.WithTimeout(ctx, c.abortWait)
		err := s.discard(actx, l.key, l.uploadID)
		cancel()
		if err != nil {
			l.wait = min(2*l.wait, maxBackoff)
			l.next = time.Now().Add(l.wait)
			c.mu.Lock()
			c.queue = append(c.queue, l)
			c.mu.Unlock()
		}
	}
}

// pending reports how many leftovers wait for the store.
func (s *Store) pending() int {
	s.clean.mu.Lock()
	defer s.clean.mu.Unlock()
	return len(s.clean.queue)
}

// Close stops the background cleanup and makes a last attempt, within
// Options.CloseTimeout, at every abort still queued. It returns an error when some
// remain (the next start-up's sweep removes them once stale). Close is idempotent.
func (s *Store) Close() error {
	c := s.clean
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if closed {
		return nil
	}
	close(c.stop)
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), c.closeWait)
	defer cancel()
	s.retry(ctx, true)
	if n := s.pending(); n > 0 {
		return fmt.Errorf("s3: %d failed uploads not yet aborted", n)
	}
	return nil
}

// stagingDir is the prefix of every staging object; each instance stages under its
// own folder, so that its sweep knows its own.
func (s *Store) stagingDir() string { return s.prefix + backend.ReservedPrefix + "/staging/" }

// sweep removes, under the prefix, the multipart uploads and staging objects idle
// since before now-StaleAfter that this process is not using, and this instance's
// staging objects that no Create is using. Errors stop the sweep; the next one
// resumes it.
func (s *Store) sweep(ctx context.Context, now time.Time) {
	c := s.clean
	cutoff := now.Add(-c.staleAfter)
	isLive := func(id string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.live[id]
	}
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return
		}
		if isLive(u.UploadID) || u.Initiated.After(cutoff) {
			continue
		}
		if s.lastPart(ctx, u.Key, u.UploadID).After(cutoff) {
			continue
		}
		_ = s.discard(ctx, u.Key, u.UploadID)
	}
	own := s.stagingDir() + c.instance + "/"
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.stagingDir(), Recursive: true}) {
		if oi.Err != nil {
			return
		}
		if isLive(oi.Key) || (!strings.HasPrefix(oi.Key, own) && oi.LastModified.After(cutoff)) {
			continue
		}
		_ = s.client.RemoveObject(ctx, s.bucket, oi.Key, minio.RemoveObjectOptions{})
	}
}

// lastPart returns when the latest part of an upload was written, the zero time when
// it has none. When the parts cannot be listed it returns the far future, so that
// the upload is kept.
func (s *Store) lastPart(ctx context.Context, key, uploadID string) time.Time {
	var last time.Time
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, key, uploadID, marker, 1000)
		if err != nil {
			if errors.Is(mapErr(err), backend.ErrNotExist) {
				return time.Time{} // gone: nothing to keep
			}
			return time.Now().Add(time.Hour)
		}
		for _, p := range res.ObjectParts {
			if p.LastModified.After(last) {
				last = p.LastModified
			}
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return last
		}
		marker = res.NextPartNumberMarker
	}
}
