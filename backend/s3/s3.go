// Package s3 stores safedav resources in an S3 bucket through minio-go.
//
// # Layout
//
// A file /a/b is the object prefix+"a/b". A collection /a/b is the zero-byte marker
// object prefix+"a/b/"; a collection that exists only implicitly (objects under
// "a/b/" written by another tool, no marker) is listed and usable all the same. The
// root always exists. Everything safedav keeps for itself lives under
// prefix+".safedav/" and is never listed or served:
//
//	.safedav/props/<name>/.safedav   dead properties of <name> (JSON), one sidecar per name
//	.safedav/staging/<instance>/<random>  the body of a Create, uploaded once, copied per candidate
//	.safedav/probe-<random>          the start-up probe of conditional writes
//
// Dead properties live in a sidecar object rather than in user metadata because S3
// metadata cannot be changed without rewriting the object and is limited to 2 KiB:
// the sidecar survives a Put that replaces the file untouched, is copied and removed
// with the resource, and is updated by a conditional read-modify-write of its own.
// Its last segment is reserved, so the sidecar tree never mixes a file and a
// directory of the same name (which a posix-backed gateway could not store).
//
// # ETags
//
// An S3 ETag is derived from the content only (the MD5 of a single upload, MD5 of the
// part MD5s for a multipart one), so two writes of the same bytes get the same S3
// ETag, and the contract wants a new ETag on every write. Every write therefore
// stores a random version in the user metadata Safedav-Version, and the ETag safedav
// reports is `"<s3etag>.<version>"` (just `"<s3etag>"` for objects written by other
// tools). A condition on such an ETag is committed in one step by the server on the
// S3 part (If-Match: <s3etag> on PutObject, CompleteMultipartUpload or DeleteObject)
// and checked on the version part by a HEAD under a per-name claim just before the
// commit. Within one process this is exact; across processes sharing a bucket the
// only write that can slip between the HEAD and the commit is one that stored
// byte-identical content (an ABA on the content): no content is lost by it.
//
// Since S3 listings carry neither user metadata nor a sub-second LastModified, List
// reads each member's version (and ModTime and type) with a HEAD, listWorkers at a
// time as the pages arrive: a PROPFIND costs the listing's pages plus one HEAD per
// member. No exact ETag can be derived from a listing alone: two writes of the same
// bytes differ only in metadata. ListProps adds one listing of the sidecar folder and
// reads only the sidecars that exist.
//
// ModTime is the client's Meta.ModTime or the time of the commit, stored in the user
// metadata Safedav-Mtime (Unix nanoseconds) on every write, so that Put can report it
// without another request (a PUT response has no Last-Modified); objects from other
// tools report their LastModified.
//
// # Conditional writes
//
// New probes whether the server honours If-None-Match on PutObject. When it does not,
// commits rely on the per-name claims alone, which is only safe while one safedav
// process owns the bucket: ConditionalWrites reports it so the server can warn.
// CopyObject ignores destination conditions (S3 and versitygw alike), so a conditional
// copy is a multipart upload of UploadPartCopy parts with a conditional Complete. A
// Put of more than PartSize bytes (or of unknown size) is a multipart upload driven
// here, because minio-go's PutObject does not send the condition on the final
// CompleteMultipartUpload. An upload holds a buffer of its body's size, at most one
// PartSize (see upload), so memory follows the bytes in flight.
//
// # Namespace claims
//
// Operations on several keys (collections, Copy, Move) cannot be atomic on S3 itself.
// Each operation takes namespace claims (package claims: X on the names it writes and
// the trees under them, S on a copy source) around its checks and its commit, so the
// operations of one process appear to happen one at a time. A file Move deletes its
// source with If-Match when the server honours it (probed by New), which also covers a
// write to the source by another process.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"safedav/backend"
	"safedav/backend/claims"
)

// Part sizes: S3 refuses parts under 5 MiB (but the last) and over 5 GiB.
const (
	// DefaultPartSize is Options.PartSize when unset: few requests per upload, and
	// the most memory one upload holds.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest part S3 accepts, so the smallest Options.PartSize.
	MinPartSize = 5 << 20
	maxPartSize = 5 << 30
	// maxCopyPart is the largest range one UploadPartCopy may copy.
	maxCopyPart = 5 << 30
)

