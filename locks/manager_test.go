package locks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"safedav/backend"
)

const (
	d0   = backend.DepthZero
	dInf = backend.DepthInfinity
)

// clock is an injected, manually advanced time source.
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

func newManager(t testing.TB, opt Options) (*Manager, *clock) {
	t.Helper()
	c := newClock()
	if opt.Now == nil {
		opt.Now = c.Now
	}
	m, err := NewManager(opt)
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func mustCreate(t testing.TB, m *Manager, l Lock) Lock {
	t.Helper()
	got, err := m.Create(context.Background(), l)
	if err != nil {
		t.Fatalf("Create(%+v): %v", l, err)
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
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("error %v is not a *LockedError wrapping ErrLocked", err)
	}
	return le.Root
}

func TestCreateToken(t *testing.T) {
	m, _ := newManager(t, Options{})
	re := regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := range 50 {
		l := mustCreate(t, m, Lock{Root: fmt.Sprintf("/f%d", i), Token: "urn:uuid:chosen-by-client"})
		if !re.MatchString(l.Token) {
			t.Fatalf("token %q is not a urn:uuid v4 [RFC4918 6.5]", l.Token)
		}
		if seen[l.Token] {
			t.Fatalf("token %q repeated", l.Token)
		}
		seen[l.Token] = true
	}
}

func TestCreateInvalid(t *testing.T) {
	m, _ := newManager(t, Options{})
	for _, l := range []Lock{{Root: ""}, {Root: "a"}, {Root: "/a/"}, {Root: "/a", Depth: 1}} {
		if _, err := m.Create(context.Background(), l); !errors.Is(err, ErrInvalidLock) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidLock", l, err)
		}
	}
}

func TestCreateOwnerCopied(t *testing.T) {
	m, _ := newManager(t, Options{})
	owner := []byte("<D:href>mailto:a@example.org</D:href>")
	l := mustCreate(t, m, Lock{Root: "/a", Owner: owner})
	owner[0] = 'X'
	l.Owner[1] = 'Y'
	if got := string(m.Discover("/a")[0].Owner); got != "<D:href>mailto:a@example.org</D:href>" {
		t.Fatalf("stored owner changed through a caller's slice: %q", got)
	}
}

