package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/text/unicode/norm"

	"safedav/backend"
)

// tmpPrefix starts every temporary entry (upload, copy under construction, collection
// being removed). It lies under backend.ReservedPrefix, so it is never served, and New
// sweeps what a crash left behind.
const tmpPrefix = backend.ReservedPrefix + "-tmp-"

// meta is the part of a stat result the store needs, from either os.FileInfo or a raw
// fstatat.
type meta struct {
	mode  uint32 // S_IFMT bits
	size  int64
	ino   uint64 // 0 where the system has no inode numbers (Windows)
	mtime int64  // nanoseconds since the epoch
	ctime int64  // 0 where the system has none (Windows)
}

// The file types of a mode (S_IFMT and its values), which POSIX fixes and Linux, macOS
// and the BSDs share; metaOf translates Windows' into them.
const (
	modeType    = 0o170000
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeLink    = 0o120000
)

// dirBatch is the unit a directory listing is read and stat'ed in.
const dirBatch = 512

func newMeta(mode uint32, size int64, ino uint64, mtime, ctime int64) *meta {
	return &meta{mode: mode & modeType, size: size, ino: ino, mtime: mtime, ctime: ctime}
}

func (m *meta) isDir() bool     { return m.mode == modeDir }
func (m *meta) isRegular() bool { return m.mode == modeRegular }
func (m *meta) isLink() bool    { return m.mode == modeLink }

// servable reports whether the entry is something WebDAV can show: devices, FIFOs and
// sockets are hidden (opening a FIFO would block forever).
func (m *meta) servable() bool { return m.isDir() || m.isRegular() }

// etag derives a strong ETag from the inode, size, mtime and ctime. Every commit is a
// new inode with a unique mtime (see stamp), so the ETag changes on every write, and
// nothing that does not write changes any of the four. The four are mixed into 64 bits
// rather than spelled out: 18 bytes instead of about 47 in every listing entry, and no
// inode numbers or exact times given away. Two versions of a file share an ETag only
// by a 2^-64 chance.
func (m *meta) etag() string {
	h := mix64(mix64(mix64(mix64(m.ino)^uint64(m.size))^uint64(m.mtime)) ^ uint64(m.ctime))
	var b [18]byte
	b[0], b[17] = '"', '"'
	const hexDigits = "0123456789abcdef"
	for i := 16; i >= 1; i-- {
		b[i] = hexDigits[h&15]
		h >>= 4
	}
	return string(b[:])
}

// mix64 is the splitmix64 finaliser: a bijection of 64 bits in which every input bit
// affects every output bit.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (m *meta) info(name string) backend.Info {
	in := backend.Info{Name: name, Dir: m.isDir(), ModTime: time.Unix(0, m.mtime), ETag: m.etag()}
	if !in.Dir {
		in.Size = m.size
	}
	return in
}

// lastStamp is the last modification time handed out by stamp, in nanoseconds.
var lastStamp atomic.Int64

// stamp returns a process-wide strictly increasing time near now, so two writes of the
// same size in the same clock tick still get different mtimes and so different ETags.
// Its times are multiples of stampStep, the finest a file time can hold here, so that
// no two of them become one on disk.
func stamp() time.Time {
	for {
		last := lastStamp.Load()
		now := time.Now().UnixNano()
		now -= now % stampStep
		if now <= last {
			now = last + stampStep
		}
		if lastStamp.CompareAndSwap(last, now) {
			return time.Unix(0, now)
		}
	}
}

// check evaluates c against the current state of the target (m nil when absent).
func check(c backend.Cond, m *meta) error {
	return c.Check(m != nil, func() string { return m.etag() })
}

// loc is where a name lives on disk, relative to the root.
type loc struct {
	dir  string // on-disk path of the parent ("." for top-level names and the root)
	base string // on-disk base name: may differ from the name's when stored in NFD; "" for the root
	m    *meta  // nil when nothing is there
}

func (l loc) rel() string { return join(l.dir, l.base) }

func join(dir, base string) string {
	switch {
	case base == "":
		return dir
	case dir == ".":
		return base
	}
	return dir + "/" + base
}

// splitRel splits a relative path into its directory ("." at the top) and base name.
func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return ".", rel
}

// dirOf is the on-disk directory of a relative path ("." for a top-level one).
func dirOf(rel string) string {
	dir, _ := splitRel(rel)
	return dir
}

// locate maps name to its place on disk. A missing target is not an error (l.m is nil)
// as long as its parent is a directory; otherwise it fails with ErrParentMissing or
// ErrNotCollection. A path leaving the root through a symlink fails with ErrNotExist.
// name has passed backend.CheckName (reserved names never get here).
func (s *Store) locate(name string) (loc, error) {
	l, d, err := s.locateHeld(name)
	d.close()
	return l, err
}