// Options configure a Store. The zero value of every field but Endpoint and Bucket is
// a usable default.
type Options struct {
	Endpoint string // host:port, without scheme
	Bucket   string
	// Prefix is prepended to every key, so several stores can share a bucket; a
	// missing trailing slash is added.
	Prefix    string
	Region    string
	AccessKey string
	SecretKey string
	Insecure  bool // plain http instead of https
	// PartSize is the size of each part of a multipart upload and the largest body
	// sent in a single PutObject; it is also the most memory one upload holds (a
	// smaller body holds a buffer of its size). Default DefaultPartSize, at least
	// MinPartSize.
	PartSize int64
	// MaxRetries is how many times minio-go sends a request that failed on the
	// network or with a retryable answer before the Store reports ErrUnavailable: 0
	// means minio-go's default (10, about 10 s with its backoff).
	MaxRetries int
	// ListPageSize is the number of keys asked for per list request: 0 means the
	// server's default (1000 on S3). Smaller pages only cost more requests.
	ListPageSize int
	// Creds overrides AccessKey and SecretKey. When neither is given, minio-go's
	// chain is used: AWS_ACCESS_KEY_ID/…, MINIO_ACCESS_KEY/…, ~/.aws/credentials, IAM.
	Creds *credentials.Credentials
	// SweepInterval is how often the store sweeps away leftovers of failed uploads
	// (see cleanup.go). Default DefaultSweepInterval.
	SweepInterval time.Duration
	// StaleAfter is how long a multipart upload or staging object under the prefix
	// that this process is not using must have been idle (since its last part) before
	// a sweep removes it: longer than any live upload, also another process's, waits
	// between two parts. Default DefaultStaleAfter.
	StaleAfter time.Duration
	// CloseTimeout bounds Close's last attempt at the aborts still queued. Default
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Claims is the namespace claim table the store's operations take their claims in
	// (see package backend/claims). Default: a claims.Table of this process, waiting
	// ClaimWait (default claims.DefaultWait) before an operation fails with
	// backend.ErrBusy. Stores of several processes sharing a bucket need a shared one.
	Claims    claims.Claimer
	ClaimWait time.Duration
	// wrapTransport, set by tests, wraps the HTTP transport (to count requests).
	wrapTransport func(http.RoundTripper) http.RoundTripper
}

// Store is a backend.Backend and backend.PropStore on an S3 bucket. It is safe for
// concurrent use, and several Stores (in several processes) may share a bucket and
// prefix when ConditionalWrites reports true.
type Store struct {
	client   *minio.Client
	core     *minio.Core
	bucket   string
	prefix   string
	endpoint string
	partSize int64
	secure   bool // https
	listPage int  // keys per list request, 0: the server's default
	cond     bool // the server honours If-Match / If-None-Match on writes
	// condDelete: the server honours If-Match on DeleteObject, so a file Move deletes
	// its source only if no other process replaced it since the copy.
	condDelete bool
	bufs       *bufPool // the buffers of upload bodies (see upload)
	// claims orders the operations of this process that touch the same names: each
	// holds its claims around its checks and its commit (see claim).
	claims claims.Claimer
	clean  *cleaner // live uploads, aborts to retry (cleanup.go)
}

var (
	_ backend.Backend   = (*Store)(nil)
	_ backend.PropStore = (*Store)(nil)
)

