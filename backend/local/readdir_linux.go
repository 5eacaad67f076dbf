//go:build !safedav_portable

package local

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// entryStat is what readDir tells of each entry: its lstat.
type entryStat = unix.Stat_t

// entryMeta describes an entry as readDir stat'ed it.
func entryMeta(st *entryStat) *meta { return metaOfUnix(st) }

// direntBuf is the getdents buffer: about 2,000 entries of a typical folder per call.
const direntBuf = 64 << 10

type entryBatch struct {
	names []string
	sts   []unix.Stat_t
	errs  []error
}

func (b *entryBatch) stat(dirfd int) {
	b.sts = b.sts[:0]
	b.errs = b.errs[:0]
	for _, n := range b.names {
		b.sts = append(b.sts, unix.Stat_t{})
		b.errs = append(b.errs, unix.Fstatat(dirfd, n, &b.sts[len(b.sts)-1], unix.AT_SYMLINK_NOFOLLOW))
	}
}

// direntReader reads a directory's names with getdents(2) into a large buffer, without
// the per-call overhead of os.File.Readdirnames.
type direntReader struct {
	fd   int
	buf  []byte
	data []byte // unparsed part of buf
	eof  bool
}

// next appends names until there are dirBatch of them or the directory ends (eof).
func (d *direntReader) next(names []string) ([]string, error) {
	for len(names) < dirBatch {
		if len(d.data) == 0 {
			if d.eof {
				return names, nil
			}
			n, err := unix.Getdents(d.fd, d.buf)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				return names, err
			}
			if n <= 0 {
				d.eof = true
				return names, nil
			}
			d.data = d.buf[:n]
		}
		consumed, _, out := unix.ParseDirent(d.data, dirBatch-len(names), names)
		d.data = d.data[consumed:]
		names = out
	}
	return names, nil
}

// readDir calls fn for every entry of the directory rel with its lstat, taken with
// fstatat on the directory's descriptor: one directory read, no open per entry, and no
// path string that a concurrent rename could redirect. Entries that vanish meanwhile are
// skipped. A large folder is stat'ed by one worker per CPU, batch by batch, while fn
// consumes the batches already done: a listing of 10,000 files is mostly fstatat calls,
// and fn (a PROPFIND encoding its response) overlaps them. Entries come in no
// particular order.
func (s *Store) readDir(ctx context.Context, rel string, fn func(fd int, name string, st *unix.Stat_t) error) error {
	dirfd, err := s.openDirFd(rel, unix.O_RDONLY)
	if err != nil {
		return mapErr(err)
	}
	// Closed only once every goroutine of readDirAt has returned, so that dirfd is not
	// reused for another file under them.
	defer unix.Close(dirfd)
	return s.readDirAt(ctx, dirfd, fn)
}

// readDirAt is readDir on the open directory dirfd, which it reads from its start.
func (s *Store) readDirAt(ctx context.Context, dirfd int, fn func(fd int, name string, st *unix.Stat_t) error) error {
	bp := direntPool.Get().(*[]byte)
	defer direntPool.Put(bp)
	rd := &direntReader{fd: dirfd, buf: *bp}

	first := &entryBatch{}
	var err error
	first.names, err = rd.next(first.names)
	if err != nil {
		return mapErr(err)
	}
	if rd.eof && len(rd.data) == 0 || runtime.GOMAXPROCS(0) < 2 {
		// A small folder (the common case): no goroutines.
		for b := first; ; {
			b.stat(dirfd)
			if err := emit(b, dirfd, fn); err != nil {
				return err
			}
			if rd.eof && len(rd.data) == 0 {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			b.names, err = rd.next(b.names[:0])
			if err != nil {
				return mapErr(err)
			}
		}
	}
	return s.readDirParallel(ctx, rd, first, fn)
}

var direntPool = sync.Pool{New: func() any { b := make([]byte, direntBuf); return &b }}

// readDirParallel lists a large folder: the caller's goroutine runs fn on finished
// batches while workers read names and stat them.
func (s *Store) readDirParallel(ctx context.Context, rd *direntReader, first *entryBatch, fn func(fd int, name string, st *unix.Stat_t) error) error {
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *entryBatch)
	done := make(chan *entryBatch, workers)
	free := make(chan *entryBatch, 2*workers) // batches fn has finished with
	stop := make(chan struct{})
	var readErr error
	var wg sync.WaitGroup

	wg.Go(func() { // reads names; one reader, since getdents advances a shared offset
		defer close(todo)
		b := first
		for {
			select {
			case todo <- b:
			case <-stop:
				return
			}
			if rd.eof && len(rd.data) == 0 {
				return
			}
			select {
			case b = <-free:
				b.names = b.names[:0]
			default:
				b = &entryBatch{}
			}
			var err error
			if b.names, err = rd.next(b.names); err != nil {
				readErr = err
				return
			}
			if len(b.names) == 0 {
				return
			}
		}
	})
	var statters sync.WaitGroup
	for range workers {
		statters.Go(func() {
			for b := range todo {
				b.stat(rd.fd)
				select {
				case done <- b:
				case <-stop:
					return
				}
			}
		})
	}
	wg.Go(func() { statters.Wait(); close(done) })

	var err error
	for b := range done {
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = emit(b, rd.fd, fn)
		}
		if err != nil {
			break
		}
		select {
		case free <- b:
		default:
		}
	}
	close(stop)
	for range done { // let blocked workers finish
	}
	wg.Wait()
	if err != nil {
		return err
	}
	if readErr != nil {
		return mapErr(readErr)
	}
	return nil
}

// emit calls fn for the entries of a stat'ed batch, skipping the ones that vanished.
func emit(b *entryBatch, dirfd int, fn func(fd int, name string, st *unix.Stat_t) error) error {
	for i, n := range b.names {
		serr := b.errs[i]
		if errors.Is(serr, syscall.ENOENT) {
			continue
		}
		if serr != nil {
			return mapErr(serr)
		}
		if err := fn(dirfd, n, &b.sts[i]); err != nil {
			return err
		}
	}
	return nil
}
