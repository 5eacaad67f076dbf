package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"iter"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
	"safedav/backend/claims"
)

// maxParts is S3's limit on the parts of one multipart upload: with the default part
// size an upload can hold 160 GiB.
const maxParts = 10000

// ctxReader fails once ctx is done, so the upload of a body that never ends stops as
// soon as the client goes away.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// upload is a body read once: either whole in buf (small: at most one part), or
// sent as the parts of a multipart upload that still waits for its Complete.
// release must be called on every path: it aborts an upload that was not completed
// and returns the buffer to the pool.
//
// Memory follows the bytes in flight: an upload holds one pooled buffer (see
// bufPool), for its whole body or, when the body is longer than a part, for each
// part in turn. A body of known size n (Content-Length) up to a part gets n rounded
// up to a power of two (4 KiB at least), a longer one a part. A body of unknown size
// (chunked) starts with 4 KiB and moves to a buffer twice as large each time it
// fills, up to a part: it too holds less than twice what it has read, and for the
// instant of the copy also the buffer it grows out of. So N uploads hold less than
// twice their bytes in flight (plus 4 KiB each), and at most N parts once read
// (under 2N parts while chunked bodies grow), whatever their sizes; freed buffers
// stay pooled until the garbage collector drops them.
type upload struct {
	s        *Store
	key      string // the key of the multipart upload
	opts     minio.PutObjectOptions
	buf      *[]byte
	small    bool
	size     int64
	uploadID string
	parts    []minio.CompletePart
	done     bool
}

// putOpts are the options of every write: the content type and the metadata that
// make its ETag unique and carry its modification time.
func putOpts(contentType, version string, mtime time.Time) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType: contentType,
		UserMetadata: map[string]string{
			metaVersion: version,
			metaMtime:   strconv.FormatInt(mtime.UnixNano(), 10),
		},
	}
}

// partReader reads a body into buffers one byte ahead, so that a buffer the body
// fills exactly is known to be its last: a body of exactly one part is one
// PutObject, not a multipart upload.
type partReader struct {
	r     io.Reader
	ahead [1]byte
	has   bool  // ahead holds the next byte of the body
	total int64 // bytes read from r, ahead included
}

// fill fills buf (with the byte read ahead first) and reports whether the body
// ended within it.
func (p *partReader) fill(buf []byte) (n int, last bool, err error) {
	if p.has {
		buf[0], n, p.has = p.ahead[0], 1, false
	}
	k, err := io.ReadFull(p.r, buf[n:])
	n += k
	p.total += int64(k)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, true, nil
	case err != nil:
		return n, false, err
	}
	k, err = io.ReadFull(p.r, p.ahead[:])
	p.total += int64(k)
	switch {
	case err == io.EOF:
		return n, true, nil
	case err != nil:
		return n, false, err
	}
	p.has = true
	return n, false, nil
}