// New connects to the bucket and checks it: it fails with a clear error when the
// endpoint cannot be reached, the credentials are rejected or the bucket does not
// exist. It then probes once whether the server honours conditional writes, removes
// the stale leftovers of failed uploads and starts the background cleanup, which
// Close stops.
func New(ctx context.Context, opt Options) (*Store, error) {
	if opt.Endpoint == "" || opt.Bucket == "" {
		return nil, errors.New("s3: Endpoint and Bucket are required")
	}
	part := opt.PartSize
	switch {
	case part == 0:
		part = DefaultPartSize
	case part < MinPartSize || part > maxPartSize:
		return nil, fmt.Errorf("s3: PartSize %d outside [%d, %d]", part, MinPartSize, int64(maxPartSize))
	}
	if opt.SweepInterval < 0 || opt.StaleAfter < 0 || opt.CloseTimeout < 0 {
		return nil, errors.New("s3: SweepInterval, StaleAfter and CloseTimeout must not be negative")
	}
	creds := opt.Creds
	switch {
	case creds != nil:
	case opt.AccessKey != "":
		creds = credentials.NewStaticV4(opt.AccessKey, opt.SecretKey, "")
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	tr, err := minio.DefaultTransport(!opt.Insecure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	var rt http.RoundTripper = headerTransport{tr}
	if opt.wrapTransport != nil {
		rt = opt.wrapTransport(rt)
	}
	client, err := minio.New(opt.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     !opt.Insecure,
		Region:     opt.Region,
		Transport:  rt,
		MaxRetries: opt.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %s: %w", opt.Endpoint, err)
	}
	prefix := strings.TrimLeft(opt.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &Store{
		client:   client,
		core:     &minio.Core{Client: client},
		bucket:   opt.Bucket,
		prefix:   prefix,
		endpoint: opt.Endpoint,
		partSize: part,
		secure:   !opt.Insecure,
		bufs:     newBufPool(int(part)),
		listPage: opt.ListPageSize,
		clean:    newCleaner(opt),
		claims:   opt.Claims,
	}
	if s.claims == nil {
		s.claims = &claims.Table{Wait: opt.ClaimWait}
	}

	ok, err := client.BucketExists(ctx, opt.Bucket)
	if err != nil {
		return nil, s.connectErr(err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: bucket %q does not exist at %s", opt.Bucket, opt.Endpoint)
	}
	if s.cond, err = s.probeConditional(ctx); err != nil {
		return nil, s.connectErr(err)
	}
	if s.condDelete, err = s.probeConditionalDelete(ctx); err != nil {
		return nil, s.connectErr(err)
	}
	s.sweep(ctx, time.Now())
	go s.work()
	return s, nil
}

// connectErr explains a failure of the first requests of New. It names the endpoint
// and the S3 error code, never the credentials.
func (s *Store) connectErr(err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound",
		"InvalidToken", "ExpiredToken":
		return fmt.Errorf("s3: credentials rejected by %s (%s)", s.endpoint, resp.Code)
	case "NoSuchBucket":
		return fmt.Errorf("s3: bucket %q does not exist at %s", s.bucket, s.endpoint)
	case "":
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("s3: endpoint %s unreachable: %w", s.endpoint, err)
	}
	return fmt.Errorf("s3: %s answered %s: %w", s.endpoint, resp.Code, err)
}

// probeConditional writes a probe object create-only twice: a server that honours
// If-None-Match fails the second write with 412. The probe is removed either way.
func (s *Store) probeConditional(ctx context.Context) (bool, error) {
	key := s.prefix + backend.ReservedPrefix + "/probe-" + newVersion()
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, key, minio.RemoveObjectOptions{})
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	for i := range 2 {
		_, err := s.core.PutObject(ctx, s.bucket, key, strings.NewReader("probe"), 5, "", "", opts)
		switch {
		case i == 0 && err != nil:
			return false, err
		case i == 1 && err == nil:
			return false, nil
		case i == 1:
			if errors.Is(mapErr(err), backend.ErrPrecondition) {
				return true, nil
			}
			return false, err
		}
	}
	return false, nil
}

// probeConditionalDelete writes a probe object and deletes it twice: first with an
// If-Match that cannot match, then with its own ETag. A server that honours If-Match
// on DeleteObject (AWS S3 since 2024, Ceph, versitygw) answers the first with 412 and
// performs the second; one that ignores it deletes the object at the first. The
// probe is removed either way.
func (s *Store) probeConditionalDelete(ctx context.Context) (bool, error) {
	key := s.prefix + backend.ReservedPrefix + "/probe-" + newVersion()
	up, err := s.core.PutObject(ctx, s.bucket, key, strings.NewReader("probe"), 5, "", "", minio.PutObjectOptions{})
	if err != nil {
		return false, err
	}
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, key, minio.RemoveObjectOptions{})
	del := func(etag string) error {
		hctx := withHeaders(ctx, map[string]string{"If-Match": `"` + etag + `"`})
		return mapErr(s.client.RemoveObject(hctx, s.bucket, key, minio.RemoveObjectOptions{}))
	}
	switch err := del("00000000000000000000000000000000"); {
	case err == nil:
		return false, nil // ignored
	case !errors.Is(err, backend.ErrPrecondition):
		return false, err
	}
	if err := del(up.ETag); err != nil {
		return false, nil // refuses even a matching condition: treat as unsupported
	}
	if _, err := s.head(ctx, key); !errors.Is(err, backend.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// ConditionalDeletes reports whether the server honours If-Match on DeleteObject
// (found at start-up). Without it, a file Move that races a write of another process
// to its source may lose that write; within one process the claims prevent it.
func (s *Store) ConditionalDeletes() bool { return s.condDelete }

// ConditionalWrites reports whether the server honours conditional writes. When it
// does not, commits are serialised by the in-process claims only, so one safedav
// process at a time may use the bucket ("single-instance only").
func (s *Store) ConditionalWrites() bool { return s.cond }

// headerTransport adds the headers found in a request's context. minio-go has no way
// to send If-Match on DeleteObject; the header is added after signing, which S3
// accepts for standard (non x-amz-) headers.
type headerTransport struct{ rt http.RoundTripper }

type headersKey struct{}

func withHeaders(ctx context.Context, h map[string]string) context.Context {
	return context.WithValue(ctx, headersKey{}, h)
}

// countKey carries an *atomic.Int64 that counts the requests sent on a context, so
// tests and benchmarks can tell what one operation costs in S3 requests.
type countKey struct{}

func withCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, countKey{}, n)
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if n, ok := r.Context().Value(countKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	if h, ok := r.Context().Value(headersKey{}).(map[string]string); ok && len(h) > 0 {
		r = r.Clone(r.Context())
		for k, v := range h {
			r.Header.Set(k, v)
		}
	}
	return t.rt.RoundTrip(r)
}

// Keys.

// key is the object of the file name.
func (s *Store) key(name string) string { return s.prefix + strings.TrimPrefix(name, "/") }

// dirKey is the marker of the collection name, and the prefix of its members.
func (s *Store) dirKey(name string) string {
	if name == "/" {
		return s.prefix
	}
	return s.prefix + name[1:] + "/"
}

// nameOf maps a key under the prefix back to a name ("/a/b" for "a/b" and "a/b/").
func (s *Store) nameOf(key string) string {
	return "/" + strings.TrimSuffix(strings.TrimPrefix(key, s.prefix), "/")
}

// propsDir is the prefix of the sidecars of name and of everything below it.
func (s *Store) propsDir(name string) string {
	p := s.prefix + backend.ReservedPrefix + "/props/"
	if name == "/" {
		return p
	}
	return p + name[1:] + "/"
}

// propsKey is the sidecar holding the dead properties of name.
func (s *Store) propsKey(name string) string { return s.propsDir(name) + backend.ReservedPrefix }

// stagingKey is a fresh key for the body of a Create, in this instance's folder.
func (s *Store) stagingKey() string {
	return s.stagingDir() + s.clean.instance + "/" + newVersion()
}

// User metadata written on every object (minio-go adds X-Amz-Meta-).
const (
	metaVersion = "Safedav-Version"
	metaMtime   = "Safedav-Mtime"
)

// newVersion returns a random token that makes each write's ETag unique.
func newVersion() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// userMeta finds a user metadata value whatever the case the server returned it in.
func userMeta(oi minio.ObjectInfo, k string) string {
	if v, ok := oi.UserMetadata[k]; ok {
		return v
	}
	for kk, v := range oi.UserMetadata {
		if strings.EqualFold(kk, k) {
			return v
		}
	}
	return oi.Metadata.Get("X-Amz-Meta-" + k)
}

// etagOf builds the ETag safedav reports from the S3 ETag and the write's version.
func etagOf(s3etag, version string) string {
	s3etag = strings.Trim(s3etag, `"`)
	if version == "" {
		return `"` + s3etag + `"`
	}
	return `"` + s3etag + "." + version + `"`
}

// reportType hides the type S3 assigns to an upload that had none, so that the server
// guesses one from the name as it does for the other backends.
func reportType(ct string) string {
	if ct == "application/octet-stream" || ct == "binary/octet-stream" {
		return ""
	}
	return ct
}

func modTimeOf(oi minio.ObjectInfo) time.Time {
	if v := userMeta(oi, metaMtime); v != "" {
		if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(0, ns)
		}
	}
	return oi.LastModified
}

// object is what a HEAD told about a key.
type object struct {
	info   backend.Info
	s3etag string // unquoted, as minio-go returns it
}

func (s *Store) objectOf(name string, dir bool, oi minio.ObjectInfo) object {
	in := backend.Info{Name: name, Dir: dir, ModTime: modTimeOf(oi), ETag: etagOf(oi.ETag, userMeta(oi, metaVersion))}
	if !dir {
		in.Size = oi.Size
		in.ContentType = reportType(oi.ContentType)
	}
	return object{info: in, s3etag: strings.Trim(oi.ETag, `"`)}
}

// implicitInfo describes a collection that exists only through its members. It has
// no version of its own; the ETag is stable for the name.
func implicitInfo(name string) backend.Info {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return backend.Info{Name: name, Dir: true, ETag: fmt.Sprintf(`"implicit-%x"`, h)}
}

var rootInfo = backend.Info{Name: "/", Dir: true, ETag: `"root"`}

// head returns the object at key, or ErrNotExist.
func (s *Store) head(ctx context.Context, key string) (minio.ObjectInfo, error) {
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	return oi, mapErr(err)
}

// nonEmpty reports whether any key starts with prefix (one list request).
func (s *Store) nonEmpty(ctx context.Context, prefix string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing after the first key
	oi, ok := <-s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: 1})
	switch {
	case !ok:
		return false, ctx.Err()
	case oi.Err != nil:
		return false, mapErr(oi.Err)
	}
	return true, nil
}

