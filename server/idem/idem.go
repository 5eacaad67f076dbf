// Package idem remembers the outcome of writes sent with an Idempotency-Key header, so
// that a client retrying a PUT, COPY or MOVE whose response it never saw gets the
// original response instead of a second application of the request. Without it a
// retried upload under the "rename" overwrite policy would create "report (1).pdf".
//
// Keys belong to a principal (two users may pick the same key independently), live for
// a retention window (24 h by default), are bounded in number, and survive a restart
// when the Store is given a file: an append-only log of JSON lines, each fsynced
// before the response it records is sent.
//
// The shape follows draft-ietf-httpapi-idempotency-key-header: a key reused for a
// different request is a client error (422), and a retry that arrives while the first
// request is still running is a conflict (409).
package idem

import (
	"container/list"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrKeyReused means the key is known for this principal but was first used for a
// different request (another method, path, content hash or destination). The server
// answers 422 idempotency_key_reused and does not apply the request.
var ErrKeyReused = errors.New("idem: idempotency key reused for a different request")

// ErrInProgress means the first request with this key has not finished yet. The server
// answers 409 idempotency_in_progress; the client retries later and then gets the
// replay (or runs again if the first request was aborted).
var ErrInProgress = errors.New("idem: request with this idempotency key is in progress")

// ErrBadKey means the key is empty, longer than MaxKeyLen bytes, or contains a byte
// outside visible ASCII (0x21–0x7E). The server answers 400.
var ErrBadKey = errors.New("idem: malformed idempotency key")

// MaxKeyLen is the longest key accepted, in bytes.
const MaxKeyLen = 255

// MaxBody is the largest Record.Body that Done accepts. Replayed bodies are meant to be
// small error documents; anything larger would make the log, which is reread at every
// start, grow with the data.
const MaxBody = 4 << 10

// DefaultRetention is how long records are replayed when Options.Retention is not
// set: long enough for a client to retry after a night offline.
const DefaultRetention = 24 * time.Hour

// DefaultMaxKeys bounds the records kept when Options.MaxKeys is not set; at a few
// hundred bytes each the log stays in the tens of megabytes.
const DefaultMaxKeys = 100_000

// Fingerprint identifies what a request asked for: a key must come back with the same
// fingerprint to be replayed.
type Fingerprint struct {
	// Principal scopes the key: the same key from two users names two records.
	Principal string
	// Method and Path must match exactly on every retry.
	Method, Path string
	// Detail is the rest of the request that must not change: the destination and
	// Overwrite flag of a COPY or MOVE, the SHA-256 of a PUT body. "" means "not known
	// yet" (a PUT whose body has not been read) and matches any stored Detail; the
	// caller then compares with Record.CheckDetail once it knows, or passes the value
	// to Done in Record.Detail.
	Detail string
}

// Record is a response to replay.
type Record struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the headers worth replaying (Location, ETag, Last-Modified,
	// X-OC-Mtime…): the server chooses, the store keeps what it is given.
	Header map[string]string
	// Body is usually empty, at most MaxBody bytes.
	Body []byte
	// Created is when Done stored the record; the retention window counts from it.
	// Done sets it from the store's clock and ignores the value passed in.
	Created time.Time
	// Detail is the Fingerprint.Detail the record was stored with: for a PUT begun
	// before its body was read, the content hash given to Done. On a replay the server
	// compares it with the retried request's own (CheckDetail) before answering.
	Detail string
	// Unknown marks the reservation of a request whose process died before it
	// recorded the outcome (see Pending.Reserve): the write may or may not have been
	// applied. Status, Header and Body are empty; the server must answer that the
	// outcome is unknown, and neither replay nor apply the request.
	Unknown bool
}

// CheckDetail reports whether a retried request whose Detail has only now become
// known (a PUT body's hash) is the one r was recorded for. It returns ErrKeyReused if
// both r.Detail and detail are known and differ, nil otherwise: a record stored
// without a Detail (the first request failed before its body was read) replays for
// any content, as it never depended on it.
func (r *Record) CheckDetail(detail string) error {
	if !detailsMatch(r.Detail, detail) {
		return ErrKeyReused
	}
	return nil
}

// ShouldRecord is the recommended policy for which statuses Done should store: those
// a retry would get again anyway. Success (2xx) changed state and must not be
// repeated. Client errors (4xx) are deterministic, except those that depend on
// something passing: 408 (timeout), 409 (another upload in progress, a missing
// parent), 423 (locked), 425 (too early) and 429 (rate limited) — replaying those
// for a day would keep failing a retry that would now succeed. 5xx and everything
// else should be aborted so the retry runs again.
func ShouldRecord(status int) bool {
	switch {
	case status >= 200 && status <= 299:
		return true
	case status >= 400 && status <= 499:
		switch status {
		case 408, 409, 423, 425, 429:
			return false
		}
		return true
	}
	return false
}

// Options configure a Store; the zero value is a memory-only store with the defaults.
type Options struct {
	// Path is the log file; "" keeps records in memory only. Its directory must
	// exist. Keep it out of the served tree, or give it a name starting with
	// backend.ReservedPrefix: compaction writes temporary files named Path+".tmp-*".
	// One process at a time may use it.
	Path string
	// Retention is how long a record is replayed; DefaultRetention if ≤ 0.
	Retention time.Duration
	// MaxKeys bounds the records kept; when full, the oldest is evicted first.
	// DefaultMaxKeys if ≤ 0.
	MaxKeys int
	// Now is the clock; time.Now if nil. Tests inject one so expiry needs no sleep.
	Now func() time.Time
}

// scope is the map key: keys are per principal.
type scope struct{ principal, key string }

// entry is one key's state: reserved by a Pending (rec == nil) or finished.
type entry struct {
	scope
	method, path string
	detail       string   // the Pending's Fingerprint.Detail, then the Record's
	pending      *Pending // nil once finished
	rec          *Record
	elem         *list.Element // in Store.order once finished
}

// Store holds the records. It is safe for concurrent use.
type Store struct {
	path      string
	retention time.Duration
	maxKeys   int
	now       func() time.Time

	// fileMu serialises appends, compaction and Close, and is taken before mu, so
	// a compaction sees every record already appended and none half-installed.
	fileMu     sync.Mutex
	f          *os.File // nil if memory-only or closed
	closed     bool
	dirty      bool // an append failed: the file may end in a torn line, rewrite before appending again
	lines      int  // lines in the file, to decide when to compact
	compactMin int  // no compaction below this many lines; a variable for tests

	// mu guards the maps and every Pending's finished flag; it is never held across
	// file I/O, so Begin does not wait for an fsync.
	mu      sync.Mutex
	entries map[scope]*entry
	order   *list.List // finished entries, oldest first (*entry)
}

// minCompactLines keeps a small log from being rewritten on every Done once most of
// its records have expired.
const minCompactLines = 1024

// Open returns a Store configured by opt. With a Path it loads the log, dropping
// expired records, evicting beyond MaxKeys and ignoring a truncated final line (a
// crash in the middle of an append), then rewrites the log compactly. A missing file
// is an empty store; a malformed complete line anywhere is an error naming the path
// and line, since silently dropping records would let retries apply twice.
func Open(opt Options) (*Store, error) {
	s := &Store{
		path:       opt.Path,
		retention:  opt.Retention,
		maxKeys:    opt.MaxKeys,
		now:        opt.Now,
		compactMin: minCompactLines,
		entries:    make(map[scope]*entry),
		order:      list.New(),
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	if s.maxKeys <= 0 {
		s.maxKeys = DefaultMaxKeys
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.path == "" {
		return s, nil
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.compact(); err != nil {
		return nil, fmt.Errorf("idem: %s: %w", s.path, err)
	}
	return s, nil
}

// Close closes the log. Records stay in memory: Begin still replays them, and a Done
// after Close keeps its record in memory but returns an error, as it was not
// persisted. Close the store after the HTTP server has shut down.
func (s *Store) Close() error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Begin looks key up for fp.Principal.
//
//   - A finished, unexpired record with the same Method and Path and a matching
//     Detail: (rec, nil, nil); the caller replays rec and does not apply the request.
//     If fp.Detail was "", the caller must still compare rec.Detail (CheckDetail)
//     once it knows its own.
//   - Known for another Method or Path, or a known Detail that differs: ErrKeyReused.
//   - Reserved by a request still running (and not ErrKeyReused): ErrInProgress.
//   - Otherwise the key is reserved: (nil, p, nil). The caller runs the request and
//     then calls p.Done to store the outcome or p.Abort to release the key; defer
//     p.Abort() right away, as it is a no-op after Done.
//
// A malformed key is ErrBadKey.
func (s *Store) Begin(key string, fp Fingerprint) (replay *Record, p *Pending, err error) {
	if !validKey(key) {
		return nil, nil, ErrBadKey
	}
	// The log is JSON, which turns invalid UTF-8 into U+FFFD; doing the same here
	// keeps a fingerprint equal to itself across a restart.
	fp = Fingerprint{
		Principal: jsonSafe(fp.Principal),
		Method:    jsonSafe(fp.Method),
		Path:      jsonSafe(fp.Path),
		Detail:    jsonSafe(fp.Detail),
	}
	sc := scope{fp.Principal, key}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[sc]
	if e != nil && e.rec != nil && s.expired(e.rec, now) {
		s.remove(e)
		e = nil
	}
	if e != nil {
		if e.method != fp.Method || e.path != fp.Path || !detailsMatch(e.detail, fp.Detail) {
			return nil, nil, ErrKeyReused
		}
		if e.rec == nil {
			return nil, nil, ErrInProgress
		}
		return cloneRecord(e.rec), nil, nil
	}
	p = &Pending{s: s, fp: fp, key: key}
	s.entries[sc] = &entry{scope: sc, method: fp.Method, path: fp.Path, detail: fp.Detail, pending: p}
	return nil, p, nil
}

// Pending is a key reserved by Begin for a request that is running. Exactly one of
// Done and Abort takes effect; later calls of either are no-ops (Done returns an
// error).
type Pending struct {
	s        *Store
	fp       Fingerprint
	key      string
	finished bool      // guarded by s.mu
	reserved time.Time // when Reserve made the reservation durable; guarded by s.mu
}

// Reserve makes the reservation durable before the request is applied: it appends a
// "pending" line to the log and returns once it is synced. If it fails (a full disk),
// the caller must not apply the request: it answers the error (507) and calls Abort,
// and nothing changed. Once reserved, a crash before Done leaves the line alone in
// the log, and the next Open turns it into a Record with Unknown set, which a retry
// gets instead of applying the write a second time. Abort withdraws the reservation
// (best effort: if that line cannot be written, a retry after a restart is told the
// outcome is unknown, which is safe). A memory-only store reserves nothing.
func (p *Pending) Reserve() error {
	s := p.s
	if s.path == "" {
		return nil
	}
	at := s.now().Round(0)
	line, err := encodeLine(diskRecord{
		V: formatVersion, Principal: p.fp.Principal, Key: p.key,
		Method: p.fp.Method, Path: p.fp.Path, Detail: p.fp.Detail, Created: at, Pending: true,
	})
	if err != nil {
		return err
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	if p.finished {
		s.mu.Unlock()
		return errFinished
	}
	p.reserved = at
	s.mu.Unlock()
	switch {
	case s.f == nil:
		err = fmt.Errorf("idem: %s: store closed", s.path)
	case s.dirty:
		err = s.compact() // the rewrite includes this reservation
	default:
		if err = s.append(line); err != nil {
			s.dirty = true
		}
	}
	if err != nil {
		s.mu.Lock()
		p.reserved = time.Time{}
		s.mu.Unlock()
	}
	return err
}

// errFinished is a Done after Done or Abort: a bug in the caller.
var errFinished = errors.New("idem: Done or Abort already called")

// errTooLarge is a Record that breaks the bounds; see Done.
var errTooLarge = errors.New("idem: record too large")

// Done stores rec as the outcome of the reserved request and returns once it is
// durable, so a replay survives a crash. rec.Created is set from the store's clock.
// rec.Detail, if not "", replaces the Detail given to Begin: a PUT begun before its
// body was read passes the body's hash here, so that a retry with other content is
// told apart. Done copies rec; the caller may reuse it.
//
// A record that breaks the bounds (Status outside 100–599, Body over MaxBody,
// headers over 8 KiB, a log line over 64 KiB) is refused with an error and the key released as by Abort. If
// the record cannot be written, or the store is closed, it is still kept in memory
// (replays work until a restart) and the error is returned: the server should log it
// and send its response anyway.
func (p *Pending) Done(rec Record) error {
	s := p.s
	if rec.Detail == "" {
		rec.Detail = p.fp.Detail
	}
	rec.Detail = jsonSafe(rec.Detail)
	// Round(0) drops the monotonic reading so that expiry uses the wall clock, as it
	// must after a restart.
	rec.Created = s.now().Round(0)
	rec.Header = maps.Clone(rec.Header)
	rec.Body = cloneBytes(rec.Body)

	line, verr := encodeLine(diskRecord{
		V:         formatVersion,
		Principal: p.fp.Principal,
		Key:       p.key,
		Method:    p.fp.Method,
		Path:      p.fp.Path,
		Detail:    rec.Detail,
		Status:    rec.Status,
		Header:    rec.Header,
		Body:      rec.Body,
		Created:   rec.Created,
	})
	if verr != nil {
		p.abort()
		return verr
	}

	s.fileMu.Lock()
	defer s.fileMu.Unlock()

	s.mu.Lock()
	if p.finished {
		s.mu.Unlock()
		return errFinished
	}
	p.finished = true
	s.mu.Unlock()

	// Append before installing: a concurrent retry sees ErrInProgress until the
	// record is durable, never a replay that a crash could take back.
	var werr error
	if s.path != "" {
		switch {
		case s.f == nil:
			werr = fmt.Errorf("idem: %s: store closed, record kept in memory only", s.path)
		case !s.dirty:
			if werr = s.append(line); werr != nil {
				s.dirty = true
			}
		}
	}

	s.mu.Lock()
	s.install(p, &rec)
	live := s.order.Len()
	s.mu.Unlock()

	if s.f != nil && (s.dirty || (s.lines >= s.compactMin && s.lines > 2*live)) {
		wasDirty := s.dirty
		if err := s.compact(); err != nil {
			return fmt.Errorf("idem: %s: compaction: %w", s.path, err)
		}
		if wasDirty {
			werr = nil // the rewrite includes rec: it is durable after all
		}
	}
	return werr
}

// Abort releases the key without storing anything, so a retry runs the request
// again: use it when the request failed in a way a retry might not (5xx, 409 busy)
// or the client went away before anything was committed. It is a no-op after Done
// or Abort.
func (p *Pending) Abort() { p.abort() }

func (p *Pending) abort() {
	s := p.s
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	if p.finished {
		s.mu.Unlock()
		return
	}
	p.finished = true
	sc := scope{p.fp.Principal, p.key}
	if e := s.entries[sc]; e != nil && e.pending == p {
		delete(s.entries, sc)
	}
	reserved := !p.reserved.IsZero()
	s.mu.Unlock()
	if !reserved || s.f == nil || s.dirty {
		// A dirty log is rewritten before the next append, without this reservation.
		return
	}
	line, err := encodeLine(diskRecord{
		V: formatVersion, Principal: p.fp.Principal, Key: p.key,
		Method: p.fp.Method, Path: p.fp.Path, Created: s.now().Round(0), Released: true,
	})
	if err == nil && s.append(line) != nil {
		s.dirty = true
	}
}

// install turns p's reservation into a finished record, then enforces the bounds.
// s.mu must be held.
func (s *Store) install(p *Pending, rec *Record) {
	sc := scope{p.fp.Principal, p.key}
	e := s.entries[sc]
	if e == nil || e.pending != p {
		// Cannot happen (only p removes its own reservation) but never clobber
		// someone else's entry.
		return
	}
	e.pending = nil
	e.rec = rec
	e.detail = rec.Detail
	e.elem = s.order.PushBack(e)
	s.trim(s.now())
}

// add inserts a finished record read from the log, replacing an older one for the
// same key (the log is in append order, so the last line wins). s.mu must be held, or
// the store not yet shared.
func (s *Store) add(sc scope, method, path string, rec *Record) {
	if old := s.entries[sc]; old != nil {
		s.remove(old)
	}
	e := &entry{scope: sc, method: method, path: path, detail: rec.Detail, rec: rec}
	e.elem = s.order.PushBack(e)
	s.entries[sc] = e
}

// trim drops expired records from the old end and evicts the oldest beyond MaxKeys.
// A record made out of order by a clock step back may outlive its time at the front;
// lookups check expiry on each record anyway.
func (s *Store) trim(now time.Time) {
	for s.order.Len() > 0 {
		e := s.order.Front().Value.(*entry)
		if s.order.Len() <= s.maxKeys && !s.expired(e.rec, now) {
			return
		}
		s.remove(e)
	}
}

// remove forgets a finished entry. s.mu must be held.
func (s *Store) remove(e *entry) {
	if e.elem != nil {
		s.order.Remove(e.elem)
		e.elem = nil
	}
	if s.entries[e.scope] == e {
		delete(s.entries, e.scope)
	}
}

func (s *Store) expired(rec *Record, now time.Time) bool {
	return now.Sub(rec.Created) >= s.retention
}

// validKey accepts 1–MaxKeyLen bytes of visible ASCII (VCHAR, RFC 5234). Quotes are
// allowed, so the raw value of a Structured Field string ("…") works unparsed.
func validKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// detailsMatch treats "" as "not known yet", compatible with anything.
func detailsMatch(a, b string) bool { return a == "" || b == "" || a == b }

// jsonSafe replaces each byte of invalid UTF-8 with U+FFFD, as encoding/json does
// when it writes a string.
func jsonSafe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// cloneRecord gives the caller a copy it may change without touching the store.
func cloneRecord(r *Record) *Record {
	c := *r
	c.Header = maps.Clone(r.Header)
	c.Body = cloneBytes(r.Body)
	return &c
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
