package idem

import (
	"bytes"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func fpN(i int) Fingerprint {
	return Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/f" + strconv.Itoa(i), Detail: "h" + strconv.Itoa(i)}
}

// TestRestart reopens the log in the middle of the retention window: records still
// live replay with everything they held, expired ones are gone, and the log is
// compacted to the live ones.
func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.log")
	c := newClock()
	s := open(t, Options{Path: path, Now: c.Now})
	record(t, s, "old", fpN(1), Record{Status: 201})
	c.Advance(12 * time.Hour)
	full := Record{
		Status: 201,
		Header: map[string]string{"ETag": `"v2"`, "Location": "/f2%20(1)", "X-OC-Mtime": "accepted"},
		Body:   []byte(`{"ok":true}`),
		Detail: "content-hash",
	}
	record(t, s, "new", fpN(2), full)
	_, running, _ := s.Begin("running", fpN(3)) // never finished: not persisted
	_ = running
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c.Advance(13 * time.Hour) // "old" is 25 h old, "new" 13 h
	s = open(t, Options{Path: path, Now: c.Now})
	if got := outcome(s.Begin("old", fpN(1))); got != "pending" {
		t.Errorf("expired record after restart: %s; want pending", got)
	}
	replay, _, err := s.Begin("new", Fingerprint{Principal: "alice", Method: http.MethodPut, Path: "/f2"})
	if err != nil || replay == nil {
		t.Fatalf("live record after restart: %s", outcome(replay, nil, err))
	}
	if replay.Status != full.Status || !maps.Equal(replay.Header, full.Header) ||
		!bytes.Equal(replay.Body, full.Body) || replay.Detail != full.Detail ||
		!replay.Created.Equal(c.Now().Add(-13*time.Hour)) {
		t.Errorf("replay after restart = %+v; want %+v", replay, full)
	}
	if got := outcome(s.Begin("running", fpN(3))); got != "pending" {
		t.Errorf("key in progress at shutdown: %s; want pending", got)
	}
	if n := countLines(t, path); n != 1 {
		t.Errorf("log has %d lines after Open; want 1 (compacted)", n)
	}
}

func TestCompaction(t *testing.T) {
	tests := []struct {
		name     string
		maxKeys  int
		expire   bool // advance past retention after the first batch
		first    int  // records written before
		then     int  // records written after
		live     int  // records expected to replay
		compacts bool // the log is rewritten after Open
	}{
		{"expired records dropped", 0, true, 20, 1, 1, true},
		{"evicted records dropped", 5, false, 20, 0, 5, true},
		{"growth below twice live does not compact", 0, false, 12, 0, 12, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "idem.log")
			c := newClock()
			s := open(t, Options{Path: path, MaxKeys: tc.maxKeys, Now: c.Now})
			s.compactMin = 10
			// Compaction renames a new file over the log. Held open, the original's
			// inode cannot be reused, so SameFile tells whether that happened; the line
			// count alone cannot, as a compacted log may hold every record too.
			orig, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			i := 0
			for ; i < tc.first; i++ {
				record(t, s, "k"+strconv.Itoa(i), fpN(i), Record{Status: 201})
				c.Advance(time.Second)
			}
			if tc.expire {
				c.Advance(25 * time.Hour)
			}
			for ; i < tc.first+tc.then; i++ {
				record(t, s, "k"+strconv.Itoa(i), fpN(i), Record{Status: 201})
			}
			lines := countLines(t, path)
			if lines > 2*tc.live && lines >= s.compactMin {
				t.Errorf("log has %d lines for %d live records: not compacted", lines, tc.live)
			}
			if lines < tc.live {
				t.Errorf("log has %d lines for %d live records: lost some", lines, tc.live)
			}
			before, err := orig.Stat()
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if compacted := !os.SameFile(before, after); compacted != tc.compacts {
				t.Errorf("log compacted: %v; want %v", compacted, tc.compacts)
			}
			s.Close()

			// Whatever compaction did, a restart sees exactly the live records: the
			// newest tc.live.
			s = open(t, Options{Path: path, MaxKeys: tc.maxKeys, Now: c.Now})
			for j := 0; j < i; j++ {
				want := "pending"
				if j >= i-tc.live {
					want = "replay 201"
				}
				r, p, err := s.Begin("k"+strconv.Itoa(j), fpN(j))
				if got := outcome(r, p, err); got != want {
					t.Errorf("k%d after restart: %s; want %s", j, got, want)
				}
				if p != nil {
					p.Abort()
				}
			}
		})
	}
}

func TestMaxKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.log")
	c := newClock()
	s := open(t, Options{Path: path, MaxKeys: 3, Now: c.Now})
	for i := range 4 {
		record(t, s, "k"+strconv.Itoa(i), fpN(i), Record{Status: 201})
		c.Advance(time.Minute)
	}
	want := []string{"pending", "replay 201", "replay 201", "replay 201"} // oldest evicted first
	for i, w := range want {
		r, p, err := s.Begin("k"+strconv.Itoa(i), fpN(i))
		if got := outcome(r, p, err); got != w {
			t.Errorf("k%d: %s; want %s", i, got, w)
		}
		if p != nil {
			p.Abort()
		}
	}
	s.Close()

	// A smaller bound at restart keeps the newest.
	s = open(t, Options{Path: path, MaxKeys: 1, Now: c.Now})
	for i, w := range []string{"pending", "pending", "pending", "replay 201"} {
		r, p, err := s.Begin("k"+strconv.Itoa(i), fpN(i))
		if got := outcome(r, p, err); got != w {
			t.Errorf("restart with MaxKeys 1, k%d: %s; want %s", i, got, w)
		}
		if p != nil {
			p.Abort()
		}
	}
}

// writeLog makes a log of n records through a Store and returns its bytes.
func writeLog(t *testing.T, path string, c *clock, n int) []byte {
	t.Helper()
	s := open(t, Options{Path: path, Now: c.Now})
	for i := range n {
		record(t, s, "k"+strconv.Itoa(i), fpN(i), Record{Status: 201, Header: map[string]string{"ETag": `"e` + strconv.Itoa(i) + `"`}})
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTornTail is a crash in the middle of an append: the last line has no newline.
// Open keeps what was whole, and appending afterwards must not glue a new line onto
// the torn one.
func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		tail func(last []byte) []byte // last is the final complete line, newline included
		live int
	}{
		{"half a line", func(l []byte) []byte { return l[:len(l)/2] }, 2},
		{"all but the newline", func(l []byte) []byte { return l[:len(l)-1] }, 3}, // whole: kept
		{"zeros from a size-extended file", func(l []byte) []byte { return make([]byte, len(l)) }, 2},
		{"one byte", func(l []byte) []byte { return l[:1] }, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "idem.log")
			c := newClock()
			b := writeLog(t, path, c, 3)
			cut := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
			b = append(b[:cut:cut], tc.tail(b[cut:])...)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}

			s := open(t, Options{Path: path, Now: c.Now})
			for i := range 3 {
				want := "pending"
				if i < tc.live {
					want = "replay 201"
				}
				r, p, err := s.Begin("k"+strconv.Itoa(i), fpN(i))
				if got := outcome(r, p, err); got != want {
					t.Errorf("k%d: %s; want %s", i, got, want)
				}
				if p != nil {
					if err := p.Done(Record{Status: 204}); err != nil {
						t.Fatal(err)
					}
				}
			}
			s.Close()
			s = open(t, Options{Path: path, Now: c.Now}) // would fail if the append was glued on
			for i := range 3 {
				if r, _, err := s.Begin("k"+strconv.Itoa(i), fpN(i)); r == nil {
					t.Errorf("k%d after second restart: %v", i, err)
				}
			}
		})
	}
}

