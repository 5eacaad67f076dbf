//go:build !safedav_portable

package local

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// groupSync makes writes durable in batches: every caller of wait is answered by one
// syncfs(2) that started after it called, so concurrent uploads share a single flush
// instead of paying two fsyncs each (group commit). No write is acknowledged before a
// flush that covers it has completed.
type groupSync struct {
	fd *os.File // any descriptor on the filesystem of the root

	mu      sync.Mutex
	next    *syncBatch // callers waiting for the next flush
	running bool       // a flush loop is active
}

type syncBatch struct {
	done chan struct{}
	err  error
}

// wait returns once everything written before the call is on disk.
func (g *groupSync) wait() error {
	g.mu.Lock()
	if g.next == nil {
		g.next = &syncBatch{done: make(chan struct{})}
	}
	b := g.next
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	<-b.done
	return b.err
}

// loop flushes batch after batch while callers keep arriving. A batch is taken before
// its flush starts, so every member's writes precede the flush.
func (g *groupSync) loop() {
	for {
		g.mu.Lock()
		b := g.next
		g.next = nil
		if b == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		b.err = withFd(g.fd, round)
		close(b.done)
	}
}

// round makes durable everything written on fd's filesystem before it was called. The
// system calls are variables so that a test can see their order.
func round(fd int) error {
	if err := syncfs(fd); err != nil {
		return err
	}
	// EINVAL: the filesystem cannot sync a folder, so syncfs is all it offers.
	if err := fdatasync(fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

var (
	syncfs    = unix.Syncfs
	fdatasync = unix.Fdatasync
)
