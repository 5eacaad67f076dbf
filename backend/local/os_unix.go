//go:build linux || darwin || freebsd

package local

import (
	"errors"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// stampStep is the finest modification time the filesystems here keep: a nanosecond.
const stampStep = 1

// Flags of os.Root.OpenFile: open only a directory; do not block opening a FIFO.
const (
	oDirectory = syscall.O_DIRECTORY
	oNonblock  = syscall.O_NONBLOCK
)

// isNotExist reports a missing entry.
func isNotExist(err error) bool { return errors.Is(err, syscall.ENOENT) }

// isDenied reports a refused access.
func isDenied(err error) bool { return errors.Is(err, syscall.EACCES) }

func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// syncDir makes the entries of directory rel durable (a rename or link is only on
// disk once its directory is).
func (s *Store) syncDir(rel string) error {
	if !s.sync {
		return nil
	}
	f, err := s.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return mapErr(err)
	}
	err = f.Sync()
	f.Close()
	if err == nil && s.synced != nil {
		s.synced(rel)
	}
	return mapErr(err)
}

// sentinelOf is the backend sentinel for a filesystem error of this system, or nil
// when none fits (mapErr then keeps the error as it is, less its host path).
func sentinelOf(err error) error {
	switch {
	case isEscape(err), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOENT):
		return backend.ErrNotExist
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return backend.ErrNoSpace
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		return backend.ErrForbidden
	case errors.Is(err, syscall.ENAMETOOLONG):
		return backend.ErrNameTooLong
	case errors.Is(err, syscall.EISDIR):
		return backend.ErrIsCollection
	case errors.Is(err, syscall.ENOTDIR):
		return backend.ErrNotCollection
	case errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTEMPTY):
		return backend.ErrExist
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EXDEV):
		return backend.ErrUnsupported
	}
	return nil
}

// getProps reads the attribute through f's descriptor (never a path, which could be
// redirected). A filesystem without extended attributes has no properties.
func getProps(f *os.File) ([]byte, error) {
	var data []byte
	err := withFd(f, func(fd int) (err error) {
		data, err = fdProps(fd)
		return err
	})
	return data, err
}

// fdProps reads the attribute of the open descriptor fd.
func fdProps(fd int) ([]byte, error) {
	data, err := getAttr(fd, "", make([]byte, 1024))
	return data, mapErr(err)
}

// syncProps makes the properties just written to f durable.
func syncProps(f *os.File) error { return f.Sync() }

// attrTruncates is set where reading an attribute into a buffer too small for it
// fills the buffer without an error (FreeBSD's extattr_get_fd).
const attrTruncates = runtime.GOOS == "freebsd"

var errPropsUnstable = errors.New("local: dead properties keep changing size")

// getAttr reads propsAttr of path (lgetxattr) or, when path is "", of fd (fgetxattr)
// into buf, or into a larger buffer when it has grown (ERANGE). The result may lie in
// buf; nil when there is no attribute or no support for them. Errors are unmapped.
func getAttr(fd int, path string, buf []byte) ([]byte, error) {
	get := func(b []byte) (int, error) {
		if path != "" {
			return unix.Lgetxattr(path, propsAttr, b)
		}
		return unix.Fgetxattr(fd, propsAttr, b)
	}
	for range 8 {
		n, err := get(buf)
		if errors.Is(err, syscall.ERANGE) {
			// Grown since: ask for the size and try again (an empty buffer would only
			// ask for the size again).
			if n, err = get(nil); err == nil {
				buf = make([]byte, max(n, 1))
				continue
			}
		}
		if err == nil && attrTruncates && n == len(buf) {
			// It may have been cut to fit: ask for the size, and read again if larger.
			if size, serr := get(nil); serr == nil && size > n {
				buf = make([]byte, size)
				continue
			}
		}
		switch {
		case err == nil && n == 0:
			return nil, nil
		case err == nil:
			return buf[:n], nil
		case errors.Is(err, errNoAttr), errors.Is(err, syscall.ENOTSUP):
			return nil, nil
		}
		return nil, err
	}
	return nil, errPropsUnstable
}

// setProps writes (or, for empty data, removes) the attribute through f's descriptor.
func setProps(f *os.File, data []byte) error {
	if len(data) > maxPropsSize {
		return backend.ErrNoSpace
	}
	err := withFd(f, func(fd int) error {
		if len(data) == 0 {
			if err := unix.Fremovexattr(fd, propsAttr); !errors.Is(err, errNoAttr) {
				return err
			}
			return nil
		}
		return unix.Fsetxattr(fd, propsAttr, data, 0)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.E2BIG), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.ERANGE), errors.Is(err, syscall.EDQUOT):
		return errors.Join(backend.ErrNoSpace, err)
	}
	return mapErr(err)
}

// propsAttr holds all dead properties of a file or directory, so that a PROPPATCH is
// one write and a rename carries them along.
const propsAttr = "user.safedav.props"

// maxPropsSize is Linux's limit on one attribute value (XATTR_SIZE_MAX); filesystems
// may allow less (ext4: about a block), which they report with ENOSPC or E2BIG.
const maxPropsSize = 64 << 10

// childPropsAttr marks a directory some of whose entries have (or had) dead
// properties. A listing of a directory without it skips reading its entries'
// attributes: most folders have none, and reading them costs a system call per entry.
const childPropsAttr = "user.safedav.childprops"
