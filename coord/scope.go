package coord

import (
	"context"
	"sync"
)

// Scope is what one request's calls to a shared coordination store leave for its
// later calls: the newest store revision they observed, so that a later read served
// from a replica's watch cache waits until the cache has caught up with it (the
// request then never reads older state than it has already seen), and the claims
// taken early for the request (an upload claims its name when it begins), so that
// the storage commit does not take them a second time. The in-process
// implementations need none of it; the server attaches a Scope to the requests of a
// replica (Config.Scoped).
type Scope struct {
	mu   sync.Mutex
	rev  int64
	held []Held
}

// Held is a claim a request holds for its whole length: a name and whether it is
// the exclusive claim of a write (true) or the shared claim of a snapshot read.
type Held struct {
	Name  string
	Write bool
}

type scopeKey struct{}

// WithScope returns ctx carrying a new, empty Scope.
func WithScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, new(Scope))
}

// ScopeOf returns ctx's Scope, nil if it has none.
func ScopeOf(ctx context.Context) *Scope {
	s, _ := ctx.Value(scopeKey{}).(*Scope)
	return s
}

// Observe records that the request has seen the store at revision rev.
func (s *Scope) Observe(rev int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.rev = max(s.rev, rev)
	s.mu.Unlock()
}

// Rev is the newest revision observed, 0 if none (or s is nil).
func (s *Scope) Rev() int64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Hold records that the request holds h until it ends.
func (s *Scope) Hold(h Held) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.held = append(s.held, h)
	s.mu.Unlock()
}

// Release forgets h, which the request gave back early.
func (s *Scope) Release(h Held) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.held {
		if x == h {
			s.held = append(s.held[:i], s.held[i+1:]...)
			return
		}
	}
}

// Holds reports whether the request holds a claim at least as strong as h: the
// exclusive claim of the same name covers both kinds.
func (s *Scope) Holds(h Held) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.held {
		if x.Name == h.Name && (x.Write || !h.Write) {
			return true
		}
	}
	return false
}
