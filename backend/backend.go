// Package backend defines the storage interface that every safedav store implements
// (backend/local on disk, backend/s3 on a bucket) and the errors the server maps to
// HTTP statuses.
//
// Names are slash-separated, absolute ("/" is the root, "/a/b" a member, never a
// trailing slash), cleaned and in Unicode NFC: the server validates and normalises
// them with CleanName before a backend sees them ("validate at the edge"), and every
// backend checks them again with the same rules (CheckName, CheckCopy, CheckRemove),
// so that a store answers a name it cannot hold the same way whoever calls it.
package backend

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
)

// Info describes one resource. It carries every live property PROPFIND needs, so a
// listing never opens the entries it lists.
type Info struct {
	Name        string // "/" or "/a/b"
	Dir         bool
	Size        int64
	ModTime     time.Time
	ETag        string // strong and quoted as HTTP requires: `"…"`; changes on every write
	ContentType string // "" when the backend does not know; the server then guesses
}

// Cond is the state the server observed and the client's request depends on. A backend
// commits a write only if the condition still holds at the moment of the commit, in one
// step with it; otherwise it returns ErrPrecondition and changes nothing. The zero Cond
// is unconditional.
type Cond struct {
	// IfMatch, when set, is the quoted ETag the target must still have; "*" means the
	// target must exist (whatever its version).
	IfMatch string
	// IfNoneMatch means the target must not exist (create-only).
	IfNoneMatch bool
}

// IsZero reports whether c places no condition on the commit.
func (c Cond) IsZero() bool { return c.IfMatch == "" && !c.IfNoneMatch }

// Check evaluates c against the target's current state, for backends to call at the
// commit: exists tells whether something is there, and etag (called only when needed)
// gives its ETag. It returns ErrPrecondition when c does not hold.
func (c Cond) Check(exists bool, etag func() string) error {
	switch {
	case c.IfNoneMatch && exists:
		return ErrPrecondition
	case c.IfMatch == "":
		return nil
	case !exists:
		return ErrPrecondition
	case c.IfMatch != "*" && c.IfMatch != etag():
		return ErrPrecondition
	}
	return nil
}

// Meta is what the client told about an upload.
type Meta struct {
	ContentType string
	ModTime     time.Time // zero: the time of the commit
	// Size is the announced length, or -1 when unknown (chunked upload). When it is
	// known, a body of another length fails with ErrShortBody and commits nothing.
	Size int64
	// Volatile allows the store to acknowledge the write before it is durable: it
	// may be lost on a power failure (never half-written). The server uses it only
	// for the empty file a LOCK of an unmapped URL creates, which is as durable as
	// the lock itself.
	Volatile bool
}

// Depth values for Copy (and the locks package).
const (
	DepthZero     = 0
	DepthInfinity = -1
)

