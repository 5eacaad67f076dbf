package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"safedav/coord"
	"safedav/internal/etcdtest"
	"safedav/server/idem"
)

// openTTL is open with another session TTL.
func openTTL(t testing.TB, srv *etcdtest.Server, prefix string, ttl time.Duration) *Cluster {
	t.Helper()
	c, err := Open(context.Background(), Options{Endpoints: []string{srv.Endpoint()}, Prefix: prefix, SessionTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// kill makes c stop as a crashed process would: its client closes without revoking
// the session, whose lease then expires after its TTL.
func kill(c *Cluster) { c.cli.Close() }

// idemStep is one call in a scripted idempotency case. Reserve, Done and Abort act
// on the Pending that the last Begin of the same key returned.
type idemStep struct {
	on   int    // which replica: 0 or 1 (the same store in-process)
	do   string // begin, reserve, done, abort
	key  string
	fp   idem.Fingerprint
	rec  idem.Record // for done
	want string      // begin: apply, replay <status> <detail>, unknown, or the error; others: "" or error
}

var (
	putA  = idem.Fingerprint{Principal: "alice", Method: "PUT", Path: "/a", Detail: "h1"}
	moveA = idem.Fingerprint{Principal: "alice", Method: "MOVE", Path: "/a", Detail: "/b\x00T\x00"}
	ok201 = idem.Record{Status: 201, Header: map[string]string{"ETag": `"e1"`}}
)

func with(fp idem.Fingerprint, f func(*idem.Fingerprint)) idem.Fingerprint { f(&fp); return fp }

// idemCases are run against idem.Store and against etcd, which must answer alike.
var idemCases = []struct {
	name  string
	steps []idemStep
}{
	{"first apply, then replay on either replica", []idemStep{
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "reserve", key: "k"},
		{do: "done", key: "k", rec: ok201},
		{on: 1, do: "begin", key: "k", fp: putA, want: "replay 201 h1"},
		{do: "begin", key: "k", fp: putA, want: "replay 201 h1"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Detail = "" }), want: "replay 201 h1"},
	}},
	{"reuse for another request", []idemStep{
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "done", key: "k", rec: ok201},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Path = "/b" }), want: "idem: idempotency key reused for a different request"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Method = "POST" }), want: "idem: idempotency key reused for a different request"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Detail = "h2" }), want: "idem: idempotency key reused for a different request"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Principal = "bob" }), want: "apply"},
	}},
	{"in progress until done", []idemStep{
		{do: "begin", key: "k", fp: moveA, want: "apply"},
		{on: 1, do: "begin", key: "k", fp: moveA, want: "idem: request with this idempotency key is in progress"},
		{on: 1, do: "begin", key: "k", fp: with(moveA, func(f *idem.Fingerprint) { f.Detail = "/c\x00T\x00" }), want: "idem: idempotency key reused for a different request"},
		{do: "reserve", key: "k"},
		{on: 1, do: "begin", key: "k", fp: moveA, want: "idem: request with this idempotency key is in progress"},
		{do: "begin", key: "k", fp: moveA, want: "idem: request with this idempotency key is in progress"},
		{do: "done", key: "k", rec: idem.Record{Status: 204}},
		{on: 1, do: "begin", key: "k", fp: moveA, want: "replay 204 /b\x00T\x00"},
	}},
	{"abort, then a retry applies", []idemStep{
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "abort", key: "k"},
		{on: 1, do: "begin", key: "k", fp: putA, want: "apply"},
		{on: 1, do: "reserve", key: "k"},
		{on: 1, do: "abort", key: "k"},
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Path = "/other" }), want: "apply"},
	}},
	{"a detail not known yet matches any", []idemStep{
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Detail = "" }), want: "apply"},
		{do: "reserve", key: "k"},
		{on: 1, do: "begin", key: "k", fp: putA, want: "idem: request with this idempotency key is in progress"},
		{do: "done", key: "k", rec: idem.Record{Status: 201, Detail: "h2"}},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Detail = "" }), want: "replay 201 h2"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Detail = "h2" }), want: "replay 201 h2"},
		{on: 1, do: "begin", key: "k", fp: putA, want: "idem: idempotency key reused for a different request"},
	}},
	{"malformed keys", []idemStep{
		{do: "begin", key: "", fp: putA, want: "idem: malformed idempotency key"},
		{do: "begin", key: "a b", fp: putA, want: "idem: malformed idempotency key"},
		{do: "begin", key: "é", fp: putA, want: "idem: malformed idempotency key"},
		{do: "begin", key: strings.Repeat("k", idem.MaxKeyLen+1), fp: putA, want: "idem: malformed idempotency key"},
		{do: "begin", key: strings.Repeat("k", idem.MaxKeyLen), fp: putA, want: "apply"},
	}},
	{"done after abort fails; abort after done changes nothing", []idemStep{
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "reserve", key: "k"},
		{do: "done", key: "k", rec: ok201},
		{do: "abort", key: "k"},
		{do: "done", key: "k", rec: ok201, want: "error"},
		{do: "reserve", key: "k", want: "error"},
		{on: 1, do: "begin", key: "k", fp: putA, want: "replay 201 h1"},
		{do: "begin", key: "k2", fp: putA, want: "apply"},
		{do: "abort", key: "k2"},
		{do: "done", key: "k2", rec: ok201, want: "error"},
		{on: 1, do: "begin", key: "k2", fp: putA, want: "apply"},
	}},
	{"a record out of bounds is refused and the key released", []idemStep{
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "reserve", key: "k"},
		{do: "done", key: "k", rec: idem.Record{Status: 201, Body: make([]byte, idem.MaxBody+1)}, want: "error"},
		{on: 1, do: "begin", key: "k", fp: putA, want: "apply"},
		{on: 1, do: "done", key: "k", rec: idem.Record{Status: 99}, want: "error"},
		{do: "begin", key: "k", fp: putA, want: "apply"},
		{do: "done", key: "k", rec: idem.Record{Status: 403, Body: make([]byte, idem.MaxBody), Header: map[string]string{"Content-Type": "text/plain"}}},
		{on: 1, do: "begin", key: "k", fp: putA, want: "replay 403 h1"},
	}},
	{"invalid UTF-8 in a fingerprint equals itself", []idemStep{
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Path = "/\xff\xfe" }), want: "apply"},
		{do: "done", key: "k", rec: ok201},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Path = "/\xff\xfe" }), want: "replay 201 h1"},
		{on: 1, do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Path = "/\xff" }), want: "idem: idempotency key reused for a different request"},
	}},
	{"principals are apart, whatever bytes they hold", []idemStep{
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Principal = "a\x00b" }), want: "apply"},
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Principal = "a%00b" }), want: "apply"},
		{do: "begin", key: "k", fp: with(putA, func(f *idem.Fingerprint) { f.Principal = "a" }), want: "apply"},
		{do: "begin", key: "b\x00k", fp: with(putA, func(f *idem.Fingerprint) { f.Principal = "a" }), want: "idem: malformed idempotency key"},
	}},
}

