package idem

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"safedav/internal/atomicfile"
	"time"
)

// The log is one JSON object per line, appended with O_APPEND and fsynced per record.
// A crash can only tear the last line, which has then no newline; Open ignores it. A
// bad line that does end in a newline was written whole and then damaged, and Open
// refuses the file rather than guess.

// formatVersion is written on every line; Open refuses any other, so a downgrade
// never misreads records.
const formatVersion = 1

// maxLine bounds one line, so a damaged file cannot make Open buffer without limit.
const maxLine = 64 << 10

// maxHeaderBytes bounds the replayed headers; a handful of short values is expected.
const maxHeaderBytes = 8 << 10

// diskRecord is the stored form of a record, separate from Record so the file format
// does not change by accident when Record does.
type diskRecord struct {
	V         int               `json:"v"`
	Principal string            `json:"principal"`
	Key       string            `json:"key"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Detail    string            `json:"detail,omitempty"`
	Status    int               `json:"status"`
	Header    map[string]string `json:"header,omitempty"`
	Body      []byte            `json:"body,omitempty"`
	Created   time.Time         `json:"created"`
	// Pending marks a reservation (Pending.Reserve): the request was about to be
	// applied. Status, Header and Body are empty. A later line for the same key (its
	// record, or Released) supersedes it; one left alone was cut short by a crash.
	Pending bool `json:"pending,omitempty"`
	// Released withdraws a reservation whose request was not applied (Abort).
	Released bool `json:"released,omitempty"`
}

// check enforces the bounds on both sides of the file: Done refuses what Open would.
func (d *diskRecord) check() error {
	if d.V != formatVersion {
		return fmt.Errorf("idem: unknown format version %d", d.V)
	}
	if !validKey(d.Key) {
		return ErrBadKey
	}
	if d.Method == "" {
		return errors.New("idem: record without method")
	}
	if d.Pending || d.Released {
		if d.Status != 0 || len(d.Body) > 0 || len(d.Header) > 0 || (d.Pending && d.Released) {
			return errors.New("idem: reservation with a response")
		}
	} else if d.Status < 100 || d.Status > 599 {
		return fmt.Errorf("idem: status %d out of range", d.Status)
	}
	if len(d.Body) > MaxBody {
		return fmt.Errorf("%w: body of %d bytes", errTooLarge, len(d.Body))
	}
	n := 0
	for k, v := range d.Header {
		n += len(k) + len(v)
	}
	if n > maxHeaderBytes {
		return fmt.Errorf("%w: headers of %d bytes", errTooLarge, n)
	}
	if d.Created.IsZero() {
		return errors.New("idem: record without creation time")
	}
	return nil
}

// encodeLine returns d as one line, newline included.
func encodeLine(d diskRecord) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if len(b) >= maxLine {
		return nil, fmt.Errorf("%w: line of %d bytes", errTooLarge, len(b))
	}
	return append(b, '\n'), nil
}

// decodeLine parses one line without its newline. It is strict (unknown fields,
// trailing data and out-of-bounds values are errors) because anything unexpected
// means the file is not what this version wrote.
func decodeLine(line []byte) (diskRecord, error) {
	var d diskRecord
	if len(line) > maxLine {
		return d, fmt.Errorf("%w: line of %d bytes", errTooLarge, len(line))
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return diskRecord{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return diskRecord{}, errors.New("idem: trailing data after record")
	}
	if err := d.check(); err != nil {
		return diskRecord{}, err
	}
	return d, nil
}

// load reads the log into the empty store.
func (s *Store) load() error {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("idem: %w", err)
	}
	defer f.Close()
	now := s.now()
	r := bufio.NewReaderSize(f, maxLine+1)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		switch {
		case err == io.EOF:
			// A final line without its newline is an append that a crash cut
			// short: its request never got its response, so losing it is safe.
			// Keep it only if it happens to be whole.
			// A reservation cut short was never followed by the write it announced.
			if d, derr := decodeLine(line); len(line) > 0 && derr == nil && !d.Pending {
				s.loadRecord(d, now)
			}
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("idem: %s: line %d: longer than %d bytes", s.path, n, maxLine)
		case err != nil:
			return fmt.Errorf("idem: %s: %w", s.path, err)
		}
		d, err := decodeLine(line[:len(line)-1])
		if err != nil {
			return fmt.Errorf("idem: %s: line %d: %w", s.path, n, err)
		}
		s.loadRecord(d, now)
	}
}

func (s *Store) loadRecord(d diskRecord, now time.Time) {
	if d.Released {
		if old := s.entries[scope{d.Principal, d.Key}]; old != nil && old.rec != nil && old.rec.Unknown {
			s.remove(old)
		}
		return
	}
	// A reservation with no record after it belongs to a process that died between
	// announcing the write and recording its outcome: the write may or may not have
	// been applied, so a retry must neither replay an answer nor apply it again.
	rec := &Record{Status: d.Status, Header: d.Header, Body: d.Body, Created: d.Created, Detail: d.Detail, Unknown: d.Pending}
	if s.expired(rec, now) {
		// An older record for the same key may still be in memory; it is older
		// still, so it must go too.
		if old := s.entries[scope{d.Principal, d.Key}]; old != nil {
			s.remove(old)
		}
		return
	}
	s.add(scope{d.Principal, d.Key}, d.Method, d.Path, rec)
	s.trim(now)
}

// append writes one line and makes it durable. s.fileMu must be held.
func (s *Store) append(line []byte) error {
	if _, err := s.f.Write(line); err != nil {
		return fmt.Errorf("idem: %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("idem: %s: %w", s.path, err)
	}
	s.lines++
	return nil
}

// compact rewrites the log with only the live records, oldest first, then reopens it
// for appending. The new file is written beside the old one, synced and renamed over
// it, so a crash leaves one or the other whole. On error the old file stays in use.
// s.fileMu must be held (or the store not yet shared).
func (s *Store) compact() (err error) {
	s.mu.Lock()
	s.trim(s.now())
	lines := make([][]byte, 0, s.order.Len())
	for el := s.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		line, err := encodeLine(diskRecord{
			V: formatVersion, Principal: e.principal, Key: e.key,
			Method: e.method, Path: e.path, Detail: e.rec.Detail,
			Status: e.rec.Status, Header: e.rec.Header, Body: e.rec.Body, Created: e.rec.Created,
			Pending: e.rec.Unknown,
		})
		if err != nil {
			// Only records that passed the same check are in memory.
			s.mu.Unlock()
			return err
		}
		lines = append(lines, line)
	}
	// Reservations of requests still running are kept: a crash after the rewrite
	// must still find them.
	for _, e := range s.entries {
		if e.pending == nil || e.pending.reserved.IsZero() {
			continue
		}
		line, err := encodeLine(diskRecord{
			V: formatVersion, Principal: e.principal, Key: e.key,
			Method: e.method, Path: e.path, Detail: e.detail, Created: e.pending.reserved, Pending: true,
		})
		if err != nil {
			s.mu.Unlock()
			return err
		}
		lines = append(lines, line)
	}
	s.mu.Unlock()

	// Mode 0600: paths and principals are private.
	err = atomicfile.Write(s.path, false, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, l := range lines {
			if _, err := bw.Write(l); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		// The new file is in place and complete; only appending is impossible.
		// Mark the log dirty so the next Done tries again.
		s.dirty = true
		return err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f = f
	s.lines = len(lines)
	s.dirty = false
	return nil
}
