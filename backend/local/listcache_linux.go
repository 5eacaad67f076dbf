//go:build !safedav_portable

package local

import (
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// A listing of a large folder is mostly one fstatat per member (half of its CPU, the
// rest being the response), and clients list the same folders again and again: a file
// manager refreshing its window, a sync tool polling. listCache keeps the listings of
// large folders in memory and serves one again only while it is certain to be current:
//
//   - the folder still has the inode, mtime and ctime it had when it was read, so no
//     member was added, removed or renamed;
//   - inotify has reported no change to any member since (content, size, times, mode,
//     owner, extended attributes), and its queue is read before every use;
//   - members that are folders or symlinks are stat'ed again on every use, since what
//     happens inside a subfolder or to a link's target is not reported to the parent,
//     and so are files with more than one hard link, whose changes through another
//     link are reported to that link's folder only;
//   - it was read less than listTTL ago, which bounds the few changes inotify does not
//     report: a hard link made to a member from elsewhere (and changes through it), a
//     write through another program's mmap, inode flags set with chattr.
//
// The folder's watch exists before a listing that is to be kept starts, so a change
// made while it is read is reported, and the listing is then not kept. A folder is
// watched after its first listing with listMin members or more, and kept from its
// second on; one listing of a folder at a time collects its members. safedav's own
// commits change the folder or report through inotify too; the one that does not (a
// create-only commit unlinking its staged name, which moves the new file's ctime)
// calls forget. Folders on filesystems where other machines write (NFS, SMB, FUSE,
// cluster filesystems) are never watched: only known local filesystems are.
type listCache struct {
	maxMembers int           // members held in all listings together
	min        int           // smallest folder worth a watch (listMin; tests lower it)
	ttl        time.Duration // oldest listing served
	now        func() time.Time

	mu      sync.Mutex
	fd      int // the inotify instance; 0 until first needed, -1 when unavailable
	byWd    map[int32]*dirWatch
	byDir   map[dirKey]*dirWatch
	members int    // held in all listings
	clock   uint64 // use counter, for least-recently-used eviction
	buf     []byte

	watching atomic.Bool // some folder is watched (forget's fast path)
	hits     atomic.Int64
	kept     atomic.Int64
}

const (
	listMin = 512 // about 0.5 ms to list from disk: smaller folders gain little
	// listTTL bounds the staleness of a listing after a change inotify does not report.
	listTTL = 5 * time.Second
	// maxWatches bounds the inotify watches (and so the kernel memory) the cache holds.
	maxWatches = 256
	// watchMask is every change of a member or of the folder that can make a listing
	// stale; IN_EXCL_UNLINK leaves out writes to members already removed.
	watchMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CREATE |
		unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF |
		unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK
)

type dirKey struct{ dev, ino uint64 }

type dirWatch struct {
	wd      int32
	key     dirKey
	gen     uint64 // moves on every reported change
	used    uint64 // clock of the last use
	removed bool   // the watch is gone: fills in progress must not keep their listing
	filling bool   // a listing is collecting the folder's members
	list    *listing
}

// listing is a folder as read once; immutable once kept, so it is read without mu.
type listing struct {
	name         string // the folder as asked for: members' names are built from it
	mtime, ctime int64  // the folder's, when it was read
	props        bool   // members carry their dead properties
	at           time.Time
	files        []file   // members kept whole
	live         []string // on-disk names of the members described again on every use
}

func (l *listing) size() int { return len(l.files) + len(l.live) }

// file is a member kept whole: a regular file, in about 125 bytes with its strings.
type file struct {
	name, etag  string // Info.Name, Info.ETag
	size, mtime int64
	props       []backend.Prop
}

func (f *file) info() backend.Info {
	return backend.Info{Name: f.name, Size: f.size, ModTime: time.Unix(0, f.mtime), ETag: f.etag}
}

// fill is a listing in progress that may be kept.
type fill struct {
	w   *dirWatch
	gen uint64
	at  time.Time // when the members started being read
}

func newListCache(maxMembers int) *listCache {
	return &listCache{maxMembers: maxMembers, min: listMin, ttl: listTTL, now: time.Now,
		byWd: map[int32]*dirWatch{}, byDir: map[dirKey]*dirWatch{}}
}

func keyOf(st *unix.Stat_t) dirKey { return dirKey{uint64(st.Dev), st.Ino} }

// get returns the listing of the folder st (asked for as name) when it can be served
// from memory, or nil.
func (c *listCache) get(st *unix.Stat_t, name string, props bool) *listing {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.watched(st)
	if w == nil || w.list == nil {
		return nil
	}
	l := w.list
	if l.mtime != st.Mtim.Nano() || l.ctime != st.Ctim.Nano() || c.now().Sub(l.at) >= c.ttl {
		c.drop(w) // stale for good
		return nil
	}
	if l.name != name || props && !l.props {
		return nil
	}
	c.clock++
	w.used = c.clock
	c.hits.Add(1)
	return l
}

// watched returns the watch of the folder st, after reading the queue of events, or
// nil when it has none (any more). c.mu is held.
func (c *listCache) watched(st *unix.Stat_t) *dirWatch {
	w := c.byDir[keyOf(st)]
	if w == nil {
		return nil
	}
	c.drain()
	if w.removed {
		return nil
	}
	return w
}

// begin starts the listing of the folder st: it returns a fill when the folder is
// watched, so that its listing may be kept, and nil otherwise.
func (c *listCache) begin(st *unix.Stat_t) *fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.watched(st)
	if w == nil || w.filling {
		return nil
	}
	w.filling = true
	return &fill{w: w, gen: w.gen, at: c.now()}
}