// TestCreateConflictMatrix: two locks conflict when the scope of one contains the root
// of the other and at least one is exclusive [RFC4918 6.1, 6.2, 9.10.5].
func TestCreateConflictMatrix(t *testing.T) {
	type rel struct {
		name         string
		first, later string // roots
	}
	rels := []rel{
		{"same", "/a/b", "/a/b"},
		{"later_below", "/a", "/a/b/c"},
		{"later_above", "/a/b/c", "/a"},
		{"sibling", "/a/b", "/a/c"},
		{"prefix_not_parent", "/a", "/ab"},
		{"root_above", "/", "/a"},
	}
	// overlap[relation][firstDepth][laterDepth]: does one scope contain the other's root?
	overlap := map[string]map[int]map[int]bool{
		"same":              {d0: {d0: true, dInf: true}, dInf: {d0: true, dInf: true}},
		"later_below":       {d0: {d0: false, dInf: false}, dInf: {d0: true, dInf: true}},
		"later_above":       {d0: {d0: false, dInf: true}, dInf: {d0: false, dInf: true}},
		"sibling":           {d0: {d0: false, dInf: false}, dInf: {d0: false, dInf: false}},
		"prefix_not_parent": {d0: {d0: false, dInf: false}, dInf: {d0: false, dInf: false}},
		"root_above":        {d0: {d0: false, dInf: false}, dInf: {d0: true, dInf: true}},
	}
	scopes := []struct {
		name          string
		first, second bool // Shared
	}{
		{"excl_excl", false, false},
		{"excl_shared", false, true},
		{"shared_excl", true, false},
		{"shared_shared", true, true},
	}
	depthName := map[int]string{d0: "0", dInf: "inf"}
	for _, r := range rels {
		for _, s := range scopes {
			for _, fd := range []int{d0, dInf} {
				for _, ld := range []int{d0, dInf} {
					want := overlap[r.name][fd][ld] && !(s.first && s.second)
					name := fmt.Sprintf("%s/%s/depth_%s_%s [RFC4918 6.1]", r.name, s.name, depthName[fd], depthName[ld])
					t.Run(name, func(t *testing.T) {
						m, _ := newManager(t, Options{})
						mustCreate(t, m, Lock{Root: r.first, Depth: fd, Shared: s.first, Principal: "alice"})
						// The same principal conflicts too: an exclusive lock excludes
						// every other lock, whoever asks.
						_, err := m.Create(context.Background(), Lock{Root: r.later, Depth: ld, Shared: s.second, Principal: "alice"})
						got := lockedRoot(t, err)
						if want && got != r.first {
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

func TestCreateConflictFoundAmongManyRoots(t *testing.T) {
	// "/a-b" and "/a.b" sort between "/a" and "/a/…": the search for locks below "/a"
	// must step over them and still find "/a/z".
	m, _ := newManager(t, Options{})
	for _, r := range []string{"/a b", "/a-b", "/a.b", "/a/z", "/a0", "/b"} {
		mustCreate(t, m, Lock{Root: r})
	}
	_, err := m.Create(context.Background(), Lock{Root: "/a", Depth: dInf})
	if got := lockedRoot(t, err); got != "/a/z" {
		t.Fatalf("conflict root = %q, want /a/z", got)
	}
	if _, err := m.Create(context.Background(), Lock{Root: "/a", Depth: d0}); err != nil {
		t.Fatalf("depth 0 lock on /a: %v", err)
	}
}

func TestBelow(t *testing.T) {
	m, _ := newManager(t, Options{})
	for _, r := range []string{"/", "/a", "/a b", "/a-b", "/a.b", "/a/b", "/a/b/c", "/a/c", "/a0", "/ab", "/b/a"} {
		mustCreate(t, m, Lock{Root: r, Shared: true})
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"/", []string{"/a", "/a b", "/a-b", "/a.b", "/a/b", "/a/b/c", "/a/c", "/a0", "/ab", "/b/a"}},
		{"/a", []string{"/a/b", "/a/b/c", "/a/c"}},
		{"/a/b", []string{"/a/b/c"}},
		{"/a/b/c", nil},
		{"/b", []string{"/b/a"}},
		{"/c", nil},
		{"/a-", nil},
	} {
		m.mu.RLock()
		got := m.belowLocked(tc.name)
		m.mu.RUnlock()
		if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
			t.Errorf("below(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// lockSpec describes a lock to set up in a table test.
type lockSpec struct {
	root, principal string
	depth           int
	shared          bool
	timeout         time.Duration
}

func TestCheckMatrix(t *testing.T) {
	tests := []struct {
		name      string
		locks     []lockSpec
		advance   time.Duration // clock moves after the locks are created
		principal string
		target    string
		infinite  bool
		tokens    []int // indexes into locks; -1 = a token of no lock
		want      string
	}{
		{name: "no_locks", principal: "alice", target: "/a", want: ""},
		{name: "exclusive_no_token [RFC4918 7]", locks: []lockSpec{{root: "/a", principal: "alice"}},
			principal: "alice", target: "/a", want: "/a"},
		{name: "exclusive_with_token [RFC4918 7]", locks: []lockSpec{{root: "/a", principal: "alice"}},
			principal: "alice", target: "/a", tokens: []int{0}, want: ""},
		{name: "exclusive_unknown_token", locks: []lockSpec{{root: "/a", principal: "alice"}},
			principal: "alice", target: "/a", tokens: []int{-1}, want: "/a"},
		{name: "token_of_another_principal [RFC4918 6.4]", locks: []lockSpec{{root: "/a", principal: "alice"}},
			principal: "bob", target: "/a", tokens: []int{0}, want: "/a"},
		{name: "anonymous_lock_anonymous_writer", locks: []lockSpec{{root: "/a"}},
			principal: "", target: "/a", tokens: []int{0}, want: ""},
		{name: "unrelated_sibling", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}},
			principal: "bob", target: "/b", want: ""},
		{name: "prefix_is_not_parent", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}},
			principal: "bob", target: "/ab", want: ""},
		{name: "depth_inf_ancestor [RFC4918 7.4]", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}},
			principal: "alice", target: "/a/b/c", want: "/a"},
		{name: "depth_inf_ancestor_with_token", locks: []lockSpec{{root: "/a", principal: "alice", depth: dInf}},
			principal: "alice", target: "/a/b/c", tokens: []int{0}, want: ""},
		{name: "depth_inf_root_lock", locks: []lockSpec{{root: "/", principal: "alice", depth: dInf}},
			principal: "bob", target: "/x/y", want: "/"},
		{name: "depth0_ancestor_does_not_cover_member", locks: []lockSpec{{root: "/a", principal: "alice", depth: d0}},
			principal: "bob", target: "/a/b", want: ""},
		{name: "depth0_collection_itself [RFC4918 7.4]", locks: []lockSpec{{root: "/a", principal: "alice", depth: d0}},
			principal: "bob", target: "/a", want: "/a"},
		{name: "lock_below_not_infinite", locks: []lockSpec{{root: "/a/b", principal: "alice"}},
			principal: "bob", target: "/a", want: ""},
		{name: "lock_below_infinite [RFC4918 9.6]", locks: []lockSpec{{root: "/a/b/c", principal: "alice"}},
			principal: "bob", target: "/a", infinite: true, want: "/a/b/c"},
		{name: "lock_below_infinite_with_token", locks: []lockSpec{{root: "/a/b/c", principal: "alice"}},
			principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: ""},
		{name: "lock_below_root_infinite", locks: []lockSpec{{root: "/z", principal: "alice"}},
			principal: "alice", target: "/", infinite: true, want: "/z"},
		{name: "infinite_needs_every_token", locks: []lockSpec{
			{root: "/a/b", principal: "alice"}, {root: "/a/c", principal: "alice"}},
			principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: "/a/c"},
		{name: "infinite_all_tokens", locks: []lockSpec{
			{root: "/a", principal: "alice", depth: dInf, shared: true}, {root: "/a/c", principal: "alice", shared: true}},
			principal: "alice", target: "/a", infinite: true, tokens: []int{0}, want: ""},
		{name: "shared_holder_own_token [RFC4918 6.2]", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}},
			principal: "bob", target: "/a", tokens: []int{1}, want: ""},
		{name: "shared_other_holder_own_token [RFC4918 6.2]", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}},
			principal: "alice", target: "/a", tokens: []int{0}, want: ""},
		{name: "shared_no_token", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}},
			principal: "carol", target: "/a", want: "/a"},
		{name: "shared_token_stolen [RFC4918 6.4]", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true}, {root: "/a", principal: "bob", shared: true}},
			principal: "carol", target: "/a", tokens: []int{0, 1}, want: "/a"},
		{name: "shared_depth_inf_ancestor_and_own_shared", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true, depth: dInf}, {root: "/a/f", principal: "bob", shared: true}},
			principal: "bob", target: "/a/f", tokens: []int{1}, want: ""},
		{name: "shared_token_elsewhere_does_not_count", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true}, {root: "/b", principal: "alice", shared: true}},
			principal: "alice", target: "/a", tokens: []int{1}, want: "/a"},
		{name: "exclusive_not_satisfied_by_shared_token", locks: []lockSpec{
			{root: "/a", principal: "alice", depth: dInf}, {root: "/b", principal: "alice", shared: true}},
			principal: "alice", target: "/a/x", tokens: []int{1}, want: "/a"},
		{name: "nearest_reported_first", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true, depth: dInf}, {root: "/a/b", principal: "alice", shared: true}},
			principal: "bob", target: "/a/b", want: "/a/b"},
		{name: "expired_lock_ignored [RFC4918 6.6]", locks: []lockSpec{{root: "/a", principal: "alice", timeout: time.Minute}},
			advance: time.Minute, principal: "bob", target: "/a", want: ""},
		{name: "almost_expired_lock_holds", locks: []lockSpec{{root: "/a", principal: "alice", timeout: time.Minute}},
			advance: time.Minute - time.Nanosecond, principal: "bob", target: "/a", want: "/a"},
		{name: "expired_token_does_not_satisfy", locks: []lockSpec{
			{root: "/a", principal: "alice", shared: true, timeout: time.Hour}, {root: "/a", principal: "alice", shared: true, timeout: time.Minute}},
			advance: 2 * time.Minute, principal: "alice", target: "/a", tokens: []int{1}, want: "/a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c := newManager(t, Options{})
			var toks []string
			for _, s := range tc.locks {
				l := mustCreate(t, m, Lock{Root: s.root, Principal: s.principal, Depth: s.depth, Shared: s.shared, Timeout: s.timeout})
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
			err := m.Check(context.Background(), tc.principal, tc.target, tc.infinite, submitted)
			if got := lockedRoot(t, err); got != tc.want {
				t.Fatalf("Check = %v (root %q), want root %q", err, got, tc.want)
			}
		})
	}
}

