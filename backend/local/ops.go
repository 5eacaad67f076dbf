package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"safedav/backend"
)

// Mkdir creates the collection name (mode 0755) under its commit lock after checking
// c. Errors: ErrExist, ErrParentMissing, ErrNotCollection, ErrPrecondition.
func (s *Store) Mkdir(ctx context.Context, name string, c backend.Cond) (backend.Info, error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, err
	}
	if err := backend.CheckName(name); err != nil {
		return backend.Info{}, err
	}
	unlock := s.locks.Lock(name)
	defer unlock()
	l, err := s.locate(name)
	if err != nil {
		return backend.Info{}, err
	}
	if err := check(c, l.m); err != nil {
		return backend.Info{}, err
	}
	if l.m != nil {
		return backend.Info{}, backend.ErrExist
	}
	if err := s.root.Mkdir(l.rel(), 0o755); err != nil {
		if isNotExist(err) {
			// The parent was moved or deleted since locate (a MOVE or DELETE of an
			// ancestor, which the name lock of name does not cover): the MKCOL came
			// after it.
			return backend.Info{}, backend.ErrParentMissing
		}
		return backend.Info{}, mapErr(err)
	}
	made := time.Now()
	// An ancestor moved or deleted right after the mkdir took the new folder with it:
	// the MKCOL came first and succeeded, so it is answered as done (the rename that
	// carried it away was synced by the MOVE, after the mkdir in the journal).
	gone := func(err error) bool { return errors.Is(err, backend.ErrNotExist) || isNotExist(err) }
	// The new folder first: without a journal (ext2, ext4 without one), syncing the
	// parent writes the new entry but not the inode and block it points to.
	if err := s.syncDir(l.rel()); gone(err) {
		return backend.Info{Name: name, Dir: true, ModTime: made}, nil
	} else if err != nil {
		return backend.Info{}, err
	}
	if err := s.syncDir(l.dir); gone(err) {
		return backend.Info{Name: name, Dir: true, ModTime: made}, nil
	} else if err != nil {
		return backend.Info{}, err
	}
	fi, err := s.root.Stat(l.rel())
	if gone(err) {
		return backend.Info{Name: name, Dir: true, ModTime: made}, nil
	} else if err != nil {
		return backend.Info{}, mapErr(err)
	}
	return metaOf(fi).info(name), nil
}

// Remove deletes name after checking c. A collection is first renamed to a temporary
// name, so it disappears at once and as a whole, and then deleted; what cannot be
// deleted stays hidden and is swept at the next start. Errors: ErrNotExist,
// ErrPrecondition, ErrInvalidName for the root.
func (s *Store) Remove(ctx context.Context, name string, c backend.Cond) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.CheckRemove(name); err != nil {
		return err
	}
	unlock := s.locks.Lock(name)
	l, err := readable(s.locate(name))
	if err == nil {
		err = check(c, l.m)
	}
	if err != nil {
		unlock()
		return err
	}
	if !l.m.isDir() {
		err := mapErr(s.root.Remove(l.rel()))
		if err == nil {
			err = s.syncDir(l.dir)
		}
		unlock()
		return err
	}
	aside := tmpName()
	err = s.renameNoReplace(l.dir, l.base, l.dir, aside)
	if err == nil {
		err = s.syncDir(l.dir)
	}
	unlock()
	if err != nil {
		return mapErr(err)
	}
	// Outside the lock: a large tree takes a while, and it is already invisible.
	_ = s.root.RemoveAll(join(l.dir, aside))
	return nil
}

