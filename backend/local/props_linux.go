//go:build !safedav_portable

package local

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// markProps sets childPropsAttr on the directory dir before an entry in it gets
// properties. It is never removed (a stale mark costs only speed).
func (s *Store) markProps(dir string) error {
	d, err := s.openDir(dir)
	if err != nil {
		return mapErr(err)
	}
	defer d.close()
	return markPropsIn(d.fd)
}

// markPropsIn is markProps on the open directory dirfd. The xattr calls refuse an
// O_PATH descriptor (what openDir gives), so the directory is opened through it.
func markPropsIn(dirfd int) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return mapErr(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Fgetxattr(fd, childPropsAttr, nil); err == nil {
		return nil
	}
	err = unix.Fsetxattr(fd, childPropsAttr, []byte{1}, 0)
	if errors.Is(err, syscall.ENOTSUP) {
		return backend.ErrUnsupported
	}
	return mapErr(err)
}

// hasChildProps reports whether the open directory dirfd is marked by markProps.
func hasChildProps(dirfd int) bool {
	_, err := unix.Fgetxattr(dirfd, childPropsAttr, nil)
	return err == nil
}

// readProps returns the encoded properties of the entry rel (nil when none).
func (s *Store) readProps(rel string) ([]byte, error) {
	// Fast path: a raw descriptor opened beneath the root, without an *os.File.
	if fd, err := s.openat2Beneath(rel, unix.O_RDONLY|unix.O_NONBLOCK); err == nil {
		defer unix.Close(fd)
		return fdProps(fd)
	}
	f, err := s.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO must not block
	if err != nil {
		return nil, mapErr(err)
	}
	defer f.Close()
	return getProps(f)
}

// entryProps reads the properties of the entry name of the open directory dirfd with
// lgetxattr on /proc/self/fd/DIRFD/NAME: one system call instead of open, fgetxattr
// and close. It stays inside the root: the descriptor is a directory of the tree, name
// is one component read from it, and lgetxattr does not follow a final symlink.
// Without /proc it falls back to opening the entry through the directory.
func entryProps(dirfd int, name string) ([]byte, error) {
	var small [512]byte
	data, err := getAttr(-1, "/proc/self/fd/"+strconv.Itoa(dirfd)+"/"+name, small[:])
	switch {
	case errors.Is(err, unix.ENOENT):
		if _, serr := os.Stat("/proc/self/fd"); serr != nil {
			return entryPropsOpen(dirfd, name)
		}
		return nil, backend.ErrNotExist // removed while we listed
	case errors.Is(err, errPropsUnstable):
		return nil, backend.ErrNotExist
	case err != nil:
		return nil, mapErr(err)
	}
	return bytes.Clone(data), nil // data may lie in small
}

// entryPropsOpen is entryProps without /proc: open the entry relative to the directory,
// refusing to follow a symlink.
func entryPropsOpen(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, mapErr(err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return getProps(f)
}