func TestCorruptLog(t *testing.T) {
	valid := func(t *testing.T, path string) []byte { return writeLog(t, path, newClock(), 3) }
	line2 := func(b []byte, repl string) []byte {
		ls := strings.SplitAfter(string(b), "\n")
		ls[1] = repl
		return []byte(strings.Join(ls, ""))
	}
	tests := []struct {
		name  string
		bytes func(t *testing.T, path string) []byte
		want  string // in the error, besides the path
	}{
		{"garbage middle line", func(t *testing.T, p string) []byte { return line2(valid(t, p), "garbage\n") }, "line 2"},
		{"truncated middle line", func(t *testing.T, p string) []byte {
			b := valid(t, p)
			l := strings.SplitAfter(string(b), "\n")[1]
			return line2(b, l[:len(l)/2]+"\n")
		}, "line 2"},
		{"empty middle line", func(t *testing.T, p string) []byte { return line2(valid(t, p), "\n") }, "line 2"},
		{"unknown version", func(t *testing.T, p string) []byte {
			b := valid(t, p)
			return bytes.Replace(b, []byte(`{"v":1,`), []byte(`{"v":2,`), 1)
		}, "line 1"},
		{"unknown field", func(t *testing.T, p string) []byte {
			b := valid(t, p)
			return bytes.Replace(b, []byte(`{"v":1,`), []byte(`{"v":1,"x":0,`), 1)
		}, "line 1"},
		{"complete last line damaged", func(t *testing.T, p string) []byte { return append(valid(t, p), "{}\n"...) }, "line 4"},
		{"line too long", func(t *testing.T, p string) []byte {
			return append(valid(t, p), bytes.Repeat([]byte("x"), maxLine+10)...)
		}, "line 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "idem.log")
			if err := os.WriteFile(path, tc.bytes(t, path), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Path: path, Now: newClock().Now})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a corrupt log")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error %q does not name %s and %q", err, path, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Options{Path: filepath.Join(dir, "missing-dir", "idem.log")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	// A missing file is an empty store, created on Open.
	path := filepath.Join(dir, "idem.log")
	s := open(t, Options{Path: path})
	if _, err := os.Stat(path); err != nil {
		t.Errorf("log not created: %v", err)
	}
	s.Close()
	if leftovers, _ := filepath.Glob(path + ".tmp-*"); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestFailedAppend makes the append fail: the record stays in memory and Done
// rewrites the whole log (the failed write may have left a torn line). If that rewrite
// succeeds Done reports success; if it fails too, Done reports the error and the next
// Done rewrites the log. Either way all records are durable in the end.
func TestFailedAppend(t *testing.T) {
	for _, rewriteFails := range []bool{false, true} {
		t.Run("rewriteFails="+strconv.FormatBool(rewriteFails), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "idem.log")
			s := open(t, Options{Path: path})
			record(t, s, "k0", fpN(0), created)
			s.f.Close() // the next append fails
			// Moving the directory away makes the rewrite fail; unlike permissions,
			// this holds when the tests run as root.
			moved := dir + ".moved"
			if rewriteFails {
				if err := os.Rename(dir, moved); err != nil {
					t.Fatal(err)
				}
			}

			_, p, _ := s.Begin("k1", fpN(1))
			err := p.Done(created)
			if rewriteFails && err == nil {
				t.Error("Done succeeded though neither append nor rewrite could")
			}
			if !rewriteFails && err != nil {
				t.Errorf("Done = %v; want nil, the rewrite holds the record", err)
			}
			if got := outcome(s.Begin("k1", fpN(1))); got != "replay 201" {
				t.Errorf("after failed append: %s; want replay from memory", got)
			}
			if rewriteFails {
				if err := os.Rename(moved, dir); err != nil {
					t.Fatal(err)
				}
				if n := countLines(t, path); n != 1 {
					t.Errorf("log has %d lines after the failed rewrite; want 1 (k0)", n)
				}
			}
			record(t, s, "k2", fpN(2), created) // fails unless this Done's rewrite succeeds
			s.Close()
			s = open(t, Options{Path: path})
			for i := range 3 {
				if got := outcome(s.Begin("k"+strconv.Itoa(i), fpN(i))); got != "replay 201" {
					t.Errorf("k%d after restart: %s; want replay", i, got)
				}
			}
		})
	}
}

func TestDoneAfterClose(t *testing.T) {
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "idem.log")})
	_, p, _ := s.Begin("k", putA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := p.Done(created); err == nil {
		t.Error("Done after Close reported success")
	}
	if got := outcome(s.Begin("k", putA)); got != "replay 201" {
		t.Errorf("after Close: %s; want replay from memory", got)
	}
}

