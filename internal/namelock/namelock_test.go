package namelock

import (
	"sync"
	"testing"
	"time"
)

// A name's lock excludes another holder of it; two names taken in either order by
// concurrent callers never deadlock; a pair hashed onto one shard is taken once.
func TestLocks(t *testing.T) {
	var l Locks
	unlock := l.Lock("/a")
	got := make(chan struct{})
	go func() { l.Lock("/a")(); close(got) }()
	select {
	case <-got:
		t.Fatal("a second holder got the lock of /a")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-got

	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if i%2 == 0 {
				l.Lock("/x", "/y")()
			} else {
				l.Lock("/y", "/x")()
			}
		})
	}
	wg.Wait()

	l.Lock("/same", "/same")() // one shard, taken once: no self-deadlock
}