// lookup finds name, which has passed backend.CheckName, as a file, a marked
// collection or an implicit one. A missing name is ErrNotExist.
func (s *Store) lookup(ctx context.Context, name string) (object, error) {
	if name == "/" {
		return object{info: rootInfo}, nil
	}
	oi, err := s.head(ctx, s.key(name))
	if err == nil {
		return s.objectOf(name, false, oi), nil
	}
	if !errors.Is(err, backend.ErrNotExist) {
		return object{}, err
	}
	return s.lookupDir(ctx, name)
}

// lookupDir finds name as a collection, marked or implicit.
func (s *Store) lookupDir(ctx context.Context, name string) (object, error) {
	if name == "/" {
		return object{info: rootInfo}, nil
	}
	oi, err := s.head(ctx, s.dirKey(name))
	if err == nil {
		return s.objectOf(name, true, oi), nil
	}
	if !errors.Is(err, backend.ErrNotExist) {
		return object{}, err
	}
	ok, err := s.nonEmpty(ctx, s.dirKey(name))
	if err != nil {
		return object{}, err
	}
	if !ok {
		return object{}, backend.ErrNotExist
	}
	return object{info: implicitInfo(name)}, nil
}

// claim takes the claims of one operation (see package claims), failing with an error
// that is backend.ErrBusy when they could not be had in time.
func (s *Store) claim(ctx context.Context, cs ...claims.Claim) (release func(), err error) {
	release, err = s.claims.Acquire(ctx, cs...)
	if errors.Is(err, claims.ErrBusy) {
		err = fmt.Errorf("%w: %w", backend.ErrBusy, err)
	}
	return release, err
}

