package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"safedav/backend"
	"safedav/coord"
	"safedav/internal/etcdtest"
	"safedav/locks"
)

const (
	d0   = backend.DepthZero
	dInf = backend.DepthInfinity
)

// clock is an injected, manually advanced time source shared by both replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lockReplicas opens two coord.Locks over one shared state, a and b, with opt (whose Now
// is set to a fresh clock unless given).
type lockReplicas func(t *testing.T, opt locks.Options) (a, b coord.Locks, c *clock)

var prefixes atomic.Int64

// implementations are the Locks whose semantics must be equal: the in-process
// locks.Manager (both "replicas" are the one Manager) and the etcd one, where a and b
// are two replicas with their own etcd clients on one etcd, under a fresh prefix.
func implementations(t *testing.T) map[string]lockReplicas {
	srv := etcdtest.Start(t)
	ca, cb := open(t, srv, "/base/"), open(t, srv, "/base/")
	return map[string]lockReplicas{
		"manager": func(t *testing.T, opt locks.Options) (coord.Locks, coord.Locks, *clock) {
			c := newClock()
			if opt.Now == nil {
				opt.Now = c.Now
			}
			m, err := locks.NewManager(opt)
			if err != nil {
				t.Fatal(err)
			}
			return coord.LocalLocks(m), coord.LocalLocks(m), c
		},
		"etcd": func(t *testing.T, opt locks.Options) (coord.Locks, coord.Locks, *clock) {
			c := newClock()
			if opt.Now == nil {
				opt.Now = c.Now
			}
			p := fmt.Sprintf("/t%d/", prefixes.Add(1))
			return etcdLocks(t, under(ca, p), opt), etcdLocks(t, under(cb, p), opt), c
		},
	}
}

// under is c's connection with another key prefix, so that each case starts empty.
func under(c *Cluster, prefix string) *Cluster {
	return &Cluster{cli: c.cli, prefix: prefix, ttl: c.ttl, id: c.id}
}

func etcdLocks(t testing.TB, c *Cluster, opt locks.Options) *Locks {
	t.Helper()
	l, err := c.Locks(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func mustCreate(t testing.TB, ctx context.Context, l coord.Locks, lk locks.Lock) locks.Lock {
	t.Helper()
	got, err := l.Create(ctx, lk)
	if err != nil {
		t.Fatalf("Create(%+v): %v", lk, err)
	}
	return got
}

// lockedRoot returns the root named by a *LockedError, "" for nil, and fails for any
// other error.
func lockedRoot(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var le *locks.LockedError
	if !errors.As(err, &le) || !errors.Is(err, locks.ErrLocked) {
		t.Fatalf("error %v is not a *LockedError wrapping ErrLocked", err)
	}
	return le.Root
}

func hasLock(t *testing.T, l coord.Locks, name, token string) bool {
	t.Helper()
	ok, err := l.HasLock(context.Background(), name, token)
	if err != nil {
		t.Fatalf("HasLock(%s): %v", name, err)
	}
	return ok
}

// TestLocksSemantics runs the cases of locks/manager_test.go against both
// implementations, each lock made through replica a and used through replica b.
func TestLocksSemantics(t *testing.T) {
	for name, open := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("token", func(t *testing.T) { testToken(t, open) })
			t.Run("invalid", func(t *testing.T) { testInvalid(t, open) })
			t.Run("conflicts", func(t *testing.T) { testConflictMatrix(t, open) })
			t.Run("check", func(t *testing.T) { testCheckMatrix(t, open) })
			t.Run("timeouts", func(t *testing.T) { testTimeoutGranted(t, open) })
			t.Run("expiry", func(t *testing.T) { testExpiry(t, open) })
			t.Run("refresh_unlock", func(t *testing.T) { testRefreshUnlock(t, open) })
			t.Run("discover", func(t *testing.T) { testHasLockAndDiscover(t, open) })
			t.Run("removed", func(t *testing.T) { testRemoved(t, open) })
			t.Run("max_locks", func(t *testing.T) { testMaxLocks(t, open) })
		})
	}
}

func testToken(t *testing.T, open lockReplicas) {
	a, _, _ := open(t, locks.Options{})
	re := regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := range 20 {
		l := mustCreate(t, t.Context(), a, locks.Lock{Root: fmt.Sprintf("/f%d", i), Token: "urn:uuid:chosen-by-client"})
		if !re.MatchString(l.Token) || seen[l.Token] {
			t.Fatalf("token %q is not a fresh urn:uuid v4 [RFC4918 6.5]", l.Token)
		}
		seen[l.Token] = true
	}
}

func testInvalid(t *testing.T, open lockReplicas) {
	a, _, _ := open(t, locks.Options{})
	for _, l := range []locks.Lock{{Root: ""}, {Root: "a"}, {Root: "/a/"}, {Root: "/a", Depth: 1}} {
		if _, err := a.Create(t.Context(), l); !errors.Is(err, locks.ErrInvalidLock) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidLock", l, err)
		}
	}
}