// stage reads body. A body of at most PartSize bytes stays whole in a pooled buffer
// (see upload for its size); a longer one is sent PartSize bytes at a time as the
// parts of a multipart upload of key. large, when not nil, is called once the body
// is known to be longer than a part (from m.Size, or once a part is read), before
// any of it is uploaded, so that a write that cannot commit fails early. stage
// fails with ErrShortBody when m.Size is known and differs, with ctx's error once
// ctx is done, or with large's or the body's error.
func (s *Store) stage(ctx context.Context, key string, body io.Reader, m backend.Meta, opts minio.PutObjectOptions, large func() error) (*upload, error) {
	u := &upload{s: s, key: key, opts: opts}
	r := io.Reader(ctxReader{ctx, body})
	if m.Size >= 0 {
		r = io.LimitReader(r, m.Size+1) // one byte more reveals a body longer than announced
	}
	if m.Size > s.partSize && large != nil {
		if err := large(); err != nil {
			return u, err
		}
		large = nil
	}
	first := int64(minBuf)
	if m.Size >= 0 {
		first = min(m.Size, s.partSize)
	}
	u.buf = s.bufs.get(int(first))
	pr := &partReader{r: r}
	n, last := 0, false
	for {
		k, end, err := pr.fill((*u.buf)[n:])
		n, last = n+k, end
		switch {
		case err != nil:
			return u, readErr(ctx, err)
		case m.Size >= 0 && pr.total > m.Size:
			return u, backend.ErrShortBody // fail before sending what cannot commit
		case last:
			u.small, u.size = true, int64(n)
			return u, sizeCheck(m, u.size)
		}
		if int64(n) == s.partSize {
			break
		}
		u.grow(n)
	}

	if large != nil {
		if err := large(); err != nil {
			return u, err
		}
	}
	var err error
	u.uploadID, err = s.core.NewMultipartUpload(ctx, s.bucket, key, opts)
	if err != nil {
		return u, readErr(ctx, mapErr(err))
	}
	s.hold(u.uploadID)
	buf := *u.buf
	for {
		if len(u.parts) == maxParts {
			return u, backend.ErrNoSpace
		}
		p, err := s.core.PutObjectPart(ctx, s.bucket, key, u.uploadID, len(u.parts)+1,
			bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			return u, readErr(ctx, mapErr(err))
		}
		u.parts = append(u.parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
		u.size += int64(n)
		if last {
			break
		}
		n, last, err = pr.fill(buf)
		switch {
		case err != nil:
			return u, readErr(ctx, err)
		case m.Size >= 0 && pr.total > m.Size:
			return u, backend.ErrShortBody
		}
	}
	return u, sizeCheck(m, u.size)
}

// grow moves the n bytes read into a buffer of the next size class.
func (u *upload) grow(n int) {
	b := u.s.bufs.get(2 * len(*u.buf))
	copy(*b, (*u.buf)[:n])
	u.s.bufs.put(u.buf)
	u.buf = b
}

// readErr prefers ctx's error: a cancelled upload fails with context.Canceled,
// whatever error the cancelled request produced.
func readErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func sizeCheck(m backend.Meta, size int64) error {
	if m.Size >= 0 && size != m.Size {
		return backend.ErrShortBody
	}
	return nil
}

// commit stores a small body at key with PutObject, or completes the multipart upload
// (at u.key), committing only if c still holds against cur (see applyCond). It
// returns the S3 ETag.
func (u *upload) commit(ctx context.Context, key string, c backend.Cond, cur *object) (string, error) {
	if u.small {
		opts := u.opts
		u.s.applyCond(&opts, c, cur)
		info, err := u.s.putBytes(ctx, key, (*u.buf)[:u.size], opts)
		if err != nil {
			return u.s.confirm(ctx, key, u.opts, mapErr(err))
		}
		return info.ETag, nil
	}
	var opts minio.PutObjectOptions
	u.s.applyCond(&opts, c, cur)
	info, err := u.s.core.CompleteMultipartUpload(ctx, u.s.bucket, u.key, u.uploadID, u.parts, opts)
	if err != nil {
		etag, err := u.s.confirm(ctx, u.key, u.opts, mapErr(err))
		u.done = err == nil
		return etag, err
	}
	u.done = true
	return info.ETag, nil
}

// confirm decides a commit that failed with err. minio-go retries a request whose
// answer was lost (a connection the server closed, say), and the retry of a write
// that did commit fails its own condition (412), or finds its multipart upload gone.
// The random version each write carries tells our own write apart from another's.
func (s *Store) confirm(ctx context.Context, key string, opts minio.PutObjectOptions, err error) (string, error) {
	if !errors.Is(err, backend.ErrPrecondition) && !errors.Is(err, backend.ErrNotExist) {
		return "", err
	}
	ver := opts.UserMetadata[metaVersion]
	if ver == "" {
		return "", err
	}
	oi, herr := s.head(ctx, key)
	if herr == nil && userMeta(oi, metaVersion) == ver {
		return oi.ETag, nil
	}
	return "", err
}

// release aborts the multipart upload unless it was completed, so no orphaned parts
// remain whatever failed (an abort the store does not acknowledge is retried in the
// background), and returns the buffer to the pool.
func (u *upload) release() {
	switch {
	case u.uploadID != "" && !u.done:
		u.s.abandon(u.key, u.uploadID)
	case u.uploadID != "":
		u.s.unhold(u.uploadID)
	}
	if u.buf != nil {
		u.s.bufs.put(u.buf)
		u.buf = nil
	}
}

// commitTime is the modification time of a write: the client's, or now, without
// the monotonic reading so that it compares like the stored one.
func commitTime(m backend.Meta) time.Time {
	if !m.ModTime.IsZero() {
		return time.Unix(0, m.ModTime.UnixNano())
	}
	return time.Unix(0, time.Now().UnixNano())
}

// Put stores body at name: a body of at most PartSize bytes with one PutObject, a
// longer one as a multipart upload; either way the condition travels with the
// committing request (If-None-Match: * or If-Match: the current S3 ETag), after the
// version part of an If-Match ETag was checked under name's claim. A failed or
// cancelled Put aborts its multipart upload and leaves name as it was. Dead
// properties live in a sidecar, so a replaced file keeps them.
func (s *Store) Put(ctx context.Context, name string, body io.Reader, c backend.Cond, m backend.Meta) (backend.Info, bool, error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, false, err
	}
	if err := s.checkName(name); err != nil {
		return backend.Info{}, false, err
	}
	if name == "/" {
		return backend.Info{}, false, backend.ErrIsCollection
	}
	// A body longer than a part is checked before its upload starts, which spares
	// uploading what cannot commit; a small one only under the claim, as reading it
	// costs less than the requests of a check.
	large := func() error {
		cur, err := s.prepareFile(ctx, name)
		if err != nil {
			return err
		}
		return check(c, cur)
	}
	mtime, ver := commitTime(m), newVersion()
	key := s.key(name)
	u, err := s.stage(ctx, key, body, m, putOpts(m.ContentType, ver, mtime), large)
	defer u.release()
	if err != nil {
		return backend.Info{}, false, err
	}

	// The claim is taken only now, around the checks and the commit (one PutObject,
	// or the CompleteMultipartUpload), so a slow client or a long upload does not
	// hold up a MOVE or DELETE of its folder; the parent is checked under it, so an
	// upload into a folder that was moved or deleted meanwhile fails with
	// ErrParentMissing.
	release, err := s.claim(ctx, claims.Write(name))
	if err != nil {
		return backend.Info{}, false, err
	}
	defer release()
	cur, err := s.prepareFile(ctx, name)
	if err != nil {
		return backend.Info{}, false, err
	}
	if err := check(c, cur); err != nil {
		return backend.Info{}, false, err
	}
	etag, err := u.commit(ctx, key, c, cur)
	if err != nil {
		return backend.Info{}, false, condErr(c, err)
	}
	return backend.Info{Name: name, Size: u.size, ModTime: mtime, ETag: etagOf(etag, ver),
		ContentType: reportType(m.ContentType)}, cur == nil, nil
}

