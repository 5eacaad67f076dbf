package cluster

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"safedav/backend"
	"safedav/backend/claims"
	"safedav/coord"
	"safedav/internal/etcdtest"
)

// guard bounds what must end long before it: a wait that runs into it is a hang (a
// missed wake-up, a call that ignored its deadline), not a slow machine.
const guard = 30 * time.Second

// within runs f and fails the test if it has not returned after guard.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s did not return within %v", what, guard)
	}
}

// replicas opens two Clusters on one etcd prefix: two replicas of one safedav cluster.
func replicas(t *testing.T, srv *etcdtest.Server, prefix string) (a, b *Cluster) {
	return open(t, srv, prefix), open(t, srv, prefix)
}

// claimKeys lists the claim keys under c's prefix, each shortened to name and tag.
func claimKeys(t *testing.T, c *Cluster) []string {
	t.Helper()
	resp, err := c.Client().Get(t.Context(), c.Key("claim/"), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), c.Key("claim/")), "\x00")
		keys = append(keys, parts[0]+" "+parts[1])
	}
	return keys
}

// TestConflictRangesMatchMatrix: for every wanted mode, the range compared holds the
// key of exactly the held modes claims.Compatible refuses, and nothing of the
// name's descendants or of a name it prefixes.
func TestConflictRangesMatchMatrix(t *testing.T) {
	c := &Cluster{prefix: "/p/", id: "r"}
	modes := []claims.Mode{claims.IS, claims.IX, claims.S, claims.X}
	for _, want := range modes {
		g := new(guarded)
		c.addClaims(g, map[string]claims.Mode{"/a": want}, "o1")
		r := g.ranges[0]
		in := func(k string) bool { return r.from <= k && k < r.end }
		for _, held := range modes {
			key := c.Key("claim/", "/a", "\x00", modeTag[held], "\x00", "o2")
			if got, conflict := in(key), !claims.Compatible(held, want); got != conflict {
				t.Errorf("want %v, held %v: in range = %v, conflict = %v", want, held, got, conflict)
			}
			for _, other := range []string{"/a/b", "/ab", "/"} {
				if k := c.Key("claim/", other, "\x00", modeTag[held], "\x00", "o2"); in(k) {
					t.Errorf("want %v on /a: range holds %q", want, k)
				}
			}
		}
	}
}

// TestClaimsMatrix: every pair of modes, on the same name, an ancestor and a
// descendant, taken by two replicas (and by two operations of one replica), is
// granted or refused exactly as the in-process claims.Table decides.
func TestClaimsMatrix(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/matrix/")
	modes := []claims.Mode{claims.IS, claims.IX, claims.S, claims.X}
	places := []struct{ name, held, want string }{
		{"same", "/d/n", "/d/n"},
		{"want_ancestor", "/d/n/c", "/d/n"},
		{"want_descendant", "/d/n", "/d/n/c"},
		{"sibling", "/d/n", "/d/m"},
	}
	i := 0
	for _, second := range []struct {
		name string
		c    *Cluster
	}{{"two_replicas", b}, {"one_replica", a}} {
		for _, p := range places {
			for _, held := range modes {
				for _, want := range modes {
					i++
					root := fmt.Sprintf("/c%d", i)
					h := claims.Claim{Name: root + p.held, Mode: held}
					w := claims.Claim{Name: root + p.want, Mode: want}
					t.Run(fmt.Sprintf("%s/%s/%v_then_%v", second.name, p.name, held, want), func(t *testing.T) {
						oracle := &claims.Table{Wait: time.Nanosecond}
						if _, err := oracle.Acquire(t.Context(), h); err != nil {
							t.Fatal(err)
						}
						_, err := oracle.Acquire(t.Context(), w)
						granted := err == nil

						rel, err := a.Claims(0).Acquire(t.Context(), h)
						if err != nil {
							t.Fatalf("first claim: %v", err)
						}
						defer rel()
						rel2, err := second.c.Claims(0).Acquire(t.Context(), w)
						switch {
						case granted && err != nil:
							t.Errorf("%v then %v: %v, the Table grants it", h, w, err)
						case !granted && !errors.Is(err, claims.ErrBusy):
							t.Errorf("%v then %v: %v, want claims.ErrBusy", h, w, err)
						}
						if err == nil {
							rel2()
						}
					})
				}
			}
		}
	}
}

