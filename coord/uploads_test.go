package coord

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestUploadsOneWinner: 100 uploads to one name start together; while the first holds
// it, every other Begin fails with ErrUploadInProgress (run under -race).
func TestUploadsOneWinner(t *testing.T) {
	var u UploadTable
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
			done, err := u.Begin("/up/file.bin")
			tried.Done()
			switch {
			case err == nil:
				wins.Add(1)
				<-release // hold the name until every goroutine has tried
				done()
				done() // idempotent
			case errors.Is(err, ErrUploadInProgress):
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
	done, err := u.Begin("/up/file.bin")
	if err != nil {
		t.Fatalf("Begin after done: %v", err)
	}
	done()
}

// TestUploadsLateDone: a done called after its upload ended must not end a later
// upload of the same name, and other names are independent.
func TestUploadsLateDone(t *testing.T) {
	var u UploadTable
	done1, err := u.Begin("/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Begin("/a"); !errors.Is(err, ErrUploadInProgress) {
		t.Fatalf("second Begin: %v", err)
	}
	other, err := u.Begin("/b") // other names are independent
	if err != nil {
		t.Fatal(err)
	}
	defer other()
	done1()
	done2, err := u.Begin("/a")
	if err != nil {
		t.Fatal(err)
	}
	done1() // a stale done must not release the second upload
	if _, err := u.Begin("/a"); !errors.Is(err, ErrUploadInProgress) {
		t.Fatalf("stale done released a later Begin: %v", err)
	}
	done2()
	if _, err := u.Begin("/a"); err != nil {
		t.Fatal(err)
	}
}
