//go:build !linux || safedav_portable

package local

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/text/unicode/norm"

	"safedav/backend"
)

// The portable path: everything goes through os.Root, which confines every name to the
// tree and follows no symlink out of it, on every system Go has it for. It keeps the
// promises of the Linux fast path (atomic commits, durability, confinement) at the
// cost of more system calls: each file is fsynced itself and each folder whose entries
// changed too (where the system can sync a folder), uploads are staged beside their
// targets, and no listing is cached. Linux uses it when built with the
// safedav_portable tag, so that its tests run there too.

// platform is the state of the portable path, embedded in Store.
type platform struct {
	// staging and nested are always false: uploads are staged beside their targets, so
	// a commit is always one rename or link within a folder.
	staging, nested bool
	path            string // the root as given, for diskSpace
}

// New opens the tree at root, creating the directory if missing, removes the temporary
// entries a crash left behind, and checks that a file can be written there. It fails
// when root cannot be created, opened or written.
func New(root string, opt Options) (*Store, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	s := &Store{root: r, sync: opt.Sync}
	s.path = root
	if err := s.sweep(); err != nil {
		r.Close()
		return nil, err
	}
	if err := s.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the root directory. The Store must not be used afterwards.
func (s *Store) Close() error { return s.root.Close() }

// openFast is openFile: the portable path has no faster way to open a file.
func (s *Store) openFast(rel, name string) (io.ReadSeekCloser, backend.Info, error) {
	return s.openFile(rel, name)
}

// Quota reports the filesystem's free space (for an unprivileged writer) and the space
// in use on it: the whole volume, as df shows it.
func (s *Store) Quota(ctx context.Context, name string) (available, used int64, err error) {
	available, used, err = s.diskSpace()
	return available, used, mapErr(err)
}

// listDir is list for the folder dir, found on disk at rel.
func (s *Store) listDir(ctx context.Context, dir, rel string, withProps bool, fn func(backend.Info, []backend.Prop) error) error {
	return s.readDir(ctx, rel, func(_ int, n string, m *entryStat) error {
		if strings.HasPrefix(n, backend.ReservedPrefix) {
			return nil
		}
		if m.isLink() {
			// Follow it inside the root only; one that leaves the tree is hidden.
			fi, err := s.root.Stat(join(rel, n))
			if dangling(err) {
				return nil
			}
			if err != nil {
				return mapErr(err)
			}
			m = metaOf(fi)
		}
		if !m.servable() {
			return nil
		}
		var props []backend.Prop
		if withProps {
			data, err := s.readProps(join(rel, n))
			if err == nil && len(data) > 0 {
				props, err = decodeProps(data)
			}
			if err != nil && !errors.Is(err, backend.ErrNotExist) {
				return err
			}
		}
		return fn(m.info(backend.Join(dir, norm.NFC.String(n))), props)
	})
}

// entryStat is what readDir tells of each entry: its lstat, described.
type entryStat = meta

// entryMeta describes an entry as readDir stat'ed it.
func entryMeta(st *entryStat) *meta { return st }

// readDir calls fn with every entry of the directory rel and its lstat (fd is -1: the
// portable path keeps no descriptors), each looked up through os.Root, so a concurrent
// rename cannot lead the lookup out of the tree. Entries that vanish meanwhile are
// skipped.
func (s *Store) readDir(ctx context.Context, rel string, fn func(fd int, name string, st *entryStat) error) error {
	f, err := s.root.Open(rel)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, rerr := f.Readdirnames(dirBatch)
		for _, n := range names {
			fi, err := s.root.Lstat(join(rel, n))
			if isNotExist(err) {
				continue
			}
			if err != nil {
				return mapErr(err)
			}
			if err := fn(-1, n, metaOf(fi)); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return mapErr(rerr)
		}
	}
}

// dirHandle is an open folder on the Linux fast path; the portable path holds none.
type dirHandle struct{}

func (dirHandle) close() {}

// noDir is the dirHandle of a folder that is not held open.
var noDir dirHandle

// statAt is locate's fast path on Linux; here locate always takes the path through
// os.Root.
func (s *Store) statAt(dir, base string) (l loc, d dirHandle, ok bool) {
	return loc{}, noDir, false
}