// locateHeld is locate that, when its fast path answers, also returns the parent's
// descriptor, so a commit that follows needs no further path walk. d is noDir when
// the slow path answered; d.close is always safe.
func (s *Store) locateHeld(name string) (l loc, d dirHandle, err error) {
	if name == "/" {
		fi, err := s.root.Stat(".")
		if err != nil {
			return loc{}, noDir, mapErr(err)
		}
		return loc{dir: ".", m: metaOf(fi)}, noDir, nil
	}
	rel := strings.TrimPrefix(name, "/")
	dir, base := splitRel(rel)
	if l, d, ok := s.statAt(dir, base); ok {
		return l, d, nil
	}
	l, err = s.locateSlow(rel, dir, base)
	return l, noDir, err
}

// locateSlow is locate through os.Root, for what statAt leaves open: symlinks, names
// that may be stored in NFD, errors.
func (s *Store) locateSlow(rel, dir, base string) (loc, error) {
	fi, err := s.root.Stat(rel)
	switch {
	case err == nil:
		return loc{dir: dir, base: base, m: metaOf(fi)}, nil
	case isNotExist(err):
		if !isASCII(rel) {
			return s.fold(rel)
		}
		if dir == "." {
			return loc{dir: dir, base: base}, nil
		}
		pfi, err := s.root.Stat(dir)
		switch {
		case err == nil && pfi.IsDir():
			return loc{dir: dir, base: base}, nil
		case err == nil:
			return loc{}, backend.ErrNotCollection
		case isNotExist(err):
			return loc{}, backend.ErrParentMissing
		}
		return loc{}, mapErr(err)
	}
	return loc{}, mapErr(err)
}

// fold is the slow path of locate for non-ASCII names: a component that is not found
// as given is looked for among its parent's entries by NFC form, so a file another tool
// stored in NFD is still found.
func (s *Store) fold(rel string) (loc, error) {
	parts := strings.Split(rel, "/")
	cur := "."
	for i, p := range parts {
		last := i == len(parts)-1
		fi, err := s.root.Stat(join(cur, p))
		if isNotExist(err) && !isASCII(p) {
			alt, ferr := s.findNFC(cur, p)
			if ferr != nil {
				return loc{}, ferr
			}
			if alt != "" {
				p = alt
				fi, err = s.root.Stat(join(cur, p))
			}
		}
		switch {
		case err == nil && last:
			return loc{dir: cur, base: p, m: metaOf(fi)}, nil
		case err == nil && !fi.IsDir():
			return loc{}, backend.ErrNotCollection
		case err == nil:
			cur = join(cur, p)
		case isNotExist(err) && last:
			return loc{dir: cur, base: p}, nil
		case isNotExist(err):
			return loc{}, backend.ErrParentMissing
		default:
			return loc{}, mapErr(err)
		}
	}
	panic("unreachable")
}

// findNFC returns the entry of dir whose NFC form is want, or "".
func (s *Store) findNFC(dir, want string) (string, error) {
	f, err := s.root.OpenFile(dir, os.O_RDONLY|oDirectory, 0)
	if err != nil {
		return "", mapErr(err)
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if !isASCII(n) && !strings.HasPrefix(n, backend.ReservedPrefix) && norm.NFC.String(n) == want {
				return n, nil
			}
		}
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", mapErr(err)
		}
	}
}

func tmpName() string { return tmpPrefix + strconv.FormatUint(rand.Uint64(), 36) }

// createTemp creates a new temporary file in directory dir.
func (s *Store) createTemp(dir string) (*os.File, string, error) {
	for range 10 {
		base := tmpName()
		f, err := s.createAt(dir, base)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", mapErr(err)
		}
		return f, base, nil
	}
	return nil, "", errors.New("local: cannot create a temporary file")
}

// mkdirTemp creates a new temporary directory in directory dir.
func (s *Store) mkdirTemp(dir string) (string, error) {
	for range 10 {
		base := tmpName()
		err := s.root.Mkdir(join(dir, base), 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", mapErr(err)
		}
		return base, nil
	}
	return "", errors.New("local: cannot create a temporary directory")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isEscape reports the error os.Root gives for a path that would leave the root (a
// symlink to an absolute path or above the root). os does not export it, so it is
// matched by its text; the confinement test fails if that ever changes.
func isEscape(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err != nil && err.Error() == "path escapes from parent"
}

// dangling reports whether following a symlink failed because it leads nowhere the
// store serves: outside the tree, to nothing, in a loop, or through a file. A listing
// hides such a link; any other error (EACCES, EIO) fails the listing instead, which
// must never leave out a member it could not look at.
func dangling(err error) bool {
	if err == nil {
		return false
	}
	err = mapErr(err)
	return errors.Is(err, backend.ErrNotExist) || errors.Is(err, backend.ErrNotCollection)
}

// mapErr turns a filesystem error into a backend sentinel (wrapping the errno, which
// stays visible to errors.Is) and strips host paths from any other error. Which errno
// gives which sentinel is the system's (sentinelOf).
func mapErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	sentinel := sentinelOf(err)
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno)
	switch {
	case sentinel != nil && hasErrno:
		return fmt.Errorf("%w: %w", sentinel, errno)
	case sentinel != nil:
		return sentinel
	case hasErrno:
		return fmt.Errorf("local: %w", errno)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("local: %s: %w", pe.Op, pe.Err)
	}
	return err
}
