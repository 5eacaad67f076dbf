//go:build !safedav_portable

package local

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// renameInto renames the staged entry tbase of tdir onto cur, through dh when held.
func (s *Store) renameInto(tdir, tbase string, cur loc, dh dirHandle) error {
	return s.withDirs(tdir, cur.dir, dh, func(src, dst int) error {
		return unix.Renameat2(src, tbase, dst, cur.base, 0)
	})
}

// linkInto links the staged entry tbase of tdir as cur (EEXIST if taken), and returns
// the folder it linked into, as it was at the link (it may be renamed before the
// staged name is removed).
func (s *Store) linkInto(tdir, tbase string, cur loc, dh dirHandle) (dirKey, error) {
	var key dirKey
	err := s.withDirs(tdir, cur.dir, dh, func(src, dst int) error {
		if err := unix.Linkat(src, tbase, dst, cur.base, 0); err != nil {
			return err
		}
		key = s.watchedDir(dst)
		return nil
	})
	return key, err
}

// unstageLinked removes the staged name of a file just linked into the folder dir
// (from watchedDir, taken after the link). The unlink moves the file's ctime, and so
// its ETag, without the folder's watch being told (only the file's own watchers are):
// a listing of dir read since the link must not be served. Meanwhile the file has two
// links, so a listing kept then describes it again on every use anyway; forgetting is
// the second guard. A folder not watched at the link has no listing kept from before it.
func (s *Store) unstageLinked(tmpRel string, dir dirKey) {
	if s.afterLink != nil {
		s.afterLink()
	}
	s.removeStaged(tmpRel)
	if dir != (dirKey{}) {
		s.lists.forget(dir)
	}
}

// watchedDir returns the key of the open folder fd for unstageLinked while some
// folder is watched, and otherwise the zero key (nothing to forget) without a system
// call.
func (s *Store) watchedDir(fd int) dirKey {
	var st unix.Stat_t
	if s.lists == nil || !s.lists.watching.Load() || unix.Fstat(fd, &st) != nil {
		return dirKey{}
	}
	return keyOf(&st)
}

// carryPropsFrom copies the dead properties of the existing entry cur onto f.
func (s *Store) carryPropsFrom(cur loc, dh dirHandle, f *os.File) error {
	if !dh.held() {
		return s.carryProps(cur.rel(), f, cur.dir)
	}
	data, err := entryProps(dh.fd, cur.base)
	if err != nil || len(data) == 0 {
		return err
	}
	if err := markPropsIn(dh.fd); err != nil {
		return err
	}
	return setProps(f, data)
}

// createEmpty creates an empty file in place with O_EXCL: an empty file is complete
// the moment it exists, so it needs no temporary file (the LOCK of an unmapped URL).
func (s *Store) createEmpty(name string) (backend.Info, bool, error) {
	unlock := s.locks.Lock(name)
	defer unlock()
	rel := strings.TrimPrefix(name, "/")
	if isASCII(rel) {
		// An ASCII name has no NFD twin to look for: O_EXCL alone tells whether
		// something is there.
		dir, base := splitRel(rel)
		if d, err := s.openDir(dir); err == nil {
			defer d.close()
			return s.createEmptyAt(d, name, base)
		}
	}
	l, err := s.locate(name)
	if err != nil {
		return backend.Info{}, false, err
	}
	if l.m != nil {
		return backend.Info{}, false, backend.ErrPrecondition
	}
	d, err := s.openDir(l.dir)
	if err != nil {
		return backend.Info{}, false, commitErr(err)
	}
	defer d.close()
	return s.createEmptyAt(d, name, l.base)
}

// createEmptyAt creates the empty file base in the open folder d.
func (s *Store) createEmptyAt(d dirHandle, name, base string) (backend.Info, bool, error) {
	if info, created, done, err := s.linkEmptyAt(d, name, base); done {
		return info, created, err
	}
	fd, err := openExcl(d.fd, base)
	if errors.Is(err, unix.EEXIST) {
		return backend.Info{}, false, backend.ErrPrecondition
	}
	if err != nil {
		return backend.Info{}, false, commitErr(err)
	}
	defer unix.Close(fd)
	if err := futimens(fd, stamp()); err != nil {
		return backend.Info{}, false, mapErr(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return backend.Info{}, false, mapErr(err)
	}
	return metaOfUnix(&st).info(name), true, nil
}

// linkEmptyAt creates the empty file base in the open folder d by creating it in a
// staging shard and linking it there: its inode is allocated under the shard's lock
// rather than under the lock of the target folder, which every LOCK and upload in that
// folder shares. On ext4 without a journal an allocation can take long (it passes over
// every inode freed in the last seconds, see spreadShards), so the target folder's
// lock is held for a link instead.
// done is false when the file must be created in place (no shards, or the folder on
// another mount).
func (s *Store) linkEmptyAt(d dirHandle, name, base string) (info backend.Info, created, done bool, err error) {
	if !s.staging {
		return info, false, false, nil
	}
	sdir := stagingDir + "/" + strconv.Itoa(rand.IntN(stagingShards))
	f, tmp, err := s.createTemp(sdir)
	if err != nil {
		return info, false, false, nil
	}
	defer f.Close()
	rel := join(sdir, tmp)
	sfd, _ := s.shardFd(sdir)
	err = withFd(f, func(fd int) error {
		if err := futimens(fd, stamp()); err != nil {
			return err
		}
		return unix.Linkat(sfd, tmp, d.fd, base, 0)
	})
	switch {
	case errors.Is(err, unix.EEXIST):
		s.removeStaged(rel)
		return info, false, true, backend.ErrPrecondition
	case err != nil:
		s.removeStaged(rel)
		return info, false, false, nil
	}
	s.unstageLinked(rel, s.watchedDir(d.fd))
	var st unix.Stat_t
	if err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return info, false, true, mapErr(err)
	}
	return metaOfUnix(&st).info(name), true, true, nil
}