func TestTimeoutGranted(t *testing.T) {
	m, c := newManager(t, Options{MaxTimeout: time.Hour, DefaultTimeout: 5 * time.Minute})
	for i, tc := range []struct {
		asked, want time.Duration
	}{
		{0, 5 * time.Minute},       // no Timeout header
		{Infinite, time.Hour},      // RFC4918 10.7: the server may shorten Infinite
		{2 * time.Hour, time.Hour}, // capped
		{30 * time.Second, 30 * time.Second},
	} {
		l := mustCreate(t, m, Lock{Root: fmt.Sprintf("/t%d", i), Timeout: tc.asked})
		if l.Timeout != tc.want || !l.Expires.Equal(c.Now().Add(tc.want)) {
			t.Errorf("asked %v: granted %v expiring %v, want %v", tc.asked, l.Timeout, l.Expires, tc.want)
		}
	}
	// Defaults of the zero Options; DefaultTimeout never exceeds MaxTimeout.
	m2, _ := newManager(t, Options{})
	if l := mustCreate(t, m2, Lock{Root: "/a"}); l.Timeout != DefaultTimeout {
		t.Errorf("default timeout %v, want %v", l.Timeout, DefaultTimeout)
	}
	if l := mustCreate(t, m2, Lock{Root: "/b", Timeout: Infinite}); l.Timeout != DefaultMaxTimeout {
		t.Errorf("infinite timeout %v, want %v", l.Timeout, DefaultMaxTimeout)
	}
	m3, _ := newManager(t, Options{MaxTimeout: time.Minute})
	if l := mustCreate(t, m3, Lock{Root: "/a"}); l.Timeout != time.Minute {
		t.Errorf("default above max: granted %v, want 1m", l.Timeout)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	m, c := newManager(t, Options{})
	l := mustCreate(t, m, Lock{Root: "/a", Principal: "alice", Timeout: time.Minute})
	c.Advance(59 * time.Second)
	if err := m.Check(ctx, "bob", "/a", false, nil); err == nil {
		t.Fatal("live lock did not block")
	}
	if !m.HasLock("/a", l.Token) || len(m.Discover("/a")) != 1 {
		t.Fatal("live lock not found")
	}
	// A refresh restarts the timeout with the one granted before [RFC4918 9.10.2].
	r, err := m.Refresh(ctx, "/a", l.Token, "alice", 0)
	if err != nil || r.Timeout != time.Minute || !r.Expires.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("Refresh = %+v, %v", r, err)
	}
	c.Advance(59 * time.Second)
	if err := m.Check(ctx, "bob", "/a", false, nil); err == nil {
		t.Fatal("refreshed lock did not block")
	}
	c.Advance(time.Second)
	if err := m.Check(ctx, "bob", "/a", false, nil); err != nil {
		t.Fatalf("expired lock blocked: %v", err)
	}
	if m.HasLock("/a", l.Token) || m.Discover("/a") != nil {
		t.Fatal("expired lock still found")
	}
	if _, err := m.Refresh(ctx, "/a", l.Token, "alice", 0); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("refresh of expired lock: %v", err)
	}
	if err := m.Unlock(ctx, "/a", l.Token, "alice"); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("unlock of expired lock: %v", err)
	}
	// The expired exclusive lock does not stop a new one, and is swept from memory.
	mustCreate(t, m, Lock{Root: "/a", Principal: "bob"})
	m.mu.RLock()
	n := len(m.byToken)
	m.mu.RUnlock()
	if n != 1 {
		t.Fatalf("%d locks in memory, want 1 (expired one swept)", n)
	}
}

