package local

import (
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"sync"
	"syscall"

	"safedav/backend"
)

// bufSize is the copy buffer: large enough for few syscalls per upload, pooled so
// memory depends on the number of concurrent uploads, not on their size.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Put writes body to a temporary file beside name, syncs it, and then, holding name's
// commit lock, checks c again and renames the file over name (or links it, when c is
// create-only, so that an existing name fails with ErrPrecondition). On any failure,
// including a body error or a cancelled ctx, the temporary file is removed and name is
// untouched. The dead properties of a replaced file are carried to the new one.
func (s *Store) Put(ctx context.Context, name string, body io.Reader, c backend.Cond, m backend.Meta) (info backend.Info, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, false, err
	}
	if err := backend.CheckName(name); err != nil {
		return backend.Info{}, false, err
	}
	if name == "/" {
		return backend.Info{}, false, backend.ErrIsCollection
	}
	if m.Volatile && m.Size == 0 && c.IfNoneMatch {
		return s.createEmpty(name)
	}
	// Without nested mounts the staging folder does not depend on the target, and the
	// early look is only an optimisation (failing before the body is read) of a check
	// the caller has just made and the commit makes again under the lock.
	early := s.nested || !s.staging
	var l loc
	if early {
		if l, err = s.locate(name); err != nil {
			return backend.Info{}, false, err
		}
		if l.m != nil && l.m.isDir() {
			return backend.Info{}, false, backend.ErrIsCollection
		}
		if err := check(c, l.m); err != nil {
			return backend.Info{}, false, err
		}
	}

	f, tmpRel, err := s.stage(ctx, l.dir, body, m)
	if early && errors.Is(err, backend.ErrNotExist) {
		// Staged beside the target: the parent was moved or deleted since locate (by
		// an operation on an ancestor, which name's lock does not cover).
		err = backend.ErrParentMissing
	}
	if err != nil {
		return backend.Info{}, false, err
	}
	tmpLive := true
	defer func() {
		f.Close()
		if tmpLive {
			s.removeStaged(tmpRel)
		}
	}()

	unlock := s.locks.Lock(name)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	cur, dh, err := s.locateHeld(name)
	if err != nil {
		return backend.Info{}, false, err
	}
	defer dh.close()
	if early && cur.dir != l.dir {
		// The parent was replaced while the body was read: the temporary file is no
		// longer beside the target.
		return backend.Info{}, false, backend.ErrParentMissing
	}
	if cur.m != nil && cur.m.isDir() {
		return backend.Info{}, false, backend.ErrIsCollection
	}
	if err := check(c, cur.m); err != nil {
		return backend.Info{}, false, err
	}
	var linkedIn dirKey
	for attempt := 0; ; attempt++ {
		tdir, tbase := splitRel(tmpRel)
		if c.IfNoneMatch {
			// link fails if the name appeared, even through another process.
			linkedIn, err = s.linkInto(tdir, tbase, cur, dh)
			if errors.Is(err, os.ErrExist) {
				return backend.Info{}, false, backend.ErrPrecondition
			}
		} else {
			if cur.m != nil {
				if err := s.carryPropsFrom(cur, dh, f); err != nil {
					return backend.Info{}, false, err
				}
			}
			err = s.renameInto(tdir, tbase, cur, dh)
		}
		if errors.Is(err, syscall.EXDEV) && attempt == 0 {
			// Staged on another mount than the target: see relocate.
			nf, nrel, rerr := s.relocate(ctx, f, tmpRel, cur.dir)
			if rerr != nil {
				return backend.Info{}, false, rerr
			}
			f, tmpRel = nf, nrel
			continue
		}
		if err != nil {
			return backend.Info{}, false, commitErr(err)
		}
		break
	}
	tmpLive = false
	if c.IfNoneMatch {
		// The upload is committed; a temporary name left here is swept at start-up.
		s.unstageLinked(tmpRel, linkedIn)
	}
	// The commit is decided; other writers of this name need not wait for its flush.
	unlock()
	locked = false
	if !m.Volatile {
		// A folder moved or deleted since the commit took the file with it: the PUT
		// came first and is done (the MOVE or DELETE syncs what it changed).
		if err := s.flushCommit(f, tmpRel, cur.dir); err != nil && !errors.Is(err, backend.ErrNotExist) {
			return backend.Info{}, false, err
		}
	}
	// fstat after the commit: link, unlink and rename all move the ctime.
	fi, err := f.Stat()
	if err != nil {
		return backend.Info{}, false, mapErr(err)
	}
	return metaOf(fi).info(name), cur.m == nil, nil
}

