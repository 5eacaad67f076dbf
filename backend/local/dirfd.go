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
// the root. Errors carry the errno (ENOENT, ENOTDIR, EXDEV or ELOOP for a path leaving
// the root); without openat2 it opens through os.Root, whose errors mapErr knows.
func (s *Store) openDir(rel string) (dirHandle, error) {
	if rel == "." {
		return dirHandle{fd: s.rootfd}, nil
	}
	if fd, ok := s.shardFd(rel); ok {
		return dirHandle{fd: fd}, nil
	}
	if s.noOpenat2.Load() {
		f, err := s.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return dirHandle{}, err
		}
		defer f.Close()
		fd, err := dupFd(f)
		if err != nil {
			return dirHandle{}, err
		}
		return dirHandle{fd: fd, own: true}, nil
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(s.rootfd, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == nil:
			return dirHandle{fd: fd, own: true}, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN) && attempt < 8:
			// EAGAIN: a rename raced with the walk; the kernel asks to try again.
			continue
		case errors.Is(err, unix.ENOSYS):
			s.noOpenat2.Store(true)
			return s.openDir(rel)
		}
		return dirHandle{}, err
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
		f, err := s.root.OpenFile(stagingDir+"/"+strconv.Itoa(i), os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		fd, err := dupFd(f)
		f.Close()
		if err == nil {
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

// setMtime sets f's modification time (futimens, leaving the access time alone).
func setMtime(f *os.File, t time.Time) error {
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
	for {
		fd, err := unix.Openat(d.fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), base), nil
	}
}

// linkat links oldBase of oldDir as newBase of newDir; EEXIST when newBase exists.
func (s *Store) linkat(oldDir, oldBase, newDir, newBase string) error {
	od, err := s.openDir(oldDir)
	if err != nil {
		return err
	}
	defer od.close()
	nd := od
	if newDir != oldDir {
		if nd, err = s.openDir(newDir); err != nil {
			return err
		}
		defer nd.close()
	}
	return unix.Linkat(od.fd, oldBase, nd.fd, newBase, 0)
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
