package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(max int, window time.Duration) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return NewLimiter(max, window, c.now), c
}

func TestLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		op      string // "fail", "succeed" or "allow"
		addr    string
		wantOK  bool
		wantRA  time.Duration // checked for "allow" when !wantOK
	}
	const a = "192.0.2.1:1234"
	fails := func(n int, addr string) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{op: "fail", addr: addr}
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fresh", []step{{op: "allow", addr: a, wantOK: true}}},
		{"under_limit", cat(fails(2, a), []step{{op: "allow", addr: a, wantOK: true}})},
		{"at_limit", cat(fails(3, a), []step{{op: "allow", addr: a, wantRA: time.Minute}})},
		{"other_port_same_ip", cat(fails(3, a), []step{{op: "allow", addr: "192.0.2.1:9999", wantRA: time.Minute}})},
		{"other_ip", cat(fails(3, a), []step{{op: "allow", addr: "192.0.2.2:1234", wantOK: true}})},
		{"retry_after_counts_down", cat(fails(3, a), []step{
			{advance: 20 * time.Second, op: "allow", addr: a, wantRA: 40 * time.Second},
		})},
		{"window_passes", cat(fails(3, a), []step{
			{advance: time.Minute - time.Nanosecond, op: "allow", addr: a, wantRA: time.Nanosecond},
			{advance: time.Nanosecond, op: "allow", addr: a, wantOK: true},
		})},
		{"sliding_window", []step{
			{op: "fail", addr: a},
			{advance: 30 * time.Second, op: "fail", addr: a},
			{advance: 20 * time.Second, op: "fail", addr: a},
			{op: "allow", addr: a, wantRA: 10 * time.Second},
			// The first failure leaves the window; the other two still count.
			{advance: 10 * time.Second, op: "allow", addr: a, wantOK: true},
			{op: "fail", addr: a},
			{op: "allow", addr: a, wantRA: 30 * time.Second}, // until the failure at 30s leaves
		}},
		{"failing_while_blocked_extends", cat(fails(3, a), []step{
			{advance: 30 * time.Second, op: "fail", addr: a},
			{op: "allow", addr: a, wantRA: 30 * time.Second},
			{advance: 30 * time.Second, op: "allow", addr: a, wantOK: true},
		})},
		{"succeed_resets", cat(fails(3, a), []step{
			{op: "succeed", addr: a},
			{op: "allow", addr: a, wantOK: true},
		}, fails(2, a), []step{{op: "allow", addr: a, wantOK: true}})},
		{"succeed_unknown", []step{{op: "succeed", addr: a}, {op: "allow", addr: a, wantOK: true}}},
		{"ipv6_same_64", cat(fails(3, "[2001:db8:1:2::1]:443"), []step{
			{op: "allow", addr: "[2001:db8:1:2:ffff::9]:80", wantRA: time.Minute},
			{op: "allow", addr: "[2001:db8:1:3::1]:80", wantOK: true},
		})},
		{"ipv4_mapped", cat(fails(3, "[::ffff:192.0.2.1]:80"), []step{{op: "allow", addr: "192.0.2.1:5", wantRA: time.Minute}})},
		{"bare_ips_and_zones", cat(fails(1, "192.0.2.1"), fails(1, "[fe80::1%eth0]:80"), fails(1, "fe80::2"), []step{
			{op: "allow", addr: "192.0.2.1:1", wantOK: true},
			{op: "allow", addr: "[fe80::3]", wantOK: true},
			{op: "fail", addr: "[fe80::3]"},
			{op: "allow", addr: "fe80::4", wantRA: time.Minute},
		})},
		{"unparsable_addr", cat(fails(3, "@unix"), []step{
			{op: "allow", addr: "@unix", wantRA: time.Minute},
			{op: "allow", addr: a, wantOK: true},
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := newTestLimiter(3, time.Minute)
			for i, s := range tt.steps {
				clock.advance(s.advance)
				switch s.op {
				case "fail":
					l.Fail(s.addr)
				case "succeed":
					l.Succeed(s.addr)
				case "allow":
					ok, ra := l.Allow(s.addr)
					if ok != s.wantOK || (!ok && ra != s.wantRA) || (ok && ra != 0) {
						t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.addr, ok, ra, s.wantOK, s.wantRA)
					}
				}
			}
		})
	}
}

func TestLimiterDefaults(t *testing.T) {
	l := NewLimiter(0, 0, nil)
	if l.max != DefaultMaxFailures || l.window != DefaultWindow || l.now == nil {
		t.Fatalf("defaults: max %d window %v", l.max, l.window)
	}
	var nilL *Limiter
	nilL.Fail("x")
	nilL.Succeed("x")
	if ok, _ := nilL.Allow("x"); !ok {
		t.Fatal("a nil Limiter refused")
	}
}

func TestLimiterBounded(t *testing.T) {
	l, clock := newTestLimiter(2, time.Minute)
	l.cap = 3
	addr := func(i int) string { return fmt.Sprintf("198.51.100.%d:1", i) }
	for i := range 3 {
		l.Fail(addr(i))
		l.Fail(addr(i))
		clock.advance(time.Second)
	}
	// A fourth address evicts the one whose last failure is oldest.
	l.Fail(addr(3))
	if len(l.entries) != 3 || l.order.Len() != 3 {
		t.Fatalf("tracking %d/%d addresses, want 3", len(l.entries), l.order.Len())
	}
	if ok, _ := l.Allow(addr(0)); !ok {
		t.Error("the oldest address was not evicted")
	}
	for i := 1; i <= 2; i++ {
		if ok, _ := l.Allow(addr(i)); ok {
			t.Errorf("address %d was evicted", i)
		}
	}
	// Addresses whose failures have all left the window are forgotten on the next Fail.
	clock.advance(time.Minute)
	l.Fail(addr(9))
	if len(l.entries) != 1 || l.order.Len() != 1 {
		t.Fatalf("tracking %d/%d addresses after the window, want 1", len(l.entries), l.order.Len())
	}
	// Per address, only max failures are kept however many arrive.
	for range 100 {
		l.Fail(addr(9))
	}
	if n := len(l.entries[clientKey(addr(9))].Value.(*limitEntry).fails); n != 2 {
		t.Fatalf("kept %d failures, want 2", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(5, time.Minute, nil)
	l.cap = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				a := fmt.Sprintf("203.0.113.%d:%d", (g*200+i)%97, i)
				l.Allow(a)
				l.Fail(a)
				if i%7 == 0 {
					l.Succeed(a)
				}
			}
		})
	}
	wg.Wait()
	if len(l.entries) > 50 || len(l.entries) != l.order.Len() {
		t.Fatalf("map %d, list %d entries", len(l.entries), l.order.Len())
	}
}

func TestClientKey(t *testing.T) {
	tests := map[string]string{
		"192.0.2.1:80":              "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"[::ffff:192.0.2.1]:80":     "192.0.2.1",
		"[2001:db8:a:b:c:d:e:f]:80": "2001:db8:a:b::/64",
		"2001:db8:a:b::1":           "2001:db8:a:b::/64",
		"[2001:db8::1]":             "2001:db8::/64",
		"[fe80::1%eth0]:80":         "fe80::/64",
		"":                          "",
		"not an ip":                 "not an ip",
	}
	for in, want := range tests {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
