package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"safedav/coord"
	"safedav/internal/etcdtest"
)

// open starts a Cluster against srv with a short session TTL, closed at the end.
func open(t *testing.T, srv *etcdtest.Server, prefix string) *Cluster {
	t.Helper()
	c, err := Open(t.Context(), Options{Endpoints: []string{srv.Endpoint()}, Prefix: prefix, SessionTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenRefusesUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Options{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("Open of an endpoint nobody listens on succeeded")
	}
}

// TestUnavailableWhileStopped: with etcd killed, a bounded call fails with
// coord.ErrUnavailable rather than hang; after a restart the same Cluster works again
// and gets a live session.
func TestUnavailableWhileStopped(t *testing.T) {
	srv := etcdtest.Start(t)
	c := open(t, srv, "/t1/")
	srv.Stop()
	ctx, cancel := Ctx(t.Context())
	_, err := c.Client().Put(ctx, c.Key("x"), "1")
	cancel()
	if err = Unavailable(err); !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Put with etcd down: %v, want coord.ErrUnavailable", err)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := Ctx(t.Context())
		s, err := c.Session(ctx)
		if err == nil {
			_, err = c.Client().Put(ctx, c.Key("x"), "1", clientv3.WithLease(s.Lease()))
		}
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after etcd restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSessionBoundedWhileStopped: when the session ended while etcd is down, starting
// a new one fails within each caller's deadline instead of waiting for etcd forever
// (the client waits for a connection without limit unless its context has one), and
// callers that arrive together do not wait for one another's attempts in turn.
func TestSessionBoundedWhileStopped(t *testing.T) {
	srv := etcdtest.Start(t)
	c := open(t, srv, "/t2/")
	s, err := c.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	<-s.Done() // the client gives the lease up after its TTL without an answer
	const callers = 6
	done := make(chan error, callers)
	for range callers {
		go func() {
			ctx, cancel := Ctx(t.Context())
			defer cancel()
			_, err := c.Session(ctx)
			done <- err
		}()
	}
	timeout := time.After(4 * coord.Deadline) // a hang (or a queue), not a slow answer
	for range callers {
		select {
		case err := <-done:
			if !errors.Is(err, coord.ErrUnavailable) {
				t.Fatalf("Session with etcd down: %v, want coord.ErrUnavailable", err)
			}
		case <-timeout:
			t.Fatal("Session with etcd down did not return within its deadline")
		}
	}
}
