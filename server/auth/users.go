package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	// maxFileSize bounds the users file: thousands of users fit in far less, and a
	// mistaken path (a disk image, /dev/zero) must not be read into memory whole.
	maxFileSize = 8 << 20
	// cacheTTL is how long a successful password check is remembered. WebDAV clients
	// send Basic credentials on every request and bcrypt takes 50-250 ms, so without
	// it a PROPFIND-heavy client crawls; a short TTL bounds how long a password lives
	// in memory (only as a SHA-256 digest) after its last use.
	cacheTTL = time.Minute
	// cacheMax bounds the cache. Entries are only added after a successful bcrypt
	// check, so filling it takes valid passwords, not guesses.
	cacheMax = 1024
	// DefaultCost is the bcrypt cost HashPassword uses when given 0: about a quarter
	// of a second on current hardware, which the cache makes affordable.
	DefaultCost = 12
)

// Users is the set of accounts loaded from a users file; create it with LoadUsers (the
// zero value holds no users and must not be used). It is safe for concurrent use:
// Authenticate reads an immutable snapshot, and Reload swaps in a new one atomically.
type Users struct {
	path     string
	reloadMu sync.Mutex // serializes Reload so an older read never replaces a newer one
	set      atomic.Pointer[userSet]

	// Hooks for tests; set before first use. now drives cache expiry; compare is the
	// bcrypt check, replaced to count how often the slow path runs.
	now     func() time.Time
	compare func(hash, password []byte) error
}

// userSet is one loaded version of the file. The cache lives in it, so swapping the set
// on Reload drops every cached check at once, and a check that finishes after the swap
// can only add to the old, unreachable cache.
type userSet struct {
	byName map[string]*account
	// dummy is checked for names that do not exist so that a miss costs the same
	// bcrypt time as a hit; it has the cost most users in the file have.
	dummy []byte
	cache authCache
}

// LoadUsers reads and parses the users file at path (see ParseUsers). It fails if the
// file cannot be read, is larger than 8 MiB, or does not parse.
func LoadUsers(path string) (*Users, error) {
	u := &Users{path: path, now: time.Now, compare: bcrypt.CompareHashAndPassword}
	if err := u.Reload(); err != nil {
		return nil, err
	}
	return u, nil
}

// Reload re-reads the file LoadUsers was given (on SIGHUP) and atomically replaces the
// users, dropping every cached password check so a changed or removed password stops
// working at once. On error the current users stay in place and the error says why.
func (u *Users) Reload() error {
	u.reloadMu.Lock()
	defer u.reloadMu.Unlock()
	data, err := readBounded(u.path)
	if err != nil {
		return err
	}
	accts, err := parseAccounts(data)
	if err != nil {
		return fmt.Errorf("%s: %w", u.path, err)
	}
	u.set.Store(newUserSet(accts))
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("auth: users file %s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

func newUserSet(accts []account) *userSet {
	s := &userSet{byName: make(map[string]*account, len(accts))}
	costs := map[int]int{}
	for i := range accts {
		s.byName[accts[i].Name] = &accts[i]
		if c, err := bcrypt.Cost(accts[i].hash); err == nil {
			costs[c]++
		}
	}
	cost, n := bcrypt.MinCost, 0
	for c, k := range costs {
		if k > n || (k == n && c > cost) {
			cost, n = c, k
		}
	}
	s.dummy = dummyHash(cost)
	s.cache.entries = map[[sha256.Size]byte]time.Time{}
	return s
}

// dummyHash is a fixed, valid bcrypt hash (of a random password nobody knows) with its
// cost field set to cost, so checking against it takes as long as checking a real user.
func dummyHash(cost int) []byte {
	const tail = "$U0ScDLSVnUfieuf884X.f.ZVR6uvU7n8/X7pZTLPg4qgg.Vgk6VJS"
	return fmt.Appendf(nil, "$2b$%02d%s", cost, tail)
}

// Authenticate checks a name and password. It returns the user and true when they
// match, or nil and false for a wrong password or an unknown name; both cost one
// bcrypt check, so the time taken does not tell an attacker which names exist. A
// successful check is cached for a minute (keyed by a SHA-256 of name, password and
// hash) so that clients sending credentials on every request pay bcrypt once. The
// returned User is shared and must not be modified.
func (u *Users) Authenticate(name, password string) (*User, bool) {
	s := u.set.Load()
	a := s.byName[name]
	if a == nil {
		_ = u.compare(s.dummy, []byte(password))
		return nil, false
	}
	key := cacheKey(name, password, a.hash)
	now := u.now()
	if s.cache.hit(key, now) {
		return &a.User, true
	}
	if u.compare(a.hash, []byte(password)) != nil {
		return nil, false
	}
	s.cache.add(key, now)
	return &a.User, true
}

func cacheKey(name, password string, hash []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write(hash)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// authCache remembers successful checks until their expiry time.
type authCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time
}

func (c *authCache) hit(key [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[key]
	if ok && !now.Before(exp) {
		delete(c.entries, key)
		ok = false
	}
	return ok
}

// add stores key until now+cacheTTL; when the cache is full it drops expired entries and, if that frees
// nothing, the entry closest to expiry. The scan is linear but runs only after a
// bcrypt check, which costs far more.
func (c *authCache) add(key [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= cacheMax {
		var oldest [sha256.Size]byte
		var oldestExp time.Time
		for k, e := range c.entries {
			if !now.Before(e) {
				delete(c.entries, k)
			} else if oldestExp.IsZero() || e.Before(oldestExp) {
				oldest, oldestExp = k, e
			}
		}
		if len(c.entries) >= cacheMax {
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = now.Add(cacheTTL)
}

// HashPassword returns the bcrypt hash of password for the users file, at cost (0 means
// DefaultCost). It refuses an empty password, one longer than 72 bytes (bcrypt would
// silently ignore the rest), and a cost outside bcrypt.MinCost..16.
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	switch {
	case password == "":
		return "", errors.New("auth: the password is empty")
	case len(password) > 72:
		return "", fmt.Errorf("auth: the password is %d bytes long; bcrypt uses at most 72", len(password))
	case cost < bcrypt.MinCost || cost > maxCost:
		return "", fmt.Errorf("auth: bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, maxCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing the password: %w", err)
	}
	return string(h), nil
}