// testConflictMatrix: two locks conflict when the scope of one contains the root of
// the other and at least one is exclusive [RFC4918 6.1, 6.2, 9.10.5].
func testConflictMatrix(t *testing.T, open lockReplicas) {
	rels := []struct{ name, first, later string }{
		{"same", "/a/b", "/a/b"},
		{"later_below", "/a", "/a/b/c"},
		{"later_above", "/a/b/c", "/a"},
		{"sibling", "/a/b", "/a/c"},
		{"prefix_not_parent", "/a", "/ab"},
		{"root_above", "/", "/a"},
		{"root_below", "/a", "/"},
	}
	overlap := map[string]map[int]map[int]bool{
		"same":              {d0: {d0: true, dInf: true}, dInf: {d0: true, dInf: true}},
		"later_below":       {d0: {d0: false, dInf: false}, dInf: {d0: true, dInf: true}},
		"later_above":       {d0: {d0: false, dInf: true}, dInf: {d0: false, dInf: true}},
		"sibling":           {d0: {d0: false, dInf: false}, dInf: {d0: false, dInf: false}},
		"prefix_not_parent": {d0: {d0: false, dInf: false}, dInf: {d0: false, dInf: false}},
		"root_above":        {d0: {d0: false, dInf: false}, dInf: {d0: true, dInf: true}},
		"root_below":        {d0: {d0: false, dInf: true}, dInf: {d0: false, dInf: true}},
	}
	depthName := map[int]string{d0: "0", dInf: "inf"}
	for _, r := range rels {
		for _, s := range []struct {
			name          string
			first, second bool
		}{{"excl_excl", false, false}, {"excl_shared", false, true}, {"shared_excl", true, false}, {"shared_shared", true, true}} {
			for _, fd := range []int{d0, dInf} {
				for _, ld := range []int{d0, dInf} {
					want := overlap[r.name][fd][ld] && !(s.first && s.second)
					t.Run(fmt.Sprintf("%s/%s/depth_%s_%s [RFC4918 6.1]", r.name, s.name, depthName[fd], depthName[ld]), func(t *testing.T) {
						a, b, _ := open(t, locks.Options{})
						mustCreate(t, t.Context(), a, locks.Lock{Root: r.first, Depth: fd, Shared: s.first, Principal: "alice"})
						_, err := b.Create(t.Context(), locks.Lock{Root: r.later, Depth: ld, Shared: s.second, Principal: "alice"})
						if got := lockedRoot(t, err); want && got != r.first {
							t.Fatalf("conflict root = %q (err %v), want %q", got, err, r.first)
						}
						if !want && err != nil {
							t.Fatalf("unexpected conflict: %v", err)
						}
					})
				}
			}
		}
	}
}

type lockSpec struct {
	root, principal string
	depth           int
	shared          bool
	timeout         time.Duration
}