// abort ends a listing that failed; f may be nil.
func (c *listCache) abort(f *fill) {
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f.w.filling = false
}

// end finishes the listing of the folder st, open as dirfd, that read count entries.
// With a fill, and when the folder did not change meanwhile, it keeps l (nil when the
// listing was too large to collect, beyond maxMembers); without one, a large folder gets
// a watch, so that its next listing can be kept.
func (c *listCache) end(f *fill, st *unix.Stat_t, dirfd int, count int, l *listing) {
	if f == nil && count < c.min {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		c.watch(st, dirfd)
		return
	}
	w := f.w
	w.filling = false
	c.drain()
	if l == nil || w.removed || w.gen != f.gen { // l is nil past maxMembers: list stops collecting
		return
	}
	c.drop(w)
	l.mtime, l.ctime, l.at = st.Mtim.Nano(), st.Ctim.Nano(), f.at
	w.list = l
	c.members += l.size()
	c.clock++
	w.used = c.clock
	c.kept.Add(1)
	for c.members > c.maxMembers {
		o := c.oldest(func(w *dirWatch) bool { return w.list != nil })
		if o == nil {
			break
		}
		c.drop(o)
	}
}

// forget drops the listing of the folder st and makes a listing of it in progress not
// kept: a member changed in a way inotify does not report.
func (c *listCache) forget(key dirKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.byDir[key]; w != nil {
		w.gen++
		c.drop(w)
	}
}

// watch adds an inotify watch on the folder st, open as dirfd, evicting the least
// recently used watch beyond maxWatches. Without inotify (or /proc, or watches left),
// or on a filesystem whose changes inotify does not all see, the folder is simply not
// cached.
func (c *listCache) watch(st *unix.Stat_t, dirfd int) {
	key := keyOf(st)
	if c.byDir[key] != nil || c.fd < 0 {
		return
	}
	if c.fd == 0 {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			c.fd = -1
			return
		}
		c.fd = fd
		c.buf = make([]byte, 64<<10)
	}
	if !localChanges(dirfd) {
		return
	}
	for len(c.byWd) >= maxWatches {
		c.unwatch(c.oldest(func(*dirWatch) bool { return true }))
	}
	wd, err := unix.InotifyAddWatch(c.fd, "/proc/self/fd/"+strconv.Itoa(dirfd), watchMask)
	if err != nil {
		return
	}
	if old := c.byWd[int32(wd)]; old != nil {
		// The same inode under another key cannot happen; a reused number of a watch
		// the kernel removed can, before its IN_IGNORED is read.
		c.forgetWatch(old)
	}
	c.clock++
	w := &dirWatch{wd: int32(wd), key: key, used: c.clock}
	c.byWd[w.wd] = w
	c.byDir[key] = w
	c.watching.Store(true)
}