func TestSweep(t *testing.T) {
	m, c := newManager(t, Options{})
	short := mustCreate(t, m, Lock{Root: "/a", Timeout: time.Minute})
	mustCreate(t, m, Lock{Root: "/b", Timeout: 2 * time.Minute})
	// A refresh to a shorter timeout must still be swept on time.
	mustCreate(t, m, Lock{Root: "/c", Timeout: time.Hour})
	long := m.Discover("/c")[0]
	if _, err := m.Refresh(context.Background(), "/c", long.Token, "", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(90 * time.Second)
	m.Sweep()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.byToken) != 1 || m.byToken[short.Token] != nil || len(m.roots) != 1 || m.roots[0] != "/b" {
		t.Fatalf("after sweep: %d locks, roots %q", len(m.byToken), m.roots)
	}
	if m.n.Load() != 1 {
		t.Fatalf("count %d, want 1", m.n.Load())
	}
}

func TestRefreshUnlockScopeAndOwner(t *testing.T) {
	type op func(m *Manager, name, token, principal string) error
	refresh := func(m *Manager, name, token, principal string) error {
		_, err := m.Refresh(context.Background(), name, token, principal, time.Minute)
		return err
	}
	unlock := func(m *Manager, name, token, principal string) error {
		return m.Unlock(context.Background(), name, token, principal)
	}
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
		{"member_of_depth0 [RFC4918 9.11.1]", d0, "/a/b", "alice", "", ErrNoSuchLock},
		{"outside_scope", dInf, "/b", "alice", "", ErrNoSuchLock},
		{"ancestor_of_root", dInf, "/", "alice", "", ErrNoSuchLock},
		{"prefix_not_member", dInf, "/ab", "alice", "", ErrNoSuchLock},
		{"unknown_token", dInf, "/a", "alice", "urn:uuid:nope", ErrNoSuchLock},
		{"other_principal [RFC4918 6.4]", d0, "/a", "bob", "", ErrNotOwner},
		{"anonymous_vs_owner", d0, "/a", "", "", ErrNotOwner},
	}
	for _, o := range []struct {
		name string
		do   op
	}{{"refresh", refresh}, {"unlock", unlock}} {
		for _, tc := range tests {
			t.Run(o.name+"/"+tc.name, func(t *testing.T) {
				m, _ := newManager(t, Options{})
				l := mustCreate(t, m, Lock{Root: "/a", Depth: tc.depth, Principal: "alice"})
				token := tc.token
				if token == "" {
					token = l.Token
				}
				err := o.do(m, tc.target, token, tc.principal)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				stillThere := m.HasLock("/a", l.Token)
				if wantThere := o.name == "refresh" || tc.want != nil; stillThere != wantThere {
					t.Fatalf("lock present = %v, want %v", stillThere, wantThere)
				}
			})
		}
	}
}

