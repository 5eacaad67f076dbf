//go:build !safedav_portable

package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"safedav/backend"
)

// TestFlushRound checks what an upload waits for: syncfs, then fdatasync, whose cache
// flush covers the metadata syncfs writes after its own (see groupSync), with the
// error of either step returned to the writer, except EINVAL from a filesystem that
// cannot sync a folder.
func TestFlushRound(t *testing.T) {
	tests := []struct {
		name       string
		syncErr    error
		dataErr    error
		wantCalls  []string
		wantFailed bool
	}{
		{"both", nil, nil, []string{"syncfs", "fdatasync"}, false},
		{"syncfs fails", syscall.EIO, nil, []string{"syncfs"}, true},
		{"fdatasync fails", nil, syscall.EIO, []string{"syncfs", "fdatasync"}, true},
		{"folders cannot be synced", nil, syscall.EINVAL, []string{"syncfs", "fdatasync"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, t.TempDir(), true)
			var mu sync.Mutex
			var calls []string
			record := func(name string, err error) func(int) error {
				return func(int) error {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, name)
					return err
				}
			}
			defer func(a, b func(int) error) { syncfs, fdatasync = a, b }(syncfs, fdatasync)
			syncfs, fdatasync = record("syncfs", tt.syncErr), record("fdatasync", tt.dataErr)

			_, _, err := s.Put(context.Background(), "/f", bytes.NewReader([]byte("x")), backend.Cond{}, backend.Meta{Size: 1})
			if failed := err != nil; failed != tt.wantFailed {
				t.Fatalf("Put: err %v, want failure %v", err, tt.wantFailed)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calls) == 0 || len(calls)%len(tt.wantCalls) != 0 {
				t.Fatalf("calls %v, want rounds of %v", calls, tt.wantCalls)
			}
			for i := 0; i < len(calls); i += len(tt.wantCalls) {
				if !slices.Equal(calls[i:i+len(tt.wantCalls)], tt.wantCalls) {
					t.Fatalf("calls %v, want rounds of %v", calls, tt.wantCalls)
				}
			}
		})
	}
}

// TestSyncedFolders checks which folders MKCOL and MOVE sync, in order: a new or moved
// folder before the parents whose entries point to it, since without a journal a parent's
// sync writes neither the folder's inode nor its own blocks ("." and "..").
func TestSyncedFolders(t *testing.T) {
	tests := []struct {
		name string
		op   func(s *Store) error
		want []string
	}{
		{"mkdir", func(s *Store) error {
			_, err := s.Mkdir(context.Background(), "/a/new", backend.Cond{})
			return err
		}, []string{"a/new", "a"}},
		{"move a folder to another parent", func(s *Store) error {
			_, err := s.Move(context.Background(), "/a/d", "/c/d", backend.Cond{})
			return err
		}, []string{"c/d", "c", "a"}},
		{"rename a folder in place", func(s *Store) error {
			_, err := s.Move(context.Background(), "/a/d", "/a/e", backend.Cond{})
			return err
		}, []string{"a"}},
		{"move a file", func(s *Store) error {
			_, err := s.Move(context.Background(), "/a/f", "/c/f", backend.Cond{})
			return err
		}, []string{"c", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, t.TempDir(), true)
			ctx := context.Background()
			for _, d := range []string{"/a", "/a/d", "/c"} {
				if _, err := s.Mkdir(ctx, d, backend.Cond{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := s.Put(ctx, "/a/f", bytes.NewReader(nil), backend.Cond{}, backend.Meta{Size: 0}); err != nil {
				t.Fatal(err)
			}
			var got []string
			s.synced = func(rel string) { got = append(got, rel) }
			if err := tt.op(s); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("synced %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFlushOtherFilesystem checks uploads into another filesystem mounted inside the tree:
// the shared round's syncfs covers only the root's filesystem, so they must be made
// durable by fsyncs of their own (the file, then its folder), whether the mount was there
// at start-up (staged beside the target) or came later (staged in a shard, then moved).
func TestFlushOtherFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	for _, early := range []bool{true, false} {
		t.Run(fmt.Sprintf("mounted before start-up %v", early), func(t *testing.T) {
			dir := t.TempDir()
			sub := filepath.Join(dir, "sub")
			os.MkdirAll(sub, 0o755)
			mount := func() {
				if out, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", sub).CombinedOutput(); err != nil {
					t.Skipf("mount: %v %s", err, out)
				}
				t.Cleanup(func() { exec.Command("umount", sub).Run() })
			}
			if early {
				mount()
			}
			s := newStore(t, dir, true)
			if !early {
				mount()
			}
			var mu sync.Mutex
			var rounds int
			var synced []string
			defer func(f func(int) error) { syncfs = f }(syncfs)
			real := syncfs
			syncfs = func(fd int) error {
				mu.Lock()
				rounds++
				mu.Unlock()
				return real(fd)
			}
			s.synced = func(rel string) { synced = append(synced, rel) }
			ctx := context.Background()
			if _, _, err := s.Put(ctx, "/sub/f", strings.NewReader("v1"), backend.Cond{}, backend.Meta{Size: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Create(ctx, slices.Values([]string{"/sub/f", "/sub/g"}), strings.NewReader("c"), backend.Meta{Size: 1}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(sub, "g")); string(b) != "c" {
				t.Fatalf("g = %q", b)
			}
			mu.Lock()
			defer mu.Unlock()
			// Staged in a shard first (mounted late), the data's round is the root's.
			wantRounds := 2
			if early {
				wantRounds = 0
			}
			if want := []string{"sub", "sub"}; !slices.Equal(synced, want) || rounds != wantRounds {
				t.Fatalf("folders synced %q (want %q), syncfs rounds %d (want %d)", synced, want, rounds, wantRounds)
			}
		})
	}
}
