package locks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"safedav/backend"
)

// Defaults for the zero Options.
const (
	// DefaultMaxTimeout caps every granted timeout, "Infinite" included.
	DefaultMaxTimeout = time.Hour
	// DefaultTimeout is granted when the client sends no Timeout header. Ten minutes is
	// long enough for an editor that refreshes (Windows and macOS clients refresh well
	// within that) and short enough that a crashed client does not keep a file locked
	// for long.
	DefaultTimeout = 10 * time.Minute
	// DefaultMaxLocks bounds the number of live locks.
	DefaultMaxLocks = 10000
)

// Options configure a Manager. The zero value is a memory-only manager with the
// defaults above.
type Options struct {
	// Now returns the current time; nil means time.Now. Tests inject a clock so expiry
	// is checked without sleeping.
	Now func() time.Time
	// MaxTimeout caps granted timeouts, including "Infinite" requests, which RFC 4918
	// §10.7 lets the server shorten. 0 means DefaultMaxTimeout.
	MaxTimeout time.Duration
	// DefaultTimeout is granted when the client asked for none. 0 means DefaultTimeout;
	// it is capped by MaxTimeout.
	DefaultTimeout time.Duration
	// MaxLocks bounds the live locks; Create fails with ErrTooManyLocks beyond it. 0 means
	// DefaultMaxLocks.
	MaxLocks int
	// Store persists the locks; nil keeps them in memory only.
	Store Store
	// OnSaveError, when set, is called with the error of a Store.Save that no caller
	// receives: the one after Removed, and the re-save after a failed Create is rolled
	// back. Create, Refresh and Unlock return their own Save errors.
	OnSaveError func(error)
}

// Manager grants, checks and discovers write locks. It is safe for concurrent use.
//
// Locks are indexed by token and by root. Check walks from the name up to "/" looking
// up each ancestor's locks, so it costs O(depth of the name + locks found) rather than
// O(all locks), and returns at once, without taking the mutex or allocating, when no
// lock exists at all, which is the common case on every write. Locks rooted below a
// name (needed for Depth: infinity creation and for DELETE/MOVE of a collection) are
// found by binary search in a sorted slice of the locked roots: names under "/a/" are
// contiguous in byte order. Keeping the slice sorted costs O(locked roots) per lock
// created on a new root, which is cheap for the thousands of locks MaxLocks allows.
//
// Expired locks are ignored by every lookup, dropped by the next change (a change
// sweeps them once the earliest expiry has passed) and by Sweep; they are not saved.
type Manager struct {
	now         func() time.Time
	maxTimeout  time.Duration
	defTimeout  time.Duration
	maxLocks    int
	store       Store
	onSaveError func(error)

	// n mirrors len(byToken) so Check's fast path needs no mutex.
	n atomic.Int64

	mu       sync.RWMutex
	byToken  map[string]*Lock
	byRoot   map[string][]*Lock
	roots    []string  // keys of byRoot, sorted in byte order
	earliest time.Time // no lock expires before this (zero: no locks)
	gen      uint64    // incremented by every change, to coalesce saves

	// saveMu serialises saves; each save snapshots the state after taking it, so a
	// slower save can never overwrite a newer snapshot with an older one.
	saveMu   sync.Mutex
	savedGen uint64
}

// NewManager returns a Manager holding the live locks loaded from opt.Store, if any.
// Locks that expired while the server was down are dropped; a loaded lock whose expiry
// lies further ahead than the (possibly lowered) MaxTimeout is shortened to it. It fails
// if the store cannot be read or holds an invalid or duplicate lock, rather than start
// without locks that clients rely on. Loaded locks are trusted as the Manager saved
// them: they are not checked for conflicts, nor counted against MaxLocks.
func NewManager(opt Options) (*Manager, error) {
	m := &Manager{
		now:         opt.Now,
		maxTimeout:  opt.MaxTimeout,
		defTimeout:  opt.DefaultTimeout,
		maxLocks:    opt.MaxLocks,
		store:       opt.Store,
		onSaveError: opt.OnSaveError,
		byToken:     make(map[string]*Lock),
		byRoot:      make(map[string][]*Lock),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.maxTimeout <= 0 {
		m.maxTimeout = DefaultMaxTimeout
	}
	if m.defTimeout <= 0 {
		m.defTimeout = DefaultTimeout
	}
	m.defTimeout = min(m.defTimeout, m.maxTimeout)
	if m.maxLocks <= 0 {
		m.maxLocks = DefaultMaxLocks
	}
	if m.store == nil {
		return m, nil
	}
	loaded, err := m.store.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("locks: loading: %w", err)
	}
	now := m.now()
	for i := range loaded {
		l := loaded[i].clone()
		if !validRoot(l.Root) || !validDepth(l.Depth) || l.Token == "" {
			return nil, fmt.Errorf("locks: loading: invalid lock %q on %q", l.Token, l.Root)
		}
		if m.byToken[l.Token] != nil {
			return nil, fmt.Errorf("locks: loading: duplicate lock token %q", l.Token)
		}
		if !l.live(now) {
			continue
		}
		if limit := now.Add(m.maxTimeout); l.Expires.After(limit) {
			l.Expires = limit
		}
		if l.Timeout <= 0 || l.Timeout > m.maxTimeout {
			l.Timeout = m.maxTimeout
		}
		m.insertLocked(&l)
	}
	m.savedGen = m.gen // the store already holds these (expired ones are harmless there)
	return m, nil
}