// Backend is a store of files and collections. Every method takes ctx first; a write
// whose ctx is cancelled (the client went away) commits nothing and leaves what was
// there before untouched. Every method that takes a name first refuses, with
// ErrInvalidName, one that fails CheckName (reserved names included), so every store
// gives the same error for the same name.
type Backend interface {
	// Stat returns the resource's Info, or ErrNotExist.
	Stat(ctx context.Context, name string) (Info, error)
	// List calls fn for each direct member of the collection dir, in no particular
	// order, without opening the members. It fails with ErrNotExist or ErrNotCollection.
	// An error returned by fn stops the listing and is returned.
	List(ctx context.Context, dir string, fn func(Info) error) error
	// Open opens a file for reading. A collection fails with ErrIsCollection.
	Open(ctx context.Context, name string) (io.ReadSeekCloser, Info, error)
	// Put stores body as the content of name atomically: readers see the old content or
	// the new, never a mix, and a failed or cancelled Put leaves the old content intact.
	// It reports whether the file was created (rather than replaced). Dead properties of
	// a replaced file are kept. Errors: ErrParentMissing, ErrIsCollection (name is a
	// collection), ErrNotCollection (a parent is a file), ErrPrecondition, ErrNoSpace,
	// ErrShortBody, or the body reader's error.
	Put(ctx context.Context, name string, body io.Reader, c Cond, m Meta) (info Info, created bool, err error)
	// Create stores body under the first of names at which nothing exists, create-only
	// and atomically, reading body once: a racing creator of the same name makes it
	// move on to the next name, never overwrite. It returns the Info of the stored
	// file (Info.Name says which name it got), ErrExist when every name was taken, or
	// Put's errors. It serves the "rename" overwrite policy ("report (1).pdf").
	Create(ctx context.Context, names iter.Seq[string], body io.Reader, m Meta) (Info, error)
	// Mkdir creates the collection name. Errors: ErrExist (anything already there),
	// ErrParentMissing, ErrNotCollection, ErrPrecondition.
	Mkdir(ctx context.Context, name string, c Cond) (Info, error)
	// Remove deletes name, recursively for a collection. c applies to name itself; a
	// missing name is ErrNotExist whatever c says. Removing "/" is ErrInvalidName
	// (CheckRemove).
	// Where some members could not be removed it returns *PathErrors.
	Remove(ctx context.Context, name string, c Cond) error
	// Copy copies src to dst with its dead properties; depth is DepthZero (a collection
	// without its members) or DepthInfinity. c applies to dst. An existing dst is
	// replaced as a whole (a collection is not merged), as RFC 4918 §9.8.4 requires.
	// Errors: CheckCopy's (ErrInvalidName, ErrSameName, ErrIntoSelf, ErrOntoAncestor)
	// before anything is looked at, then ErrNotExist (src), ErrParentMissing (dst's
	// parent), ErrPrecondition, *PathErrors.
	Copy(ctx context.Context, src, dst string, c Cond, depth int) (created bool, err error)
	// Move renames src to dst with its dead properties, replacing an existing dst as a
	// whole. c applies to dst. Same errors as Copy.
	Move(ctx context.Context, src, dst string, c Cond) (created bool, err error)
}

// Prop is a dead property: any property a client set with PROPPATCH.
type Prop struct {
	Name xml.Name // Space is the namespace URI ("" for none)
	Lang string   // xml:lang in scope on the property element, if any
	// InnerXML is the property element's content, self-contained: every namespace it
	// uses is declared inside it, so it can be written back under any parent.
	InnerXML []byte
}

// PropPatch is one PROPPATCH instruction, applied in document order.
type PropPatch struct {
	Remove bool
	Prop   Prop // for Remove only Prop.Name counts
}

// ApplyPatches returns props with patches applied in order (RFC 4918 §9.2: PROPPATCH
// instructions apply in document order): a set replaces a property of the same name in
// place or appends it, a remove drops it if present.
func ApplyPatches(props []Prop, patches []PropPatch) []Prop {
	for _, p := range patches {
		i := -1
		for j := range props {
			if props[j].Name == p.Prop.Name {
				i = j
				break
			}
		}
		switch {
		case p.Remove && i >= 0:
			props = append(props[:i:i], props[i+1:]...)
		case p.Remove:
		case i >= 0:
			props[i] = p.Prop
		default:
			props = append(props, p.Prop)
		}
	}
	return props
}

// PropStore is implemented by backends that keep dead properties.
type PropStore interface {
	// Props returns the dead properties of name (nil when it has none), or ErrNotExist.
	Props(ctx context.Context, name string) ([]Prop, error)
	// PatchProps applies every patch in order, all or nothing (RFC 4918 §9.2).
	// Removing a property that is not set is not an error. c applies to name; a
	// missing name is ErrNotExist whatever c says.
	// ErrNoSpace when the properties would exceed what the store can hold.
	PatchProps(ctx context.Context, name string, c Cond, patches []PropPatch) error
}

