package s3

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
	"safedav/backend/claims"
)

// Mkdir creates the marker of the collection name create-only (If-None-Match: *), so
// of two racing creators one gets ErrExist. Errors: ErrExist, ErrParentMissing,
// ErrNotCollection, ErrPrecondition (c fails), ErrInvalidName.
func (s *Store) Mkdir(ctx context.Context, name string, c backend.Cond) (backend.Info, error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, err
	}
	if err := s.checkName(name); err != nil {
		return backend.Info{}, err
	}
	if name == "/" {
		return backend.Info{}, backend.ErrExist
	}
	release, err := s.claim(ctx, claims.Write(name))
	if err != nil {
		return backend.Info{}, err
	}
	defer release()
	// Under the claim: a MOVE or DELETE of the parent cannot take it away meanwhile.
	if err := s.checkParent(ctx, name); err != nil {
		return backend.Info{}, err
	}
	cur, err := s.lookup(ctx, name)
	switch {
	case err == nil:
		if err := check(c, &cur); err != nil {
			return backend.Info{}, err
		}
		return backend.Info{}, backend.ErrExist
	case !errors.Is(err, backend.ErrNotExist):
		return backend.Info{}, err
	}
	if err := check(c, nil); err != nil {
		return backend.Info{}, err
	}
	in, err := s.putMarker(ctx, name, backend.Cond{IfNoneMatch: true}, nil, backend.Meta{})
	if errors.Is(err, backend.ErrPrecondition) && !c.IfNoneMatch {
		err = backend.ErrExist
	}
	return in, err
}

// putMarker writes the zero-byte marker of the collection name, committing only if
// c holds against cur, with m.ModTime (or now) as its modification time.
func (s *Store) putMarker(ctx context.Context, name string, c backend.Cond, cur *object, m backend.Meta) (backend.Info, error) {
	mtime, ver := commitTime(m), newVersion()
	opts := putOpts("", ver, mtime)
	s.applyCond(&opts, c, cur)
	up, err := s.putBytes(ctx, s.dirKey(name), nil, opts)
	etag := up.ETag
	if err != nil {
		if etag, err = s.confirm(ctx, s.dirKey(name), opts, mapErr(err)); err != nil {
			return backend.Info{}, condErr(c, err)
		}
	}
	return backend.Info{Name: name, Dir: true, ModTime: mtime, ETag: etagOf(etag, ver)}, nil
}

// Remove deletes name with its dead properties. A file is deleted by one DeleteObject
// carrying c (If-Match: its S3 ETag); a collection, whose condition can only be
// checked at the start, by listing its keys and deleting them in batches of up to
// 1000 with DeleteObjects. Members that could not be deleted are reported as
// *PathErrors. Errors: ErrNotExist, ErrPrecondition, ErrInvalidName (the root).
func (s *Store) Remove(ctx context.Context, name string, c backend.Cond) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.CheckRemove(name); err != nil {
		return err
	}
	if err := s.checkName(name); err != nil {
		return err
	}
	// The claim covers the whole tree: no write of this process lands in a folder
	// while its keys are listed and deleted.
	release, err := s.claim(ctx, claims.Write(name))
	if err != nil {
		return err
	}
	defer release()
	cur, err := s.lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := check(c, &cur); err != nil {
		return err
	}
	return s.removeResource(ctx, cur, c)
}

// removeResource deletes the resource cur describes (c applies to a file's delete).
func (s *Store) removeResource(ctx context.Context, cur object, c backend.Cond) error {
	name := cur.info.Name
	if cur.info.Dir {
		return s.removeKeys(ctx, s.dirKey(name), s.propsDir(name))
	}
	if err := s.deleteObject(ctx, s.key(name), c, &cur); err != nil {
		return err
	}
	return mapErr(s.client.RemoveObject(ctx, s.bucket, s.propsKey(name), minio.RemoveObjectOptions{}))
}

// deleteObject deletes key, only if c, which check accepted against cur, still holds
// (If-Match: its S3 ETag). A conditional delete that fails while key is gone counts
// as done: minio-go may have retried our own delete whose answer was lost.
func (s *Store) deleteObject(ctx context.Context, key string, c backend.Cond, cur *object) error {
	hctx := withHeaders(ctx, s.condHeaders(c, cur))
	err := mapErr(s.client.RemoveObject(hctx, s.bucket, key, minio.RemoveObjectOptions{}))
	if err == nil || c.IsZero() {
		return err
	}
	if errors.Is(err, backend.ErrPrecondition) || errors.Is(err, backend.ErrNotExist) {
		if _, herr := s.head(ctx, key); errors.Is(herr, backend.ErrNotExist) {
			return nil
		}
		return backend.ErrPrecondition
	}
	return err
}

