package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tinyTmpfs mounts a tmpfs of size bytes on a new folder and unmounts it when the
// test ends. It skips when this is not root or the mount is refused, except under
// CI=true, where the test must run.
func tinyTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a tmpfs (root is needed): %v", err)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A keyed write is recorded before it is acknowledged: with the state folder full,
// a PUT with an Idempotency-Key is refused with 507 and creates nothing; once there
// is room, it is applied and a retry after a kill -9 replays it instead of making
// "inbox (1).txt" (issue 20).
func TestKeyedPutOnFullStateFolder(t *testing.T) {
	root := t.TempDir()
	state := tinyTmpfs(t, "256k")
	s := startServe(t, "--root", root, "--state-dir", state, "--overwrite-policy", "rename")
	fill(t, state)
	r, body := s.do(t, "PUT", "inbox.txt", "first", "Idempotency-Key", "k1")
	if r.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("PUT with a key on a full state folder answered %d, want 507:\n%s", r.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(root, "inbox.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused PUT created the file: %v", err)
	}

	os.Remove(filepath.Join(state, "filler"))
	if r, _ := s.do(t, "PUT", "inbox.txt", "first", "Idempotency-Key", "k1"); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with room answered %d", r.StatusCode)
	}
	s.kill9(t)
	s = startServe(t, "--root", root, "--state-dir", state, "--overwrite-policy", "rename")
	r, _ = s.do(t, "PUT", "inbox.txt", "first", "Idempotency-Key", "k1")
	if r.StatusCode != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after kill -9: %d replayed=%q, want a replayed 201", r.StatusCode, r.Header.Get("Idempotent-Replayed"))
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "inbox (") {
			t.Fatalf("the retry was applied again: %s", e.Name())
		}
	}
}

// A LOCK whose save fails is not granted: on a full state folder it is answered 507,
// and nobody is blocked by a lock whose token no client knows.
func TestLockOnFullStateFolder(t *testing.T) {
	root := t.TempDir()
	state := tinyTmpfs(t, "256k")
	s := startServe(t, "--root", root, "--state-dir", state)
	if r, _ := s.do(t, "PUT", "doc.txt", "v1"); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT answered %d", r.StatusCode)
	}
	fill(t, state)
	if r, body := s.do(t, "LOCK", "doc.txt", lockBody); r.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("LOCK on a full state folder answered %d, want 507:\n%s", r.StatusCode, body)
	}
	if r, _ := s.do(t, "PUT", "doc.txt", "v2"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT after the refused LOCK answered %d: the lock was kept", r.StatusCode)
	}
	os.Remove(filepath.Join(state, "filler"))
	lockDoc(t, s)
}