// checkParent fails with ErrParentMissing when name's parent collection does not
// exist and ErrNotCollection when it is a file.
func (s *Store) checkParent(ctx context.Context, name string) error {
	p := backend.Parent(name)
	if p == "/" {
		return nil
	}
	o, err := s.lookup(ctx, p)
	switch {
	case errors.Is(err, backend.ErrNotExist):
		return backend.ErrParentMissing
	case err != nil:
		return err
	case !o.info.Dir:
		return backend.ErrNotCollection
	}
	return nil
}

// check evaluates c against the current state (cur nil when absent).
func check(c backend.Cond, cur *object) error {
	return c.Check(cur != nil, func() string { return cur.info.ETag })
}

// applyCond adds to opts the headers that make the server commit only if c, which
// check has accepted against cur, still holds: If-None-Match: * for create-only, and
// for If-Match the S3 ETag of cur, also for "*", which some servers mishandle
// (versitygw answers 412 to If-Match: * on an existing object). The version part of
// an If-Match ETag was checked by check under the name's claim. Nothing is added when
// the server does not honour conditions (the claim alone then protects the commit).
func (s *Store) applyCond(opts *minio.PutObjectOptions, c backend.Cond, cur *object) {
	if !s.cond {
		return
	}
	switch {
	case c.IfNoneMatch:
		opts.SetMatchETagExcept("*")
	case c.IfMatch != "" && cur != nil:
		opts.SetMatchETag(cur.s3etag)
	}
}