// TestClaimsAllOrNothing: a call whose one claim conflicts takes none, and the
// claims of one call are merged per name into one key of the strongest mode.
func TestClaimsAllOrNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/aon/")
	ctx := t.Context()
	rel, err := a.Claims(0).Acquire(ctx, claims.Write("/x/b"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	if _, err := b.Claims(0).Acquire(ctx, claims.Write("/y/a"), claims.Write("/x/b")); !errors.Is(err, claims.ErrBusy) {
		t.Fatalf("claims with one conflict: %v, want ErrBusy", err)
	}
	for _, k := range claimKeys(t, b) {
		if strings.HasPrefix(k, "/y") {
			t.Errorf("the refused call left %q", k)
		}
	}

	// S and IX on /c by one call are X, one key per name.
	rel2, err := b.Claims(0).Acquire(ctx, claims.Read("/c"), claims.Write("/c/d"), claims.Write("/c/d"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel2()
	var got []string
	for _, k := range claimKeys(t, b) {
		if strings.HasPrefix(k, "/c") {
			got = append(got, k)
		}
	}
	if want := []string{"/c 3x", "/c/d 3x"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keys %q, want %q", got, want)
	}
}

// TestClaimsWaitThenBusy: a conflict that outlasts the wait is ErrBusy; a request
// that goes away while waiting gets its own context's error.
func TestClaimsWaitThenBusy(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/busy/")
	rel, err := a.Claims(0).Acquire(t.Context(), claims.Write("/w"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	within(t, "Acquire with a 200ms wait", func() {
		if _, err := b.Claims(200*time.Millisecond).Acquire(t.Context(), claims.Write("/w/f")); !errors.Is(err, claims.ErrBusy) {
			t.Errorf("Acquire under a held folder: %v, want ErrBusy", err)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	within(t, "Acquire with a cancelled context", func() {
		go cancel()
		if _, err := b.Claims(time.Hour).Acquire(ctx, claims.Write("/w/f")); !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire cancelled while waiting: %v, want context.Canceled", err)
		}
	})
}

// TestClaimsReleaseWakesWaiter: a waiter is granted when the holder releases, on
// the other replica, whenever the release lands (before, during or after the
// waiter's transaction): its wait is an hour, so a missed wake-up hangs the round.
func TestClaimsReleaseWakesWaiter(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/wake/")
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	for i := range rounds {
		holder, waiter := a, b
		if i%2 == 1 {
			holder, waiter = b, a
		}
		rel, err := holder.Claims(time.Hour).Acquire(t.Context(), claims.Write("/r/f"))
		if err != nil {
			t.Fatal(err)
		}
		granted := make(chan error, 1)
		go func() {
			rel, err := waiter.Claims(time.Hour).Acquire(t.Context(), claims.Write("/r"))
			if err == nil {
				rel()
			}
			granted <- err
		}()
		for range i % 4 {
			runtime.Gosched()
		}
		rel()
		select {
		case err := <-granted:
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(guard):
			t.Fatalf("round %d: the waiter missed the release", i)
		}
	}
}

// TestWaitGone: waitGone returns for a key deleted before its watch started (after
// the revision the caller saw it at) as well as for one deleted after.
func TestWaitGone(t *testing.T) {
	srv := etcdtest.Start(t)
	c := open(t, srv, "/gone/")
	cli, ctx := c.Client(), t.Context()
	put := func(k string) int64 {
		resp, err := cli.Put(ctx, c.Key(k), "")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	del := func(k string) {
		if _, err := cli.Delete(ctx, c.Key(k)); err != nil {
			t.Error(err)
		}
	}
	for _, tc := range []struct {
		name   string
		before bool // deleted before waitGone is called, else while it waits
	}{{"deleted_before_watch", true}, {"deleted_during_wait", false}} {
		t.Run(tc.name, func(t *testing.T) {
			rev := put(tc.name)
			put("other") // the watch starts at a later revision than rev
			if tc.before {
				del(tc.name)
			} else {
				go del(tc.name)
			}
			within(t, "waitGone", func() {
				if err := c.waitGone(ctx, c.Key(tc.name), rev, time.Now().Add(time.Hour)); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

// TestClaimsDeadReplica: the claims of a replica that stops without releasing them
// (its client closed, its lease not revoked) are released by the lease's expiry,
// which wakes a waiter on another replica.
func TestClaimsDeadReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/dead/")
	if _, err := a.Claims(0).Acquire(t.Context(), claims.Write("/k")); err != nil {
		t.Fatal(err)
	}
	a.Client().Close()
	if _, err := b.Claims(0).Acquire(t.Context(), claims.Read("/k/f")); !errors.Is(err, claims.ErrBusy) {
		t.Fatalf("claim of a dead replica before its TTL: %v, want ErrBusy", err)
	}
	// The session TTL is 2 s; guard is the slack.
	within(t, "Acquire after the holder died", func() {
		rel, err := b.Claims(guard).Acquire(t.Context(), claims.Read("/k/f"))
		if err != nil {
			t.Errorf("claim after the holder died: %v", err)
			return
		}
		rel()
	})
}

// TestClaimsEtcdDown: with etcd killed, Acquire fails with coord.ErrUnavailable
// within its deadline, also once the session lease has expired (a new session's
// grant is bounded too), and release never blocks; after a restart claims work again.
func TestClaimsEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	a := open(t, srv, "/down/")
	rel, err := a.Claims(0).Acquire(t.Context(), claims.Write("/held"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	rel() // in the background: returns at once
	unavailable := func(what string) {
		within(t, what, func() {
			_, err := a.Claims(time.Second).Acquire(t.Context(), claims.Write("/f"))
			if !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("%s: %v, want coord.ErrUnavailable", what, err)
			}
			_, err = a.Uploads(time.Second).BeginWait(coord.WithScope(t.Context()), "/u", time.Second)
			if !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("%s: BeginWait: %v, want coord.ErrUnavailable", what, err)
			}
		})
	}
	unavailable("etcd down")
	within(t, "session expiry", func() { <-s.Done() })
	unavailable("etcd down, session expired")

	srv.Restart()
	deadline := time.Now().Add(guard)
	for {
		rel, err := a.Claims(0).Acquire(t.Context(), claims.Write("/f"))
		if err == nil {
			rel()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after etcd restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClaimsLeaseLost: when the session's lease is gone before the keep-alive
// noticed (revoked here; expired during an outage in life), Acquire starts a new
// session instead of failing.
func TestClaimsLeaseLost(t *testing.T) {
	srv := etcdtest.Start(t)
	a := open(t, srv, "/lost/")
	s, err := a.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client().Revoke(t.Context(), s.Lease()); err != nil {
		t.Fatal(err)
	}
	rel, err := a.Claims(0).Acquire(t.Context(), claims.Write("/f"))
	if err != nil {
		t.Fatalf("Acquire after the lease was revoked: %v", err)
	}
	rel()
}

// TestClaimsHeld: claims the request's Scope holds are granted without etcd (here
// while another replica holds them, which etcd would refuse); any claim not held
// sends the whole call to etcd.
func TestClaimsHeld(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := replicas(t, srv, "/held/")
	rel, err := b.Claims(0).Acquire(t.Context(), claims.Write("/h"), claims.Write("/r"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	ctx := coord.WithScope(t.Context())
	scope := coord.ScopeOf(ctx)
	scope.Hold(coord.Held{Name: "/h", Write: true})
	scope.Hold(coord.Held{Name: "/r", Write: false})
	for _, tc := range []struct {
		name string
		cs   []claims.Claim
		held bool
	}{
		{"write_held", []claims.Claim{claims.Write("/h")}, true},
		{"read_under_write_held", []claims.Claim{claims.Read("/h")}, true},
		{"write_under_read_held", []claims.Claim{claims.Write("/r")}, false},
		{"one_not_held", []claims.Claim{claims.Write("/h"), claims.Write("/o/f")}, false},
		{"descendant_not_held", []claims.Claim{claims.Write("/h/f")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := a.Claims(0).Acquire(ctx, tc.cs...)
			switch {
			case tc.held && err != nil:
				t.Errorf("held claims: %v", err)
			case !tc.held && !errors.Is(err, claims.ErrBusy):
				t.Errorf("claims not all held: %v, want etcd's ErrBusy", err)
			}
			if err == nil {
				rel()
			}
		})
	}
}

// TestClaimsTooDeep: the deepest path that fits one transaction is claimed on the
// real etcd (so the bound is within etcd's default --max-txn-ops), one segment more
// is backend.ErrNameTooLong, and a transaction etcd refuses as too large is the same
// error, not ErrUnavailable.
func TestClaimsTooDeep(t *testing.T) {
	srv := etcdtest.Start(t)
	a := open(t, srv, "/deep/")
	deepest := strings.Repeat("/d", maxTxnNames-1) // and "/": maxTxnNames names
	rel, err := a.Claims(0).Acquire(t.Context(), claims.Write(deepest))
	if err != nil {
		t.Fatalf("claim of %d names: %v", maxTxnNames, err)
	}
	rel()
	done, err := a.Uploads(0).BeginWait(coord.WithScope(t.Context()), deepest+"2", 0)
	if err != nil {
		t.Fatalf("upload at depth %d: %v", maxTxnNames-1, err)
	}
	done()
	if _, err := a.Claims(0).Acquire(t.Context(), claims.Write(deepest+"/d")); !errors.Is(err, backend.ErrNameTooLong) {
		t.Errorf("claim of %d names: %v, want ErrNameTooLong", maxTxnNames+1, err)
	}
	if _, err := a.Uploads(0).BeginWait(coord.WithScope(t.Context()), deepest+"/d", 0); !errors.Is(err, backend.ErrNameTooLong) {
		t.Errorf("upload at depth %d: %v, want ErrNameTooLong", maxTxnNames, err)
	}
	g := new(guarded)
	for i := range 129 {
		g.ranges = append(g.ranges, prefixRange(a.Key("x/", fmt.Sprint(i))))
	}
	if _, _, _, _, err := a.try(t.Context(), g); !errors.Is(err, backend.ErrNameTooLong) {
		t.Errorf("transaction of 129 compares: %v, want ErrNameTooLong", err)
	}
}

// countingCluster is a Cluster whose client counts the calls it sends to etcd.
func countingCluster(b *testing.B, srv *etcdtest.Server, prefix string) (*Cluster, *atomic.Int64) {
	var calls atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{srv.Endpoint()},
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)},
	})
	if err != nil {
		b.Fatal(err)
	}
	c := &Cluster{cli: cli, prefix: prefix, ttl: 10, id: newID()}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Session(b.Context()); err != nil {
		b.Fatal(err)
	}
	return c, &calls
}

// settle waits until the background deletes of released claims have reached etcd,
// so that they are counted in the benchmark's round trips, and returns how many
// calls it made itself.
func settle(b *testing.B, c *Cluster) (calls int64) {
	for deadline := time.Now().Add(guard); ; {
		resp, err := c.Client().Get(b.Context(), c.Key(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
		calls++
		if err != nil {
			b.Fatal(err)
		}
		if resp.Count == 0 {
			return calls
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d keys left", resp.Count)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkClaimAcquireRelease: the claims of a PUT (X on a name three folders deep)
// taken and released, on distinct names and on one name again and again (each
// Acquire then may wait for the previous release's delete).
func BenchmarkClaimAcquireRelease(b *testing.B) {
	srv := etcdtest.Start(b)
	for _, same := range []bool{false, true} {
		b.Run(fmt.Sprint("same_name=", same), func(b *testing.B) {
			c, calls := countingCluster(b, srv, fmt.Sprintf("/bench-claims-%v/", same))
			cl := c.Claims(time.Minute)
			calls.Store(0)
			n := 0
			for i := 0; b.Loop(); i++ {
				name := "/a/b/c/f"
				if !same {
					name = fmt.Sprintf("/a/b/c/f%d", i)
				}
				rel, err := cl.Acquire(b.Context(), claims.Write(name))
				if err != nil {
					b.Fatal(err)
				}
				rel()
				n++
			}
			own := settle(b, c)
			b.ReportMetric(float64(calls.Load()-own)/float64(n), "etcd-calls/op")
		})
	}
}
