// Package claims is the namespace claim table of a store: an operation that changes
// the namespace (a write to a name, a MOVE, COPY or DELETE of a tree) claims the names
// it touches, so that two operations whose order matters run one after the other.
//
// A claim is not a WebDAV lock (package locks) nor an upload in progress: it is held
// only while one backend operation commits, never between requests.
//
// Claims use multi-granularity locking (Gray et al., "Granularity of Locks", 1975): a
// claim of mode S or X on a name covers its whole subtree, and taking it takes IS or
// IX on each ancestor, so a write to /a/b/c and a MOVE of /a conflict on /a (IX
// against X) without the table knowing every name of the tree.
package claims

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// Mode is the mode of a claim.
type Mode uint8

// The modes, from weakest to strongest.
const (
	IS Mode = iota // intention to read below
	IX             // intention to write below
	S              // read the subtree (the source of a COPY)
	X              // write the subtree (any write to the name, the source of a MOVE)
)

func (m Mode) String() string {
	return [...]string{"IS", "IX", "S", "X"}[m]
}

// compatible is the classic compatibility matrix: compatible[held][wanted].
var compatible = [4][4]bool{
	IS: {IS: true, IX: true, S: true, X: false},
	IX: {IS: true, IX: true, S: false, X: false},
	S:  {IS: true, IX: false, S: true, X: false},
	X:  {IS: false, IX: false, S: false, X: false},
}

// Compatible reports whether a claim of mode b can be held with one of mode a on the
// same name by another operation.
func Compatible(a, b Mode) bool { return compatible[a][b] }

// Claim is one name and the mode an operation wants it in. Names are cleaned
// slash-separated paths starting with "/", as the backend uses them.
type Claim struct {
	Name string
	Mode Mode
}

// Write is the claim of a write to name (PUT, MKCOL, DELETE, PROPPATCH, a COPY or
// MOVE destination, a MOVE source).
func Write(name string) Claim { return Claim{name, X} }

// Read is the claim of a read of the tree at name that must be a snapshot (a COPY
// source).
func Read(name string) Claim { return Claim{name, S} }

// ErrBusy is returned by Acquire when the claims could not be had within the wait
// bound: another operation holds a conflicting claim for longer.
var ErrBusy = errors.New("claims: namespace busy")

// Claimer takes claims. Acquire takes all the claims, with the intention claims on
// their ancestors, at once or none of them, waiting while another operation holds a
// conflicting claim; it fails with ErrBusy after its wait bound, or with ctx's error.
// release gives them all back and must be called exactly once.
//
// Table is the implementation within one process; a distributed one (claims bound to
// a session lease, taken in one transaction) satisfies the same interface.
type Claimer interface {
	Acquire(ctx context.Context, claims ...Claim) (release func(), err error)
}

// DefaultWait is the wait bound of a Table whose Wait is zero.
const DefaultWait = 5 * time.Second

// Table is a Claimer for one process. Waiters are served first come, first served
// among those that conflict, so that a folder MOVE is not starved by a steady stream
// of uploads into the folder. The zero value is ready to use.
type Table struct {
	// Wait bounds how long Acquire waits (DefaultWait if zero).
	Wait time.Duration

	mu    sync.Mutex
	held  map[string]*[4]int // name -> number of claims held per mode
	queue []*waiter          // blocked acquisitions, oldest first
}

var _ Claimer = (*Table)(nil)

type waiter struct {
	want  map[string]Mode
	ready chan struct{} // closed when granted
}

// expand turns the claims into one mode per name: each claim, and IS or IX on every
// ancestor. Two claims of one operation on one name are merged into the strongest
// mode that covers both (S with IX counts as X).
func expand(claims []Claim) map[string]Mode {
	want := make(map[string]Mode, 4*len(claims))
	add := func(name string, m Mode) {
		old, ok := want[name]
		switch {
		case !ok:
			want[name] = m
		case (old == S && m == IX) || (old == IX && m == S):
			want[name] = X
		case m > old:
			want[name] = m
		}
	}
	for _, c := range claims {
		add(c.Name, c.Mode)
		intent := IS
		if c.Mode == X || c.Mode == IX {
			intent = IX
		}
		for p := c.Name; p != "/"; {
			p = parent(p)
			add(p, intent)
		}
	}
	return want
}

// Expand is the set of claims an operation holds when it takes claims: one mode per
// name, each claim's own and IS or IX on every ancestor, duplicates merged into the
// strongest mode that covers them. A distributed Claimer stores exactly these.
func Expand(claims ...Claim) map[string]Mode { return expand(claims) }

func parent(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 {
		return "/"
	}
	return name[:i]
}

// conflicts reports whether two sets of claims cannot be held together.
func conflicts(a, b map[string]Mode) bool {
	if len(b) < len(a) {
		a, b = b, a
	}
	for name, ma := range a {
		if mb, ok := b[name]; ok && !compatible[ma][mb] {
			return true
		}
	}
	return false
}

// grantable reports whether want fits what is held. Called with t.mu held.
func (t *Table) grantable(want map[string]Mode) bool {
	for name, m := range want {
		if h := t.held[name]; h != nil {
			for hm, n := range h {
				if n > 0 && !compatible[hm][m] {
					return false
				}
			}
		}
	}
	return true
}

// grant records want as held. Called with t.mu held.
func (t *Table) grant(want map[string]Mode) {
	if t.held == nil {
		t.held = map[string]*[4]int{}
	}
	for name, m := range want {
		h := t.held[name]
		if h == nil {
			h = new([4]int)
			t.held[name] = h
		}
		h[m]++
	}
}

// Acquire implements Claimer.
func (t *Table) Acquire(ctx context.Context, claims ...Claim) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want := expand(claims)
	t.mu.Lock()
	if t.grantable(want) && !t.queuedConflict(want, len(t.queue)) {
		t.grant(want)
		t.mu.Unlock()
		return t.releaser(want), nil
	}
	w := &waiter{want: want, ready: make(chan struct{})}
	t.queue = append(t.queue, w)
	t.mu.Unlock()

	wait := t.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return t.releaser(want), nil
	case <-timer.C:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-w.ready: // granted while we gave up: take it, since it is already counted
		return t.releaser(want), nil
	default:
	}
	for i, q := range t.queue {
		if q == w {
			t.queue = append(t.queue[:i], t.queue[i+1:]...)
			break
		}
	}
	// Leaving the queue may unblock those that queued behind us.
	t.wake()
	return nil, err
}

// queuedConflict reports whether one of the first n waiters conflicts with want.
// Called with t.mu held.
func (t *Table) queuedConflict(want map[string]Mode, n int) bool {
	for _, q := range t.queue[:n] {
		if conflicts(q.want, want) {
			return true
		}
	}
	return false
}

// wake grants, in queue order, every waiter that fits what is held and conflicts
// with no older waiter still blocked. Called with t.mu held.
func (t *Table) wake() {
	kept := t.queue[:0]
	for _, w := range t.queue {
		if t.grantable(w.want) && !conflictsAny(kept, w.want) {
			t.grant(w.want)
			close(w.ready)
			continue
		}
		kept = append(kept, w)
	}
	clear(t.queue[len(kept):])
	t.queue = kept
}

func conflictsAny(ws []*waiter, want map[string]Mode) bool {
	for _, q := range ws {
		if conflicts(q.want, want) {
			return true
		}
	}
	return false
}

func (t *Table) releaser(want map[string]Mode) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			for name, m := range want {
				h := t.held[name]
				h[m]--
				if *h == [4]int{} {
					delete(t.held, name)
				}
			}
			t.wake()
		})
	}
}