// condHeaders is applyCond as raw headers, for requests minio-go cannot add them to.
func (s *Store) condHeaders(c backend.Cond, cur *object) map[string]string {
	if !s.cond {
		return nil
	}
	switch {
	case c.IfNoneMatch:
		return map[string]string{"If-None-Match": "*"}
	case c.IfMatch != "" && cur != nil:
		return map[string]string{"If-Match": `"` + cur.s3etag + `"`}
	}
	return nil
}

// headFile returns the file at name, nil when there is none.
func (s *Store) headFile(ctx context.Context, name string) (*object, error) {
	oi, err := s.head(ctx, s.key(name))
	switch {
	case errors.Is(err, backend.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	}
	o := s.objectOf(name, false, oi)
	return &o, nil
}

// maxKey is the longest key S3 accepts, in bytes.
const maxKey = 1024

// checkName is backend.CheckName, and ErrNameTooLong for a name whose longest key
// (its dead properties' sidecar) would not fit in maxKey bytes: refused before any
// request, rather than by a server that may answer it with a 500.
func (s *Store) checkName(name string) error {
	if err := backend.CheckName(name); err != nil {
		return err
	}
	if len(s.propsKey(name)) > maxKey {
		return backend.ErrNameTooLong
	}
	return nil
}

// mapErr translates S3 errors into the backend's sentinels, keeping the S3 code in
// the text. It is the one place S3 and network errors become sentinels: a server
// that cannot be reached, breaks the connection, times out, or answers 5xx or
// SlowDown is ErrUnavailable; AccessDenied and rejected credentials ErrForbidden.
// Cancellation (the client went away) and io.EOF pass through unchanged.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		if errors.Is(err, context.Canceled) || err == io.EOF {
			return err
		}
		// Anything else minio-go returns without an S3 answer is the transport's:
		// refused or reset connections, DNS, TLS, timeouts (net.Error), a response
		// cut short (io.ErrUnexpectedEOF), a deadline that passed waiting for it.
		return fmt.Errorf("%w: s3: %w", backend.ErrUnavailable, err)
	}
	var sentinel error
	switch resp.Code {
	case "NoSuchKey", "NoSuchUpload":
		sentinel = backend.ErrNotExist
	case "PreconditionFailed", "ConditionalRequestConflict":
		sentinel = backend.ErrPrecondition
	case "EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "NoSpaceLeftOnDevice":
		sentinel = backend.ErrNoSpace
	case "ExistingObjectIsDirectory":
		sentinel = backend.ErrIsCollection
	case "ObjectParentIsFile":
		sentinel = backend.ErrNotCollection
	case "KeyTooLongError":
		sentinel = backend.ErrNameTooLong
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound",
		"InvalidToken", "ExpiredToken":
		return fmt.Errorf("%w: s3: access denied (%s): %w", backend.ErrForbidden, resp.Code, errAccess)
	case "SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized":
		sentinel = backend.ErrUnavailable
	default:
		switch {
		case resp.StatusCode == http.StatusNotFound && resp.Code == "":
			sentinel = backend.ErrNotExist
		case resp.StatusCode == http.StatusPreconditionFailed:
			sentinel = backend.ErrPrecondition
		case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests:
			sentinel = backend.ErrUnavailable
		default:
			return fmt.Errorf("s3: %s: %w", resp.Code, err)
		}
	}
	return fmt.Errorf("%w (s3 %s)", sentinel, resp.Code)
}