// runIdemCase plays steps on the two replicas a and b.
func runIdemCase(t *testing.T, stores [2]coord.Idempotency, steps []idemStep) {
	t.Helper()
	pending := map[string]coord.Pending{}
	stored := map[string]idem.Record{}
	for i, s := range steps {
		var got string
		switch s.do {
		case "begin":
			rec, p, err := stores[s.on].Begin(t.Context(), s.key, s.fp)
			switch {
			case err != nil:
				got = err.Error()
			case p != nil && rec == nil:
				got, pending[s.key] = "apply", p
			case rec != nil && p == nil && rec.Unknown:
				got = "unknown"
			case rec != nil && p == nil:
				got = fmt.Sprintf("replay %d %s", rec.Status, rec.Detail)
				want := stored[s.key]
				if !maps.Equal(rec.Header, want.Header) || string(rec.Body) != string(want.Body) || rec.Created.IsZero() {
					t.Errorf("step %d: replayed %+v, stored %+v", i, rec, want)
				}
				if rec.Header != nil {
					rec.Header["X"] = "changed" // the store's copy must not change
				}
				if len(rec.Body) > 0 {
					rec.Body[0] = 'x'
				}
			default:
				got = fmt.Sprintf("record %v and pending %v", rec, p)
			}
		case "reserve":
			got = errText(pending[s.key].Reserve())
		case "done":
			rec := s.rec
			rec.Header = maps.Clone(s.rec.Header)
			if rec.Header == nil {
				rec.Header = map[string]string{}
			}
			got = errText(pending[s.key].Done(rec))
			if got == "" {
				stored[s.key] = idem.Record{Header: maps.Clone(rec.Header), Body: append([]byte(nil), rec.Body...)}
			}
			rec.Header["X"] = "changed" // Done copies
		case "abort":
			pending[s.key].Abort()
		}
		if got != s.want {
			t.Fatalf("step %d (%s %q on %d): %q, want %q", i, s.do, s.key, s.on, got, s.want)
		}
	}
}

