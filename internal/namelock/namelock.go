// Package namelock is the commit lock of a store: one mutex per name, hashed onto a
// fixed set of shards so that memory does not grow with the number of names.
package namelock

import "sync"

const shards = 256

// Locks is a set of name locks; the zero value is ready to use.
type Locks struct {
	mu [shards]sync.Mutex
}

// Lock takes the locks of one or two names and returns the unlock. Two names are taken
// in shard order, so that two operations on the same pair cannot deadlock; a name
// hashed onto the same shard as the other is taken once.
func (l *Locks) Lock(names ...string) (unlock func()) {
	if len(names) > 2 {
		panic("namelock: more than two names")
	}
	var idx [2]uint32
	n := 0
	for _, name := range names {
		i := fnv32a(name) % shards
		if n == 1 && idx[0] == i {
			continue
		}
		idx[n] = i
		n++
	}
	if n == 2 && idx[1] < idx[0] {
		idx[0], idx[1] = idx[1], idx[0]
	}
	for _, i := range idx[:n] {
		l.mu[i].Lock()
	}
	return func() {
		for _, i := range idx[:n] {
			l.mu[i].Unlock()
		}
	}
}

// fnv32a is the FNV-1a hash, inlined to keep locking free of allocations.
func fnv32a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
