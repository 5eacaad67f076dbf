package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testUsers wraps Users with a fake clock and a counter of bcrypt checks.
type testUsers struct {
	*Users
	path     string
	clock    time.Time
	compares atomic.Int64
}

// loadTestUsers writes content to a users file and loads it with the hooks installed.
func loadTestUsers(t *testing.T, content string) *testUsers {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatalf("LoadUsers: %v", err)
	}
	tu := &testUsers{Users: u, path: path, clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	u.now = func() time.Time { return tu.clock }
	u.compare = func(hash, password []byte) error {
		tu.compares.Add(1)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	return tu
}

// rewrite replaces the file's content; the Users see it only after Reload.
func (tu *testUsers) rewrite(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(tu.path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustHash(t testing.TB, password string) string {
	t.Helper()
	h, err := HashPassword(password, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAuthenticate(t *testing.T) {
	content := fmt.Sprintf("users:\n  - name: alice\n    password: %s\n    permissions: read-only\n  - name: bob\n    password: %s\n    root: /\n",
		mustHash(t, "alice-pw"), mustHash(t, "bob-pw"))
	tests := []struct {
		name, user, password string
		wantOK               bool
		wantRoot             string
	}{
		{"right", "alice", "alice-pw", true, "/alice"},
		{"right_admin", "bob", "bob-pw", true, "/"},
		{"wrong_password", "alice", "bob-pw", false, ""},
		{"empty_password", "alice", "", false, ""},
		{"password_prefix", "alice", "alice-p", false, ""},
		{"name_case", "Alice", "alice-pw", false, ""},
		{"unknown_user", "mallory", "alice-pw", false, ""},
		{"empty_user", "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := loadTestUsers(t, content)
			u, ok := users.Authenticate(tt.user, tt.password)
			if ok != tt.wantOK || (ok && (u.Name != tt.user || u.Root != tt.wantRoot)) || (!ok && u != nil) {
				t.Fatalf("Authenticate(%q, %q) = %+v, %v", tt.user, tt.password, u, ok)
			}
			// Every uncached answer, including for a name that does not exist, costs
			// exactly one bcrypt check: that is what hides which names exist.
			if n := users.compares.Load(); n != 1 {
				t.Fatalf("bcrypt checks = %d, want 1", n)
			}
		})
	}
}

func TestDummyHashCost(t *testing.T) {
	h4, h5 := mustHash(t, "a"), func() string {
		h, err := HashPassword("b", 5)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}()
	// The dummy takes the cost most users have, so a miss costs what a hit costs.
	users := loadTestUsers(t, "a:"+h4+"\nb:"+h5+"\nc:"+h5+"\n")
	if c, err := bcrypt.Cost(users.set.Load().dummy); err != nil || c != 5 {
		t.Fatalf("dummy cost = %d, %v; want 5", c, err)
	}
	for cost := bcrypt.MinCost; cost <= 6; cost++ {
		d := dummyHash(cost)
		if err := checkHash(string(d)); err != nil {
			t.Fatalf("dummyHash(%d) = %q: %v", cost, d, err)
		}
		if err := bcrypt.CompareHashAndPassword(d, []byte("x")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			t.Fatalf("comparing against dummyHash(%d): %v, want a mismatch", cost, err)
		}
	}
}

func TestAuthenticateCache(t *testing.T) {
	users := loadTestUsers(t, "alice:"+mustHash(t, "pw")+"\nbob:"+mustHash(t, "bob-pw")+"\n")
	step := func(name, user, password string, wantOK bool, wantCompares int64) {
		t.Helper()
		before := users.compares.Load()
		_, ok := users.Authenticate(user, password)
		if ok != wantOK {
			t.Fatalf("%s: Authenticate(%q, %q) ok = %v, want %v", name, user, password, ok, wantOK)
		}
		if n := users.compares.Load() - before; n != wantCompares {
			t.Fatalf("%s: bcrypt checks = %d, want %d", name, n, wantCompares)
		}
	}
	step("first", "alice", "pw", true, 1)
	step("cached", "alice", "pw", true, 0)
	users.clock = users.clock.Add(cacheTTL - time.Second)
	step("still_cached", "alice", "pw", true, 0)
	step("wrong_not_cached", "alice", "pw2", false, 1)
	step("wrong_again", "alice", "pw2", false, 1)
	step("other_user_same_password", "bob", "pw", false, 1)
	step("unknown_never_cached", "carol", "pw", false, 1)
	step("unknown_again", "carol", "pw", false, 1)

	users.clock = users.clock.Add(time.Second) // the entry was made at t0; now t0+TTL
	step("expired", "alice", "pw", true, 1)
	step("cached_again", "alice", "pw", true, 0)

	if err := users.Reload(); err != nil {
		t.Fatal(err)
	}
	step("reload_drops_cache", "alice", "pw", true, 1)
	step("cached_after_reload", "alice", "pw", true, 0)

	// A changed password stops working at Reload even though the old one is cached.
	users.rewrite(t, "alice:"+mustHash(t, "new-pw")+"\n")
	step("cached_before_reload", "alice", "pw", true, 0)
	if err := users.Reload(); err != nil {
		t.Fatal(err)
	}
	step("old_password_after_reload", "alice", "pw", false, 1)
	step("new_password", "alice", "new-pw", true, 1)
	step("removed_user", "bob", "bob-pw", false, 1)
}

func TestReloadErrorKeepsOldUsers(t *testing.T) {
	users := loadTestUsers(t, "alice:"+mustHash(t, "pw")+"\n")
	users.rewrite(t, "alice:pw\n")
	err := users.Reload()
	if err == nil || !strings.Contains(err.Error(), users.path) || !strings.Contains(err.Error(), "htpasswd -B") {
		t.Fatalf("Reload error = %v, want one naming the file and the fix", err)
	}
	if _, ok := users.Authenticate("alice", "pw"); !ok {
		t.Fatal("the old users did not survive a failed Reload")
	}
	if err := os.Remove(users.path); err != nil {
		t.Fatal(err)
	}
	if err := users.Reload(); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	if _, ok := users.Authenticate("alice", "pw"); !ok {
		t.Fatal("the old users did not survive a failed Reload")
	}
}

func TestLoadUsersErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadUsers(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUsers(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("users:\n  - name: a\n    password: plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUsers(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("bad file: %v", err)
	}
}

func TestAuthCacheBounded(t *testing.T) {
	var c authCache
	c.entries = map[[32]byte]time.Time{}
	t0 := time.Unix(1e9, 0)
	key := func(i int) [32]byte { return cacheKey(fmt.Sprint(i), "", nil) }
	for i := range cacheMax {
		c.add(key(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	c.add(key(cacheMax), t0.Add(time.Second))
	if len(c.entries) != cacheMax {
		t.Fatalf("cache holds %d entries, want %d", len(c.entries), cacheMax)
	}
	if c.hit(key(0), t0.Add(time.Second)) {
		t.Error("the entry closest to expiry was not the one dropped")
	}
	if !c.hit(key(1), t0.Add(time.Second)) || !c.hit(key(cacheMax), t0.Add(time.Second)) {
		t.Error("a newer entry was dropped")
	}
	// Once everything has expired, one add clears the lot.
	c.add(key(-1), t0.Add(time.Hour))
	if len(c.entries) != 1 {
		t.Fatalf("cache holds %d entries after expiry, want 1", len(c.entries))
	}
}

func TestAuthenticateConcurrentReload(t *testing.T) {
	users := loadTestUsers(t, "alice:"+mustHash(t, "pw")+"\n")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, ok := users.Authenticate("alice", "pw"); !ok {
					t.Error("Authenticate failed during Reload")
					return
				}
				users.Authenticate("mallory", "pw")
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if err := users.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

func TestHashPassword(t *testing.T) {
	for _, pw := range []string{"secret", "ünïcödé", strings.Repeat("x", 72)} {
		h, err := HashPassword(pw, bcrypt.MinCost)
		if err != nil {
			t.Fatalf("HashPassword(%q): %v", pw, err)
		}
		if err := checkHash(h); err != nil {
			t.Fatalf("HashPassword(%q) = %q, which the users file refuses: %v", pw, h, err)
		}
		if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) != nil {
			t.Fatalf("HashPassword(%q) does not verify", pw)
		}
		users, err := ParseUsers([]byte("u:" + h))
		if err != nil || len(users) != 1 {
			t.Fatalf("ParseUsers of a HashPassword hash: %v", err)
		}
	}

	errs := []struct {
		name     string
		password string
		cost     int
		want     string
	}{
		{"empty", "", bcrypt.MinCost, "empty"},
		{"too_long", strings.Repeat("x", 73), bcrypt.MinCost, "73 bytes"},
		{"cost_low", "pw", bcrypt.MinCost - 1, "cost 3"},
		{"cost_negative", "pw", -1, "cost -1"},
		{"cost_high", "pw", maxCost + 1, "cost 17"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashPassword(tt.password, tt.cost)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("HashPassword = %q, %v; want an error containing %q", h, err, tt.want)
			}
		})
	}
}

func TestHashPasswordDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("a cost-12 bcrypt takes a noticeable time")
	}
	h, err := HashPassword("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c != DefaultCost {
		t.Fatalf("cost = %d, %v; want %d", c, err, DefaultCost)
	}
}
