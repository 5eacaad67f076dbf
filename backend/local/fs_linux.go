//go:build !safedav_portable

package local

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

func metaOfUnix(st *unix.Stat_t) *meta {
	return newMeta(st.Mode, st.Size, st.Ino, st.Mtim.Nano(), st.Ctim.Nano())
}

// statAt is locate's fast path: fstatat on the parent's descriptor, which it leaves
// open for the caller (to close) when ok. It answers only the plain cases (a file or
// folder, or a missing ASCII name in an existing folder).
func (s *Store) statAt(dir, base string) (l loc, d dirHandle, ok bool) {
	d, err := s.openDir(dir)
	if err != nil {
		return loc{}, d, false
	}
	var st unix.Stat_t
	err = unix.Fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK:
		return loc{dir: dir, base: base, m: metaOfUnix(&st)}, d, true
	case errors.Is(err, unix.ENOENT) && isASCII(base) && isASCII(dir):
		return loc{dir: dir, base: base}, d, true // the parent is a folder: O_DIRECTORY said so
	}
	d.close()
	return loc{}, d, false
}

// renameat renames between two directories of the tree with renameat2 flags, on
// descriptors opened through the root so no path outside it can be reached.
func (s *Store) renameat(oldDir, oldBase, newDir, newBase string, flags uint) error {
	return s.withDirs(oldDir, newDir, noDir, func(od, nd int) error {
		return unix.Renameat2(od, oldBase, nd, newBase, flags)
	})
}

// renameNoReplace renames unless the new name exists (EEXIST). Filesystems without
// RENAME_NOREPLACE fall back to a plain rename: callers hold the path lock and have
// checked the target is absent, so only another process could race.
func (s *Store) renameNoReplace(oldDir, oldBase, newDir, newBase string) error {
	err := s.renameat(oldDir, oldBase, newDir, newBase, unix.RENAME_NOREPLACE)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.ENOTSUP) {
		err = s.renameat(oldDir, oldBase, newDir, newBase, 0)
	}
	return err
}

// exchange swaps the entries a and b of dir atomically, so that a replaced tree never
// vanishes for readers. Without RENAME_EXCHANGE it does the same in three renames.
func (s *Store) exchange(dir, a, b string) error {
	err := s.renameat(dir, a, dir, b, unix.RENAME_EXCHANGE)
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
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
