package auth

import (
	"container/list"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultMaxFailures is what NewLimiter uses for a maxFailures below 1: ten failed
	// logins a minute is plenty for a person mistyping and slow for a guesser.
	DefaultMaxFailures = 10
	// DefaultWindow is what NewLimiter uses for a window <= 0.
	DefaultWindow = time.Minute
	// limiterEntries bounds the addresses tracked, about 300 bytes each at the default
	// limit. An attacker with more addresses than this only evicts its own oldest.
	limiterEntries = 10000
)

// Limiter limits failed logins per client: once an address has failed maxFailures times
// within the last window, Allow refuses it until the oldest of those failures is older
// than window. This is a sliding window, so there is no boundary at which a guesser gets
// a double burst. IPv4 addresses count individually; IPv6 addresses count per /64,
// since one host is typically given a whole /64 and could otherwise rotate through it.
//
// It is safe for concurrent use and its memory is bounded: it tracks at most 10,000
// addresses, dropping the one whose last failure is oldest, and forgets an address
// once its failures are older than the window. A nil *Limiter allows everything.
type Limiter struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	now     func() time.Time
	cap     int                      // entry cap; a field so tests can make it small
	entries map[string]*list.Element // values are *limitEntry
	order   *list.List               // least recently failed at the front
}

type limitEntry struct {
	key   string
	fails []time.Time // the most recent failures, at most max, oldest first
}

// NewLimiter returns a Limiter allowing maxFailures failed logins per window per
// address. A maxFailures below 1 or a window <= 0 means the default (10 per minute);
// now supplies the time (nil means time.Now) so tests can drive the clock.
func NewLimiter(maxFailures int, window time.Duration, now func() time.Time) *Limiter {
	if maxFailures < 1 {
		maxFailures = DefaultMaxFailures
	}
	if window <= 0 {
		window = DefaultWindow
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		max:     maxFailures,
		window:  window,
		now:     now,
		cap:     limiterEntries,
		entries: map[string]*list.Element{},
		order:   list.New(),
	}
}

// Allow reports whether a login attempt from addr (a RemoteAddr such as "1.2.3.4:5678"
// or "[2001:db8::1]:443", or a bare IP) may proceed. When it may not, retryAfter is how
// long until it may (for a Retry-After header, rounded up to whole seconds).
func (l *Limiter) Allow(addr string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	key := clientKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el := l.entries[key]
	if el == nil {
		return true, 0
	}
	e := el.Value.(*limitEntry)
	l.expire(e, now)
	if len(e.fails) == 0 {
		l.remove(el)
		return true, 0
	}
	if len(e.fails) < l.max {
		return true, 0
	}
	return false, e.fails[0].Add(l.window).Sub(now)
}

// Fail records a failed login from addr.
func (l *Limiter) Fail(addr string) {
	if l == nil {
		return
	}
	key := clientKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget addresses whose last failure has left the window. The list is ordered by
	// last failure, so this stops at the first one still active.
	for front := l.order.Front(); front != nil; front = l.order.Front() {
		f := front.Value.(*limitEntry).fails
		if len(f) > 0 && now.Before(f[len(f)-1].Add(l.window)) {
			break
		}
		l.remove(front)
	}
	el := l.entries[key]
	if el == nil {
		if len(l.entries) >= l.cap {
			l.remove(l.order.Front())
		}
		el = l.order.PushBack(&limitEntry{key: key})
		l.entries[key] = el
	} else {
		l.order.MoveToBack(el)
	}
	e := el.Value.(*limitEntry)
	l.expire(e, now)
	if len(e.fails) == l.max {
		// Only the newest max failures matter: the oldest of them decides when the
		// address is allowed again.
		e.fails = append(e.fails[:0], e.fails[1:]...)
	}
	e.fails = append(e.fails, now)
}

// Succeed forgets the failures of addr after a successful login, so a user who
// mistyped a few times is not slowed down once they get it right.
func (l *Limiter) Succeed(addr string) {
	if l == nil {
		return
	}
	key := clientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := l.entries[key]; el != nil {
		l.remove(el)
	}
}

// expire drops the failures that are at least window old.
func (l *Limiter) expire(e *limitEntry, now time.Time) {
	i := 0
	for i < len(e.fails) && !now.Before(e.fails[i].Add(l.window)) {
		i++
	}
	if i > 0 {
		e.fails = append(e.fails[:0], e.fails[i:]...)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*limitEntry).key)
	l.order.Remove(el)
}

// clientKey reduces a remote address to what the limiter counts: the IP without port
// or zone, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64. Anything that is not an IP
// (a Unix socket peer, say) is counted as the literal string.
func clientKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return addr
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}