// removeKeys deletes every key under the prefixes with DeleteObjects (minio-go sends
// them 1000 at a time) and reports the keys that failed by name.
func (s *Store) removeKeys(ctx context.Context, prefixes ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(keys)
		for _, p := range prefixes {
			for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true, MaxKeys: s.listPage}) {
				if oi.Err != nil {
					listErr = mapErr(oi.Err)
					return
				}
				select {
				case keys <- oi:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	var perrs backend.PathErrors
	for e := range s.client.RemoveObjects(ctx, s.bucket, keys, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			perrs = append(perrs, backend.PathError{Name: s.nameOfAny(e.ObjectName), Err: mapErr(e.Err)})
		}
	}
	// keys is closed once RemoveObjects has drained it, so listErr is settled.
	if listErr != nil {
		return listErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(perrs) > 0 {
		return &perrs
	}
	return nil
}

// nameOfAny maps a data key or a sidecar key back to the name it belongs to.
func (s *Store) nameOfAny(key string) string {
	props := s.propsDir("/")
	if rest, ok := strings.CutPrefix(key, props); ok {
		rest = strings.TrimSuffix(strings.TrimSuffix(rest, backend.ReservedPrefix), "/")
		return "/" + rest
	}
	return s.nameOf(key)
}

// Copy copies src to dst with its dead properties, server-side. A file is one
// CopyObject, or, when c is set, a multipart copy whose Complete carries the
// condition; a collection is copied key by key (markers included, only the marker
// and its properties at depth 0), after the keys of an existing dst that the copy
// does not write were deleted, so dst is replaced rather than merged. Errors:
// backend.CheckCopy's, ErrNotExist (src), ErrParentMissing, ErrNotCollection (dst's
// parent), ErrPrecondition, *PathErrors.
func (s *Store) Copy(ctx context.Context, src, dst string, c backend.Cond, depth int) (bool, error) {
	if err := backend.CheckCopy(src, dst); err != nil {
		return false, err
	}
	// S on src: the copy is a snapshot, no write of this process changes the tree
	// while it is listed and copied; X on dst: nothing else writes there meanwhile.
	release, err := s.claim(ctx, claims.Read(src), claims.Write(dst))
	if err != nil {
		return false, err
	}
	defer release()
	created, _, err := s.copy(ctx, src, dst, c, depth)
	return created, err
}

// Move copies src to dst (c applies to dst, checked by the copy) and then, once the
// copy fully succeeded, removes src. S3 has no rename: a Move costs a copy. Both
// names are claimed (X) for the whole of it, so within this process no write to src
// or into it is lost between the copy and the delete, and of two Moves of one file
// one finds it gone. A file's source is deleted only if it is still the version that
// was copied (If-Match, when the server honours it): when another process replaced
// it meanwhile, the copy is taken back and the Move fails with ErrPrecondition.
// Errors: Copy's.
func (s *Store) Move(ctx context.Context, src, dst string, c backend.Cond) (bool, error) {
	if err := backend.CheckCopy(src, dst); err != nil {
		return false, err
	}
	release, err := s.claim(ctx, claims.Write(src), claims.Write(dst))
	if err != nil {
		return false, err
	}
	defer release()
	created, so, err := s.copy(ctx, src, dst, c, backend.DepthInfinity)
	if err != nil {
		return false, err
	}
	if so.info.Dir {
		return created, s.removeResource(ctx, so, backend.Cond{})
	}
	return created, s.moveAway(ctx, so, dst)
}

// moveAway deletes the source so of a file Move that was copied to dst, only if it
// is still the version copied. When it is not (412: another process wrote it), the
// copy at dst is deleted, again only if it is still ours, and the Move fails with
// ErrPrecondition: the other writer's version stays at src.
func (s *Store) moveAway(ctx context.Context, so object, dst string) error {
	err := s.deleteSource(ctx, so)
	if !errors.Is(err, backend.ErrPrecondition) {
		if err != nil {
			return err
		}
		return mapErr(s.client.RemoveObject(ctx, s.bucket, s.propsKey(so.info.Name), minio.RemoveObjectOptions{}))
	}
	if d, herr := s.headFile(ctx, dst); herr == nil && d != nil {
		_ = s.deleteObject(ctx, s.key(dst), backend.Cond{IfMatch: "*"}, d)
	}
	return backend.ErrPrecondition
}

// deleteSource deletes the data object of so if its S3 ETag is still so's; without
// conditional deletes on the server it deletes unconditionally (the claims alone
// then protect it, within this process).
func (s *Store) deleteSource(ctx context.Context, so object) error {
	if !s.condDelete {
		return mapErr(s.client.RemoveObject(ctx, s.bucket, s.key(so.info.Name), minio.RemoveObjectOptions{}))
	}
	hctx := withHeaders(ctx, map[string]string{"If-Match": `"` + so.s3etag + `"`})
	err := mapErr(s.client.RemoveObject(hctx, s.bucket, s.key(so.info.Name), minio.RemoveObjectOptions{}))
	if errors.Is(err, backend.ErrPrecondition) || errors.Is(err, backend.ErrNotExist) {
		// minio-go may have retried our own delete whose answer was lost.
		if _, herr := s.head(ctx, s.key(so.info.Name)); errors.Is(herr, backend.ErrNotExist) {
			return nil
		}
		return backend.ErrPrecondition
	}
	return err
}

// copy is Copy, also returning what src was; the caller holds the claims.
func (s *Store) copy(ctx context.Context, src, dst string, c backend.Cond, depth int) (bool, object, error) {
	if err := ctx.Err(); err != nil {
		return false, object{}, err
	}
	if err := s.checkName(dst); err != nil {
		return false, object{}, err
	}
	so, err := s.lookup(ctx, src)
	if err != nil {
		return false, object{}, err
	}
	if err := s.checkParent(ctx, dst); err != nil {
		return false, object{}, err
	}
	var cur *object
	switch o, err := s.lookup(ctx, dst); {
	case err == nil:
		cur = &o
	case !errors.Is(err, backend.ErrNotExist):
		return false, object{}, err
	}
	if err := check(c, cur); err != nil {
		return false, object{}, err
	}
	if so.info.Dir {
		err = s.copyTree(ctx, so, dst, c, cur, depth)
	} else {
		err = s.copyFile(ctx, so, dst, c, cur)
	}
	return cur == nil, so, err
}

// copyFile copies the file so to dst, committing only if c holds against cur.
func (s *Store) copyFile(ctx context.Context, so object, dst string, c backend.Cond, cur *object) error {
	if cur != nil && cur.info.Dir {
		// A collection is replaced by deleting its tree first: a file and a
		// collection of one name cannot coexist (on a posix-backed gateway at all).
		// Its condition was checked above; S3 cannot make it part of one step.
		if err := s.removeKeys(ctx, s.dirKey(dst), s.propsDir(dst)); err != nil {
			return err
		}
		c, cur = backend.Cond{}, nil
	}
	opts := putOpts(so.info.ContentType, newVersion(), so.info.ModTime)
	if _, err := s.copyObject(ctx, s.key(so.info.Name), so.info.Size, so.s3etag, s.key(dst), opts, c, cur); err != nil {
		return condErr(c, err)
	}
	return s.copySidecar(ctx, so.info.Name, dst)
}

// copySidecar gives dst the dead properties of src: a copy of src's sidecar, or none.
func (s *Store) copySidecar(ctx context.Context, src, dst string) error {
	_, err := s.core.CopyObject(ctx, s.bucket, s.propsKey(src), s.bucket, s.propsKey(dst), nil,
		minio.CopySrcOptions{}, minio.PutObjectOptions{})
	if err = mapErr(err); errors.Is(err, backend.ErrNotExist) {
		err = mapErr(s.client.RemoveObject(ctx, s.bucket, s.propsKey(dst), minio.RemoveObjectOptions{}))
	}
	return err
}

// copyTree copies the collection so to dst (see Copy).
func (s *Store) copyTree(ctx context.Context, so object, dst string, c backend.Cond, cur *object, depth int) error {
	src := so.info.Name
	markerCond := backend.Cond{IfNoneMatch: true} // a racing creator of dst makes the copy fail
	if cur != nil && !cur.info.Dir {
		if err := s.deleteObject(ctx, s.key(dst), c, cur); err != nil {
			return err
		}
	} else if cur != nil {
		markerCond = backend.Cond{} // replacing a collection: its marker may exist or not
	}

	// What src has, relative to its prefixes.
	srcKeys, err := s.listRel(ctx, s.dirKey(src), depth)
	if err != nil {
		return err
	}
	srcProps, err := s.listRel(ctx, s.propsDir(src), depth)
	if err != nil {
		return err
	}
	// Keys of dst that the copy will not write go first, so that a file and a
	// collection of one name never meet.
	if cur != nil {
		if err := s.removeOthers(ctx, s.dirKey(dst), srcKeys); err != nil {
			return err
		}
		if err := s.removeOthers(ctx, s.propsDir(dst), srcProps); err != nil {
			return err
		}
	}
	if _, err := s.putMarker(ctx, dst, markerCond, nil, backend.Meta{ModTime: so.info.ModTime}); err != nil {
		return err
	}

	var perrs backend.PathErrors
	var mu sync.Mutex
	fail := func(name string, err error) {
		mu.Lock()
		perrs = append(perrs, backend.PathError{Name: name, Err: err})
		mu.Unlock()
	}
	sem := make(chan struct{}, headWorkers)
	var wg sync.WaitGroup
	for rel := range srcKeys {
		if rel == "" {
			continue // the marker, written above
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := backend.Join(dst, strings.TrimSuffix(rel, "/"))
			if strings.HasSuffix(rel, "/") {
				if _, err := s.putMarker(ctx, name, backend.Cond{}, nil, backend.Meta{}); err != nil {
					fail(name, err)
				}
				return
			}
			if err := s.copyMember(ctx, s.dirKey(src)+rel, s.dirKey(dst)+rel); err != nil {
				fail(name, err)
			}
		})
	}
	for rel := range srcProps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := s.core.CopyObject(ctx, s.bucket, s.propsDir(src)+rel, s.bucket, s.propsDir(dst)+rel, nil,
				minio.CopySrcOptions{}, minio.PutObjectOptions{})
			if err != nil {
				fail(s.nameOfAny(s.propsDir(dst)+rel), mapErr(err))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(perrs) > 0 {
		return &perrs
	}
	return nil
}

// copyMember copies one file of a tree with a fresh version, keeping its type and
// modification time (read by a HEAD, which listings do not carry).
func (s *Store) copyMember(ctx context.Context, srcKey, dstKey string) error {
	oi, err := s.head(ctx, srcKey)
	if err != nil {
		return err
	}
	o := s.objectOf("", false, oi)
	opts := putOpts(o.info.ContentType, newVersion(), o.info.ModTime)
	_, err = s.copyObject(ctx, srcKey, o.info.Size, o.s3etag, dstKey, opts, backend.Cond{}, nil)
	return err
}

// listRel returns the keys under prefix relative to it ("" is the prefix itself, a
// marker or the own sidecar), with depth 0 only those. Reserved data keys are left
// out.
func (s *Store) listRel(ctx context.Context, prefix string, depth int) (map[string]bool, error) {
	out := map[string]bool{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: s.listPage}) {
		if oi.Err != nil {
			return nil, mapErr(oi.Err)
		}
		rel := oi.Key[len(prefix):]
		own := rel == "" || rel == backend.ReservedPrefix
		if depth == backend.DepthZero && !own {
			continue
		}
		if !own && !strings.HasSuffix(rel, "/"+backend.ReservedPrefix) && backend.Reserved("/"+rel) {
			continue
		}
		out[rel] = true
	}
	return out, ctx.Err()
}

// removeOthers deletes the keys under prefix that keep does not list (relative).
func (s *Store) removeOthers(ctx context.Context, prefix string, keep map[string]bool) error {
	have, err := s.listRel(ctx, prefix, backend.DepthInfinity)
	if err != nil {
		return err
	}
	objs := make(chan minio.ObjectInfo, len(have))
	for rel := range have {
		if !keep[rel] {
			objs <- minio.ObjectInfo{Key: prefix + rel}
		}
	}
	close(objs)
	var perrs backend.PathErrors
	for e := range s.client.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			perrs = append(perrs, backend.PathError{Name: s.nameOfAny(e.ObjectName), Err: mapErr(e.Err)})
		}
	}
	if len(perrs) > 0 {
		return &perrs
	}
	return ctx.Err()
}