// testCheckMatrix runs each case twice on the etcd replicas: b answering from one
// read ("read"), and b answering from its cache after the Scope saw a's revision
// ("scope").
func testCheckMatrix(t *testing.T, open lockReplicas) {
	tests := []struct {
		name      string
		locks     []lockSpec
		advance   time.Duration
		principal string
		target    string
		infinite  bool
		tokens    []int // indexes into locks; -1 = a token of no lock
		want      string
	}{
		{name: "no_locks", principal: "alice", target: "/a", want: ""},
		{name: "exclusive_no_token [RFC4918 7]", locks: []lockSpec{{root: "/a", principal: "alice"}}, principal: "alice", target: "/a", want: "/a"},
		{name: "exclusive_with_token [RFC4918 7]", locks: []lockSpec{{root: "/a", principal: "alice"}}, principal: "alice", target: "/a", tokens: []int{0}, want: ""},
		{name: "exclusive_unknown_token", locks: []lockSpec{{root: "/a", principal: "alice"}}, principal: "alice", target: "/a", tokens: []int{-1}, want: "/a"},
		{name: "token_of_another_principal [RFC4918 6.4]", locks: []lockSpec{{root: "/a", principal: "alice"}}, principal: "bob", target: "/a", tokens: []int{0}, want: "/a"},
		{name: "anonymous_lock_anonymous_writer", locks: []lockSpec{{root: "/a"}}, principal: "", target: "/a", tokens: []int{0}, want: ""},
		{name: "unrelated_sibling", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}}, principal: "bob", target: "/b", want: ""},
		{name: "prefix_is_not_parent", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}}, principal: "bob", target: "/ab", want: ""},
		{name: "depth_inf_ancestor [RFC4918 7.4]", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}}, principal: "alice", target: "/a/b/c", want: "/a"},
		{name: "depth_inf_ancestor_with_token", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}}, principal: "alice", target: "/a/b/c", tokens: []int{0}, want: ""},
		{name: "depth_inf_root_lock", locks: []lockSpec{{root: "/", principal: "alice", depth: dInf}}, principal: "bob", target: "/x/y", want: "/"},
		{name: "depth0_ancestor_does_not_cover_member", locks: []lockSpec{{root: "/a", principal: "alice", depth: d0}}, principal: "bob", target: "/a/b", want: ""},
		{name: "depth0_collection_itself [RFC4918 7.4]", locks: []lockSpec{{root: "/a", principal: "alice", depth: d0}}, principal: "bob", target: "/a", want: "/a"},
		{name: "lock_below_not_infinite", locks: []lockSpec{{root: "/a/b", principal: "alice"}}, principal: "bob", target: "/a", want: ""},
		{name: "lock_below_infinite [RFC4918 9.6]", locks: []lockSpec{{root: "/a/b/c", principal: "alice"}}, principal: "bob", target: "/a", infinite: true, want: "/a/b/c"},
		{name: "lock_below_infinite_with_token", locks: []lockSpec{{root: "/a/b/c", principal: "alice"}}, principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: ""},
		{name: "lock_below_root_infinite", locks: []lockSpec{{root: "/z", principal: "alice"}}, principal: "alice", target: "/", infinite: true, want: "/z"},
		{name: "look_alike_not_below", locks: []lockSpec{{root: "/a-b", principal: "alice"}, {root: "/ab", principal: "alice"}}, principal: "bob", target: "/a", infinite: true, want: ""},
		{name: "infinite_needs_every_token", locks: []lockSpec{{root: "/a/b", principal: "alice"}, {root: "/a/c", principal: "alice"}}, principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: "/a/c"},
		{name: "infinite_all_tokens", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf, shared: true}, {root: "/a/c", principal: "alice", shared: true}}, principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: ""},
		{name: "shared_holder_own_token [RFC4918 6.2]", locks: []lockSpec{{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}}, principal: "bob", target: "/a", tokens: []int{1}, want: ""},
		{name: "shared_other_holder_own_token [RFC4918 6.2]", locks: []lockSpec{{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}}, principal: "alice", target: "/a", tokens: []int{0}, want: ""},
		{name: "shared_no_token", locks: []lockSpec{{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}}, principal: "carol", target: "/a", want: "/a"},
		{name: "shared_token_stolen [RFC4918 6.4]", locks: []lockSpec{{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}}, principal: "carol", target: "/a", tokens: []int{0, 1}, want: "/a"},
		{name: "shared_depth_inf_ancestor_and_own_shared", locks: []lockSpec{{root: "/a", principal: "alice", shared: true, depth: dInf}, {root: "/a/f", principal: "bob", shared: true}}, principal: "bob", target: "/a/f", tokens: []int{1}, want: ""},
		{name: "shared_token_elsewhere_does_not_count", locks: []lockSpec{{root: "/a", principal: "alice", shared: true}, {root: "/b", principal: "alice", shared: true}}, principal: "alice", target: "/a", tokens: []int{1}, want: "/a"},
		{name: "exclusive_not_satisfied_by_shared_token", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}, {root: "/b", principal: "alice", shared: true}}, principal: "alice", target: "/a/x", tokens: []int{1}, want: "/a"},
		{name: "nearest_reported_first", locks: []lockSpec{{root: "/a", principal: "alice", shared: true, depth: dInf}, {root: "/a/b", principal: "alice", shared: true}}, principal: "bob", target: "/a/b", want: "/a/b"},
		{name: "expired_lock_ignored [RFC4918 6.6]", locks: []lockSpec{{root: "/a", principal: "alice", timeout: time.Minute}}, advance: time.Minute, principal: "bob", target: "/a", want: ""},
		{name: "almost_expired_lock_holds", locks: []lockSpec{{root: "/a", principal: "alice", timeout: time.Minute}}, advance: time.Minute - time.Nanosecond, principal: "bob", target: "/a", want: "/a"},
		{name: "expired_token_does_not_satisfy", locks: []lockSpec{{root: "/a", principal: "alice", shared: true, timeout: time.Hour}, {root: "/a", principal: "alice", shared: true, timeout: time.Minute}}, advance: 2 * time.Minute, principal: "alice", target: "/a", tokens: []int{1}, want: "/a"},
	}
	for _, mode := range []string{"read", "scope"} {
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				a, b, c := open(t, locks.Options{})
				ctx := t.Context()
				if mode == "scope" {
					ctx = coord.WithScope(ctx)
				}
				var toks []string
				for _, s := range tc.locks {
					l := mustCreate(t, ctx, a, locks.Lock{Root: s.root, Principal: s.principal, Depth: s.depth, Shared: s.shared, Timeout: s.timeout})
					toks = append(toks, l.Token)
				}
				c.Advance(tc.advance)
				var submitted []string
				for _, i := range tc.tokens {
					if i < 0 {
						submitted = append(submitted, "urn:uuid:00000000-0000-4000-8000-000000000000")
					} else {
						submitted = append(submitted, toks[i])
					}
				}
				err := b.Check(ctx, tc.principal, tc.target, tc.infinite, submitted)
				if got := lockedRoot(t, err); got != tc.want {
					t.Fatalf("Check = %v (root %q), want root %q", err, got, tc.want)
				}
			})
		}
	}
}

