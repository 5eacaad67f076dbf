//go:build !safedav_portable

package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// lockEmpty creates name as a LOCK of an unmapped URL does.
func lockEmpty(t *testing.T, s *Store, name string) (backend.Info, error) {
	t.Helper()
	info, _, err := s.Put(t.Context(), name, strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
	return info, err
}

// The empty file of a LOCK of an unmapped URL is created in a staging shard and linked
// into place (its inode is not allocated under the target folder's lock): an empty
// file with one link and a fresh ETag, nothing left in the shards, and an existing
// name refused as O_EXCL would.
func TestLockEmptyFile(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, false)
	if !s.staging {
		t.Skip("no staging shards")
	}
	info, err := lockEmpty(t, s, "/a")
	mustDo(t, err)
	var st unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(root, "a"), &st))
	if st.Size != 0 || st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("/a: size %d, %d links, mode %o; want an empty file with one link", st.Size, st.Nlink, st.Mode)
	}
	if got, err := s.Stat(t.Context(), "/a"); err != nil || got.ETag != info.ETag {
		t.Errorf("Stat /a: %v %v; want the ETag the creation returned, %s", got.ETag, err, info.ETag)
	}
	if _, err := lockEmpty(t, s, "/a"); !errors.Is(err, backend.ErrPrecondition) {
		t.Errorf("again on /a: %v, want ErrPrecondition", err)
	}
	mustDo(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	if _, err := lockEmpty(t, s, "/dir"); !errors.Is(err, backend.ErrPrecondition) && !errors.Is(err, backend.ErrIsCollection) {
		t.Errorf("on a folder: %v, want a refusal", err)
	}
	if _, err := lockEmpty(t, s, "/missing/x"); err == nil {
		t.Error("in a missing folder: no error")
	}
	put(t, s, "/a", "content")
	b, err := lockEmpty(t, s, "/b")
	mustDo(t, err)
	if b.ETag == info.ETag {
		t.Error("two empty files share an ETag")
	}
	if left := tempFiles(t, root); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