// Create grants a new lock on l.Root and returns it with Token, Timeout and Expires
// set. Two locks conflict when the scope of one contains the root of the other and at
// least one is exclusive; shared locks coexist (RFC 4918 §6.1, §6.2, compatibility table
// in §9.10.5). This holds whoever the principals are: even the holder of an exclusive
// lock cannot take a second lock on it. A conflict fails with a *LockedError naming the
// conflicting lock's root. A depth-infinity request conflicts with locks anywhere below
// its root too (RFC 4918 §9.10.3).
//
// If the Store fails to save, the lock is withdrawn and the error returned: the client
// will never learn the token, so a lock kept anyway would only block the resource until
// it expired.
func (m *Manager) Create(ctx context.Context, l Lock) (Lock, error) {
	if !validRoot(l.Root) || !validDepth(l.Depth) {
		return Lock{}, ErrInvalidLock
	}
	token, err := newToken()
	if err != nil {
		return Lock{}, fmt.Errorf("locks: making a token: %w", err)
	}
	nl := l.clone()
	nl.Token = token
	nl.Timeout = m.grant(l.Timeout, m.defTimeout)

	now := m.now()
	m.mu.Lock()
	m.sweepLocked(now)
	if c := m.conflictLocked(&nl, now); c != nil {
		m.mu.Unlock()
		return Lock{}, lockedBy(c)
	}
	if len(m.byToken) >= m.maxLocks {
		m.mu.Unlock()
		return Lock{}, ErrTooManyLocks
	}
	nl.Expires = now.Add(nl.Timeout)
	p := &nl
	m.insertLocked(p)
	gen := m.gen
	out := p.clone()
	m.mu.Unlock()

	if err := m.persist(ctx, gen); err != nil {
		m.mu.Lock()
		if m.byToken[token] == p {
			m.removeLocked(p)
		}
		gen = m.gen
		m.mu.Unlock()
		// Another change's save may have written the lock between our failure and the
		// withdrawal; try to store the state without it. The caller gets the first error.
		m.report(m.persist(context.WithoutCancel(ctx), gen))
		return Lock{}, fmt.Errorf("locks: saving: %w", err)
	}
	return out, nil
}

// Refresh restarts the timeout of the lock named by token and returns it. RFC 4918
// §9.10.2 sends a refresh to a URL within the lock's scope: if name is not covered by
// the lock, or token names no live lock, Refresh fails with ErrNoSuchLock; if the lock
// belongs to another principal, with ErrNotOwner. d is the new timeout as for Create,
// except that 0 (no Timeout header) keeps the timeout granted before, which is what a
// client that refreshes without asking expects.
//
// A Save error is returned, but the refresh stands in memory: keeping a lock alive a
// little longer than stored is harmless, and the next save catches up.
func (m *Manager) Refresh(ctx context.Context, name, token, principal string, d time.Duration) (Lock, error) {
	now := m.now()
	m.mu.Lock()
	m.sweepLocked(now)
	l, err := m.ownedLocked(name, token, principal, now)
	if err != nil {
		m.mu.Unlock()
		return Lock{}, err
	}
	if d == 0 {
		d = l.Timeout
	}
	l.Timeout = m.grant(d, m.defTimeout)
	l.Expires = now.Add(l.Timeout)
	if l.Expires.Before(m.earliest) { // a shorter timeout than before
		m.earliest = l.Expires
	}
	m.gen++
	gen := m.gen
	out := l.clone()
	m.mu.Unlock()

	if err := m.persist(ctx, gen); err != nil {
		return Lock{}, fmt.Errorf("locks: saving: %w", err)
	}
	return out, nil
}