// condErr maps the failure of a conditional commit: with If-Match, S3 answers a
// target that vanished with NoSuchKey, which for the caller is a failed precondition.
func condErr(c backend.Cond, err error) error {
	if !c.IsZero() && errors.Is(err, backend.ErrNotExist) {
		return backend.ErrPrecondition
	}
	return err
}

// prepareFile checks that name can hold a file (its parent is a collection, it is not
// one itself) and returns the file there now (nil when none). A file found at name
// proves its parent, so replacing a file costs one HEAD; a new name costs the HEAD,
// the parent's lookup (none at the root) and one list request for a collection at
// name, with a marker or implicit.
func (s *Store) prepareFile(ctx context.Context, name string) (*object, error) {
	cur, err := s.headFile(ctx, name)
	if err != nil || cur != nil {
		return cur, err
	}
	if err := s.checkParent(ctx, name); err != nil {
		return nil, err
	}
	switch dir, err := s.nonEmpty(ctx, s.dirKey(name)); {
	case err != nil:
		return nil, err
	case dir:
		return nil, backend.ErrIsCollection
	}
	return nil, nil
}

// putBytes stores data at key with one PutObject, which S3 stores only once the
// whole body has arrived. Over plain http the payload is signed with its SHA-256 in
// the headers (minio-go would sign it in chunks, through a 64 KiB buffer of its own
// per request); over TLS it is not signed, as minio-go does.
func (s *Store) putBytes(ctx context.Context, key string, data []byte, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	opts.DisableContentSha256 = true
	sum := ""
	if !s.secure {
		h := sha256.Sum256(data)
		sum = hex.EncodeToString(h[:])
	}
	return s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), "", sum, opts)
}

// Create reads body once and stores it create-only under the first free name. A small
// body is kept in memory and put at each candidate with If-None-Match: *; a large one
// is uploaded once to a staging key and copied to each candidate by a multipart copy
// whose Complete carries If-None-Match: * (CopyObject would ignore it). The staging
// object is removed on every path. Errors: ErrExist when every name is taken, or
// Put's errors.
func (s *Store) Create(ctx context.Context, names iter.Seq[string], body io.Reader, m backend.Meta) (backend.Info, error) {
	if err := ctx.Err(); err != nil {
		return backend.Info{}, err
	}
	mtime, ver := commitTime(m), newVersion()
	opts := putOpts(m.ContentType, ver, mtime)
	staging := s.stagingKey()
	s.hold(staging) // from before the upload: no sweep may take it while in use
	u, err := s.stage(ctx, staging, body, m, opts, nil)
	defer u.release()
	if err != nil {
		s.unhold(staging)
		return backend.Info{}, err
	}
	var stagedETag string
	if u.small {
		s.unhold(staging)
	} else {
		// Removed on every path, the commit's failure included: its answer may be lost.
		defer s.abandon(staging, "")
		stagedETag, err = u.commit(ctx, staging, backend.Cond{}, nil)
		if err != nil {
			return backend.Info{}, err
		}
	}
	for name := range names {
		if err := s.checkName(name); err != nil {
			return backend.Info{}, err
		}
		if name == "/" {
			continue
		}
		etag, err := s.createAt(ctx, name, u, staging, stagedETag, opts)
		if errors.Is(err, backend.ErrPrecondition) {
			continue
		}
		if err != nil {
			return backend.Info{}, err
		}
		return backend.Info{Name: name, Size: u.size, ModTime: mtime, ETag: etagOf(etag, ver),
			ContentType: reportType(m.ContentType)}, nil
	}
	return backend.Info{}, backend.ErrExist
}