func FuzzDecodeLine(f *testing.F) {
	good, err := encodeLine(diskRecord{
		V: 1, Principal: "alice", Key: "k", Method: "PUT", Path: "/a", Detail: "h",
		Status: 201, Header: map[string]string{"ETag": `"x"`}, Body: []byte("b"),
		Created: time.Date(2025, 3, 1, 12, 0, 0, 5, time.FixedZone("", 3600)),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:len(good)-1])
	f.Add([]byte(`{"v":1,"key":"k","method":"M","status":200,"created":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":1} {}`))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte(`{"v":1,"key":"k","method":"M","status":200,"created":"2025-01-01T00:00:00Z","header":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		d, err := decodeLine(line)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to a line that decodes the same: compaction
		// rewrites every record it loaded.
		enc, err := encodeLine(d)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", d, err)
		}
		if bytes.Count(enc, []byte("\n")) != 1 {
			t.Fatalf("encoded record spans lines: %q", enc)
		}
		d2, err := decodeLine(enc[:len(enc)-1])
		if err != nil {
			t.Fatalf("re-decoding %q: %v", enc, err)
		}
		if d.V != d2.V || d.Principal != d2.Principal || d.Key != d2.Key || d.Method != d2.Method ||
			d.Path != d2.Path || d.Detail != d2.Detail || d.Status != d2.Status ||
			!maps.Equal(d.Header, d2.Header) || !bytes.Equal(d.Body, d2.Body) || !d.Created.Equal(d2.Created) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", d, d2)
		}
	})
}

// A reservation that a crash left without its record becomes, at the next Open, a
// Record with Unknown set: the retry is neither applied again nor given an answer.
// A reservation withdrawn by Abort, or followed by its record, leaves no trace of it.
func TestReservationAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.log")
	s := open(t, Options{Path: path})
	begin := func(s *Store, key string, fp Fingerprint) *Pending {
		t.Helper()
		rec, p, err := s.Begin(key, fp)
		if err != nil || rec != nil {
			t.Fatalf("Begin(%s): %v %v", key, rec, err)
		}
		if err := p.Reserve(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	begin(s, "crashed", fpN(1)) // neither Done nor Abort: the process dies
	begin(s, "aborted", fpN(2)).Abort()
	if err := begin(s, "done", fpN(3)).Done(Record{Status: 201}); err != nil {
		t.Fatal(err)
	}
	// Compaction keeps a reservation still running.
	s.fileMu.Lock()
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	s.fileMu.Unlock()
	s.Close()

	s = open(t, Options{Path: path})
	rec, _, err := s.Begin("crashed", fpN(1))
	if err != nil || rec == nil || !rec.Unknown {
		t.Fatalf("crashed reservation: %+v %v, want a Record with Unknown", rec, err)
	}
	if _, _, err := s.Begin("crashed", fpN(9)); err != ErrKeyReused {
		t.Fatalf("crashed reservation with another request: %v", err)
	}
	if rec, p, err := s.Begin("aborted", fpN(2)); err != nil || rec != nil || p == nil {
		t.Fatalf("aborted reservation: %+v %v", rec, err)
	}
	if rec, _, err := s.Begin("done", fpN(3)); err != nil || rec == nil || rec.Unknown || rec.Status != 201 {
		t.Fatalf("finished request: %+v %v", rec, err)
	}
	s.Close()
	// The Unknown record survives a second restart (Open compacts the log).
	s = open(t, Options{Path: path})
	if rec, _, _ := s.Begin("crashed", fpN(1)); rec == nil || !rec.Unknown {
		t.Fatalf("after a second restart: %+v", rec)
	}
}