// errAccess is wrapped by errors that the credentials' permissions caused.
var errAccess = errors.New("permission denied by the S3 server")

// Stat returns the Info of name: a file, a collection with a marker, or an implicit
// collection. Errors: ErrNotExist.
func (s *Store) Stat(ctx context.Context, name string) (backend.Info, error) {
	if err := s.checkName(name); err != nil {
		return backend.Info{}, err
	}
	o, err := s.lookup(ctx, name)
	return o.info, err
}

// headWorkers is how many HEADs a Copy runs at a time, and listWorkers how many
// members a listing describes at a time.
const (
	headWorkers = 8
	listWorkers = 16
)

// List lists the members of dir with one delimited listing (objects are files, common
// prefixes collections) and one HEAD per member for what S3 listings do not carry: the
// version in the ETag, the modification time and the type (see ETags above). Keys
// that are not clean names, and reserved ones, are hidden. Errors: ErrNotExist,
// ErrNotCollection, or fn's error; a listing that fails part way fails whole,
// whatever fn was given before.
func (s *Store) List(ctx context.Context, dir string, fn func(backend.Info) error) error {
	return s.list(ctx, dir, nil, func(in backend.Info, _ []backend.Prop) error { return fn(in) })
}

// ListProps is List that also passes each member's dead properties. One delimited
// listing of dir's sidecar folder tells which members have properties (or members of
// their own that do), so only those sidecars are read rather than one per member.
// Errors: as List's.
func (s *Store) ListProps(ctx context.Context, dir string, fn func(backend.Info, []backend.Prop) error) error {
	if err := s.checkName(dir); err != nil {
		return err
	}
	withProps, err := s.sidecarMembers(ctx, dir)
	if err != nil {
		return err
	}
	return s.list(ctx, dir, withProps, fn)
}

// sidecarMembers returns the base names of dir's members that have a sidecar, or one
// under them. Its size is that of the members with properties, usually few.
func (s *Store) sidecarMembers(ctx context.Context, dir string) (map[string]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := s.propsDir(dir)
	set := map[string]bool{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: s.listPage}) {
		if oi.Err != nil {
			return nil, mapErr(oi.Err)
		}
		if base, ok := strings.CutSuffix(oi.Key[len(prefix):], "/"); ok {
			set[base] = true
		}
	}
	return set, ctx.Err()
}

// listed is one member of a listing being described; done is closed once info, props
// and err are set (info.Name "" for a member that vanished since it was listed).
type listed struct {
	done  chan struct{}
	info  backend.Info
	props []backend.Prop
	err   error
}

// list is List and ListProps: props, when not nil, names the members whose sidecar is
// read. Members are described listWorkers at a time as their page arrives and handed
// to fn in listing order, so a listing holds at most listWorkers members (and one
// page) whatever the folder's size.
func (s *Store) list(ctx context.Context, dir string, props map[string]bool, fn func(backend.Info, []backend.Prop) error) error {
	if err := s.checkName(dir); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *listed, listWorkers-1) // plus the one fn is given
	go func() {
		defer close(queue)
		push := func(m *listed) bool {
			select {
			case queue <- m:
				return true
			case <-ctx.Done():
				return false
			}
		}
		fail := func(err error) {
			m := &listed{done: make(chan struct{}), err: err}
			close(m.done)
			push(m)
		}
		prefix := s.dirKey(dir)
		found := dir == "/"
		// minio-go asks for page after page and ends the channel with an error item
		// when one fails.
		for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: s.listPage}) {
			if oi.Err != nil {
				fail(mapErr(oi.Err))
				return
			}
			found = true
			base := strings.TrimSuffix(oi.Key[len(prefix):], "/")
			if base == "" || strings.Contains(base, "/") || strings.HasPrefix(base, backend.ReservedPrefix) {
				continue
			}
			if n := backend.Join(dir, base); func() bool { c, err := backend.CleanName(n); return err != nil || c != n }() {
				continue
			}
			m := &listed{done: make(chan struct{})}
			if !push(m) {
				return
			}
			go func() {
				defer close(m.done)
				s.describe(ctx, backend.Join(dir, base), oi.Key, props[base], m)
			}()
		}
		if ctx.Err() == nil && !found {
			fail(s.notListable(ctx, dir))
		}
	}()
	var err error
	for m := range queue {
		<-m.done // every member's describe ends before list returns
		if err != nil {
			continue
		}
		switch {
		case m.err != nil:
			err = m.err
		case m.info.Name != "":
			err = fn(m.info, m.props)
		}
		if err != nil {
			cancel()
		}
	}
	if err != nil {
		return err
	}
	return ctx.Err() // a cancelled listing may end early without an error item
}