// flushStaged makes the staged file f (at rel) durable, when the store syncs: by the
// shared round (syncfs of the root's filesystem, see groupSync) or, for a file staged on
// another filesystem mounted inside the tree, which that syncfs does not reach, by an
// fsync of its own.
func (s *Store) flushStaged(f *os.File, rel string) error {
	if !s.sync {
		return nil
	}
	if s.elsewhere(f, rel) {
		return mapErr(f.Sync())
	}
	return mapErr(s.group.wait())
}

// flushCommit makes the commit of the staged file f (staged at rel) into the folder dir
// durable, as flushStaged does; on another filesystem, the fsync is dir's.
func (s *Store) flushCommit(f *os.File, rel, dir string) error {
	if !s.sync {
		return nil
	}
	if s.elsewhere(f, rel) {
		return s.syncDir(dir)
	}
	return mapErr(s.group.wait())
}

// elsewhere reports whether the file f, staged at rel, is on another filesystem than the
// root's. A file in a staging shard never is, so the hot path makes no system call here;
// for one staged beside its target (nested mounts, no shards, or moved there by
// relocate) fstat tells.
func (s *Store) elsewhere(f *os.File, rel string) bool {
	if strings.HasPrefix(rel, stagingDir+"/") {
		return false
	}
	var st unix.Stat_t
	err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) })
	return err != nil || uint64(st.Dev) != s.rootDev
}

// stagingFor picks the folder an upload to dir is staged in: a shard of the staging
// folder when it is on the same filesystem as dir (so the commit stays one atomic
// rename or link), else dir itself.
func (s *Store) stagingFor(dir string) string {
	if !s.staging {
		return dir
	}
	if !s.nested {
		// Nothing is mounted inside the tree: dir is on the staging filesystem. (A
		// mount made since start-up gives EXDEV at the commit, which relocates.)
		return stagingDir + "/" + strconv.Itoa(rand.IntN(stagingShards))
	}
	fi, err := s.root.Stat(dir)
	if err != nil {
		return dir
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || uint64(st.Dev) != s.stagingDev {
		return dir
	}
	return stagingDir + "/" + strconv.Itoa(rand.IntN(stagingShards))
}

// writebackChunk is how much of a large upload is written before the disk is asked to
// start writing it out.
const writebackChunk = 8 << 20

// writeback starts the disk writing a large upload while the rest of it still arrives,
// when uploads are synced: without it, nothing goes to disk before the final flush
// (the kernel's dirty-page limits are GiBs here), so an upload takes the time to
// receive it plus the time to write it, instead of about the larger of the two. It
// only starts writes (sync_file_range(2) without waiting); durability still comes
// from the flush.
type writeback struct {
	f     *os.File // nil: nothing to do
	start int64
}

func (s *Store) writeback(w io.Writer) writeback {
	f, _ := w.(*os.File)
	if !s.sync {
		f = nil
	}
	return writeback{f: f}
}

// wrote tells that the first n bytes are written.
func (wb *writeback) wrote(n int64) {
	if wb.f == nil || n-wb.start < writebackChunk {
		return
	}
	err := withFd(wb.f, func(fd int) error {
		return unix.SyncFileRange(fd, wb.start, n-wb.start, unix.SYNC_FILE_RANGE_WRITE)
	})
	if err != nil {
		wb.f = nil // not supported here: the flush writes it all, as before
		return
	}
	wb.start = n
}

// stagingShards spreads temporary files over several folders: creating a file takes
// its folder's lock, and concurrent uploads into one folder would otherwise queue on
// the target folder's lock twice (create, then rename) instead of once. On ext4 each
// shard also lands in a block group of its own (spreadShards): the more groups share
// the inodes freed by replacements, the fewer of them each create passes over.
const stagingShards = 64

// stagingDir is where uploads are written before their commit.
const stagingDir = backend.ReservedPrefix + "/staging"
