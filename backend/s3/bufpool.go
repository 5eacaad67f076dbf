package s3

import (
	"sync"
	"sync/atomic"
)

// minBuf is the smallest buffer class, and the first buffer of a body of unknown
// size.
const minBuf = 4 << 10

// bufPool hands out the buffers that hold upload bodies, in size classes: powers of
// two from minBuf, with the part size as the largest class. A body of n bytes thus
// holds less than max(2n, minBuf) bytes, never more than a part, and a buffer one
// upload frees serves the next upload of its class. Idle buffers stay pooled until
// the garbage collector empties the pool (sync.Pool drops them over two cycles), so
// memory follows the bytes in flight rather than the number of uploads ever made.
type bufPool struct {
	max     int
	classes []sync.Pool
	// held is the bytes handed out and not yet returned, peak its maximum: what
	// the tests hold against the documented bound.
	held, peak atomic.Int64
}

func newBufPool(max int) *bufPool {
	n, _ := classOf(max, max)
	return &bufPool{max: max, classes: make([]sync.Pool, n+1)}
}

// classOf returns the class of a buffer for n bytes and its size.
func classOf(n, max int) (class, size int) {
	for size = minBuf; size < n && size < max; size <<= 1 {
		class++
	}
	return class, min(size, max)
}

// get returns a buffer that holds n bytes (its length is its class's size, at most
// the part size).
func (p *bufPool) get(n int) *[]byte {
	class, size := classOf(n, p.max)
	b, _ := p.classes[class].Get().(*[]byte)
	if b == nil {
		buf := make([]byte, size)
		b = &buf
	}
	held := p.held.Add(int64(size))
	for peak := p.peak.Load(); held > peak && !p.peak.CompareAndSwap(peak, held); peak = p.peak.Load() {
	}
	return b
}

// put returns b, which get handed out, to the pool.
func (p *bufPool) put(b *[]byte) {
	*b = (*b)[:cap(*b)]
	class, size := classOf(len(*b), p.max)
	p.held.Add(-int64(size))
	if size == len(*b) {
		p.classes[class].Put(b)
	}
}