func testTimeoutGranted(t *testing.T, open lockReplicas) {
	a, _, c := open(t, locks.Options{MaxTimeout: time.Hour, DefaultTimeout: 5 * time.Minute})
	for i, tc := range []struct{ asked, want time.Duration }{
		{0, 5 * time.Minute},
		{locks.Infinite, time.Hour}, // RFC4918 10.7: the server may shorten Infinite
		{2 * time.Hour, time.Hour},
		{30 * time.Second, 30 * time.Second},
	} {
		l := mustCreate(t, t.Context(), a, locks.Lock{Root: fmt.Sprintf("/t%d", i), Timeout: tc.asked})
		if l.Timeout != tc.want || !l.Expires.Equal(c.Now().Add(tc.want)) {
			t.Errorf("asked %v: granted %v expiring %v, want %v", tc.asked, l.Timeout, l.Expires, tc.want)
		}
	}
	a2, _, _ := open(t, locks.Options{MaxTimeout: time.Minute})
	if l := mustCreate(t, t.Context(), a2, locks.Lock{Root: "/a"}); l.Timeout != time.Minute {
		t.Errorf("default above max: granted %v, want 1m", l.Timeout)
	}
}

func testExpiry(t *testing.T, open lockReplicas) {
	ctx := coord.WithScope(t.Context())
	a, b, c := open(t, locks.Options{})
	l := mustCreate(t, ctx, a, locks.Lock{Root: "/a", Principal: "alice", Timeout: time.Minute})
	c.Advance(59 * time.Second)
	if err := b.Check(ctx, "bob", "/a", false, nil); err == nil {
		t.Fatal("live lock did not block")
	}
	if !hasLock(t, b, "/a", l.Token) {
		t.Fatal("live lock not found")
	}
	// A refresh restarts the timeout with the one granted before [RFC4918 9.10.2].
	r, err := b.Refresh(ctx, "/a", l.Token, "alice", 0)
	if err != nil || r.Timeout != time.Minute || !r.Expires.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("Refresh = %+v, %v", r, err)
	}
	c.Advance(59 * time.Second)
	if err := a.Check(ctx, "bob", "/a", false, nil); err == nil {
		t.Fatal("refreshed lock did not block")
	}
	c.Advance(time.Second)
	if err := a.Check(ctx, "bob", "/a", false, nil); err != nil {
		t.Fatalf("expired lock blocked: %v", err)
	}
	if ls, _ := b.Discover(ctx, "/a"); hasLock(t, b, "/a", l.Token) || ls != nil {
		t.Fatal("expired lock still found")
	}
	if _, err := b.Refresh(ctx, "/a", l.Token, "alice", 0); !errors.Is(err, locks.ErrNoSuchLock) {
		t.Fatalf("refresh of expired lock: %v", err)
	}
	if err := b.Unlock(ctx, "/a", l.Token, "alice"); !errors.Is(err, locks.ErrNoSuchLock) {
		t.Fatalf("unlock of expired lock: %v", err)
	}
	// The expired exclusive lock (still in etcd: its lease has an hour to go) does not
	// stop a new one.
	mustCreate(t, ctx, b, locks.Lock{Root: "/a", Principal: "bob"})
}

func testRefreshUnlock(t *testing.T, open lockReplicas) {
	tests := []struct {
		name      string
		depth     int
		target    string
		principal string
		token     string // "" = the lock's own
		want      error
	}{
		{"root", d0, "/a", "alice", "", nil},
		{"member_of_depth_inf [RFC4918 9.11]", dInf, "/a/b/c", "alice", "", nil},
		{"member_of_depth0 [RFC4918 9.11.1]", d0, "/a/b", "alice", "", locks.ErrNoSuchLock},
		{"outside_scope", dInf, "/b", "alice", "", locks.ErrNoSuchLock},
		{"ancestor_of_root", dInf, "/", "alice", "", locks.ErrNoSuchLock},
		{"prefix_not_member", dInf, "/ab", "alice", "", locks.ErrNoSuchLock},
		{"unknown_token", dInf, "/a", "alice", "urn:uuid:nope", locks.ErrNoSuchLock},
		{"other_principal [RFC4918 6.4]", d0, "/a", "bob", "", locks.ErrNotOwner},
		{"anonymous_vs_owner", d0, "/a", "", "", locks.ErrNotOwner},
	}
	for _, op := range []string{"refresh", "unlock"} {
		for _, tc := range tests {
			t.Run(op+"/"+tc.name, func(t *testing.T) {
				a, b, _ := open(t, locks.Options{})
				l := mustCreate(t, t.Context(), a, locks.Lock{Root: "/a", Depth: tc.depth, Principal: "alice"})
				token := tc.token
				if token == "" {
					token = l.Token
				}
				var err error
				if op == "refresh" {
					_, err = b.Refresh(t.Context(), tc.target, token, tc.principal, time.Minute)
				} else {
					err = b.Unlock(t.Context(), tc.target, token, tc.principal)
				}
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if there, want := hasLock(t, a, "/a", l.Token), op == "refresh" || tc.want != nil; there != want {
					t.Fatalf("lock present = %v, want %v", there, want)
				}
			})
		}
	}
}

