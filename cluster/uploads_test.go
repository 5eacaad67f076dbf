package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"safedav/backend"
	"safedav/backend/claims"
	"safedav/coord"
	"safedav/internal/etcdtest"
)

// TestUploadsOneWinner: 50 uploads of one name start together on two replicas;
// while the first holds it, every other BeginWait fails with ErrUploadInProgress.
func TestUploadsOneWinner(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/one/")
	const n = 50
	var (
		wins, busy     atomic.Int32
		start, release = make(chan struct{}), make(chan struct{})
		tried, wg      sync.WaitGroup
	)
	tried.Add(n)
	for i := range n {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			<-start
			done, err := c.Uploads(0).BeginWait(coord.WithScope(t.Context()), "/up/file.bin", 0)
			tried.Done()
			switch {
			case err == nil:
				wins.Add(1)
				<-release // hold the name until every goroutine has tried
				done()
				done() // idempotent
			case errors.Is(err, coord.ErrUploadInProgress):
				busy.Add(1)
				done() // a no-op on error
			default:
				t.Errorf("BeginWait: %v", err)
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
}

// TestUploadsWait: an upload that waits for another replica's upload of the same
// name begins when that one ends (in every round: a missed wake-up hangs it), and
// fails with ErrUploadInProgress when it does not end within the wait.
func TestUploadsWait(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/uwait/")
	for i := range 20 {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		done, err := first.Uploads(0).BeginWait(coord.WithScope(t.Context()), "/f", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		begun := make(chan error, 1)
		go func() {
			done, err := second.Uploads(0).BeginWait(coord.WithScope(t.Context()), "/f", time.Hour)
			done()
			begun <- err
		}()
		done()
		select {
		case err := <-begun:
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(guard):
			t.Fatalf("round %d: the waiting upload missed the end of the first", i)
		}
	}

	done, err := a.Uploads(0).BeginWait(coord.WithScope(t.Context()), "/g", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, wait := range []time.Duration{0, 200 * time.Millisecond} {
		within(t, fmt.Sprint("BeginWait ", wait), func() {
			_, err := b.Uploads(time.Hour).BeginWait(coord.WithScope(t.Context()), "/g", wait)
			if !errors.Is(err, coord.ErrUploadInProgress) {
				t.Errorf("wait %v: %v, want ErrUploadInProgress", wait, err)
			}
		})
	}
}

// TestUploadsFolderClaim: an upload and a claim on a folder above it (a MOVE or
// DELETE) exclude each other across replicas: the upload fails with backend.ErrBusy
// after its claim wait, the folder claim waits for the upload to end.
func TestUploadsFolderClaim(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/ufolder/")
	rel, err := a.Claims(0).Acquire(t.Context(), claims.Write("/f"))
	if err != nil {
		t.Fatal(err)
	}
	within(t, "BeginWait under a claimed folder", func() {
		_, err := b.Uploads(200*time.Millisecond).BeginWait(coord.WithScope(t.Context()), "/f/x", time.Hour)
		if !errors.Is(err, backend.ErrBusy) || errors.Is(err, coord.ErrUploadInProgress) {
			t.Errorf("upload under a claimed folder: %v, want backend.ErrBusy", err)
		}
	})
	rel()

	done, err := b.Uploads(time.Hour).BeginWait(coord.WithScope(t.Context()), "/f/x", 0)
	if err != nil {
		t.Fatalf("upload once the folder is released: %v", err)
	}
	if _, err := a.Claims(0).Acquire(t.Context(), claims.Write("/f")); !errors.Is(err, claims.ErrBusy) {
		t.Fatalf("folder claim during an upload into it: %v, want ErrBusy", err)
	}
	claimed := make(chan error, 1)
	go func() {
		rel, err := a.Claims(time.Hour).Acquire(t.Context(), claims.Write("/f"))
		if err == nil {
			rel()
		}
		claimed <- err
	}()
	done()
	select {
	case err := <-claimed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("the folder claim missed the end of the upload")
	}
}

// TestUploadsScope: with a Scope the upload holds its name's write claim, which the
// commit's Acquire is granted without etcd (etcd would refuse it: the upload's own
// claim conflicts), and done releases the claim in the Scope and both keys in etcd.
// Without a Scope only the upload is registered.
func TestUploadsScope(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/uscope/")
	ctx := coord.WithScope(t.Context())
	scope := coord.ScopeOf(ctx)
	held := coord.Held{Name: "/s/f", Write: true}
	done, err := a.Uploads(0).BeginWait(ctx, "/s/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !scope.Holds(held) || scope.Rev() == 0 {
		t.Fatalf("Scope holds the claim: %v, revision %d", scope.Holds(held), scope.Rev())
	}
	rel, err := a.Claims(0).Acquire(ctx, claims.Write("/s/f"))
	if err != nil {
		t.Fatalf("the commit's claim under the upload's: %v", err)
	}
	rel()
	if _, err := a.Claims(0).Acquire(t.Context(), claims.Write("/s/f")); !errors.Is(err, claims.ErrBusy) {
		t.Fatalf("another request's claim during the upload: %v, want ErrBusy", err)
	}
	done()
	done()
	if scope.Holds(held) {
		t.Error("the Scope still holds the claim after done")
	}
	for deadline := time.Now().Add(guard); ; time.Sleep(10 * time.Millisecond) {
		resp, err := a.Client().Get(t.Context(), a.Key(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys left after done", resp.Count)
		}
	}

	done, err = a.Uploads(0).BeginWait(t.Context(), "/n/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	rel, err = b.Claims(0).Acquire(t.Context(), claims.Write("/n"))
	if err != nil {
		t.Fatalf("folder claim above an upload without a Scope: %v", err)
	}
	rel()
}

// BenchmarkUploadBegin: an upload with a Scope begun and done (its name's claim
// included), each on its own name.
func BenchmarkUploadBegin(b *testing.B) {
	srv := etcdtest.Start(b)
	c, calls := countingCluster(b, srv, "/bench-uploads/")
	u := c.Uploads(time.Minute)
	calls.Store(0)
	n := 0
	for i := 0; b.Loop(); i++ {
		done, err := u.BeginWait(coord.WithScope(b.Context()), fmt.Sprintf("/a/b/c/f%d", i), 0)
		if err != nil {
			b.Fatal(err)
		}
		done()
		n++
	}
	own := settle(b, c)
	b.ReportMetric(float64(calls.Load()-own)/float64(n), "etcd-calls/op")
}