func errText(err error) string {
	if err != nil {
		return "error"
	}
	return ""
}

// TestIdemSameAnswers runs every case against idem.Store (one process) and against
// etcd with two replicas, which must give the same answers.
func TestIdemSameAnswers(t *testing.T) {
	srv := etcdtest.Start(t)
	for i, tc := range idemCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("store", func(t *testing.T) {
				// With a file, so that Reserve does what it does in production.
				st, err := idem.Open(idem.Options{Path: t.TempDir() + "/idem.log"})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				l := coord.LocalIdempotency(st)
				runIdemCase(t, [2]coord.Idempotency{l, l}, tc.steps)
			})
			t.Run("etcd", func(t *testing.T) {
				prefix := fmt.Sprintf("/same%d/", i)
				a, b := open(t, srv, prefix), open(t, srv, prefix)
				runIdemCase(t, [2]coord.Idempotency{a.Idempotency(time.Hour), b.Idempotency(time.Hour)}, tc.steps)
			})
		})
	}
}

// TestIdemConcurrentBegin: of many Begins of one key at once on two replicas,
// exactly one proceeds and the others are told it is in progress.
func TestIdemConcurrentBegin(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/conc/"), open(t, srv, "/conc/")
	stores := [2]coord.Idempotency{a.Idempotency(time.Hour), b.Idempotency(time.Hour)}
	const rounds, perReplica = 50, 4
	for r := range rounds {
		key := fmt.Sprintf("k%d", r)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []coord.Pending
		for i := range 2 * perReplica {
			wg.Go(func() {
				<-start
				rec, p, err := stores[i%2].Begin(t.Context(), key, putA)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case p != nil:
					won = append(won, p)
				case !errors.Is(err, idem.ErrInProgress):
					t.Errorf("round %d: Begin = %v, %v; want a Pending or ErrInProgress", r, rec, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d Begins proceeded, want 1", r, len(won))
		}
		if err := won[0].Reserve(); err != nil {
			t.Fatal(err)
		}
		if err := won[0].Done(ok201); err != nil {
			t.Fatal(err)
		}
	}
}

// await calls Begin until it answers other than ErrInProgress (or ErrUnavailable,
// while the client reconnects), for a replica's session to expire or a background
// retry to finish; it fails the test after a generous deadline.
func await(t *testing.T, st coord.Idempotency, key string, fp idem.Fingerprint) (*idem.Record, coord.Pending) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, p, err := st.Begin(t.Context(), key, fp)
		if !errors.Is(err, idem.ErrInProgress) && !errors.Is(err, coord.ErrUnavailable) {
			if err != nil {
				t.Fatalf("Begin: %v", err)
			}
			return rec, p
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %q still in progress after 30 s", key)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIdemReplicaDiesAfterReserve: a replica that dies between Reserve and Done may
// have applied the write, so a retry on another replica is told the outcome is
// unknown once its session expires: neither in progress forever nor applied again.
func TestIdemReplicaDiesAfterReserve(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/dies/"), open(t, srv, "/dies/")
	_, p, err := a.Idempotency(time.Hour).Begin(t.Context(), "k", moveA)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(); err != nil {
		t.Fatal(err)
	}
	kill(a)
	sb := b.Idempotency(time.Hour)
	rec, p := await(t, sb, "k", moveA)
	if p != nil || rec == nil || !rec.Unknown || rec.Detail != moveA.Detail || rec.Created.IsZero() {
		t.Fatalf("after the replica died: %+v, %v; want Record{Unknown}", rec, p)
	}
	if _, _, err := sb.Begin(t.Context(), "k", with(moveA, func(f *idem.Fingerprint) { f.Path = "/x" })); !errors.Is(err, idem.ErrKeyReused) {
		t.Fatalf("another request with the key: %v, want ErrKeyReused", err)
	}
}

// TestIdemReplicaDiesBeforeReserve: a replica that dies before Reserve applied
// nothing, so the key is free again once its session expires.
func TestIdemReplicaDiesBeforeReserve(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/dies2/"), open(t, srv, "/dies2/")
	if _, _, err := a.Idempotency(time.Hour).Begin(t.Context(), "k", putA); err != nil {
		t.Fatal(err)
	}
	kill(a)
	if rec, p := await(t, b.Idempotency(time.Hour), "k", putA); p == nil {
		t.Fatalf("after the replica died before Reserve: %+v, want the key free", rec)
	}
}

// TestIdemRetention: a record replays within its retention only. etcd drops it once
// its lease expires; before that, Begin's clock check decides.
func TestIdemRetention(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/ret/"), open(t, srv, "/ret/")

	t.Run("lease", func(t *testing.T) {
		sa, sb := a.Idempotency(2*time.Second), b.Idempotency(2*time.Second)
		_, p, err := sa.Begin(t.Context(), "k", putA)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(ok201); err != nil {
			t.Fatal(err)
		}
		recKey, _ := sb.(*idemStore).keys(putA.Principal, "k")
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := b.cli.Get(t.Context(), recKey)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Count == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("record still in etcd 30 s after a retention of 2 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if _, p, err := sb.Begin(t.Context(), "k", putA); err != nil || p == nil {
			t.Fatalf("Begin after the record expired: %v, %v; want the key free", p, err)
		}
	})

	t.Run("clock", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		sa, sb := a.idempotency(time.Hour, clock), b.idempotency(time.Hour, clock)
		for _, key := range []string{"done", "unknown"} {
			_, p, err := sa.Begin(t.Context(), key, putA)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Reserve(); err != nil {
				t.Fatal(err)
			}
			if key == "done" {
				err = p.Done(ok201)
			} else {
				// What a dead replica leaves behind: its reservation without its run.
				_, runKey := sa.keys(putA.Principal, key)
				_, err = a.cli.Delete(t.Context(), runKey)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		now = now.Add(time.Hour - time.Nanosecond)
		mu.Unlock()
		if rec, _, err := sb.Begin(t.Context(), "done", putA); err != nil || rec == nil || rec.Unknown {
			t.Fatalf("just within retention: %+v, %v; want a replay", rec, err)
		}
		if rec, _, err := sb.Begin(t.Context(), "unknown", putA); err != nil || rec == nil || !rec.Unknown {
			t.Fatalf("just within retention: %+v, %v; want Unknown", rec, err)
		}
		mu.Lock()
		now = now.Add(time.Nanosecond)
		mu.Unlock()
		for _, key := range []string{"done", "unknown"} {
			// Another fingerprint: an expired record binds the key no more.
			fp := with(putA, func(f *idem.Fingerprint) { f.Path = "/new" })
			_, p, err := sb.Begin(t.Context(), key, fp)
			if err != nil || p == nil {
				t.Fatalf("%s at its retention: %v, %v; want the key free", key, p, err)
			}
			if _, _, err := sa.Begin(t.Context(), key, fp); !errors.Is(err, idem.ErrInProgress) {
				t.Fatalf("%s taken over: %v, want ErrInProgress", key, err)
			}
			if err := p.Done(ok201); err != nil {
				t.Fatal(err)
			}
			if rec, _, err := sa.Begin(t.Context(), key, fp); err != nil || rec == nil || rec.Status != 201 {
				t.Fatalf("%s replay of the new record: %+v, %v", key, rec, err)
			}
		}
	})
}

// TestIdemReservationLost: when the reservation vanished before Done (its lease was
// lost) while the run is still ours, Done records the response anyway, so that a
// retry replays it rather than applying the write a second time.
func TestIdemReservationLost(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/lost/"), open(t, srv, "/lost/")
	sa := a.idempotency(time.Hour, time.Now)
	_, p, err := sa.Begin(t.Context(), "k", putA)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(); err != nil {
		t.Fatal(err)
	}
	recKey, _ := sa.keys(putA.Principal, "k")
	if _, err := a.cli.Delete(t.Context(), recKey); err != nil {
		t.Fatal(err)
	}
	if err := p.Done(ok201); err != nil {
		t.Fatalf("Done: %v", err)
	}
	if rec, _, err := b.Idempotency(time.Hour).Begin(t.Context(), "k", putA); err != nil || rec == nil || rec.Status != 201 {
		t.Fatalf("retry: %+v, %v; want the replay", rec, err)
	}
}

// withinErr runs f and fails the test if it has not returned after a few deadlines: a
// hang, not a slow answer.
func withinErr(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(4 * coord.Deadline):
		t.Fatalf("%s with etcd down did not return", what)
		return nil
	}
}

// TestIdemUnavailable: with etcd killed, Begin, Reserve and Done fail with
// coord.ErrUnavailable instead of hanging; once it is back, the Done and Abort that
// failed are finished in the background (the keys do not stay "in progress" while
// the replica lives) and new requests work.
func TestIdemUnavailable(t *testing.T) {
	srv := etcdtest.Start(t)
	// A long session, which survives etcd's restart, so that only the background
	// retries can release the keys within the test.
	a := openTTL(t, srv, "/down/", time.Minute)
	b := open(t, srv, "/down/")
	sa, sb := a.Idempotency(time.Hour), b.Idempotency(time.Hour)
	var ps []coord.Pending
	for _, key := range []string{"done", "abort", "reserve"} {
		_, p, err := sa.Begin(t.Context(), key, putA)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := ps[0].Reserve(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	err := withinErr(t, "Begin", func() error { _, _, err := sa.Begin(t.Context(), "new", putA); return err })
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Begin: %v, want coord.ErrUnavailable", err)
	}
	if err := withinErr(t, "Done", func() error { return ps[0].Done(ok201) }); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Done: %v, want coord.ErrUnavailable", err)
	}
	withinErr(t, "Abort", func() error { ps[1].Abort(); return nil })
	if err := withinErr(t, "Reserve", ps[2].Reserve); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Reserve: %v, want coord.ErrUnavailable", err)
	}
	ps[2].Abort()

	srv.Restart()
	if rec, _ := await(t, sb, "done", putA); rec == nil || rec.Status != 201 {
		t.Errorf("Done retried after etcd came back: %+v, want the replay", rec)
	}
	for _, key := range []string{"abort", "reserve"} {
		if rec, p := await(t, sb, key, putA); p == nil {
			t.Errorf("%s: %+v, want the key free", key, rec)
		}
	}
	if _, p, err := sa.Begin(t.Context(), "new", putA); err != nil || p == nil {
		t.Errorf("Begin after etcd came back: %v, %v", p, err)
	}
}

// BenchmarkBeginDone measures a request's idempotency cost: Begin, Reserve and Done
// of a new key, and revs/op the etcd revisions it writes (one per transaction).
func BenchmarkBeginDone(b *testing.B) {
	srv := etcdtest.Start(b)
	c := openTTL(b, srv, "/bench/", 10*time.Second)
	st := c.Idempotency(time.Hour)
	ctx := context.Background()
	rev := func() int64 {
		resp, err := c.cli.Get(ctx, "x")
		if err != nil {
			b.Fatal(err)
		}
		return resp.Header.Revision
	}
	r0 := rev()
	i := 0
	for b.Loop() {
		i++
		_, p, err := st.Begin(ctx, fmt.Sprint("k", i), putA)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Reserve(); err != nil {
			b.Fatal(err)
		}
		if err := p.Done(ok201); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rev()-r0)/float64(i), "revs/op")
}

// BenchmarkBeginReplay measures the Begin of a retry that gets its replay.
func BenchmarkBeginReplay(b *testing.B) {
	srv := etcdtest.Start(b)
	c := openTTL(b, srv, "/bench/", 10*time.Second)
	st := c.Idempotency(time.Hour)
	ctx := context.Background()
	_, p, err := st.Begin(ctx, "k", putA)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Done(ok201); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rec, _, err := st.Begin(ctx, "k", putA); err != nil || rec == nil {
			b.Fatal(rec, err)
		}
	}
}