// PropLister is implemented by stores that can read the dead properties of a
// collection's members while listing it, without opening each member (PROPFIND allprop
// of a large folder).
type PropLister interface {
	// ListProps is List that also passes each member's dead properties (nil if none).
	ListProps(ctx context.Context, dir string, fn func(Info, []Prop) error) error
}

// Quotaer is implemented by stores that know their free and used space, for the
// RFC 4331 properties DAV:quota-available-bytes and DAV:quota-used-bytes (Windows shows
// them as the size of a mapped drive).
type Quotaer interface {
	// Quota reports the bytes still available to name's collection and the bytes used.
	Quota(ctx context.Context, name string) (available, used int64, err error)
}

// Sentinel errors. The server maps each to one HTTP status and stable code.
var (
	ErrNotExist      = errors.New("not found")                               // 404
	ErrExist         = errors.New("already exists")                          // 405 for MKCOL, 412/409 elsewhere
	ErrParentMissing = errors.New("parent collection does not exist")        // 409
	ErrIsCollection  = errors.New("is a collection")                         // 409 (405 for GET of a body)
	ErrNotCollection = errors.New("not a collection")                        // 409
	ErrPrecondition  = errors.New("precondition failed")                     // 412: lost the race at commit
	ErrNoSpace       = errors.New("insufficient storage")                    // 507
	ErrShortBody     = errors.New("body length differs from Content-Length") // 400
	ErrInvalidName   = errors.New("invalid name")                            // 400
	ErrUnsupported   = errors.New("not supported by this store")             // 403/501
	// ErrBusy: another operation held the names this one needed for longer than the
	// store waits (see package backend/claims). Nothing was changed; retrying is safe.
	ErrBusy = errors.New("namespace busy") // 409 with Retry-After
)

// Sentinel errors of a store that failed rather than answered: the server maps each
// to one status and stable code, and never answers a listing it could not complete
// (a failure is never an empty folder).
var (
	// ErrUnavailable: the store could not be reached or did not answer in time (an S3
	// server down, a network error, a timeout, an S3 5xx or SlowDown). 503
	// storage_unavailable with Retry-After: retrying later may succeed.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrForbidden: the store refused the operation itself (EACCES, EPERM, a read-only
	// filesystem; S3 AccessDenied). 403 storage_forbidden: retrying cannot help until
	// an administrator changes the store.
	ErrForbidden = errors.New("storage refused access")
	// ErrNameTooLong: a segment of the name is longer than MaxSegment bytes, or the
	// whole name longer than the store can hold (S3: 1024-byte keys; a filesystem's
	// ENAMETOOLONG). It wraps ErrInvalidName. 400 name_too_long.
	ErrNameTooLong = fmt.Errorf("%w: name too long", ErrInvalidName)
)

// MaxSegment is the longest segment of a name, in bytes of its UTF-8 NFC form: what
// every common filesystem holds (NAME_MAX on Linux and the BSDs, 255 UTF-16 units on
// NTFS and APFS), so a name one store accepts another can hold too.
const MaxSegment = 255

// Sentinel errors of the namespace rules of Copy and Move (see CheckCopy): each
// request could never succeed, whatever the store holds. The server answers 403, as
// RFC 4918 §9.8.5 and §9.9.4 suggest.
var (
	ErrSameName     = errors.New("source and destination are the same")
	ErrIntoSelf     = errors.New("destination lies inside the source")
	ErrOntoAncestor = errors.New("destination contains the source")
)

// PathError is the failure of one member during a recursive Remove, Copy or Move.
type PathError struct {
	Name string
	Err  error
}

// PathErrors lists the members a recursive operation could not handle; the server
// answers it with a 207 Multi-Status naming each.
type PathErrors []PathError

func (e *PathErrors) Error() string {
	if len(*e) == 0 {
		return "no errors"
	}
	return (*e)[0].Name + ": " + (*e)[0].Err.Error()
}