// Copy copies src to dst with dead properties. The copy is built under a temporary
// name beside dst (synced when Options.Sync) and then, under dst's commit lock after
// checking c, renamed in: a file over dst, a collection exchanged with an existing dst
// atomically, so readers see the old dst or the complete copy. Members that are neither
// files nor directories, and symlinks to directories, are not copied (a link loop must
// not make the copy endless). Errors: backend.CheckCopy's, ErrNotExist (src),
// ErrParentMissing, ErrNotCollection (dst's parent), ErrPrecondition, ErrNoSpace.
func (s *Store) Copy(ctx context.Context, src, dst string, c backend.Cond, depth int) (created bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := backend.CheckCopy(src, dst); err != nil {
		return false, err
	}
	sl, err := readable(s.locate(src))
	if err != nil {
		return false, err
	}
	dl, err := s.locate(dst)
	if err != nil {
		return false, err
	}
	if err := check(c, dl.m); err != nil {
		return false, err
	}

	var tmp string
	if sl.m.isDir() {
		tmp, err = s.copyTree(ctx, sl.rel(), dl.dir, depth)
	} else {
		tmp, err = s.copyFile(ctx, sl.rel(), dl.dir)
	}
	if err != nil {
		return false, err
	}
	tmpLive := true
	defer func() {
		if tmpLive {
			_ = s.root.RemoveAll(join(dl.dir, tmp))
		}
	}()
	if err := ctx.Err(); err != nil {
		return false, err
	}

	unlock := s.locks.Lock(dst)
	cur, err := s.locate(dst)
	switch {
	case err != nil:
	case cur.dir != dl.dir:
		err = backend.ErrParentMissing
	default:
		err = check(c, cur.m)
	}
	if err != nil {
		unlock()
		return false, err
	}
	switch {
	case cur.m == nil:
		err = s.renameNoReplace(cur.dir, tmp, cur.dir, cur.base)
		if errors.Is(err, syscall.EEXIST) {
			err = backend.ErrPrecondition
		}
		tmpLive = err != nil
	case !cur.m.isDir() && !sl.m.isDir():
		err = s.renameat(cur.dir, tmp, cur.dir, cur.base, 0)
		tmpLive = err != nil
	default:
		// The old dst lands under the temporary name and is removed by the deferred
		// cleanup, after the lock is released.
		err = s.exchange(cur.dir, tmp, cur.base)
	}
	if err == nil {
		err = s.syncDir(cur.dir)
	}
	unlock()
	if err != nil {
		return false, commitErr(err)
	}
	return cur.m == nil, nil
}

// copyFile copies the file src to a new temporary file in dir and returns its name.
func (s *Store) copyFile(ctx context.Context, src, dir string) (tmp string, err error) {
	f, tmp, err := s.createTemp(dir)
	if err != nil {
		return "", err
	}
	err = s.fillFile(ctx, f, join(dir, tmp), src)
	if cerr := f.Close(); err == nil {
		err = mapErr(cerr)
	}
	if err != nil {
		_ = s.root.Remove(join(dir, tmp))
		return "", err
	}
	return tmp, nil
}

// fillFile writes the content and properties of the file src into f (named rel), with
// a fresh mtime so that the copy's ETag differs from what dst had.
func (s *Store) fillFile(ctx context.Context, f *os.File, rel, src string) error {
	in, err := s.root.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return mapErr(err)
	}
	defer in.Close()
	// The version opened, as long as it was then, whatever another program does to the
	// file meanwhile.
	fi, err := in.Stat()
	if err != nil {
		return mapErr(err)
	}
	if _, err := s.copyBody(ctx, f, io.LimitReader(in, fi.Size()), -1); err != nil {
		return mapErr(err)
	}
	if err := s.carryProps(src, f, dirOf(rel)); err != nil {
		return err
	}
	if err := s.setMtime(f, rel, stamp()); err != nil {
		return mapErr(err)
	}
	if s.sync {
		return mapErr(f.Sync())
	}
	return nil
}