// createAt creates the new file base in dir exclusively (O_EXCL: never through a
// symlink).
func (s *Store) createAt(dir, base string) (*os.File, error) {
	return s.root.OpenFile(join(dir, base), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// renameat renames an entry of the tree over another. The flags of renameat2 exist
// only on Linux: here they are always 0.
func (s *Store) renameat(oldDir, oldBase, newDir, newBase string, _ uint) error {
	return s.root.Rename(join(oldDir, oldBase), join(newDir, newBase))
}

// renameNoReplace renames, as on Linux filesystems without RENAME_NOREPLACE: callers
// hold the path lock and have checked the target is absent, so only another process
// could race.
func (s *Store) renameNoReplace(oldDir, oldBase, newDir, newBase string) error {
	return s.renameat(oldDir, oldBase, newDir, newBase, 0)
}

// exchange swaps the entries a and b of dir in three renames: no system but Linux has
// an atomic exchange, so readers may briefly find b missing.
func (s *Store) exchange(dir, a, b string) error {
	aside := tmpName()
	if err := s.renameat(dir, b, dir, aside, 0); err != nil {
		return err
	}
	if err := s.renameat(dir, a, dir, b, 0); err != nil {
		_ = s.renameat(dir, aside, dir, b, 0)
		return err
	}
	return s.renameat(dir, aside, dir, a, 0)
}

// removeStaged removes the temporary file rel.
func (s *Store) removeStaged(rel string) { _ = s.root.Remove(rel) }

// stagingFor is the folder an upload to dir is staged in: dir itself.
func (s *Store) stagingFor(dir string) string { return dir }

// renameInto renames the staged entry tbase of tdir onto cur.
func (s *Store) renameInto(tdir, tbase string, cur loc, _ dirHandle) error {
	return s.root.Rename(join(tdir, tbase), cur.rel())
}

// dirKey names a folder of the listing cache, which the portable path does not have.
type dirKey struct{}

// linkInto links the staged entry tbase of tdir as cur, failing with an error that
// is fs.ErrExist when cur is taken. On a filesystem without hard links (FAT and exFAT,
// common on removable disks) it renames instead, after checking that cur is absent:
// the caller holds cur's commit lock, so only another process could race, as with
// renameNoReplace.
func (s *Store) linkInto(tdir, tbase string, cur loc, _ dirHandle) (dirKey, error) {
	err := s.root.Link(join(tdir, tbase), cur.rel())
	if err == nil || errors.Is(err, fs.ErrExist) ||
		!errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, fs.ErrPermission) {
		return dirKey{}, err
	}
	if _, err := s.root.Lstat(cur.rel()); !isNotExist(err) {
		if err == nil {
			err = fs.ErrExist
		}
		return dirKey{}, err
	}
	return dirKey{}, s.root.Rename(join(tdir, tbase), cur.rel())
}

// unstageLinked removes the staged name of a file just linked into a folder.
func (s *Store) unstageLinked(tmpRel string, _ dirKey) {
	if s.afterLink != nil {
		s.afterLink()
	}
	s.removeStaged(tmpRel)
}

// carryPropsFrom copies the dead properties of the existing entry cur onto f.
func (s *Store) carryPropsFrom(cur loc, _ dirHandle, f *os.File) error {
	return s.carryProps(cur.rel(), f, cur.dir)
}

// createEmpty creates an empty file in place with O_EXCL: an empty file is complete
// the moment it exists, so it needs no temporary file (the LOCK of an unmapped URL).
func (s *Store) createEmpty(name string) (backend.Info, bool, error) {
	unlock := s.locks.Lock(name)
	defer unlock()
	l, err := s.locate(name)
	if err != nil {
		return backend.Info{}, false, err
	}
	if l.m != nil {
		return backend.Info{}, false, backend.ErrPrecondition
	}
	f, err := s.createAt(l.dir, l.base)
	if errors.Is(err, fs.ErrExist) {
		return backend.Info{}, false, backend.ErrPrecondition
	}
	if err != nil {
		return backend.Info{}, false, commitErr(err)
	}
	defer f.Close()
	if err := s.setMtime(f, l.rel(), stamp()); err != nil {
		return backend.Info{}, false, mapErr(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return backend.Info{}, false, mapErr(err)
	}
	return metaOf(fi).info(name), true, nil
}

// flushStaged makes the staged file f durable, when the store syncs, by its own fsync.
func (s *Store) flushStaged(f *os.File, _ string) error {
	if !s.sync {
		return nil
	}
	return mapErr(f.Sync())
}

// flushCommit makes the commit of the staged file f into the folder dir durable, when
// the store syncs, by an fsync of dir.
func (s *Store) flushCommit(_ *os.File, _, dir string) error {
	if !s.sync {
		return nil
	}
	return s.syncDir(dir)
}

// writeback starts the disk writing a large upload early on Linux (sync_file_range);
// elsewhere the final fsync writes all of it.
type writeback struct{}

func (s *Store) writeback(io.Writer) writeback { return writeback{} }

// wrote tells that the first n bytes are written.
func (writeback) wrote(int64) {}

// markProps marks the directory dir as having entries with dead properties
// (childPropsAttr), as the Linux fast path does: the portable path reads every entry's
// properties and does not need the mark, but a tree it wrote may later be served on
// Linux.
func (s *Store) markProps(dir string) error {
	f, err := s.root.Open(dir)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	return markFile(f)
}

// readProps returns the encoded properties of the entry rel (nil when none).
func (s *Store) readProps(rel string) ([]byte, error) {
	f, err := s.root.OpenFile(rel, os.O_RDONLY|oNonblock, 0) // a FIFO must not block
	if err != nil {
		return nil, mapErr(err)
	}
	defer f.Close()
	return getProps(f)
}
