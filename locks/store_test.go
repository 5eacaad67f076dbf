package locks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := NewFileStore(filepath.Join(dir, ".safedav-locks.json"))
	got, err := s.Load(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Load of missing file = %v, %v; want nothing", got, err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	want := []Lock{
		{Token: "urn:uuid:1", Root: "/a", Owner: []byte("<D:href>\xff binary</D:href>"), Principal: "alice",
			Depth: dInf, Shared: true, Timeout: time.Minute, Expires: exp},
		{Token: "urn:uuid:2", Root: "/", Depth: d0, Timeout: time.Hour, Expires: exp.Add(time.Hour)},
	}
	for range 2 { // the second Save replaces the file
		if err := s.Save(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the lock file (temp files left?)", len(entries))
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Save(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after saving none: %v, %v", got, err)
	}
}

func TestFileStoreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "locks.json")
	for _, content := range []string{"{not json", `{"version":2,"locks":[]}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewFileStore(path).Load(ctx); err == nil {
			t.Errorf("Load(%q) succeeded", content)
		}
		if _, err := NewManager(Options{Store: NewFileStore(path)}); err == nil {
			t.Errorf("NewManager over %q succeeded", content)
		}
	}
	// Saving into a missing directory fails and changes nothing.
	bad := NewFileStore(filepath.Join(dir, "missing", "locks.json"))
	if err := bad.Save(ctx, nil); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := NewFileStore(path).Save(cancelled, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: %v", err)
	}
}

func TestManagerReload(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "locks.json")
	c := newClock()
	m1, err := NewManager(Options{Now: c.Now, Store: NewFileStore(path)})
	if err != nil {
		t.Fatal(err)
	}
	short := mustCreate(t, m1, Lock{Root: "/short", Principal: "alice", Timeout: time.Minute})
	long := mustCreate(t, m1, Lock{Root: "/long", Principal: "alice", Depth: dInf, Owner: []byte("<D:href>me</D:href>"), Timeout: time.Hour})
	gone := mustCreate(t, m1, Lock{Root: "/gone", Principal: "alice"})
	removed := mustCreate(t, m1, Lock{Root: "/dir/removed", Principal: "alice"})
	if err := m1.Unlock(ctx, "/gone", gone.Token, "alice"); err != nil {
		t.Fatal(err)
	}
	m1.Removed("/dir")

	c.Advance(2 * time.Minute) // the server was down; /short expired meanwhile
	m2, err := NewManager(Options{Now: c.Now, Store: NewFileStore(path)})
	if err != nil {
		t.Fatal(err)
	}
	got := m2.Discover("/long/x")
	if len(got) != 1 || !reflect.DeepEqual(got[0], long) {
		t.Fatalf("reloaded %+v, want %+v", got, long)
	}
	for _, tok := range []string{short.Token, gone.Token, removed.Token} {
		m2.mu.RLock()
		l := m2.byToken[tok]
		m2.mu.RUnlock()
		if l != nil {
			t.Errorf("lock %+v survived the restart", l)
		}
	}
	// The token still works, and still excludes others.
	if err := m2.Check(ctx, "alice", "/long/f", false, []string{long.Token}); err != nil {
		t.Fatal(err)
	}
	if err := m2.Check(ctx, "bob", "/long/f", false, nil); err == nil {
		t.Fatal("reloaded lock does not block")
	}

	// A restart with a lower MaxTimeout shortens the loaded lock.
	m3, err := NewManager(Options{Now: c.Now, Store: NewFileStore(path), MaxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if l := m3.Discover("/long")[0]; l.Timeout != time.Minute || !l.Expires.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("lock not capped: %+v", l)
	}
}

func TestManagerLoadRejectsBadLocks(t *testing.T) {
	exp := newClock().Now().Add(time.Hour)
	for name, ls := range map[string][]Lock{
		"duplicate": {{Token: "t", Root: "/a", Expires: exp}, {Token: "t", Root: "/b", Expires: exp}},
		"no_token":  {{Root: "/a", Expires: exp}},
		"bad_root":  {{Token: "t", Root: "a", Expires: exp}},
		"bad_depth": {{Token: "t", Root: "/a", Depth: 1, Expires: exp}},
	} {
		c := newClock()
		if _, err := NewManager(Options{Now: c.Now, Store: &memStore{locks: ls}}); err == nil {
			t.Errorf("%s: NewManager succeeded", name)
		}
	}
}

// memStore is a Store in memory whose Save can be made to fail.
type memStore struct {
	mu    sync.Mutex
	locks []Lock
	fail  error
	saves int
}

func (s *memStore) Load(context.Context) ([]Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locks, nil
}

func (s *memStore) Save(_ context.Context, all []Lock) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.fail != nil {
		return s.fail
	}
	s.locks = all
	return nil
}

func TestSaveFailure(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("disk full")
	st := &memStore{}
	var reported []error
	m, _ := newManager(t, Options{Store: st, OnSaveError: func(err error) { reported = append(reported, err) }})
	kept := mustCreate(t, m, Lock{Root: "/kept", Principal: "alice"})

	st.fail = boom
	// Create is withdrawn: nobody knows the token, so it must not block anyone.
	if _, err := m.Create(ctx, Lock{Root: "/a", Principal: "alice"}); !errors.Is(err, boom) {
		t.Fatalf("Create with failing store: %v", err)
	}
	if err := m.Check(ctx, "bob", "/a", false, nil); err != nil {
		t.Fatalf("withdrawn lock blocks: %v", err)
	}
	if len(reported) != 1 {
		t.Fatalf("re-save after rollback reported %d errors, want 1", len(reported))
	}
	// Refresh and Unlock report the error but their change stands.
	if _, err := m.Refresh(ctx, "/kept", kept.Token, "alice", time.Minute); !errors.Is(err, boom) {
		t.Fatalf("Refresh: %v", err)
	}
	if err := m.Unlock(ctx, "/kept", kept.Token, "alice"); !errors.Is(err, boom) {
		t.Fatalf("Unlock: %v", err)
	}
	if m.HasLock("/kept", kept.Token) {
		t.Fatal("unlocked lock still there")
	}

	// Once the store recovers, the next change saves the whole state.
	st.fail = nil
	l := mustCreate(t, m, Lock{Root: "/b", Principal: "alice"})
	if len(st.locks) != 1 || st.locks[0].Token != l.Token {
		t.Fatalf("stored %+v, want only /b", st.locks)
	}
	st.fail = boom
	m.Removed("/b")
	if len(reported) != 2 {
		t.Fatalf("Removed's save error not reported (%d)", len(reported))
	}
	if m.HasLock("/b", l.Token) {
		t.Fatal("Removed kept the lock")
	}
}

func TestSaveSkippedWhenNothingChanged(t *testing.T) {
	st := &memStore{}
	m, _ := newManager(t, Options{Store: st})
	m.Removed("/nothing")
	mustCreate(t, m, Lock{Root: "/a"})
	m.Removed("/b")
	if st.saves != 1 {
		t.Fatalf("%d saves, want 1", st.saves)
	}
}

// slowStore is a memStore whose saves take a while, so that changes pile up behind one.
type slowStore struct{ memStore }

func (s *slowStore) Save(ctx context.Context, all []Lock) error {
	time.Sleep(5 * time.Millisecond)
	return s.memStore.Save(ctx, all)
}

// Every change is in the store when it returns, and concurrent changes share saves:
// one save covers every change made before it started.
func TestConcurrentChangesShareSaves(t *testing.T) {
	st := &slowStore{}
	m, err := NewManager(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l, err := m.Create(t.Context(), Lock{Root: fmt.Sprintf("/f%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			saved, _ := st.Load(t.Context())
			found := false
			for _, s := range saved {
				found = found || s.Token == l.Token
			}
			if !found {
				t.Errorf("Create of /f%d returned before its lock was saved", i)
			}
			if err := m.Unlock(t.Context(), l.Root, l.Token, ""); err != nil {
				t.Error(err)
			}
			saved, _ = st.Load(t.Context())
			for _, s := range saved {
				if s.Token == l.Token {
					t.Errorf("Unlock of /f%d returned before the store dropped it", i)
				}
			}
		})
	}
	wg.Wait()
	if st.saves >= n {
		t.Fatalf("%d changes took %d saves: they did not share them", 2*n, st.saves)
	}
	t.Logf("%d changes, %d saves", 2*n, st.saves)
}
