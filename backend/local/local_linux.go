//go:build !safedav_portable

package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/text/unicode/norm"

	"safedav/backend"
)

// platform is the state of the Linux fast path, embedded in Store.
type platform struct {
	group groupSync // batches the flushes of concurrent uploads
	// staging is set when uploads are staged in stagingDir (on stagingDev) rather than
	// beside their target.
	staging    bool
	stagingDev uint64
	noOpenat2  atomic.Bool // the kernel has no openat2: small files take the usual path
	rootfd     int         // the root's descriptor (owned by group.fd)
	rootDev    uint64      // the root's filesystem, the one group's syncfs makes durable
	shardFds   [stagingShards]int
	nested     bool       // something is mounted inside the tree
	lists      *listCache // listings of large folders; nil when off
}

// New opens the tree at root, creating the directory if missing, removes the temporary
// entries a crash left behind, and checks that a file can be written there. It fails
// when root cannot be created, opened or written.
func New(root string, opt Options) (*Store, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	s := &Store{root: r, sync: opt.Sync}
	switch {
	case opt.ListCache == 0:
		s.lists = newListCache(DefaultListCache)
	case opt.ListCache > 0:
		s.lists = newListCache(opt.ListCache)
	}
	if s.group.fd, err = r.Open("."); err != nil {
		r.Close()
		return nil, err
	}
	_ = withFd(s.group.fd, func(fd int) error {
		s.rootfd = fd
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil {
			s.rootDev = uint64(st.Dev)
		}
		return nil
	})
	s.nested = nestedMounts(root)
	if err := s.sweep(); err != nil {
		r.Close()
		return nil, err
	}
	s.initStaging()
	if err := s.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the root directory. The Store must not be used afterwards.
func (s *Store) Close() error {
	for _, fd := range s.shardFds {
		if fd > 0 {
			unix.Close(fd)
		}
	}
	if s.lists != nil {
		s.lists.close()
	}
	s.group.fd.Close()
	return s.root.Close()
}

// smallFile is the size up to which Open reads a file whole with plain system calls
// (openat2 confined beneath the root, fstat, read, close) and serves it from memory:
// half the system calls of an *os.File, which matters for many small GETs. Larger files
// are returned as *os.File so that net/http can send them with sendfile.
const smallFile = 64 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// openFast opens rel as given and answers from what it opened (open + fstat): a file,
// or ErrIsCollection. Any other error (missing, perhaps stored in NFD; odd) sends the
// caller to the careful path, which decides. Without openat2 it opens through os.Root.
func (s *Store) openFast(rel, name string) (io.ReadSeekCloser, backend.Info, error) {
	// O_NONBLOCK keeps a FIFO from blocking; it changes nothing for regular files.
	fd, err := s.openat2Beneath(rel, unix.O_RDONLY|unix.O_NONBLOCK)
	if errors.Is(err, unix.ENOSYS) {
		return s.openFile(rel, name)
	}
	if err != nil {
		return nil, backend.Info{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, backend.Info{}, err
	}
	m := metaOfUnix(&st)
	switch {
	case m.isDir():
		unix.Close(fd)
		return nil, backend.Info{}, backend.ErrIsCollection
	case !m.isRegular():
		unix.Close(fd)
		return nil, backend.Info{}, backend.ErrNotExist
	case st.Size > smallFile:
		return os.NewFile(uintptr(fd), name), m.info(name), nil
	}
	defer unix.Close(fd)
	bp := smallBufs.Get().(*[]byte)
	buf := (*bp)[:st.Size]
	for off := 0; off < len(buf); {
		n, err := unix.Pread(fd, buf[off:], int64(off))
		if err != nil || n == 0 { // changed under us: let the careful path answer
			smallBufs.Put(bp)
			return nil, backend.Info{}, io.ErrUnexpectedEOF
		}
		off += n
	}
	mf := &memFile{bp: bp}
	mf.Reset(buf)
	return mf, m.info(name), nil
}

// memFile is a small file read into a pooled buffer, returned to the pool on Close.
type memFile struct {
	bytes.Reader
	bp *[]byte
}

func (m *memFile) Close() error {
	if m.bp != nil {
		smallBufs.Put(m.bp)
		m.bp = nil
	}
	return nil
}

// Quota reports the filesystem's free space (for an unprivileged writer) and the space
// in use on it: the whole volume, as df shows it.
func (s *Store) Quota(ctx context.Context, name string) (available, used int64, err error) {
	var st unix.Statfs_t
	if err := withFd(s.group.fd, func(fd int) error { return unix.Fstatfs(fd, &st) }); err != nil {
		return 0, 0, mapErr(err)
	}
	bs := int64(st.Bsize)
	return int64(st.Bavail) * bs, int64(st.Blocks-st.Bfree) * bs, nil
}

// initStaging creates the staging shards; without them uploads are staged beside their
// targets, which is correct, only slower under concurrency.
func (s *Store) initStaging() {
	if err := s.root.MkdirAll(stagingDir, 0o700); err != nil {
		return
	}
	s.spreadShards()
	for i := range stagingShards {
		if err := s.root.MkdirAll(stagingDir+"/"+strconv.Itoa(i), 0o700); err != nil {
			return
		}
	}
	fi, err := s.root.Stat(stagingDir)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.staging, s.stagingDev = true, uint64(st.Dev)
		s.openShards()
	}
}

// fsTopdirFl is FS_TOPDIR_FL (chattr +T), which golang.org/x/sys does not name.
const fsTopdirFl = 0x00020000

// spreadShards marks the staging folder as the top of a hierarchy (FS_TOPDIR_FL), so
// that ext4 places each shard it holds, and so the files staged there, in a block group
// chosen at random rather than in its parent's. Without a journal, ext4 passes over
// every inode freed in the last seconds when it allocates one, and checks them one by
// one from the start of the group: with every upload and every replaced file in one
// group, each create paid for all recent replacements (about half the server's CPU in
// lock cycles). Shards made before the folder was marked are made again while empty.
// Filesystems without the flag refuse it, and nothing changes.
func (s *Store) spreadShards() {
	f, err := s.root.Open(stagingDir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = withFd(f, func(fd int) error {
		flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
		if err != nil || flags&fsTopdirFl != 0 {
			return nil
		}
		if unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags|fsTopdirFl) != nil {
			return nil
		}
		for i := range stagingShards {
			_ = unix.Unlinkat(fd, strconv.Itoa(i), unix.AT_REMOVEDIR) // fails unless empty
		}
		return nil
	})
}

// listDir is list for the folder dir, found on disk at rel: its members come from the
// listing cache when it holds them, else from disk.
func (s *Store) listDir(ctx context.Context, dir, rel string, withProps bool, fn func(backend.Info, []backend.Prop) error) error {
	ls := &lister{s: s, dir: dir, rel: rel, withProps: withProps}
	if s.lists == nil {
		return s.readDir(ctx, ls.rel, func(fd int, n string, st *unix.Stat_t) error {
			info, props, ok, err := ls.member(fd, n, st)
			if err != nil || !ok {
				return err
			}
			return fn(info, props)
		})
	}
	dirfd, err := s.openDirFd(ls.rel, unix.O_RDONLY)
	if err != nil {
		return mapErr(err)
	}
	defer unix.Close(dirfd)
	var dst unix.Stat_t
	if err := unix.Fstat(dirfd, &dst); err != nil {
		return mapErr(err)
	}
	if kept := s.lists.get(&dst, dir, withProps); kept != nil {
		return ls.replay(ctx, dirfd, kept, fn)
	}
	f := s.lists.begin(&dst)
	var kept *listing
	if f != nil {
		kept = &listing{name: dir, props: withProps}
	}
	count := 0
	err = s.readDirAt(ctx, dirfd, func(fd int, n string, st *unix.Stat_t) error {
		count++
		info, props, ok, err := ls.member(fd, n, st)
		if err != nil {
			return err
		}
		if kept != nil {
			// A subfolder's description changes with its contents and a symlink's with
			// its target, neither of which the folder's watch is told about, nor of
			// changes made through a file's other hard links.
			switch t := st.Mode & unix.S_IFMT; {
			case t == unix.S_IFDIR || t == unix.S_IFLNK || st.Nlink > 1:
				kept.live = append(kept.live, n)
			case ok:
				kept.files = append(kept.files, file{name: info.Name, etag: info.ETag, size: info.Size, mtime: info.ModTime.UnixNano(), props: props})
			}
			if kept.size() > s.lists.maxMembers {
				kept = nil // too large to keep: stop collecting
			}
		}
		if !ok {
			return nil
		}
		return fn(info, props)
	})
	if err != nil {
		s.lists.abort(f)
		return err
	}
	s.lists.end(f, &dst, dirfd, count, kept)
	return nil
}

// lister describes the members of one folder for a listing.
type lister struct {
	s         *Store
	dir, rel  string // the folder as asked for, and on disk
	withProps bool

	checked, marked bool // whether the folder has members with dead properties
}

// member describes the entry n, lstat'ed as st, of the open folder fd; ok is false for
// entries a listing hides: reserved names, entries that are neither files nor folders,
// and symlinks that leave the tree.
func (ls *lister) member(fd int, n string, st *unix.Stat_t) (info backend.Info, props []backend.Prop, ok bool, err error) {
	if strings.HasPrefix(n, backend.ReservedPrefix) {
		return info, nil, false, nil
	}
	m := metaOfUnix(st)
	link := m.isLink()
	if link {
		// Follow it inside the root only; one that leaves the tree is hidden.
		fi, err := ls.s.root.Stat(join(ls.rel, n))
		if dangling(err) {
			return info, nil, false, nil
		}
		if err != nil {
			return info, nil, false, mapErr(err)
		}
		m = metaOf(fi)
	}
	if !m.servable() {
		return info, nil, false, nil
	}
	if ls.withProps && !ls.checked {
		ls.checked, ls.marked = true, hasChildProps(fd)
	}
	if ls.withProps && ls.marked {
		var data []byte
		if link {
			data, err = ls.s.readProps(join(ls.rel, n))
		} else {
			data, err = entryProps(fd, n)
		}
		if err == nil && len(data) > 0 {
			props, err = decodeProps(data)
		}
		if err != nil && !errors.Is(err, backend.ErrNotExist) {
			return info, nil, false, err
		}
	}
	return m.info(backend.Join(ls.dir, norm.NFC.String(n))), props, true, nil
}

// replay serves a kept listing, describing its live members again from the open
// folder dirfd.
func (ls *lister) replay(ctx context.Context, dirfd int, l *listing, fn func(backend.Info, []backend.Prop) error) error {
	for i := range l.files {
		if i%dirBatch == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(l.files[i].info(), l.files[i].props); err != nil {
			return err
		}
	}
	for _, n := range l.live {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue
			}
			return mapErr(err)
		}
		info, props, ok, err := ls.member(dirfd, n, &st)
		if err != nil {
			return err
		}
		if ok {
			if err := fn(info, props); err != nil {
				return err
			}
		}
	}
	return nil
}
