//go:build !safedav_portable

package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// Without openat2 (or when it fails, as it does with EAGAIN or ENOENT while a parent is
// renamed), readProps opens the entry through os.Root: with O_NONBLOCK, or a PUT over
// a symlink to a FIFO (located by path, so its properties are read by path) would hang
// under the commit lock.
func TestReadPropsFIFO(t *testing.T) {
	root := t.TempDir()
	s := withoutOpenat2(newStore(t, root, false))
	mustDo(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	mustDo(t, os.Symlink("fifo", filepath.Join(root, "f")))
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Put(t.Context(), "/f", strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1})
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Error("PUT over a symlink to a FIFO hangs in readProps")
		fd, err := unix.Open(filepath.Join(root, "fifo"), unix.O_RDWR|unix.O_NONBLOCK, 0)
		mustDo(t, err)
		defer unix.Close(fd)
		<-done
	}
}
