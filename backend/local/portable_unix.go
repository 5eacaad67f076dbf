//go:build (linux && safedav_portable) || darwin || freebsd

package local

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// diskSpace reports the free space for an unprivileged writer and the space in use on
// the root's filesystem.
func (s *Store) diskSpace() (available, used int64, err error) {
	f, err := s.root.Open(".")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := withFd(f, func(fd int) error { return unix.Fstatfs(fd, &st) }); err != nil {
		return 0, 0, err
	}
	bs := int64(st.Bsize)
	return int64(st.Bavail) * bs, int64(st.Blocks-st.Bfree) * bs, nil
}

// markFile sets childPropsAttr on the open directory f unless it is there.
func markFile(f *os.File) error {
	return withFd(f, func(fd int) error {
		if _, err := unix.Fgetxattr(fd, childPropsAttr, nil); err == nil {
			return nil
		}
		err := unix.Fsetxattr(fd, childPropsAttr, []byte{1}, 0)
		if errors.Is(err, syscall.ENOTSUP) {
			return backend.ErrUnsupported
		}
		return mapErr(err)
	})
}

// setMtime sets the modification time of f, the file rel, leaving its access time.
func (s *Store) setMtime(_ *os.File, rel string, t time.Time) error {
	return s.root.Chtimes(rel, time.Time{}, t)
}