func TestUnlockThenWrite(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t, Options{})
	l := mustCreate(t, m, Lock{Root: "/a", Principal: "alice", Depth: dInf})
	if err := m.Unlock(ctx, "/a/x", l.Token, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx, "bob", "/a/x", true, nil); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	if err := m.Unlock(ctx, "/a", l.Token, "alice"); !errors.Is(err, ErrNoSuchLock) {
		t.Fatalf("second unlock: %v", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.byToken) != 0 || len(m.byRoot) != 0 || len(m.roots) != 0 || m.n.Load() != 0 {
		t.Fatalf("indexes not empty: %d %d %d %d", len(m.byToken), len(m.byRoot), len(m.roots), m.n.Load())
	}
}

func TestHasLockAndDiscover(t *testing.T) {
	m, _ := newManager(t, Options{})
	top := mustCreate(t, m, Lock{Root: "/", Depth: dInf, Shared: true, Principal: "a"})
	mid0 := mustCreate(t, m, Lock{Root: "/x", Depth: d0, Shared: true, Principal: "b"})
	mid1 := mustCreate(t, m, Lock{Root: "/x", Depth: dInf, Shared: true, Principal: "c"})
	leaf := mustCreate(t, m, Lock{Root: "/x/y", Shared: true, Principal: "d"})
	mustCreate(t, m, Lock{Root: "/x/y/z", Shared: true, Principal: "e"})
	mustCreate(t, m, Lock{Root: "/q", Shared: true, Principal: "f"})

	tokens := func(ls []Lock) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Token)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		want []Lock
	}{
		{"/x/y", []Lock{top, mid1, leaf}},
		{"/x", []Lock{top, mid0, mid1}},
		{"/", []Lock{top}},
		{"/x/w", []Lock{top, mid1}},
	} {
		if got := tokens(m.Discover(tc.name)); !slices.Equal(got, tokens(tc.want)) {
			t.Errorf("Discover(%q) = %q, want %q", tc.name, got, tokens(tc.want))
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
		if got := m.HasLock(tc.name, tc.token); got != tc.want {
			t.Errorf("HasLock(%q, %q) = %v, want %v", tc.name, tc.token, got, tc.want)
		}
	}
}

