package idem

import (
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source, so expiry is tested without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// record runs Begin+Done and fails the test unless the key was free.
func record(t testing.TB, s *Store, key string, fp Fingerprint, rec Record) {
	t.Helper()
	replay, p, err := s.Begin(key, fp)
	if err != nil || replay != nil || p == nil {
		t.Fatalf("Begin(%q, %+v) = %v, %v, %v; want a Pending", key, fp, replay, p, err)
	}
	if err := p.Done(rec); err != nil {
		t.Fatalf("Done: %v", err)
	}
}

// outcome names what Begin did, for compact tables.
func outcome(replay *Record, p *Pending, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case replay != nil:
		return "replay " + strconv.Itoa(replay.Status)
	case p != nil:
		return "pending"
	}
	return "nothing"
}

var (
	putA    = Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/docs/report.pdf", Detail: "sha-1"}
	created = Record{Status: http.StatusCreated, Header: map[string]string{"ETag": `"v1"`, "Location": "/docs/report%20(1).pdf"}}
)

func TestBegin(t *testing.T) {
	with := func(f func(*Fingerprint)) Fingerprint { fp := putA; f(&fp); return fp }
	running := Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/docs/big.iso"}
	move := Fingerprint{Principal: "alice", Method: "MOVE", Path: "/a", Detail: "/b\x00T"}

	tests := []struct {
		name string
		key  string
		fp   Fingerprint
		want string
	}{
		{"same request replays", "k1", putA, "replay 201"},
		{"detail not known yet replays", "k1", with(func(f *Fingerprint) { f.Detail = "" }), "replay 201"},
		{"other path", "k1", with(func(f *Fingerprint) { f.Path = "/docs/other.pdf" }), ErrKeyReused.Error()},
		{"other method", "k1", with(func(f *Fingerprint) { f.Method = "MOVE" }), ErrKeyReused.Error()},
		{"other content", "k1", with(func(f *Fingerprint) { f.Detail = "sha-2" }), ErrKeyReused.Error()},
		{"path differs only in case", "k1", with(func(f *Fingerprint) { f.Path = "/docs/Report.pdf" }), ErrKeyReused.Error()},
		{"other principal, same key, is independent", "k1", with(func(f *Fingerprint) { f.Principal = "bob" }), "pending"},
		{"anonymous is its own principal", "k1", with(func(f *Fingerprint) { f.Principal = "" }), "pending"},
		{"other key", "k2", putA, "pending"},
		{"key is case-sensitive", "K1", putA, "pending"},
		{"in progress", "run", running, ErrInProgress.Error()},
		{"in progress with content", "run", with(func(f *Fingerprint) { f.Path = running.Path; f.Detail = "sha-9" }), ErrInProgress.Error()},
		{"in progress, other path", "run", putA, ErrKeyReused.Error()},
		{"move replays", "mv", move, "replay 204"},
		{"move to another destination", "mv", Fingerprint{Principal: "alice", Method: "MOVE", Path: "/a", Detail: "/c\x00T"}, ErrKeyReused.Error()},
		{"move without overwrite", "mv", Fingerprint{Principal: "alice", Method: "MOVE", Path: "/a", Detail: "/b\x00F"}, ErrKeyReused.Error()},
		{"bad key", "", putA, ErrBadKey.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{Now: newClock().Now})
			record(t, s, "k1", putA, created)
			record(t, s, "mv", move, Record{Status: http.StatusNoContent})
			if _, p, err := s.Begin("run", running); err != nil || p == nil {
				t.Fatalf("Begin(run) = %v, %v", p, err)
			}
			got := outcome(s.Begin(tc.key, tc.fp))
			if got != tc.want {
				t.Errorf("Begin(%q, %+v) = %s; want %s", tc.key, tc.fp, got, tc.want)
			}
		})
	}
}

func TestBadKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"empty", "", false},
		{"uuid", "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"structured field string, quotes kept", `"8e03978e"`, true},
		{"all of VCHAR", "!~", true},
		{"255 bytes", strings.Repeat("k", 255), true},
		{"256 bytes", strings.Repeat("k", 256), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"NUL", "a\x00b", false},
		{"DEL", "a\x7fb", false},
		{"non-ASCII", "clé", false},
	}
	s := open(t, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p, err := s.Begin(tc.key, putA)
			if tc.ok && (err != nil || p == nil) {
				t.Errorf("Begin(%q) = %v; want a Pending", tc.key, err)
			}
			if !tc.ok && !errors.Is(err, ErrBadKey) {
				t.Errorf("Begin(%q) = %v; want ErrBadKey", tc.key, err)
			}
			if p != nil {
				p.Abort()
			}
		})
	}
}