func testHasLockAndDiscover(t *testing.T, open lockReplicas) {
	ctx := coord.WithScope(t.Context())
	a, b, _ := open(t, locks.Options{})
	top := mustCreate(t, ctx, a, locks.Lock{Root: "/", Depth: dInf, Shared: true, Principal: "a"})
	mid0 := mustCreate(t, ctx, b, locks.Lock{Root: "/x", Depth: d0, Shared: true, Principal: "b"})
	mid1 := mustCreate(t, ctx, a, locks.Lock{Root: "/x", Depth: dInf, Shared: true, Principal: "c", Owner: []byte("<D:href>c</D:href>")})
	leaf := mustCreate(t, ctx, b, locks.Lock{Root: "/x/y", Shared: true, Principal: "d"})
	mustCreate(t, ctx, a, locks.Lock{Root: "/x/y/z", Shared: true, Principal: "e"})
	mustCreate(t, ctx, b, locks.Lock{Root: "/q", Shared: true, Principal: "f"})
	for _, tc := range []struct {
		name string
		want []locks.Lock
	}{
		{"/x/y", []locks.Lock{top, mid1, leaf}},
		{"/x", []locks.Lock{top, mid0, mid1}},
		{"/", []locks.Lock{top}},
		{"/x/w", []locks.Lock{top, mid1}},
	} {
		for _, l := range []coord.Locks{a, b} {
			got, err := l.Discover(ctx, tc.name)
			if err != nil || !slices.EqualFunc(got, tc.want, sameLock) {
				t.Errorf("Discover(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		name, token string
		want        bool
	}{
		{"/x/y/z", top.Token, true},
		{"/x/y/z", mid1.Token, true},
		{"/x/y", mid0.Token, false},
		{"/x", mid0.Token, true},
		{"/x/y/z", leaf.Token, false},
		{"/x/y", "urn:uuid:nope", false},
	} {
		if got := hasLock(t, b, tc.name, tc.token); got != tc.want {
			t.Errorf("HasLock(%q, %q) = %v, want %v", tc.name, tc.token, got, tc.want)
		}
	}
}

func sameLock(a, b locks.Lock) bool {
	return a.Token == b.Token && a.Root == b.Root && string(a.Owner) == string(b.Owner) && a.Principal == b.Principal &&
		a.Depth == b.Depth && a.Shared == b.Shared && a.Timeout == b.Timeout && a.Expires.Equal(b.Expires)
}

func testRemoved(t *testing.T, open lockReplicas) {
	ctx := t.Context()
	a, b, _ := open(t, locks.Options{})
	top := mustCreate(t, ctx, a, locks.Lock{Root: "/a", Depth: dInf, Shared: true})
	for _, r := range []string{"/a/b", "/a/b/c", "/a/b-c", "/a/bc"} {
		mustCreate(t, ctx, a, locks.Lock{Root: r, Shared: true})
	}
	// A MOVE or DELETE of /a/b drops the locks rooted at or below it, not the
	// ancestor's, and not the look-alike siblings [RFC4918 7.6].
	b.Removed(ctx, "/a/b")
	var roots []string
	for _, r := range []string{"/a", "/a/b", "/a/b/c", "/a/b-c", "/a/bc"} {
		if err := a.Check(ctx, "x", r, false, nil); lockedRoot(t, err) == r {
			roots = append(roots, r)
		}
	}
	if want := []string{"/a", "/a/b-c", "/a/bc"}; !slices.Equal(roots, want) {
		t.Fatalf("roots after Removed = %q, want %q", roots, want)
	}
	if !hasLock(t, a, "/a/b", top.Token) {
		t.Fatal("ancestor's lock lost")
	}
	b.Removed(ctx, "/")
	if err := a.Check(ctx, "x", "/", true, nil); err != nil {
		t.Fatalf("after Removed(/): %v", err)
	}
	b.Removed(ctx, "/nothing")
}

func testMaxLocks(t *testing.T, open lockReplicas) {
	ctx := coord.WithScope(t.Context())
	a, b, c := open(t, locks.Options{MaxLocks: 2})
	mustCreate(t, ctx, a, locks.Lock{Root: "/a", Timeout: time.Minute})
	mustCreate(t, ctx, b, locks.Lock{Root: "/b"})
	for _, l := range []coord.Locks{a, b} {
		if _, err := l.Create(ctx, locks.Lock{Root: "/c"}); !errors.Is(err, locks.ErrTooManyLocks) {
			t.Fatalf("third lock: %v", err)
		}
	}
	c.Advance(time.Minute) // /a expires and makes room
	mustCreate(t, ctx, b, locks.Lock{Root: "/c"})
}

// pair opens two replicas, each with its own etcd client, on srv under prefix.
func pair(t *testing.T, srv *etcdtest.Server, prefix string, opt locks.Options) (ca, cb *Cluster, a, b *Locks) {
	ca, cb = open(t, srv, prefix), open(t, srv, prefix)
	return ca, cb, etcdLocks(t, ca, opt), etcdLocks(t, cb, opt)
}

// TestLocksEnforcedAcrossReplicas: a lock granted through a is enforced by b's very
// next Check and HasLock, round after round, whether b reads etcd (no revision seen)
// or answers from its cache after its request saw a later revision of a write of
// its own under the cluster prefix (no round trip then), or of a write elsewhere in
// etcd, which no watch event brings (b then waits catchUp and reads).
func TestLocksEnforcedAcrossReplicas(t *testing.T) {
	srv := etcdtest.Start(t)
	ca, cb := open(t, srv, "/across/"), open(t, srv, "/across/")
	kv := &countingKV{KV: cb.cli.KV}
	cb.cli.KV = kv
	a, b := etcdLocks(t, ca, locks.Options{}), etcdLocks(t, cb, locks.Options{})
	for _, mode := range []string{"read", "scope_write", "scope_foreign"} {
		t.Run(mode, func(t *testing.T) {
			rounds := 100
			if mode == "scope_foreign" {
				rounds = 10 // each waits catchUp, four times
			}
			reads := 0
			for i := range rounds {
				name := fmt.Sprintf("/%s/f%d", mode, i)
				l := mustCreate(t, t.Context(), a, locks.Lock{Root: name, Principal: "alice"})
				ctx := t.Context()
				switch mode {
				case "scope_write":
					ctx = coord.WithScope(ctx)
					resp, err := cb.Client().Put(ctx, cb.Key("upload", name), "1")
					if err != nil {
						t.Fatal(err)
					}
					coord.ScopeOf(ctx).Observe(resp.Header.Revision)
				case "scope_foreign":
					ctx = coord.WithScope(ctx)
					resp, err := cb.Client().Put(ctx, "/elsewhere/x", "1")
					if err != nil {
						t.Fatal(err)
					}
					coord.ScopeOf(ctx).Observe(resp.Header.Revision)
				}
				n0 := kv.n.Load()
				if err := b.Check(ctx, "alice", name, false, nil); lockedRoot(t, err) != name {
					t.Fatalf("round %d: Check on b without the token = %v", i, err)
				}
				if err := b.Check(ctx, "alice", backend.Parent(name), true, nil); lockedRoot(t, err) != name {
					t.Fatalf("round %d: infinite Check of the parent on b = %v", i, err)
				}
				if ok, err := b.HasLock(ctx, name, l.Token); !ok || err != nil {
					t.Fatalf("round %d: HasLock on b = %v, %v", i, ok, err)
				}
				if err := b.Check(ctx, "alice", name, false, []string{l.Token}); err != nil {
					t.Fatalf("round %d: Check on b with the token = %v", i, err)
				}
				if kv.n.Load() > n0 {
					reads++
				}
				if err := b.Unlock(ctx, name, l.Token, "alice"); err != nil {
					t.Fatalf("round %d: Unlock on b = %v", i, err)
				}
				if err := a.Check(t.Context(), "bob", name, false, nil); err != nil {
					t.Fatalf("round %d: Check on a after unlock on b = %v", i, err)
				}
			}
			// With a revision seen, the cache answers; it falls back to reading etcd
			// only when it is not caught up within catchUp, which a loaded machine may
			// cause now and then, never in most rounds.
			t.Logf("%d of %d rounds read etcd", reads, rounds)
			if mode == "scope_write" && reads > rounds/2 {
				t.Fatalf("%d of %d rounds read etcd despite a seen revision", reads, rounds)
			}
		})
	}
}

// TestLocksRaceExclusive: two replicas locking the same resource at once; exactly
// one wins and the other gets a *LockedError naming the winner's root.
func TestLocksRaceExclusive(t *testing.T) {
	srv := etcdtest.Start(t)
	_, _, a, b := pair(t, srv, "/race/", locks.Options{})
	for _, tc := range []struct {
		name   string
		ra, rb locks.Lock
	}{
		{"same_file", locks.Lock{Root: "/f"}, locks.Lock{Root: "/f"}},
		{"shared_vs_exclusive", locks.Lock{Root: "/f", Shared: true}, locks.Lock{Root: "/f"}},
		{"parent_inf_vs_child", locks.Lock{Root: "/d", Depth: dInf}, locks.Lock{Root: "/d/f"}},
		{"root_inf_vs_deep", locks.Lock{Root: "/", Depth: dInf, Shared: true}, locks.Lock{Root: "/x/y/z", Depth: dInf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 50 {
				ra, rb := tc.ra, tc.rb
				p := fmt.Sprintf("/%s%d", tc.name, i)
				ra.Root = strings.TrimSuffix(p+ra.Root, "/")
				rb.Root = strings.TrimSuffix(p+rb.Root, "/")
				var errs [2]error
				var wg sync.WaitGroup
				for j, x := range []struct {
					l  *Locks
					lk locks.Lock
				}{{a, ra}, {b, rb}} {
					wg.Go(func() { _, errs[j] = x.l.Create(t.Context(), x.lk) })
				}
				wg.Wait()
				if (errs[0] == nil) == (errs[1] == nil) {
					t.Fatalf("round %d: %v and %v, want exactly one winner", i, errs[0], errs[1])
				}
				for j, err := range errs {
					if err != nil && lockedRoot(t, err) != []string{rb.Root, ra.Root}[j] {
						t.Fatalf("round %d: loser's conflict %v", i, err)
					}
				}
			}
		})
	}
	// Shared locks coexist when raced too.
	for i := range 20 {
		var wg sync.WaitGroup
		for _, l := range []*Locks{a, b} {
			wg.Go(func() {
				if _, err := l.Create(t.Context(), locks.Lock{Root: fmt.Sprintf("/shared%d", i), Shared: true}); err != nil {
					t.Errorf("shared lock refused: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// TestLocksOutliveReplica: a lock belongs to its client, not to the replica that
// granted it. When that replica closes (its session revoked) the lock stays, and the
// other replica enforces it until its timeout; then etcd drops it by itself (a real
// lease expiry) and the name is free.
func TestLocksOutliveReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	ca, cb, a, b := pair(t, srv, "/outlive/", locks.Options{})
	l := mustCreate(t, t.Context(), a, locks.Lock{Root: "/f", Principal: "alice", Timeout: 2 * time.Second})
	a.Close()
	ca.Close()
	if err := b.Check(t.Context(), "bob", "/f", false, nil); lockedRoot(t, err) != "/f" {
		t.Fatalf("lock of a closed replica not enforced: %v", err)
	}
	if _, err := b.Refresh(t.Context(), "/f", l.Token, "alice", 2*time.Second); err != nil {
		t.Fatalf("refresh through the other replica: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cb.Client().Get(t.Context(), cb.Key("lock/"), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock's key is still in etcd long after its timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Check(t.Context(), "bob", "/f", false, nil); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	mustCreate(t, t.Context(), b, locks.Lock{Root: "/f", Principal: "bob"})
}

// TestLocksEtcdDown: with etcd killed every call on a request's path fails with
// coord.ErrUnavailable (bounded by coord.Deadline), a canceled request gets its own
// error, Removed reports and returns, and Discover still answers from the cache.
// After a restart everything works again and the cache follows new changes.
func TestLocksEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	var reported atomic.Value
	opt := locks.Options{OnSaveError: func(err error) { reported.Store(err) }}
	_, _, a, b := pair(t, srv, "/down/", opt)
	l := mustCreate(t, t.Context(), a, locks.Lock{Root: "/f", Principal: "alice", Timeout: time.Minute})
	waitDiscover(t, b, "/f", 1)
	srv.Stop()

	scoped := coord.WithScope(t.Context())
	coord.ScopeOf(scoped).Observe(1 << 40) // a revision the cache never reaches
	var wg sync.WaitGroup
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { _, err := b.Create(ctx, locks.Lock{Root: "/g"}); return err }},
		{"refresh", func(ctx context.Context) error { _, err := b.Refresh(ctx, "/f", l.Token, "alice", 0); return err }},
		{"unlock", func(ctx context.Context) error { return b.Unlock(ctx, "/f", l.Token, "alice") }},
		{"check", func(ctx context.Context) error { return b.Check(ctx, "bob", "/f", false, nil) }},
		{"check_scope", func(context.Context) error { return b.Check(scoped, "bob", "/f", false, nil) }},
		{"has_lock", func(ctx context.Context) error { _, err := b.HasLock(ctx, "/f", l.Token); return err }},
	} {
		wg.Go(func() {
			start := time.Now()
			if err := tc.do(t.Context()); !errors.Is(err, coord.ErrUnavailable) {
				t.Errorf("%s with etcd down: %v, want coord.ErrUnavailable", tc.name, err)
			}
			t.Logf("%s failed after %v", tc.name, time.Since(start).Round(time.Millisecond))
			canceled, cancel := context.WithCancel(t.Context())
			cancel()
			if err := tc.do(canceled); !errors.Is(err, context.Canceled) && tc.name != "check_scope" {
				t.Errorf("%s canceled: %v, want context.Canceled", tc.name, err)
			}
		})
	}
	wg.Go(func() { b.Removed(t.Context(), "/f") })
	wg.Wait()
	if err, _ := reported.Load().(error); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Removed with etcd down reported %v", err)
	}
	if ls, err := b.Discover(t.Context(), "/f"); err != nil || len(ls) != 1 || ls[0].Token != l.Token {
		t.Errorf("Discover with etcd down = %+v, %v; want the cached lock", ls, err)
	}

	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	var g locks.Lock
	for {
		var err error
		if g, err = b.Create(t.Context(), locks.Lock{Root: "/g"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after etcd restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitDiscover(t, a, "/g", 1)
	ctx := coord.WithScope(t.Context())
	if err := a.Unlock(ctx, "/f", l.Token, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "bob", "/f", false, nil); err != nil {
		t.Fatalf("b's cache did not follow the unlock after the restart: %v", err)
	}
	if err := b.Check(ctx, "bob", "/g", false, nil); lockedRoot(t, err) != "/g" || g.Root != "/g" {
		t.Fatalf("lock made after the restart: %v", err)
	}
}

// TestLocksRelistAfterCompaction: a watch that resumes from a compacted revision
// fails; the cache must list the locks again rather than keep what it had.
func TestLocksRelistAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	ca, _, a, b := pair(t, srv, "/compact/", locks.Options{})
	gone := mustCreate(t, t.Context(), a, locks.Lock{Root: "/gone"})
	waitDiscover(t, b, "/gone", 1)
	b.Close() // b's replica stops watching, as while partitioned
	if err := a.Unlock(t.Context(), "/gone", gone.Token, ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, t.Context(), a, locks.Lock{Root: "/new"})
	resp, err := ca.Client().Put(t.Context(), ca.Key("filler"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Client().Compact(t.Context(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop, b.done = stop, make(chan struct{})
	go b.watch(ctx)
	waitDiscover(t, b, "/new", 1)
	waitDiscover(t, b, "/gone", 0)
}

// waitDiscover waits until l's cache shows n locks covering name.
func waitDiscover(t *testing.T, l coord.Locks, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := l.Discover(t.Context(), name)
		if err == nil && len(ls) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Discover(%s) = %d locks, %v; want %d", name, len(ls), err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLocksDeepNames: a lock's conflict check must fit one transaction, so a lock
// too deep is refused with ErrTooDeep; but a Check of a deep name (every write) reads
// in several transactions at one revision and still finds the lock of an ancestor.
func TestLocksDeepNames(t *testing.T) {
	srv := etcdtest.Start(t)
	_, _, a, b := pair(t, srv, "/deep/", locks.Options{})
	deep := "/a" + strings.Repeat("/d", 99)
	if _, err := a.Create(t.Context(), locks.Lock{Root: deep}); !errors.Is(err, ErrTooDeep) || !errors.Is(err, locks.ErrInvalidLock) {
		t.Fatalf("lock 100 levels deep: %v, want ErrTooDeep", err)
	}
	if err := b.Check(t.Context(), "bob", deep, true, nil); err != nil {
		t.Fatalf("deep name, no locks: %v", err)
	}
	mustCreate(t, t.Context(), a, locks.Lock{Root: "/a", Depth: dInf, Shared: true})
	if err := b.Check(t.Context(), "bob", deep, true, nil); lockedRoot(t, err) != "/a" {
		t.Fatalf("deep name under a locked ancestor: %v", err)
	}
}

// countingKV counts the calls that reach etcd through the KV interface.
type countingKV struct {
	clientv3.KV
	n atomic.Int64
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.n.Add(1)
	return c.KV.Txn(ctx)
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.n.Add(1)
	return c.KV.Get(ctx, key, opts...)
}

// BenchmarkCheckNoLocks: the Check of every write, with no lock anywhere. "read" is a
// request that has seen no revision (one etcd transaction); "scope" one that has (the
// cache answers).
func BenchmarkCheckNoLocks(b *testing.B) {
	srv := etcdtest.Start(b)
	c, err := Open(b.Context(), Options{Endpoints: []string{srv.Endpoint()}, Prefix: "/bench/"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	kv := &countingKV{KV: c.cli.KV}
	c.cli.KV = kv
	l := etcdLocks(b, c, locks.Options{})
	resp, err := c.cli.Put(b.Context(), c.Key("upload/x"), "1")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"read", "scope"} {
		b.Run(mode, func(b *testing.B) {
			ctx := b.Context()
			if mode == "scope" {
				ctx = coord.WithScope(ctx)
				coord.ScopeOf(ctx).Observe(resp.Header.Revision)
			}
			b.ReportAllocs()
			n0 := kv.n.Load()
			for b.Loop() {
				if err := l.Check(ctx, "alice", "/a/b/c/d.txt", false, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(kv.n.Load()-n0)/float64(b.N), "roundtrips/op")
		})
	}
}

// TestLocksUnreadableKey: a key under lock/ that is not a lock (written by hand)
// makes a conflicting Create fail at once rather than retry until the deadline, and
// is ignored by checks.
func TestLocksUnreadableKey(t *testing.T) {
	srv := etcdtest.Start(t)
	ca, _, a, b := pair(t, srv, "/garbage/", locks.Options{})
	if _, err := ca.Client().Put(t.Context(), ca.Key("lock/x//f\x000\x00junk"), "not json"); err != nil {
		t.Fatal(err)
	}
	_, err := a.Create(t.Context(), locks.Lock{Root: "/f"})
	if err == nil || errors.Is(err, coord.ErrUnavailable) || errors.Is(err, locks.ErrLocked) {
		t.Fatalf("Create over an unreadable key: %v", err)
	}
	if err := b.Check(t.Context(), "bob", "/f", true, nil); err != nil {
		t.Fatalf("Check over an unreadable key: %v", err)
	}
}
