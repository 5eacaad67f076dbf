package locks

import (
	"io"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"safedav/internal/atomicfile"
	"sync"
	"time"
)

// Store persists locks so they survive a restart: a client holding a token must still
// be able to use, refresh and release it, and nobody else may write in the meantime
// (RFC 4918 §6.6 makes a lock last until it times out or is removed, not until the
// server restarts). Replicas sharing one bucket share locks through a Store too.
type Store interface {
	// Load returns the locks saved last, expired ones included (the Manager drops
	// them), or none if nothing was ever saved.
	Load(ctx context.Context) ([]Lock, error)
	// Save replaces what is stored with all, the full set of live locks. It is called
	// after every change and must be atomic: a crash leaves the old set or the new one.
	Save(ctx context.Context, all []Lock) error
}

// FileStore keeps the locks in one JSON file. Save writes a temporary file in the same
// directory, syncs it and renames it over the file, then syncs the directory, so a crash
// at any point leaves either the previous file or the new one. Keep the file out of the
// served tree, or give it a name starting with backend.ReservedPrefix, which safedav
// never serves: the temporary files share its name as a prefix.
type FileStore struct {
	path string
	mu   sync.Mutex // one Save at a time, so two renames cannot reorder
	// NoSync skips the fsyncs: the file is still replaced atomically, so a crash of
	// the process leaves a whole file, but a power loss may bring back an older set
	// of locks. Locks are short-lived and clients re-lock, so servers that want fast
	// LOCK/UNLOCK set it (every lock change would otherwise cost two fsyncs).
	NoSync bool
}

var _ Store = (*FileStore)(nil)

// NewFileStore returns a FileStore for the file at path. Nothing is touched until Load
// or Save; the directory must exist.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// fileVersion is the format of the file; Load refuses any other so that a downgrade
// never misreads locks.
const fileVersion = 1

type lockFile struct {
	Version int          `json:"version"`
	Locks   []lockRecord `json:"locks"`
}

// lockRecord is the stored form of a Lock, separate from Lock so the file format does
// not change by accident when Lock does. Owner is arbitrary bytes, stored as base64.
type lockRecord struct {
	Token     string        `json:"token"`
	Root      string        `json:"root"`
	Owner     []byte        `json:"owner,omitempty"`
	Principal string        `json:"principal,omitempty"`
	Depth     int           `json:"depth"`
	Shared    bool          `json:"shared,omitempty"`
	Timeout   time.Duration `json:"timeout_ns"`
	Expires   time.Time     `json:"expires"`
}

// Load reads the file. A missing file means no locks; an unreadable or malformed one,
// or one of an unknown version, is an error.
func (s *FileStore) Load(ctx context.Context) ([]Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f lockFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("locks: %s: %w", s.path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("locks: %s: unknown version %d", s.path, f.Version)
	}
	out := make([]Lock, 0, len(f.Locks))
	for _, r := range f.Locks {
		out = append(out, Lock(r))
	}
	return out, nil
}

// Save writes all to the file atomically. On any error the previous file is left as it
// was and the temporary file is removed. A failure to sync the directory after the
// rename is returned too: the new file is in place but may not survive a power cut.
func (s *FileStore) Save(ctx context.Context, all []Lock) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f := lockFile{Version: fileVersion, Locks: make([]lockRecord, 0, len(all))}
	for _, l := range all {
		f.Locks = append(f.Locks, lockRecord(l))
	}
	data, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return err
	}
	data = append(data, '\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	// Mode 0600: principals are private.
	return atomicfile.Write(s.path, s.NoSync, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
