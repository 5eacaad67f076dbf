// Package local stores safedav resources in a directory tree on disk.
//
// Every access goes through an os.Root, so no symlink can lead outside the tree. A
// write goes to a temporary file beside its target and is committed by a rename (or a
// link, for create-only writes) under a per-path commit lock, after the condition the
// server observed has been checked again; a failed or cancelled write leaves only a
// temporary file, removed at once or swept at the next start. Dead properties live in
// one extended attribute per file or directory.
//
// On Linux the hot paths work on directory descriptors confined with openat2, a group
// commit makes concurrent uploads durable with one syncfs, and listings of large
// folders are kept in memory while inotify reports no change (listCache): the
// *_linux.go files. Elsewhere, or built with the safedav_portable tag, the portable
// path (portable*.go) does the same through os.Root alone: an fsync per file and per
// folder, no listing cache, uploads staged beside their targets.
package local

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"safedav/backend"
	"safedav/internal/namelock"
)

// Options configure a Store. The zero value does not fsync: the server passes Sync
// explicitly (true by default).
type Options struct {
	// Sync fsyncs files and directories before a write is acknowledged, so an
	// acknowledged write survives a power loss.
	Sync bool
	// ListCache is the number of members of large folders whose listings are kept in
	// memory and served again while inotify reports no change (see listCache): 0 means
	// DefaultListCache, a negative number turns the cache off. Only Linux has the
	// cache; elsewhere it is always off.
	ListCache int
}

// DefaultListCache is the number of members kept when Options.ListCache is zero:
// about 8 MiB, six folders of 10,000 files.
const DefaultListCache = 65536

// Store is a backend.Backend and backend.PropStore on a local directory tree. It is
// safe for concurrent use; one Store (one process) must own a tree at a time, since
// New sweeps the temporary files of others.
type Store struct {
	root     *os.Root
	sync     bool
	locks    namelock.Locks // commit locks, held around commits, never while a body is read
	platform                // the state of the Linux fast path, or of the portable one

	// failWrite, when set (by tests), is called before every write of an upload and
	// its error fails the write as the disk would.
	failWrite func() error
	// afterLink, when set (by tests), is called between the link that commits a
	// create-only write and the removal of its staged name.
	afterLink func()
	// synced, when set (by tests), is told each folder syncDir has synced.
	synced func(rel string)
}

var (
	_ backend.Backend    = (*Store)(nil)
	_ backend.PropStore  = (*Store)(nil)
	_ backend.PropLister = (*Store)(nil)
	_ backend.Quotaer    = (*Store)(nil)
)

// openFile opens rel through os.Root and describes what it opened.
func (s *Store) openFile(rel, name string) (io.ReadSeekCloser, backend.Info, error) {
	f, err := s.root.OpenFile(rel, os.O_RDONLY|oNonblock, 0)
	if err != nil {
		return nil, backend.Info{}, mapErr(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, backend.Info{}, mapErr(err)
	}
	m := metaOf(fi)
	if !m.isRegular() {
		f.Close()
		if m.isDir() {
			return nil, backend.Info{}, backend.ErrIsCollection
		}
		return nil, backend.Info{}, backend.ErrNotExist
	}
	return f, m.info(name), nil
}

// probe writes, syncs and removes a temporary file, so a read-only or broken tree is
// reported at start-up rather than on the first upload.
func (s *Store) probe() error {
	f, base, err := s.createTemp(".")
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("safedav"))
	if err == nil && s.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := s.root.Remove(base); err == nil {
		err = rerr
	}
	return mapErr(err)
}

// sweep removes every temporary entry in the tree. It walks each directory once and
// never follows a symlink, so it ends even on a tree with link loops.
func (s *Store) sweep() error {
	stack := []string{"."}
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		err := s.readDir(context.Background(), dir, func(_ int, n string, st *entryStat) error {
			rel := join(dir, n)
			switch {
			case strings.HasPrefix(n, tmpPrefix):
				return mapErr(s.root.RemoveAll(rel))
			case entryMeta(st).isDir():
				stack = append(stack, rel)
			}
			return nil
		})
		// A directory that vanished or cannot be read is not ours to judge.
		if err != nil && !errors.Is(err, backend.ErrNotExist) && !isDenied(err) {
			return err
		}
	}
	return nil
}

// readable maps the errors of locate for an operation on an existing resource: any
// missing or non-directory ancestor just means the resource does not exist.
func readable(l loc, err error) (loc, error) {
	if errors.Is(err, backend.ErrParentMissing) || errors.Is(err, backend.ErrNotCollection) {
		return l, backend.ErrNotExist
	}
	if err == nil && (l.m == nil || !l.m.servable()) {
		return l, backend.ErrNotExist
	}
	return l, err
}

// Stat returns the Info of name, or ErrNotExist.
func (s *Store) Stat(ctx context.Context, name string) (backend.Info, error) {
	if err := backend.CheckName(name); err != nil {
		return backend.Info{}, err
	}
	l, err := readable(s.locate(name))
	if err != nil {
		return backend.Info{}, err
	}
	return l.m.info(name), nil
}

// List calls fn with the Info of every member of dir, names in NFC, hiding reserved
// names and entries that are neither files nor directories (or symlinks leaving the
// tree). Errors: ErrNotExist, ErrNotCollection, or fn's error.
func (s *Store) List(ctx context.Context, dir string, fn func(backend.Info) error) error {
	return s.list(ctx, dir, false, func(info backend.Info, _ []backend.Prop) error { return fn(info) })
}

// ListProps is List that also reads each member's dead properties in the same pass,
// through the directory's descriptor, so a PROPFIND allprop of a large folder does not
// open every file.
func (s *Store) ListProps(ctx context.Context, dir string, fn func(backend.Info, []backend.Prop) error) error {
	return s.list(ctx, dir, true, fn)
}

func (s *Store) list(ctx context.Context, dir string, withProps bool, fn func(backend.Info, []backend.Prop) error) error {
	if err := backend.CheckName(dir); err != nil {
		return err
	}
	l, err := readable(s.locate(dir))
	if err != nil {
		return err
	}
	if !l.m.isDir() {
		return backend.ErrNotCollection
	}
	return s.listDir(ctx, dir, l.rel(), withProps, fn)
}

// Open opens the file name for reading; its Info describes the opened version. Errors:
// ErrNotExist, ErrIsCollection.
func (s *Store) Open(ctx context.Context, name string) (io.ReadSeekCloser, backend.Info, error) {
	if err := backend.CheckName(name); err != nil {
		return nil, backend.Info{}, err
	}
	if name != "/" {
		r, info, err := s.openFast(name[1:], name)
		if err == nil || errors.Is(err, backend.ErrIsCollection) {
			return r, info, err
		}
	}
	l, err := readable(s.locate(name))
	if err != nil {
		return nil, backend.Info{}, err
	}
	if l.m.isDir() {
		return nil, backend.Info{}, backend.ErrIsCollection
	}
	// The entry may have been replaced since locate: openFile describes what it opened.
	return s.openFile(l.rel(), name)
}