// notListable tells why dir, which has neither a marker nor members, cannot be listed.
func (s *Store) notListable(ctx context.Context, dir string) error {
	_, err := s.head(ctx, s.key(dir))
	switch {
	case err == nil:
		return backend.ErrNotCollection
	case errors.Is(err, backend.ErrNotExist):
		return backend.ErrNotExist
	}
	return err
}

// describe HEADs the member name listed as key, and reads its sidecar when withProps.
// A key ending in "/" is a common prefix: some key lies under it, so it is a
// collection, marked (HEAD finds the marker) or implicit.
func (s *Store) describe(ctx context.Context, name, key string, withProps bool, m *listed) {
	dir := strings.HasSuffix(key, "/")
	oi, err := s.head(ctx, key)
	switch {
	case err == nil:
		m.info = s.objectOf(name, dir, oi).info
	case !errors.Is(err, backend.ErrNotExist):
		m.err = err
		return
	case dir:
		m.info = implicitInfo(name)
	default:
		return // vanished since listed
	}
	if withProps {
		m.props, _, m.err = s.readProps(ctx, name)
	}
}

// Open opens the file name with one GET, whose response describes the version being
// read (a HEAD first could describe another). Seeking is free: the reader reopens
// with a ranged GET, pinned to that version by If-Match, only when a Read finds the
// position moved, so http.ServeContent's seek to the end and back keeps the first
// response, and a Range request downloads only its range. Errors: ErrNotExist,
// ErrIsCollection; reading at another position after the object was replaced fails
// with ErrPrecondition.
func (s *Store) Open(ctx context.Context, name string) (io.ReadSeekCloser, backend.Info, error) {
	if err := s.checkName(name); err != nil {
		return nil, backend.Info{}, err
	}
	if name == "/" {
		return nil, backend.Info{}, backend.ErrIsCollection
	}
	key := s.key(name)
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err = mapErr(err); errors.Is(err, backend.ErrNotExist) {
		if _, derr := s.lookupDir(ctx, name); derr == nil {
			return nil, backend.Info{}, backend.ErrIsCollection
		}
		return nil, backend.Info{}, backend.ErrNotExist
	} else if err != nil {
		return nil, backend.Info{}, err
	}
	o := s.objectOf(name, false, oi)
	return &objectReader{ctx: ctx, s: s, key: key, etag: o.s3etag, size: o.info.Size, body: body, gets: 1}, o.info, nil
}

// objectReader reads one version of an object. body, when open, delivers the bytes
// from bodyOff on; a Read at another offset replaces it with a ranged GET.
type objectReader struct {
	ctx     context.Context
	s       *Store
	key     string
	etag    string
	size    int64
	off     int64 // the position Seek set
	body    io.ReadCloser
	bodyOff int64
	gets    int // GET requests made, for tests
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.body != nil && r.bodyOff != r.off {
		r.body.Close()
		r.body = nil
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body == nil {
		opts := minio.GetObjectOptions{}
		opts.SetMatchETag(r.etag)
		if r.off > 0 {
			opts.SetRange(r.off, 0)
		}
		body, _, _, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.key, opts)
		r.gets++
		if err != nil {
			return 0, mapErr(err)
		}
		r.body, r.bodyOff = body, r.off
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	r.bodyOff = r.off
	if err == io.EOF && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, mapErr(err)
}

// Seek only moves the position; the next Read fetches from there if needed.
func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, errors.New("s3: invalid whence")
	}
	if offset < 0 {
		return r.off, errors.New("s3: negative position")
	}
	r.off = offset
	return offset, nil
}

// Close releases the open response, if any.
func (r *objectReader) Close() error {
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}