// TestPutBeforeBody is the PUT flow: Begin before the body is read (no hash yet), Done
// with the hash, and a retry that compares the hash once it has read its own body.
func TestPutBeforeBody(t *testing.T) {
	s := open(t, Options{})
	fp := Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/a.txt"}
	record(t, s, "k", fp, Record{Status: 201, Detail: "hash-A"})

	replay, _, err := s.Begin("k", fp)
	if err != nil || replay == nil {
		t.Fatalf("Begin = %v, %v; want a replay", replay, err)
	}
	if replay.Detail != "hash-A" {
		t.Errorf("replay.Detail = %q; want hash-A", replay.Detail)
	}
	if err := replay.CheckDetail("hash-A"); err != nil {
		t.Errorf("CheckDetail(same) = %v", err)
	}
	if err := replay.CheckDetail("hash-B"); !errors.Is(err, ErrKeyReused) {
		t.Errorf("CheckDetail(other) = %v; want ErrKeyReused", err)
	}

	// A request that failed before reading its body (412 here) stored no hash: any
	// content gets the same answer.
	record(t, s, "k412", fp, Record{Status: http.StatusPreconditionFailed})
	replay, _, _ = s.Begin("k412", fp)
	if err := replay.CheckDetail("hash-B"); err != nil {
		t.Errorf("CheckDetail on a record without detail = %v", err)
	}

	// Detail given to Begin is kept when Done does not override it.
	fpc := fp
	fpc.Detail = "hash-C"
	record(t, s, "kc", fpc, Record{Status: 201})
	if _, _, err := s.Begin("kc", fp); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Begin("kc", Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/a.txt", Detail: "hash-D"}); !errors.Is(err, ErrKeyReused) {
		t.Errorf("Begin with other detail = %v; want ErrKeyReused", err)
	}
}

func TestAbort(t *testing.T) {
	s := open(t, Options{})
	_, p, err := s.Begin("k", putA)
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	p.Abort() // no-op
	if err := p.Done(created); err == nil {
		t.Error("Done after Abort succeeded")
	}
	_, p2, err := s.Begin("k", putA)
	if err != nil || p2 == nil {
		t.Fatalf("retry after Abort = %v, %v; want a Pending", p2, err)
	}
	// A stale Abort must not release the retry's reservation.
	p.Abort()
	if got := outcome(s.Begin("k", putA)); got != ErrInProgress.Error() {
		t.Errorf("after stale Abort: %s; want in progress", got)
	}
	if err := p2.Done(created); err != nil {
		t.Fatal(err)
	}
	p2.Abort() // deferred Abort after Done is a no-op
	if got := outcome(s.Begin("k", putA)); got != "replay 201" {
		t.Errorf("after Done then Abort: %s; want replay", got)
	}
	if err := p2.Done(created); err == nil {
		t.Error("second Done succeeded")
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		after     time.Duration
		want      string
	}{
		{"fresh", 0, 0, "replay 201"},
		{"just before default 24h", 0, 24*time.Hour - time.Nanosecond, "replay 201"},
		{"at default 24h", 0, 24 * time.Hour, "pending"},
		{"custom retention", time.Hour, 61 * time.Minute, "pending"},
		{"within custom retention", time.Hour, 59 * time.Minute, "replay 201"},
		{"clock stepped back", 0, -time.Hour, "replay 201"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			s := open(t, Options{Retention: tc.retention, Now: c.Now})
			record(t, s, "k", putA, created)
			c.Advance(tc.after)
			if got := outcome(s.Begin("k", putA)); got != tc.want {
				t.Errorf("Begin = %s; want %s", got, tc.want)
			}
		})
	}
}

func TestReplayIsACopy(t *testing.T) {
	s := open(t, Options{})
	rec := Record{Status: 201, Header: map[string]string{"ETag": `"v1"`}, Body: []byte("hi")}
	record(t, s, "k", putA, rec)
	rec.Header["ETag"] = "changed by caller after Done"
	r1, _, _ := s.Begin("k", putA)
	r1.Header["ETag"] = "changed by caller after Begin"
	r1.Body[0] = 'X'
	r2, _, _ := s.Begin("k", putA)
	if r2.Header["ETag"] != `"v1"` || string(r2.Body) != "hi" {
		t.Errorf("stored record changed through a copy: %+v", r2)
	}
}

