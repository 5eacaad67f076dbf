package local

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// spares keeps empty files that uploads replaced, open, to stage later uploads in.
//
// A LOCK of an unmapped URL creates an empty file (RFC 4918 §7.3), and the PUT that
// follows replaces it. Exchanging the two (renameat2 RENAME_EXCHANGE) instead of
// renaming over the empty file, then writing a later upload into the empty one, saves
// that upload an inode allocation and the empty file's release. Both are dear where
// files churn: ext4 without a journal makes every allocation skip the inodes freed in
// the last minutes (recently_deleted), which was 40% of safedav's CPU, and as much of
// nginx's, in the harness's lock cycles.
//
// Only a regular file that is still empty, has one link and no extended attributes is
// kept, and it is checked again when taken. safedav's own readers read a file this
// small whole when they open it (openat2; without it no spares are kept), and COPY
// copies as many bytes as its source had when opened; another program holding the
// empty file open could read the later upload through it, as it could read that file
// in the folder anyway.
// Kept files are temporary names in the staging shards: swept at start-up, removed by
// Close.
type spares struct {
	mu    sync.Mutex
	files []spare
}

type spare struct {
	f   *os.File
	rel string // its temporary name
}

// maxSpares bounds the files (and descriptors) kept.
const maxSpares = 32

// wants reports whether replacing the entry m could give a spare: an empty regular
// file, while there is room.
func (p *spares) wants(m *meta) bool {
	if m == nil || !m.isRegular() || m.size != 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.files) < maxSpares
}

// keep adds the file now at the temporary name rel of the open staging shard dirfd,
// which an upload's exchange left there, or removes it when it is not a clean empty
// file or there is no room.
func (p *spares) keep(dirfd int, base, rel string) {
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Unlinkat(dirfd, base, 0)
		return
	}
	f := os.NewFile(uintptr(fd), base)
	if !clean(fd) {
		f.Close()
		_ = unix.Unlinkat(dirfd, base, 0)
		return
	}
	p.give(f, rel, func(string) { _ = unix.Unlinkat(dirfd, base, 0) })
}

// take returns a kept file, still clean, to stage an upload in, with its temporary
// name; ok is false when none is left.
func (p *spares) take(drop func(rel string)) (f *os.File, rel string, ok bool) {
	for {
		p.mu.Lock()
		n := len(p.files)
		if n == 0 {
			p.mu.Unlock()
			return nil, "", false
		}
		s := p.files[n-1]
		p.files = p.files[:n-1]
		p.mu.Unlock()
		if err := withFd(s.f, func(fd int) error {
			if !clean(fd) {
				return errors.New("changed")
			}
			return nil
		}); err == nil {
			return s.f, s.rel, true
		}
		s.f.Close()
		drop(s.rel)
	}
}

// give returns a file taken and not used (still empty, its mtime aside), or removes
// it when there is no room.
func (p *spares) give(f *os.File, rel string, drop func(rel string)) {
	p.mu.Lock()
	if len(p.files) < maxSpares {
		p.files = append(p.files, spare{f, rel})
		f = nil
	}
	p.mu.Unlock()
	if f != nil {
		f.Close()
		drop(rel)
	}
}

// clean reports whether the open file fd is an empty regular file with one link and
// no extended attributes.
func clean(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 || st.Nlink != 1 {
		return false
	}
	n, err := unix.Flistxattr(fd, nil)
	return err == nil && n == 0 || errors.Is(err, unix.ENOTSUP)
}

// close closes and removes every kept file.
func (p *spares) close(drop func(rel string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.files {
		s.f.Close()
		drop(s.rel)
	}
	p.files = nil
}
