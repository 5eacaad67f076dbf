package locks

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestInflightOneWinner: 100 uploads to one name start together; while the first holds
// it, every other Begin fails with ErrBusy (run under -race).
func TestInflightOneWinner(t *testing.T) {
	var r Inflight
	const n = 100
	var (
		wins, busy atomic.Int32
		start      = make(chan struct{})
		release    = make(chan struct{})
		tried, wg  sync.WaitGroup
	)
	tried.Add(n)
	for range n {
		wg.Go(func() {
			<-start
			done, err := r.Begin("/up/file.bin")
			tried.Done()
			switch {
			case err == nil:
				wins.Add(1)
				<-release // hold the name until every goroutine has tried
				done()
				done() // idempotent
			case errors.Is(err, ErrBusy):
				busy.Add(1)
				done() // a no-op on error, so deferring it is safe
			default:
				t.Errorf("Begin: %v", err)
			}
		})
	}
	close(start)
	tried.Wait()
	close(release)
	wg.Wait()
	if wins.Load() != 1 || busy.Load() != n-1 {
		t.Fatalf("%d winners, %d busy; want 1 and %d", wins.Load(), busy.Load(), n-1)
	}
	done, err := r.Begin("/up/file.bin")
	if err != nil {
		t.Fatalf("Begin after done: %v", err)
	}
	done()
}

func TestInflightLateDone(t *testing.T) {
	var r Inflight
	done1, err := r.Begin("/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Begin("/a"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Begin: %v", err)
	}
	other, err := r.Begin("/b") // other names are independent
	if err != nil {
		t.Fatal(err)
	}
	defer other()
	done1()
	done2, err := r.Begin("/a")
	if err != nil {
		t.Fatal(err)
	}
	done1() // a stale done must not release the second upload
	if _, err := r.Begin("/a"); !errors.Is(err, ErrBusy) {
		t.Fatalf("stale done released a later Begin: %v", err)
	}
	done2()
	if _, err := r.Begin("/a"); err != nil {
		t.Fatal(err)
	}
}
