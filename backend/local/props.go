package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// propsAttr holds all dead properties of a file or directory, so that a PROPPATCH is
// one write and a rename carries them along.
const propsAttr = "user.safedav.props"

// maxPropsSize is Linux's limit on one attribute value (XATTR_SIZE_MAX); filesystems
// may allow less (ext4: about a block), which they report with ENOSPC or E2BIG.
const maxPropsSize = 64 << 10

// propsVersion is the first byte of the encoding, so that it can change later.
const propsVersion = 1

// Props returns the dead properties of name in the order they were set, nil when it
// has none. Errors: ErrNotExist.
func (s *Store) Props(ctx context.Context, name string) ([]backend.Prop, error) {
	if err := backend.CheckName(name); err != nil {
		return nil, err
	}
	l, err := readable(s.locate(name))
	if err != nil {
		return nil, err
	}
	data, err := s.readProps(l.rel())
	if err != nil {
		return nil, err
	}
	return decodeProps(data)
}

// PatchProps applies patches in order and writes the result in one attribute write,
// under name's commit lock after checking c: all of them or none. Errors: ErrNotExist,
// ErrPrecondition, ErrNoSpace (too large for the filesystem), ErrUnsupported (no
// extended attributes).
func (s *Store) PatchProps(ctx context.Context, name string, c backend.Cond, patches []backend.PropPatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.CheckName(name); err != nil {
		return err
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	l, err := readable(s.locate(name))
	if err != nil {
		return err
	}
	if err := check(c, l.m); err != nil {
		return err
	}
	f, err := s.root.OpenFile(l.rel(), os.O_RDONLY, 0)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	data, err := getProps(f)
	if err != nil {
		return err
	}
	props, err := decodeProps(data)
	if err != nil {
		return err
	}
	props = backend.ApplyPatches(props, patches)
	if len(props) > 0 {
		if err := s.markProps(l.dir); err != nil {
			return err
		}
	}
	if err := setProps(f, encodeProps(props)); err != nil {
		return err
	}
	if s.sync {
		return mapErr(f.Sync())
	}
	return nil
}

// childPropsAttr marks a directory some of whose entries have (or had) dead
// properties. A listing of a directory without it skips reading its entries'
// attributes: most folders have none, and reading them costs a system call per entry.
const childPropsAttr = "user.safedav.childprops"

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

// carryProps copies the properties of the entry rel onto f (a new version or copy),
// which is or will be an entry of the directory dir.
func (s *Store) carryProps(rel string, f *os.File, dir string) error {
	data, err := s.readProps(rel)
	if err != nil || len(data) == 0 {
		return err
	}
	if err := s.markProps(dir); err != nil {
		return err
	}
	return setProps(f, data)
}

// copyPropsTo copies the properties of the entry from onto the entry to.
func (s *Store) copyPropsTo(from, to string) error {
	data, err := s.readProps(from)
	if err != nil || len(data) == 0 {
		return err
	}
	if err := s.markProps(dirOf(to)); err != nil {
		return err
	}
	f, err := s.root.OpenFile(to, os.O_RDONLY, 0)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	return setProps(f, data)
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
		switch {
		case err == nil && n == 0:
			return nil, nil
		case err == nil:
			return buf[:n], nil
		case errors.Is(err, unix.ENODATA), errors.Is(err, syscall.ENOTSUP):
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
			if err := unix.Fremovexattr(fd, propsAttr); !errors.Is(err, unix.ENODATA) {
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

// encodeProps encodes props as a version byte followed, for each property, by four
// length-prefixed (uvarint) fields: namespace, local name, xml:lang, inner XML.
// Binary rather than JSON: compact, and the inner XML needs no escaping.
func encodeProps(props []backend.Prop) []byte {
	if len(props) == 0 {
		return nil
	}
	b := []byte{propsVersion}
	for _, p := range props {
		for _, field := range [][]byte{[]byte(p.Name.Space), []byte(p.Name.Local), []byte(p.Lang), p.InnerXML} {
			b = binary.AppendUvarint(b, uint64(len(field)))
			b = append(b, field...)
		}
	}
	return b
}

var errCorruptProps = errors.New("local: corrupt dead properties")

func decodeProps(b []byte) ([]backend.Prop, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != propsVersion {
		return nil, errCorruptProps
	}
	b = b[1:]
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		field := b[k : k+int(n)]
		b = b[k+int(n):]
		return field, true
	}
	var props []backend.Prop
	for len(b) > 0 {
		var f [4][]byte
		for i := range f {
			var ok bool
			if f[i], ok = next(); !ok {
				return nil, errCorruptProps
			}
		}
		var p backend.Prop
		p.Name.Space, p.Name.Local, p.Lang = string(f[0]), string(f[1]), string(f[2])
		p.InnerXML = append([]byte(nil), f[3]...)
		props = append(props, p)
	}
	return props, nil
}