// copyTree copies the collection src (with its members when depth is not DepthZero) to
// a new temporary directory in dir and returns its name. Any failure removes the
// partial copy: a copy is committed whole or not at all.
func (s *Store) copyTree(ctx context.Context, src, dir string, depth int) (tmp string, err error) {
	tmp, err = s.mkdirTemp(dir)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = s.root.RemoveAll(join(dir, tmp))
		}
	}()
	top := join(dir, tmp)
	if err := s.copyPropsTo(src, top); err != nil {
		return "", err
	}
	dirs := []string{top}
	if depth != backend.DepthZero {
		type pair struct{ from, to string }
		stack := []pair{{src, top}}
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			member := false // the error is a member's, already named
			err := s.readDir(ctx, p.from, func(_ int, n string, st *entryStat) (err error) {
				if strings.HasPrefix(n, backend.ReservedPrefix) {
					return nil
				}
				from, to := join(p.from, n), join(p.to, n)
				defer func() {
					if err != nil && !member {
						// Relative to the root, so the name: the log says where.
						member, err = true, fmt.Errorf("copying /%s: %w", from, err)
					}
				}()
				m := entryMeta(st)
				if m.isLink() {
					fi, err := s.root.Stat(from)
					if dangling(err) {
						return nil // leaves the tree, or dangles
					}
					if err != nil {
						return mapErr(err) // not copied silently: the copy fails
					}
					if m = metaOf(fi); m.isDir() {
						return nil
					}
				}
				switch {
				case m.isDir():
					if err := s.root.Mkdir(to, 0o755); err != nil {
						return mapErr(err)
					}
					if err := s.copyPropsTo(from, to); err != nil {
						return err
					}
					dirs = append(dirs, to)
					stack = append(stack, pair{from, to})
				case m.isRegular():
					f, err := s.root.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
					if err != nil {
						return mapErr(err)
					}
					err = s.fillFile(ctx, f, to, from)
					if cerr := f.Close(); err == nil {
						err = mapErr(cerr)
					}
					return err
				}
				return nil
			})
			if err != nil && !member {
				err = fmt.Errorf("copying /%s: %w", strings.TrimPrefix(p.from, "."), err)
			}
			if err != nil {
				return "", err
			}
		}
	}
	for _, d := range dirs {
		if err := s.syncDir(d); err != nil {
			return "", err
		}
	}
	return tmp, nil
}

// Move renames src to dst under both commit locks after checking c. A file replaces a
// file in one rename; when a collection is involved the old dst is renamed aside, src
// renamed in, and the old dst removed (put back if the second rename fails). Dead
// properties travel with the rename. Errors: backend.CheckCopy's, ErrNotExist (src),
// ErrParentMissing, ErrNotCollection (dst's parent), ErrPrecondition.
func (s *Store) Move(ctx context.Context, src, dst string, c backend.Cond) (created bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := backend.CheckCopy(src, dst); err != nil {
		return false, err
	}
	unlock := s.locks.Lock(src, dst)
	sl, err := readable(s.locate(src))
	if err != nil {
		unlock()
		return false, err
	}
	dl, err := s.locate(dst)
	if err == nil {
		err = check(c, dl.m)
	}
	if err != nil {
		unlock()
		return false, err
	}
	// The moved entry keeps its attributes; its new directory must say so.
	if data, perr := s.readProps(sl.rel()); perr == nil && len(data) > 0 {
		if err := s.markProps(dl.dir); err != nil {
			unlock()
			return false, err
		}
	}
	var aside string
	switch {
	case dl.m == nil:
		err = s.renameNoReplace(sl.dir, sl.base, dl.dir, dl.base)
		if errors.Is(err, syscall.EEXIST) {
			err = backend.ErrPrecondition
		}
	case !dl.m.isDir() && !sl.m.isDir():
		err = s.renameat(sl.dir, sl.base, dl.dir, dl.base, 0)
	default:
		aside = tmpName()
		if err = s.renameNoReplace(dl.dir, dl.base, dl.dir, aside); err != nil {
			break
		}
		if err = s.renameNoReplace(sl.dir, sl.base, dl.dir, dl.base); err != nil {
			_ = s.renameat(dl.dir, aside, dl.dir, dl.base, 0)
			aside = ""
		}
	}
	if err == nil && sl.m.isDir() && sl.dir != dl.dir {
		// Its ".." changed, in a block of its own that syncing the parents leaves out
		// without a journal (see Mkdir).
		err = s.syncDir(dl.rel())
	}
	if err == nil {
		err = s.syncDir(dl.dir)
	}
	if err == nil && sl.dir != dl.dir {
		err = s.syncDir(sl.dir)
	}
	unlock()
	if err != nil {
		return false, mapErr(err)
	}
	if aside != "" {
		_ = s.root.RemoveAll(join(dl.dir, aside))
	}
	return dl.m == nil, nil
}
