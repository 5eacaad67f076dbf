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

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	mustDo(t, unix.Stat(path, &st))
	return st.Ino
}

// lockEmpty creates name as a LOCK of an unmapped URL does.
func lockEmpty(t *testing.T, s *Store, name string) {
	t.Helper()
	_, _, err := s.Put(t.Context(), name, strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
	mustDo(t, err)
}

// The empty file a PUT replaces is kept, and the next upload is written into it: the
// lock-then-write of davfs2 and Windows allocates one inode per file, not two.
func TestSparesReuseEmptyFile(t *testing.T) {
	root := t.TempDir()
	s, err := New(root, Options{Sync: true})
	mustDo(t, err)
	if !s.staging {
		s.Close()
		t.Skip("no staging shards")
	}
	lockEmpty(t, s, "/a")
	empty := inode(t, filepath.Join(root, "a"))
	put(t, s, "/a", "first")
	if got := readFile(t, s, "/a"); got != "first" {
		t.Fatalf("/a = %q", got)
	}
	if len(s.spares.files) != 1 {
		t.Fatalf("%d spares after replacing an empty file, want 1", len(s.spares.files))
	}
	info := put(t, s, "/b", "second")
	if got := inode(t, filepath.Join(root, "b")); got != empty {
		t.Errorf("/b has inode %d, want the replaced empty file's %d", got, empty)
	}
	if got := readFile(t, s, "/b"); got != "second" {
		t.Errorf("/b = %q", got)
	}
	if len(s.spares.files) != 0 {
		t.Errorf("%d spares after one was used, want 0", len(s.spares.files))
	}
	// A new version through a reused inode still gets a new ETag.
	lockEmpty(t, s, "/c")
	put(t, s, "/c", "x")
	again := put(t, s, "/b", "second")
	if again.ETag == info.ETag {
		t.Error("rewriting /b kept its ETag")
	}
	mustDo(t, s.Close())
	if left := tempFiles(t, root); len(left) != 0 {
		t.Errorf("temporary files left after Close: %v", left)
	}
}

// Only a clean empty file is kept: not one with content, another link or attributes
// (changed behind safedav's back between the check and the exchange, or after).
func TestSparesOnlyClean(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, root string) // after the empty file exists
		after  func(t *testing.T, f *os.File)  // on the kept file
	}{
		{name: "hard link", before: func(t *testing.T, root string) {
			mustDo(t, os.Link(filepath.Join(root, "a"), filepath.Join(root, "other")))
		}},
		{name: "attribute", before: func(t *testing.T, root string) {
			mustDo(t, unix.Setxattr(filepath.Join(root, "a"), "user.x", []byte("1"), 0))
		}},
		{name: "written after", after: func(t *testing.T, f *os.File) {
			_, err := f.Write([]byte("late"))
			mustDo(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := newStore(t, root, false)
			if !s.staging {
				t.Skip("no staging shards")
			}
			lockEmpty(t, s, "/a")
			if tc.before != nil {
				tc.before(t, root)
			}
			put(t, s, "/a", "first")
			if tc.before != nil {
				if n := len(s.spares.files); n != 0 {
					t.Fatalf("%d spares, want none", n)
				}
				return
			}
			if len(s.spares.files) != 1 {
				t.Fatalf("%d spares, want 1", len(s.spares.files))
			}
			tc.after(t, s.spares.files[0].f)
			put(t, s, "/b", "second")
			if got := readFile(t, s, "/b"); got != "second" {
				t.Errorf("/b = %q, want the upload alone", got)
			}
			if left := tempFiles(t, root); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// The empty file of a LOCK of an unmapped URL is linked from the staging shards (a
// spare when there is one): its inode is not allocated under the target folder's lock.
// An existing name fails as O_EXCL would, and the spare is kept for the next.
func TestSparesLockEmptyFile(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, false)
	if !s.staging {
		t.Skip("no staging shards")
	}
	lockEmpty(t, s, "/a")
	put(t, s, "/a", "first") // keeps /a's empty file
	if len(s.spares.files) != 1 {
		t.Fatalf("%d spares, want 1", len(s.spares.files))
	}
	spare := inode(t, filepath.Join(root, s.spares.files[0].rel))
	_, _, err := s.Put(t.Context(), "/a", strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
	if !errors.Is(err, backend.ErrPrecondition) {
		t.Fatalf("LOCK-create of an existing name: %v, want ErrPrecondition", err)
	}
	if len(s.spares.files) != 1 {
		t.Fatalf("%d spares after a refused create, want the 1 back", len(s.spares.files))
	}
	lockEmpty(t, s, "/b")
	if got := inode(t, filepath.Join(root, "b")); got != spare {
		t.Errorf("/b has inode %d, want the spare's %d", got, spare)
	}
	var st unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(root, "b"), &st))
	if st.Size != 0 || st.Nlink != 1 {
		t.Errorf("/b: size %d, %d links; want an empty file with one", st.Size, st.Nlink)
	}
	// Without a spare, a new empty file comes from a shard all the same.
	lockEmpty(t, s, "/c")
	if got := readFile(t, s, "/c"); got != "" {
		t.Errorf("/c = %q", got)
	}
	if left := tempFiles(t, root); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
