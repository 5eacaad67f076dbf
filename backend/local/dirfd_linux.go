//go:build !safedav_portable

package local

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hot paths (locate, staging, commit) work on directory descriptors with *at
// system calls: os.Root opens every component of a path for each operation, which made
// a small upload cost about 35 system calls. A directory is opened once per operation
// with openat2(2), which the kernel confines beneath the root (RESOLVE_BENEATH), and
// the staging shards stay open. Without openat2 everything goes through os.Root.

// dirHandle is an open directory of the tree; close releases it unless it is one the
// Store keeps open.
type dirHandle struct {
	fd  int
	own bool
}

func (d dirHandle) close() {
	if d.own {
		unix.Close(d.fd)
	}
}

// openDir opens the directory rel ("." for the root) for *at calls, confined beneath
// the root. Errors carry the errno (ENOENT, also for a path leaving the root; ENOTDIR;
// ELOOP); without openat2 they are os.Root's, which mapErr knows.
func (s *Store) openDir(rel string) (dirHandle, error) {
	if rel == "." {
		return dirHandle{fd: s.rootfd}, nil
	}
	if fd, ok := s.shardFd(rel); ok {
		return dirHandle{fd: fd}, nil
	}
	fd, err := s.openDirFd(rel, unix.O_PATH)
	if err != nil {
		return dirHandle{}, err
	}
	return dirHandle{fd: fd, own: true}, nil
}

// openDirFd opens the directory rel as a descriptor of its own, with flags (O_PATH for
// *at calls only, O_RDONLY to read it) or, without openat2, read-only through os.Root.
func (s *Store) openDirFd(rel string, flags uint64) (int, error) {
	fd, err := s.openat2Beneath(rel, flags|unix.O_DIRECTORY)
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	f, err := s.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return dupFd(f)
}

// openat2Beneath opens rel with openat2(2), which the kernel confines beneath the root
// (RESOLVE_BENEATH: no "..", absolute symlink or /proc magic link may lead out). A path
// that would leave the root fails with ENOENT, as os.Root's escape maps to not found,
// so that EXDEV only ever means a rename or link across mounts. It fails with ENOSYS
// when the kernel has no openat2; callers then use os.Root.
func (s *Store) openat2Beneath(rel string, flags uint64) (int, error) {
	if s.noOpenat2.Load() {
		return -1, unix.ENOSYS
	}
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(s.rootfd, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN) && attempt < 8:
			// EAGAIN: a rename raced with the walk; the kernel asks to try again.
			continue
		case errors.Is(err, unix.ENOSYS):
			s.noOpenat2.Store(true)
		case errors.Is(err, unix.EXDEV):
			err = unix.ENOENT
		}
		return -1, err
	}
}

// shardFd returns the kept descriptor of a staging shard.
func (s *Store) shardFd(rel string) (int, bool) {
	if !s.staging || !strings.HasPrefix(rel, stagingDir+"/") {
		return 0, false
	}
	i, err := strconv.Atoi(rel[len(stagingDir)+1:])
	if err != nil || i < 0 || i >= stagingShards || s.shardFds[i] <= 0 {
		return 0, false
	}
	return s.shardFds[i], true
}

// openShards keeps a descriptor on each staging shard for the Store's lifetime.
func (s *Store) openShards() {
	for i := range s.shardFds {
		if fd, err := s.openDirFd(stagingDir+"/"+strconv.Itoa(i), unix.O_RDONLY); err == nil {
			s.shardFds[i] = fd
		}
	}
}

// dupFd returns a descriptor of its own on what f has open, close-on-exec.
func dupFd(f *os.File) (int, error) {
	var nfd int
	err := withFd(f, func(fd int) error {
		var err error
		nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		return err
	})
	return nfd, err
}

// setMtime sets the modification time of f, the file rel (futimens, leaving the access
// time alone; the portable path needs rel).
func (s *Store) setMtime(f *os.File, _ string, t time.Time) error {
	return withFd(f, func(fd int) error { return futimens(fd, t) })
}

// futimens sets the modification time of the open file fd.
func futimens(fd int, t time.Time) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(t.UnixNano())}
	// utimensat with a NULL path acts on fd itself.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// createAt creates the new file base in dir exclusively (never through a symlink).
func (s *Store) createAt(dir, base string) (*os.File, error) {
	d, err := s.openDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.close()
	fd, err := openExcl(d.fd, base)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), base), nil
}

// openExcl creates the new file base in the directory dirfd for writing, failing with
// EEXIST when anything is there (a symlink included).
func openExcl(dirfd int, base string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// noDir is the dirHandle of a folder that is not held open.
var noDir = dirHandle{fd: -1}

func (d dirHandle) held() bool { return d.fd >= 0 }

// withDirs calls fn with descriptors on the directories from and to of the tree, using
// toDir for to when it is held. An error opening one is mapped (mapErr); fn's is
// returned as is, so callers see the errno of the rename or link itself (EXDEV, EEXIST).
func (s *Store) withDirs(from, to string, toDir dirHandle, fn func(fromFd, toFd int) error) error {
	src, err := s.openDir(from)
	if err != nil {
		return mapErr(err)
	}
	defer src.close()
	dst := toDir
	switch {
	case dst.held():
	case to == from:
		dst = src
	default:
		if dst, err = s.openDir(to); err != nil {
			return mapErr(err)
		}
		defer dst.close()
	}
	return fn(src.fd, dst.fd)
}

// removeStaged removes the temporary file rel through its folder's descriptor (for a
// staging shard, the one kept open) rather than a walk from the root.
func (s *Store) removeStaged(rel string) {
	dir, base := splitRel(rel)
	if d, err := s.openDir(dir); err == nil {
		_ = unix.Unlinkat(d.fd, base, 0)
		d.close()
	}
}

// nestedMounts reports whether anything is mounted strictly inside root, from
// /proc/self/mountinfo; true when that cannot be told. Without nested mounts every
// folder of the tree is on the staging shards' filesystem, and an upload need not stat
// its target's folder to know a rename from staging will work.
func nestedMounts(root string) bool {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return true
	}
	if real, err = filepath.Abs(real); err != nil {
		return true
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			return true
		}
		if within(unescapeMount(fields[4]), real) {
			return true
		}
	}
	return sc.Err() != nil
}

// within reports whether p lies strictly inside dir.
func within(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// unescapeMount decodes the octal escapes (\040 for a space) of a mountinfo path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