// createAt commits the staged body at name create-only, under name's claim. A name
// taken by a file or a collection is ErrPrecondition: the caller tries the next.
func (s *Store) createAt(ctx context.Context, name string, u *upload, staging, stagedETag string, opts minio.PutObjectOptions) (string, error) {
	release, err := s.claim(ctx, claims.Write(name))
	if err != nil {
		return "", err
	}
	defer release()
	cur, err := s.prepareFile(ctx, name)
	if errors.Is(err, backend.ErrIsCollection) {
		return "", backend.ErrPrecondition // a collection: try the next name
	}
	if err != nil {
		return "", err
	}
	c := backend.Cond{IfNoneMatch: true}
	if err := check(c, cur); err != nil {
		return "", err
	}
	if u.small {
		return u.commit(ctx, s.key(name), c, cur)
	}
	return s.copyObject(ctx, staging, u.size, stagedETag, s.key(name), opts, c, cur)
}

// copyObject copies the object srcKey (size bytes, S3 ETag srcETag, which pins the
// source version) to dstKey with opts' type and metadata, committing only if c still
// holds against cur (see applyCond), and returns the new S3 ETag. Without a condition
// and up to 5 GiB it is one CopyObject; otherwise it is a multipart upload of
// UploadPartCopy ranges with a conditional Complete, since S3 ignores conditions on
// the destination of CopyObject.
func (s *Store) copyObject(ctx context.Context, srcKey string, size int64, srcETag, dstKey string, opts minio.PutObjectOptions, c backend.Cond, cur *object) (string, error) {
	srcMatch := map[string]string{"x-amz-copy-source-if-match": `"` + srcETag + `"`}
	if (c.IsZero() || !s.cond) && size <= maxCopyPart {
		hdr := map[string]string{
			"x-amz-metadata-directive": "REPLACE",
			"Content-Type":             opts.ContentType,
		}
		if hdr["Content-Type"] == "" {
			hdr["Content-Type"] = "application/octet-stream"
		}
		for k, v := range srcMatch {
			hdr[k] = v
		}
		for k, v := range opts.UserMetadata {
			hdr["X-Amz-Meta-"+k] = v
		}
		oi, err := s.core.CopyObject(ctx, s.bucket, srcKey, s.bucket, dstKey, hdr, minio.CopySrcOptions{}, minio.PutObjectOptions{})
		if err != nil {
			return s.confirm(ctx, dstKey, opts, mapErr(err))
		}
		return oi.ETag, nil
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, dstKey, opts)
	if err != nil {
		return "", mapErr(err)
	}
	s.hold(id)
	done := false
	defer func() {
		if done {
			s.unhold(id)
		} else {
			s.abandon(dstKey, id)
		}
	}()
	var parts []minio.CompletePart
	if size <= maxCopyPart {
		p, err := s.core.CopyObjectPart(ctx, s.bucket, srcKey, s.bucket, dstKey, id, 1, 0, -1, srcMatch)
		if err != nil {
			return "", mapErr(err)
		}
		parts = append(parts, p)
	}
	for off := int64(0); size > maxCopyPart && off < size; off += maxCopyPart {
		p, err := s.core.CopyObjectPart(ctx, s.bucket, srcKey, s.bucket, dstKey, id, len(parts)+1,
			off, min(maxCopyPart, size-off), srcMatch)
		if err != nil {
			return "", mapErr(err)
		}
		parts = append(parts, p)
	}
	var cond minio.PutObjectOptions
	s.applyCond(&cond, c, cur)
	info, err := s.core.CompleteMultipartUpload(ctx, s.bucket, dstKey, id, parts, cond)
	if err != nil {
		etag, err := s.confirm(ctx, dstKey, opts, mapErr(err))
		done = err == nil
		return etag, err
	}
	done = true
	return info.ETag, nil
}
