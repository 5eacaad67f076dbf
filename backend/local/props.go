package local

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
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
	unlock := s.lock(name)
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
	for _, p := range patches {
		i := indexProp(props, p.Prop)
		switch {
		case p.Remove && i >= 0:
			props = append(props[:i], props[i+1:]...)
		case p.Remove:
		case i >= 0:
			props[i] = p.Prop
		default:
			props = append(props, p.Prop)
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

func indexProp(props []backend.Prop, p backend.Prop) int {
	for i := range props {
		if props[i].Name == p.Name {
			return i
		}
	}
	return -1
}

// readProps returns the encoded properties of the entry rel (nil when none).
func (s *Store) readProps(rel string) ([]byte, error) {
	f, err := s.root.OpenFile(rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, mapErr(err)
	}
	defer f.Close()
	return getProps(f)
}

// carryProps copies the properties of the entry rel onto f (a new version or copy).
func (s *Store) carryProps(rel string, f *os.File) error {
	data, err := s.readProps(rel)
	if err != nil || len(data) == 0 {
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
	f, err := s.root.OpenFile(to, os.O_RDONLY, 0)
	if err != nil {
		return mapErr(err)
	}
	defer f.Close()
	return setProps(f, data)
}

// getProps reads the attribute through f's descriptor (never a path, which could be
// redirected). A filesystem without extended attributes has no properties.
func getProps(f *os.File) ([]byte, error) {
	buf := make([]byte, 1024)
	for range 8 {
		var n int
		err := withFd(f, func(fd int) (err error) {
			n, err = unix.Fgetxattr(fd, propsAttr, buf)
			if errors.Is(err, syscall.ERANGE) {
				// Grown since: ask for the size and try again.
				if n, err = unix.Fgetxattr(fd, propsAttr, nil); err == nil {
					buf = make([]byte, n)
					err = syscall.ERANGE
				}
			}
			return err
		})
		switch {
		case err == nil && n == 0:
			return nil, nil
		case err == nil:
			return buf[:n], nil
		case errors.Is(err, syscall.ERANGE):
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, syscall.ENOTSUP):
			return nil, nil
		default:
			return nil, mapErr(err)
		}
	}
	return nil, errors.New("local: dead properties keep changing size")
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