// localChanges reports whether inotify sees every change to the folder dirfd.
func localChanges(dirfd int) bool {
	var fs unix.Statfs_t
	return unix.Fstatfs(dirfd, &fs) == nil && reportsAll(uint32(fs.Type))
}

// reportsAll reports whether inotify sees every change on a filesystem of this type:
// known local filesystems only. On network, cluster and FUSE filesystems other
// machines (or the FUSE server, or the host of a shared folder) write unseen.
func reportsAll(fsType uint32) bool {
	switch fsType {
	case unix.EXT4_SUPER_MAGIC, // also ext2 and ext3
		unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC,
		bcachefsMagic, zfsMagic:
		return true
	}
	return false
}

// Magic numbers x/sys/unix does not name (statfs f_type).
const (
	bcachefsMagic = 0xca451a4e
	zfsMagic      = 0x2fc12fc1
)

// drain reads every event queued on the inotify instance and drops the listings they
// make stale. Events are queued by the system call that makes the change, before it
// returns, so after drain no change made before it is unaccounted for.
func (c *listCache) drain() {
	for c.fd > 0 {
		n, err := unix.Read(c.fd, c.buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			// EAGAIN: the queue is empty. Any other error: drop everything rather than
			// trust a listing.
			if err != nil && !errors.Is(err, syscall.EAGAIN) {
				c.reset()
			}
			return
		}
		c.handle(c.buf[:n])
	}
}

// handle applies a buffer of inotify events.
func (c *listCache) handle(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		size := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
		if size > len(b) {
			size = len(b)
		}
		b = b[size:]
		if mask&unix.IN_Q_OVERFLOW != 0 {
			// Events were lost, IN_IGNORED among them: no watch can be trusted.
			c.reset()
			return
		}
		w := c.byWd[wd]
		if w == nil {
			continue
		}
		if mask&unix.IN_IGNORED != 0 { // the folder is gone, or its filesystem
			c.forgetWatch(w)
			continue
		}
		w.gen++
		c.drop(w)
	}
}

// reset drops every watch and listing and the inotify instance (made again when next
// needed): events were lost, and with them perhaps the IN_IGNORED of a watch.
func (c *listCache) reset() {
	if c.fd > 0 {
		unix.Close(c.fd)
	}
	c.fd = 0
	for _, w := range c.byWd {
		c.forgetWatch(w)
	}
}

// drop releases w's listing.
func (c *listCache) drop(w *dirWatch) {
	if w == nil || w.list == nil {
		return
	}
	c.members -= w.list.size()
	w.list = nil
}

// forgetWatch removes w from the cache; the kernel's watch is already gone.
func (c *listCache) forgetWatch(w *dirWatch) {
	c.drop(w)
	w.removed = true
	delete(c.byWd, w.wd)
	delete(c.byDir, w.key)
	c.watching.Store(len(c.byWd) > 0)
}

// unwatch removes w and its kernel watch.
func (c *listCache) unwatch(w *dirWatch) {
	_, _ = unix.InotifyRmWatch(c.fd, uint32(w.wd))
	c.forgetWatch(w)
}

// oldest returns the least recently used watch that ok accepts.
func (c *listCache) oldest(ok func(*dirWatch) bool) *dirWatch {
	var o *dirWatch
	for _, w := range c.byWd {
		if ok(w) && (o == nil || w.used < o.used) {
			o = w
		}
	}
	return o
}

// close releases the inotify instance and every listing.
func (c *listCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd > 0 {
		unix.Close(c.fd)
	}
	c.fd = -1
	for _, w := range c.byWd {
		c.forgetWatch(w)
	}
}
