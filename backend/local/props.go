package local

import (
	"context"
	"encoding/binary"
	"errors"
	"os"

	"safedav/backend"
)

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
		return mapErr(syncProps(f))
	}
	return nil
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