// Unlock removes the lock named by token. RFC 4918 §9.11 requires the Request-URI to be
// within the lock's scope: if name is not covered by the lock, or token names no live
// lock, Unlock fails with ErrNoSuchLock; if the lock belongs to another principal, with
// ErrNotOwner (RFC 4918 §6.4).
//
// A Save error is returned, but the lock is gone from memory all the same: the client
// asked to release it and nobody should be blocked by it any longer.
func (m *Manager) Unlock(ctx context.Context, name, token, principal string) error {
	now := m.now()
	m.mu.Lock()
	m.sweepLocked(now)
	l, err := m.ownedLocked(name, token, principal, now)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.removeLocked(l)
	gen := m.gen
	m.mu.Unlock()

	if err := m.persist(ctx, gen); err != nil {
		return fmt.Errorf("locks: saving: %w", err)
	}
	return nil
}

// ownedLocked returns the live lock named by token if it covers name and belongs to
// principal, else ErrNoSuchLock or ErrNotOwner, as Refresh and Unlock require.
func (m *Manager) ownedLocked(name, token, principal string, now time.Time) (*Lock, error) {
	l := m.byToken[token]
	if l == nil || !l.live(now) || !l.covers(name) {
		return nil, ErrNoSuchLock
	}
	if l.Principal != principal {
		return nil, ErrNotOwner
	}
	return l, nil
}