func TestRemoved(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t, Options{})
	top := mustCreate(t, m, Lock{Root: "/a", Depth: dInf, Shared: true})
	for _, r := range []string{"/a/b", "/a/b/c", "/a/b-c", "/a/bc"} {
		mustCreate(t, m, Lock{Root: r, Shared: true})
	}
	// A MOVE or DELETE of /a/b drops the locks rooted at or below it, not the
	// ancestor's, and not the look-alike siblings [RFC4918 7.6].
	m.Removed("/a/b")
	var roots []string
	for _, l := range []string{"/a", "/a/b", "/a/b/c", "/a/b-c", "/a/bc"} {
		for _, d := range m.Discover(l) {
			if d.Root == l {
				roots = append(roots, l)
			}
		}
	}
	if want := []string{"/a", "/a/b-c", "/a/bc"}; !slices.Equal(roots, want) {
		t.Fatalf("roots after Removed = %q, want %q", roots, want)
	}
	// A resource re-created at /a/b is still covered by the ancestor's lock.
	if !m.HasLock("/a/b", top.Token) {
		t.Fatal("ancestor's lock lost")
	}
	m.Removed("/")
	if err := m.Check(ctx, "x", "/", true, nil); err != nil {
		t.Fatalf("after Removed(/): %v", err)
	}
	m.Removed("/nothing") // no locks: no-op
}

func TestMaxLocks(t *testing.T) {
	m, c := newManager(t, Options{MaxLocks: 2})
	mustCreate(t, m, Lock{Root: "/a", Timeout: time.Minute})
	mustCreate(t, m, Lock{Root: "/b"})
	if _, err := m.Create(context.Background(), Lock{Root: "/c"}); !errors.Is(err, ErrTooManyLocks) {
		t.Fatalf("third lock: %v", err)
	}
	c.Advance(time.Minute) // /a expires and makes room
	mustCreate(t, m, Lock{Root: "/c"})
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			p := fmt.Sprintf("user%d", g)
			for i := range 200 {
				name := fmt.Sprintf("/d%d/f%d", i%5, i%7)
				l, err := m.Create(ctx, Lock{Root: name, Principal: p, Shared: i%2 == 0})
				if err == nil {
					// A shared lock may have company whose token is not submitted; an
					// exclusive one has none.
					if err := m.Check(ctx, p, name, false, []string{l.Token}); err != nil && !l.Shared {
						t.Errorf("own exclusive lock blocks: %v", err)
					}
					_ = m.Discover(name)
					// Another goroutine's Removed may have dropped it already.
					if err := m.Unlock(ctx, name, l.Token, p); err != nil && !errors.Is(err, ErrNoSuchLock) {
						t.Errorf("unlock: %v", err)
					}
				} else if !errors.Is(err, ErrLocked) {
					t.Errorf("create: %v", err)
				}
				_ = m.Check(ctx, p, "/", true, nil)
				if i%50 == 0 {
					m.Removed(fmt.Sprintf("/d%d", i%5))
					m.Sweep()
				}
			}
		})
	}
	wg.Wait()
}

// setup100 creates 100 depth-infinity locks of alice on /d<i%10>/f<i> and returns the
// token of the one on /d2/f42.
func setup100(tb testing.TB) (*Manager, string) {
	m, _ := newManager(tb, Options{})
	var tok string
	for i := range 100 {
		l := mustCreate(tb, m, Lock{Root: fmt.Sprintf("/d%d/f%d", i%10, i), Principal: "alice", Depth: dInf})
		if i == 42 {
			tok = l.Token
		}
	}
	return m, tok
}

// TestCheckAllocs: Check runs on every write, so its paths that allow the write must not
// allocate; only a refusal allocates its *LockedError.
func TestCheckAllocs(t *testing.T) {
	ctx := context.Background()
	empty, _ := newManager(t, Options{})
	if n := testing.AllocsPerRun(100, func() { _ = empty.Check(ctx, "alice", "/a/b/c", true, nil) }); n != 0 {
		t.Errorf("no locks: %v allocs", n)
	}
	m, tok := setup100(t)
	tokens := []string{tok}
	if n := testing.AllocsPerRun(100, func() {
		if m.Check(ctx, "alice", "/d2/f42/x", false, tokens) != nil || m.Check(ctx, "alice", "/d3/x", true, tokens) != nil {
			t.Fatal("unexpected conflict")
		}
	}); n != 0 {
		t.Errorf("100 locks, allowed: %v allocs", n)
	}
}

func BenchmarkCheckNoLocks(b *testing.B) {
	m, _ := newManager(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Check(ctx, "alice", "/a/b/c/d.txt", false, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck100Locks(b *testing.B) {
	m, tok := setup100(b)
	ctx := context.Background()
	tokens := []string{tok}
	b.Run("covered_with_token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := m.Check(ctx, "alice", "/d2/f42/x", false, tokens); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unlocked_name", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := m.Check(ctx, "bob", "/d2/other/x", false, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("infinite_refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := m.Check(ctx, "alice", "/d2", true, tokens); err == nil {
				b.Fatal("locks below /d2 did not block")
			}
		}
	})
}
