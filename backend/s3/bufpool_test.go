package s3

import "testing"

func TestBufClasses(t *testing.T) {
	for _, tc := range []struct {
		n, max      int
		class, size int
	}{
		{0, 16 << 20, 0, 4 << 10},
		{1, 16 << 20, 0, 4 << 10},
		{4 << 10, 16 << 20, 0, 4 << 10},
		{4<<10 + 1, 16 << 20, 1, 8 << 10},
		{1 << 20, 16 << 20, 8, 1 << 20},
		{16 << 20, 16 << 20, 12, 16 << 20},
		{1 << 30, 16 << 20, 12, 16 << 20},
		// A part size that is not a power of two is the last class.
		{5 << 20, 5 << 20, 11, 5 << 20},
		{4<<20 + 1, 5 << 20, 11, 5 << 20},
		{4 << 20, 5 << 20, 10, 4 << 20},
	} {
		class, size := classOf(tc.n, tc.max)
		if class != tc.class || size != tc.size {
			t.Errorf("classOf(%d, %d) = %d, %d; want %d, %d", tc.n, tc.max, class, size, tc.class, tc.size)
		}
	}
}

// Buffers come back to the pool of their class, and the accounting follows them.
func TestBufPool(t *testing.T) {
	p := newBufPool(5 << 20)
	a, b := p.get(100), p.get(5<<20)
	if len(*a) != 4<<10 || len(*b) != 5<<20 {
		t.Fatalf("lengths %d, %d", len(*a), len(*b))
	}
	*a = (*a)[:10] // a caller may shorten it
	if held := p.held.Load(); held != 4<<10+5<<20 {
		t.Errorf("held %d", held)
	}
	p.put(a)
	p.put(b)
	if held, peak := p.held.Load(), p.peak.Load(); held != 0 || peak != 4<<10+5<<20 {
		t.Errorf("held %d, peak %d", held, peak)
	}
}