// relocate copies the staged file (open as f) into a new temporary file in dir, with
// the same modification time, made durable, and then removes the staged one: the
// staging folder and the target are on different mounts (a bind mount inside the
// tree), so only a file beside the target can be renamed or linked there. On failure
// the caller still owns f and staged.
func (s *Store) relocate(ctx context.Context, f *os.File, staged, dir string) (*os.File, string, error) {
	in, err := s.root.Open(staged)
	if err != nil {
		return nil, "", mapErr(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, "", mapErr(err)
	}
	nf, tmp, err := s.createTemp(dir)
	if err != nil {
		return nil, "", err
	}
	rel := join(dir, tmp)
	fail := func(err error) (*os.File, string, error) {
		nf.Close()
		s.removeStaged(rel)
		return nil, "", err
	}
	if _, err := s.copyBody(ctx, nf, in, -1); err != nil {
		return fail(err)
	}
	if err := s.setMtime(nf, rel, fi.ModTime()); err != nil {
		return fail(mapErr(err))
	}
	if err := s.flushStaged(nf, rel); err != nil {
		return fail(err)
	}
	s.removeStaged(staged)
	f.Close()
	return nf, rel, nil
}

// stage writes body to a new temporary file in dir, sets its mtime and syncs it. On
// success the caller owns the open file and must remove tmpRel unless it committed it.
func (s *Store) stage(ctx context.Context, dir string, body io.Reader, m backend.Meta) (f *os.File, tmpRel string, err error) {
	sdir := s.stagingFor(dir)
	file, tmp, err := s.createTemp(sdir)
	if err != nil {
		return nil, "", err
	}
	// Not f and tmpRel: a failing return zeroes the results before this runs.
	staged := join(sdir, tmp)
	defer func() {
		if err != nil {
			file.Close()
			s.removeStaged(staged)
		}
	}()
	f = file
	n, err := s.copyBody(ctx, f, body, m.Size)
	if err != nil {
		return nil, "", err
	}
	if m.Size >= 0 && n != m.Size {
		return nil, "", backend.ErrShortBody
	}
	mtime := m.ModTime
	if mtime.IsZero() {
		mtime = stamp()
	}
	if err := s.setMtime(f, staged, mtime); err != nil {
		return nil, "", mapErr(err)
	}
	// The data must be on disk before a rename can make it visible, or a crash could
	// leave the name pointing at an empty file where the old version was.
	if !m.Volatile {
		if err := s.flushStaged(f, staged); err != nil {
			return nil, "", err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	return f, staged, nil
}

// Create stages the body once, then links it under the first free name: link(2)
// fails with EEXIST when a name is taken, even by another process, so two creators
// never get the same name.
func (s *Store) Create(ctx context.Context, names iter.Seq[string], body io.Reader, m backend.Meta) (backend.Info, error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, err
	}
	next, stop := iter.Pull(names)
	defer stop()
	first, ok := next()
	if !ok {
		return backend.Info{}, backend.ErrExist
	}
	if err := backend.CheckName(first); err != nil {
		return backend.Info{}, err
	}
	if first == "/" {
		return backend.Info{}, backend.ErrIsCollection
	}
	l, err := s.locate(first)
	if err != nil {
		return backend.Info{}, err
	}
	f, tmpRel, err := s.stage(ctx, l.dir, body, m)
	if err != nil {
		return backend.Info{}, err
	}
	tmpLive := true
	defer func() {
		f.Close()
		if tmpLive {
			s.removeStaged(tmpRel)
		}
	}()
	for name, ok := first, true; ok; name, ok = next() {
		if backend.Parent(name) != backend.Parent(first) {
			return backend.Info{}, backend.ErrInvalidName // the staged file must sit beside every name
		}
		linked, dirKey, err := s.linkNew(tmpRel, l.dir, name)
		if errors.Is(err, syscall.EXDEV) {
			// Staged on another mount than the target: see relocate.
			nf, nrel, rerr := s.relocate(ctx, f, tmpRel, l.dir)
			if rerr != nil {
				return backend.Info{}, rerr
			}
			f, tmpRel = nf, nrel
			linked, dirKey, err = s.linkNew(tmpRel, l.dir, name)
		}
		if err != nil {
			return backend.Info{}, err
		}
		if !linked {
			continue
		}
		tmpLive = false
		s.unstageLinked(tmpRel, dirKey)
		if err := s.flushCommit(f, tmpRel, l.dir); err != nil {
			return backend.Info{}, err
		}
		fi, err := f.Stat()
		if err != nil {
			return backend.Info{}, mapErr(err)
		}
		return metaOf(fi).info(name), nil
	}
	return backend.Info{}, backend.ErrExist
}

// linkNew links the staged file tmpRel to name under name's commit lock; linked is
// false when something already exists there.
func (s *Store) linkNew(tmpRel, dir, name string) (linked bool, in dirKey, err error) {
	unlock := s.locks.Lock(name)
	defer unlock()
	cur, dh, err := s.locateHeld(name)
	if err != nil {
		return false, in, err
	}
	defer dh.close()
	if cur.dir != dir {
		return false, in, backend.ErrParentMissing
	}
	if cur.m != nil {
		return false, in, nil
	}
	tdir, tbase := splitRel(tmpRel)
	if in, err = s.linkInto(tdir, tbase, cur, dh); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, in, nil
		}
		if errors.Is(err, syscall.EXDEV) {
			return false, in, err // the caller relocates the staged file
		}
		return false, in, commitErr(err)
	}
	return true, in, nil
}

// commitErr maps the failure of a commit rename or link: a temporary file that vanished
// means its directory was removed or moved meanwhile.
func commitErr(err error) error {
	err = mapErr(err)
	if errors.Is(err, backend.ErrNotExist) {
		return backend.ErrParentMissing
	}
	return err
}

// copyBody copies r to w with a pooled buffer, checking ctx between reads. When size is
// known it reads at most size+1 bytes, enough to tell a long body without reading it
// all. Write errors are mapped (ENOSPC → ErrNoSpace); a read error is returned as is.
func (s *Store) copyBody(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	wb := s.writeback(w)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		b := buf
		if size >= 0 {
			if left := size + 1 - n; int64(len(b)) > left {
				b = b[:left]
			}
			if len(b) == 0 {
				return n, nil
			}
		}
		k, rerr := r.Read(b)
		if k > 0 {
			if s.failWrite != nil {
				if err := s.failWrite(); err != nil {
					return n, mapErr(err)
				}
			}
			if _, err := w.Write(b[:k]); err != nil {
				return n, mapErr(err)
			}
			n += int64(k)
			wb.wrote(n)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