func TestDoneBounds(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		ok   bool
	}{
		{"empty body", Record{Status: 204}, true},
		{"body at MaxBody", Record{Status: 400, Body: make([]byte, MaxBody)}, true},
		{"body over MaxBody", Record{Status: 400, Body: make([]byte, MaxBody+1)}, false},
		{"headers too large", Record{Status: 201, Header: map[string]string{"X-Big": strings.Repeat("x", maxHeaderBytes)}}, false},
		{"no status", Record{}, false},
		{"status 600", Record{Status: 600}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{Path: filepath.Join(t.TempDir(), "idem.log")})
			_, p, err := s.Begin("k", putA)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Done(tc.rec)
			if (err == nil) != tc.ok {
				t.Fatalf("Done = %v; want ok=%v", err, tc.ok)
			}
			// A refused record releases the key, so it cannot stay "in progress".
			want := "pending"
			if tc.ok {
				want = "replay " + strconv.Itoa(tc.rec.Status)
			}
			if got := outcome(s.Begin("k", putA)); got != want {
				t.Errorf("Begin after Done = %s; want %s", got, want)
			}
		})
	}
}

func TestConcurrentBegin(t *testing.T) {
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "idem.log")})
	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		pending []*Pending
		busy    int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, p, err := s.Begin("k", putA)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case p != nil:
				pending = append(pending, p)
			case errors.Is(err, ErrInProgress):
				busy++
			default:
				t.Errorf("Begin = %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(pending) != 1 || busy != n-1 {
		t.Fatalf("%d Pending, %d in progress; want 1 and %d", len(pending), busy, n-1)
	}

	// The winner finishes while others race in: each sees in-progress or the replay,
	// never a second Pending.
	for range n {
		wg.Go(func() {
			replay, p, err := s.Begin("k", putA)
			if p != nil || (replay == nil && !errors.Is(err, ErrInProgress)) {
				t.Errorf("Begin during Done = %s", outcome(replay, p, err))
			}
		})
	}
	if err := pending[0].Done(created); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestShouldRecord(t *testing.T) {
	tests := []struct {
		status int
		want   bool
	}{
		{100, false}, {200, true}, {201, true}, {204, true}, {207, true},
		{304, false}, {400, true}, {403, true}, {404, true}, {408, false},
		{409, false}, {412, true}, {415, true}, {422, true}, {423, false},
		{425, false}, {429, false}, {500, false}, {503, false}, {507, false},
	}
	for _, tc := range tests {
		if got := ShouldRecord(tc.status); got != tc.want {
			t.Errorf("ShouldRecord(%d) = %v; want %v", tc.status, got, tc.want)
		}
	}
}

// TestInvalidUTF8 checks that a fingerprint with invalid UTF-8 still matches itself
// after a restart, although JSON cannot hold it byte for byte.
func TestInvalidUTF8(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.log")
	fp := Fingerprint{Principal: "al\xffice", Method: "PUT", Path: "/caf\xe9"}
	s := open(t, Options{Path: path})
	record(t, s, "k", fp, created)
	s.Close()
	s = open(t, Options{Path: path})
	if got := outcome(s.Begin("k", fp)); got != "replay 201" {
		t.Errorf("after restart: %s; want replay", got)
	}
}

func BenchmarkBeginDone(b *testing.B) {
	for _, mode := range []string{"memory", "file"} {
		b.Run(mode, func(b *testing.B) {
			opt := Options{MaxKeys: 10_000}
			if mode == "file" {
				opt.Path = filepath.Join(b.TempDir(), "idem.log")
			}
			s := open(b, opt)
			rec := Record{Status: 201, Header: map[string]string{"ETag": `"abc"`, "Last-Modified": "Sat, 01 Mar 2025 12:00:00 GMT"}}
			fp := Fingerprint{Principal: "alice", Method: "PUT", Path: "/docs/report.pdf"}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				_, p, err := s.Begin(strconv.Itoa(i), fp)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Done(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	s := open(b, Options{})
	record(b, s, "k", putA, created)
	b.ReportAllocs()
	for b.Loop() {
		if r, _, err := s.Begin("k", putA); r == nil || err != nil {
			b.Fatal(err)
		}
	}
}