// Check reports whether principal, having submitted tokens (the lock tokens of the If
// header, RFC 4918 §10.4), may modify name. It returns nil or a *LockedError naming the
// root of the first lock that forbids the write: nearest first (the locks rooted at
// name, then the depth-infinity locks of its ancestors outwards), then, with infinite,
// the locks below name in byte order of their roots.
//
// With infinite false, the locks that matter are those covering name: rooted at name
// (any depth) or depth-infinity locks rooted at an ancestor (RFC 4918 §6.1, §7). With
// infinite true (DELETE or MOVE of a collection, which changes every member) locks
// rooted anywhere below name matter as well.
//
// Each such lock must be satisfied. A lock is satisfied by its own token submitted by
// its own principal; a shared lock is also satisfied by the token of any other shared
// lock that covers the same resource, submitted by that lock's principal, since each
// shared-lock holder may write with its own token (RFC 4918 §6.2). A token submitted by
// someone other than the lock's principal never counts (RFC 4918 §6.4).
//
// Adding or removing a member changes its parent collection too (RFC 4918 §7.4): the
// server checks the parent with a second call. ctx is unused today; it is there for a
// Manager backed by a shared store.
func (m *Manager) Check(ctx context.Context, principal, name string, infinite bool, tokens []string) error {
	if m.n.Load() == 0 {
		return nil
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for r := name; ; r = backend.Parent(r) {
		for _, l := range m.byRoot[r] {
			if (r == name || l.Depth == backend.DepthInfinity) && l.live(now) &&
				!m.satisfiedLocked(l, name, principal, tokens, now) {
				return lockedBy(l)
			}
		}
		if r == "/" {
			break
		}
	}
	if infinite {
		for _, r := range m.belowLocked(name) {
			for _, l := range m.byRoot[r] {
				if l.live(now) && !m.satisfiedLocked(l, r, principal, tokens, now) {
					return lockedBy(l)
				}
			}
		}
	}
	return nil
}

// satisfiedLocked reports whether tokens, submitted by principal, satisfy lock l at the
// resource at (a name l covers).
func (m *Manager) satisfiedLocked(l *Lock, at, principal string, tokens []string, now time.Time) bool {
	for _, t := range tokens {
		tl := m.byToken[t]
		if tl == nil || tl.Principal != principal || !tl.live(now) {
			continue
		}
		if tl == l || (l.Shared && tl.Shared && tl.covers(at)) {
			return true
		}
	}
	return false
}

// HasLock reports whether token names a live lock that covers name. The server uses it
// to evaluate the state tokens of an If header (RFC 4918 §10.4.4): a lock token matches
// a resource only if the resource is within the scope of that lock.
func (m *Manager) HasLock(name, token string) bool {
	if m.n.Load() == 0 {
		return false
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	l := m.byToken[token]
	return l != nil && l.live(now) && l.covers(name)
}

// Discover returns copies of the live locks covering name, rooted at it or depth
// infinity at an ancestor, for DAV:lockdiscovery (RFC 4918 §15.8), outermost root first.
// It returns nil when there are none.
func (m *Manager) Discover(name string) []Lock {
	if m.n.Load() == 0 {
		return nil
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Lock
	for r := name; ; r = backend.Parent(r) {
		for _, l := range slices.Backward(m.byRoot[r]) {
			if (r == name || l.Depth == backend.DepthInfinity) && l.live(now) {
				out = append(out, l.clone())
			}
		}
		if r == "/" {
			break
		}
	}
	// Collected innermost first, newest first within a root: reverse both.
	slices.Reverse(out)
	return out
}

// Removed drops every lock rooted at name or below it. The server calls it after a
// DELETE, after a MOVE for the source, and for a destination that was overwritten: a
// lock does not move with its resource (RFC 4918 §7.6), and a lock whose root no longer
// exists must not block a new resource created at that name. Locks of ancestors are
// untouched: a resource later created or moved into a depth-infinity locked collection
// is covered by that lock simply by being below its root (RFC 4918 §7.4, §7.6).
//
// A Save error is passed to Options.OnSaveError.
func (m *Manager) Removed(name string) {
	if m.n.Load() == 0 {
		return
	}
	m.mu.Lock()
	gen := m.gen
	var doomed []*Lock
	doomed = append(doomed, m.byRoot[name]...)
	for _, r := range m.belowLocked(name) {
		doomed = append(doomed, m.byRoot[r]...)
	}
	for _, l := range doomed {
		m.removeLocked(l)
	}
	changed := m.gen != gen
	gen = m.gen
	m.mu.Unlock()
	if changed {
		m.report(m.persist(context.Background(), gen))
	}
}

// Sweep drops every expired lock now. Expired locks never block anything even if not
// swept; Sweep only frees their memory early, for a server that calls it periodically.
// It does not save: expired locks are dropped again when the store is loaded.
func (m *Manager) Sweep() {
	now := m.now()
	m.mu.Lock()
	m.sweepLocked(now)
	m.mu.Unlock()
}

// sweepLocked drops expired locks once m.earliest has passed, so changes pay for a full
// scan only when some lock can actually have expired. m.earliest is kept at or before
// every lock's expiry, so nothing expired is missed.
func (m *Manager) sweepLocked(now time.Time) {
	if m.earliest.IsZero() || now.Before(m.earliest) {
		return
	}
	m.earliest = time.Time{}
	for _, l := range m.byToken {
		if !l.live(now) {
			m.removeLocked(l)
		} else if m.earliest.IsZero() || l.Expires.Before(m.earliest) {
			m.earliest = l.Expires
		}
	}
}

// conflictLocked returns a live lock that conflicts with nl, or nil.
func (m *Manager) conflictLocked(nl *Lock, now time.Time) *Lock {
	// Locks whose scope contains nl.Root: rooted at it, or depth infinity above it.
	for r := nl.Root; ; r = backend.Parent(r) {
		for _, l := range m.byRoot[r] {
			if (r == nl.Root || l.Depth == backend.DepthInfinity) && l.live(now) && !(l.Shared && nl.Shared) {
				return l
			}
		}
		if r == "/" {
			break
		}
	}
	// Locks rooted inside nl's scope, which only a depth-infinity lock has.
	if nl.Depth == backend.DepthInfinity {
		for _, r := range m.belowLocked(nl.Root) {
			for _, l := range m.byRoot[r] {
				if l.live(now) && !(l.Shared && nl.Shared) {
					return l
				}
			}
		}
	}
	return nil
}

// belowLocked returns the locked roots strictly below name, a subslice of m.roots (which
// it does not copy, so the caller must not change the index while ranging over it).
// Every name under name+"/" shares that prefix, so they are contiguous in the sorted
// slice; binary search finds the first without building name+"/".
func (m *Manager) belowLocked(name string) []string {
	if name == "/" {
		if len(m.roots) > 0 && m.roots[0] == "/" {
			return m.roots[1:]
		}
		return m.roots
	}
	i := sort.Search(len(m.roots), func(i int) bool { return atOrAfterSubtree(m.roots[i], name) })
	j := i
	for j < len(m.roots) && len(m.roots[j]) > len(name) && m.roots[j][len(name)] == '/' &&
		strings.HasPrefix(m.roots[j], name) {
		j++
	}
	return m.roots[i:j]
}

// atOrAfterSubtree reports whether s >= name+"/" in byte order.
func atOrAfterSubtree(s, name string) bool {
	p := min(len(s), len(name))
	if c := strings.Compare(s[:p], name[:p]); c != 0 {
		return c > 0
	}
	if len(s) <= len(name) {
		return false // s is a prefix of name, so s <= name < name+"/"
	}
	return s[len(name)] >= '/'
}

// insertLocked adds l to both indexes.
func (m *Manager) insertLocked(l *Lock) {
	m.byToken[l.Token] = l
	if len(m.byRoot[l.Root]) == 0 {
		i, _ := slices.BinarySearch(m.roots, l.Root)
		m.roots = slices.Insert(m.roots, i, l.Root)
	}
	m.byRoot[l.Root] = append(m.byRoot[l.Root], l)
	if m.earliest.IsZero() || l.Expires.Before(m.earliest) {
		m.earliest = l.Expires
	}
	m.gen++
	m.n.Store(int64(len(m.byToken)))
}

// removeLocked takes l out of both indexes. m.earliest may stay earlier than any lock
// left; that only makes the next sweep come early.
func (m *Manager) removeLocked(l *Lock) {
	if m.byToken[l.Token] != l {
		return
	}
	delete(m.byToken, l.Token)
	rest := slices.DeleteFunc(m.byRoot[l.Root], func(x *Lock) bool { return x == l })
	if len(rest) == 0 {
		delete(m.byRoot, l.Root)
		if i, ok := slices.BinarySearch(m.roots, l.Root); ok {
			m.roots = slices.Delete(m.roots, i, i+1)
		}
	} else {
		m.byRoot[l.Root] = rest
	}
	if len(m.byToken) == 0 {
		m.earliest = time.Time{}
	}
	m.gen++
	m.n.Store(int64(len(m.byToken)))
}

// persist returns once a save that includes generation gen has succeeded: a change is
// answered only after it is in the store. Saves are grouped: while one save runs, the
// changes made meanwhile wait for the saveMu; the first to get it snapshots the state
// as it is then, which includes every change made before that save started, and the
// others find their generation saved and return at once. So 32 concurrent LOCKs cost
// about two saves, not 32, and the store only ever moves forward.
func (m *Manager) persist(ctx context.Context, gen uint64) error {
	if m.store == nil {
		return nil
	}
	return m.persistNow(ctx, gen)
}

// Flush saves the current state now if it changed since the last save: the changes
// of Removed whose save failed, before the process exits.
func (m *Manager) Flush(ctx context.Context) error {
	if m.store == nil {
		return nil
	}
	m.mu.RLock()
	gen := m.gen
	m.mu.RUnlock()
	return m.persistNow(ctx, gen)
}

func (m *Manager) persistNow(ctx context.Context, gen uint64) error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	if m.savedGen >= gen {
		return nil
	}
	now := m.now()
	m.mu.RLock()
	all := make([]Lock, 0, len(m.byToken))
	for _, r := range m.roots {
		for _, l := range m.byRoot[r] {
			if l.live(now) {
				all = append(all, l.clone())
			}
		}
	}
	cur := m.gen
	m.mu.RUnlock()
	if err := m.store.Save(ctx, all); err != nil {
		return err
	}
	m.savedGen = cur
	return nil
}

func (m *Manager) report(err error) {
	if err != nil && m.onSaveError != nil {
		m.onSaveError(err)
	}
}

// grant turns a requested timeout into the one granted: def when none was asked for,
// MaxTimeout for Infinite (RFC 4918 §10.7 lets the server choose), and never more than
// MaxTimeout (habit: bound everything).
func (m *Manager) grant(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0 || d > m.maxTimeout:
		return m.maxTimeout
	}
	return d
}

func validRoot(r string) bool {
	return r == "/" || (strings.HasPrefix(r, "/") && !strings.HasSuffix(r, "/"))
}

func validDepth(d int) bool { return d == backend.DepthZero || d == backend.DepthInfinity }

// newToken returns "urn:uuid:" and a random (version 4) UUID, RFC 4918 §6.5 and
// RFC 9562 §5.4: unique across time and servers, and unguessable, so knowing a lock's
// root gives no way to forge its token.
func newToken() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return "urn:uuid:" + string(b[:]), nil
}
