//go:build !safedav_portable

package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// cachingStore is a store that watches every folder it lists, whatever its size, on a
// clock the test moves.
func cachingStore(t *testing.T, dir string) (*Store, *time.Time) {
	t.Helper()
	s := newStore(t, dir, false)
	now := time.Unix(1_800_000_000, 0)
	s.lists.min = 1
	s.lists.now = func() time.Time { return now }
	return s, &now
}

// watchedFolder is a caching store whose folder /d (members a, b and c) has been
// listed once, so it is watched and its next listing is kept.
func watchedFolder(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	for _, n := range []string{"a", "b", "c"} {
		put(t, s, "/d/"+n, n)
	}
	listAll(t, s, "/d")
	return s, root
}

type listed struct {
	info  backend.Info
	props []backend.Prop
}

// listAll is ListProps of dir, sorted by name.
func listAll(t *testing.T, s *Store, dir string) []listed {
	t.Helper()
	var out []listed
	err := s.ListProps(t.Context(), dir, func(in backend.Info, p []backend.Prop) error {
		out = append(out, listed{in, p})
		return nil
	})
	if err != nil {
		t.Fatalf("ListProps(%s): %v", dir, err)
	}
	slices.SortFunc(out, func(a, b listed) int { return strings.Compare(a.info.Name, b.info.Name) })
	return out
}

// truth lists dir from the disk through a store without a cache.
func truth(t *testing.T, root, dir string) []listed {
	t.Helper()
	s, err := New(root, Options{ListCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return listAll(t, s, dir)
}

// TestListCacheChanges keeps a folder's listing, changes the folder or a member in one
// way, and checks that the next listing is what the disk says, not what was kept.
func TestListCacheChanges(t *testing.T) {
	prop := backend.Prop{Name: xmlName("p"), InnerXML: []byte("v")}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *Store, root string)
	}{
		{"write in place", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "d/a.txt"), []byte("longer content"), 0o644))
		}},
		{"same size rewritten", func(t *testing.T, s *Store, root string) {
			f, err := os.OpenFile(filepath.Join(root, "d/a.txt"), os.O_WRONLY, 0)
			mustDo(t, err)
			_, err = f.WriteAt([]byte("A"), 0)
			mustDo(t, err)
			mustDo(t, f.Close())
		}},
		{"truncate", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Truncate(filepath.Join(root, "d/a.txt"), 1))
		}},
		{"chmod", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "d/a.txt"), 0o600))
		}},
		{"touch", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Chtimes(filepath.Join(root, "d/a.txt"), time.Time{}, time.Unix(1e9, 0)))
		}},
		{"foreign attribute", func(t *testing.T, s *Store, root string) {
			mustDo(t, unix.Setxattr(filepath.Join(root, "d/a.txt"), "user.other", []byte("x"), 0))
		}},
		{"create", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "d/new.txt"), []byte("n"), 0o644))
		}},
		{"remove", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "d/b.txt")))
		}},
		{"rename within", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Rename(filepath.Join(root, "d/b.txt"), filepath.Join(root, "d/e.txt")))
		}},
		{"rename out", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Rename(filepath.Join(root, "d/b.txt"), filepath.Join(root, "other/b.txt")))
		}},
		{"inside a subfolder", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "d/sub/x"), nil, 0o644))
		}},
		{"symlink's target", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "other/target.txt"), []byte("changed target"), 0o644))
		}},
		{"folder replaced", func(t *testing.T, s *Store, root string) {
			mustDo(t, os.Rename(filepath.Join(root, "d"), filepath.Join(root, "d.old")))
			mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
				mustDo(t, os.WriteFile(filepath.Join(root, "d", n), []byte("other"), 0o644))
			}
		}},
		{"store put", func(t *testing.T, s *Store, root string) { put(t, s, "/d/a.txt", "via the store") }},
		{"store put create-only", func(t *testing.T, s *Store, root string) {
			_, _, err := s.Put(t.Context(), "/d/f.txt", strings.NewReader("x"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 1})
			mustDo(t, err)
		}},
		{"store props", func(t *testing.T, s *Store, root string) {
			mustDo(t, s.PatchProps(t.Context(), "/d/c.txt", backend.Cond{}, []backend.PropPatch{{Prop: prop}}))
		}},
		{"store props removed", func(t *testing.T, s *Store, root string) {
			mustDo(t, s.PatchProps(t.Context(), "/d/b.txt", backend.Cond{}, []backend.PropPatch{{Remove: true, Prop: prop}}))
		}},
		{"store remove", func(t *testing.T, s *Store, root string) {
			mustDo(t, s.Remove(t.Context(), "/d/b.txt", backend.Cond{}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s, _ := cachingStore(t, root)
			mustDo(t, os.MkdirAll(filepath.Join(root, "d/sub"), 0o755))
			mustDo(t, os.MkdirAll(filepath.Join(root, "other"), 0o755))
			mustDo(t, os.WriteFile(filepath.Join(root, "other/target.txt"), []byte("t"), 0o644))
			mustDo(t, os.Symlink("../other/target.txt", filepath.Join(root, "d/link.txt")))
			for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
				put(t, s, "/d/"+n, n)
			}
			mustDo(t, s.PatchProps(t.Context(), "/d/b.txt", backend.Cond{}, []backend.PropPatch{{Prop: prop}}))

			listAll(t, s, "/d") // watches the folder
			before := listAll(t, s, "/d")
			if s.lists.kept.Load() != 1 {
				t.Fatalf("listing kept %d times, want 1", s.lists.kept.Load())
			}
			if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, before) || s.lists.hits.Load() != 1 {
				t.Fatalf("second listing: %d hits, same=%v; want 1 hit and the same listing", s.lists.hits.Load(), reflect.DeepEqual(got, before))
			}
			tc.change(t, s, root)
			want := truth(t, root, "/d")
			if reflect.DeepEqual(want, before) {
				t.Fatal("the change changed nothing the listing shows")
			}
			if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
				t.Errorf("after the change:\n got  %v\n want %v", got, want)
			}
			// And the new state is kept and served in turn.
			listAll(t, s, "/d")
			if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
				t.Errorf("kept again:\n got  %v\n want %v", got, want)
			}
		})
	}
}

// A change inotify does not report to the folder is served stale for at most listTTL:
// a hard link made elsewhere, or inode flags set (chattr, FS_IOC_SETFLAGS), each of
// which moves the member's ctime, so its ETag.
func TestListCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, root string) // skips where the filesystem cannot
	}{
		{"hard link elsewhere", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(filepath.Join(root, "other"), 0o755))
			mustDo(t, os.Link(filepath.Join(root, "d/a.txt"), filepath.Join(root, "other/a.txt")))
		}},
		{"inode flags", func(t *testing.T, root string) {
			fd, err := unix.Open(filepath.Join(root, "d/a.txt"), unix.O_RDONLY, 0)
			mustDo(t, err)
			defer unix.Close(fd)
			flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
			if err == nil {
				err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|0x80)) // FS_NOATIME_FL: chattr +A
			}
			if err != nil {
				t.Skipf("no inode flags here: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s, now := cachingStore(t, root)
			mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			put(t, s, "/d/a.txt", "a")
			listAll(t, s, "/d")
			before := listAll(t, s, "/d")
			tc.change(t, root)
			want := truth(t, root, "/d")
			if reflect.DeepEqual(want, before) {
				t.Fatal("the change did not change the ETag: the test tests nothing")
			}
			*now = now.Add(listTTL - time.Millisecond)
			if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, before) {
				t.Log("a change inotify does not report was seen before listTTL (harmless)")
			}
			*now = now.Add(time.Millisecond)
			if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
				t.Errorf("after listTTL:\n got  %v\n want %v", got, want)
			}
		})
	}
}

// A create-only commit (and the empty file of a LOCK) links the staged file, then
// unlinks the staged name, which moves the new member's ctime without telling the
// folder's watch. A listing read in between must not be served afterwards: the member
// has two links then, so it is described again on every use, and the commit forgets
// the listing besides.
func TestListCacheCreateOnlyCommit(t *testing.T) {
	for _, how := range []string{"put", "create", "lock"} {
		t.Run(how, func(t *testing.T) {
			root := t.TempDir()
			s, _ := cachingStore(t, root)
			if !s.staging {
				t.Fatal("no staging folder: the unlink would change the folder itself")
			}
			mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			put(t, s, "/d/a.txt", "a")
			listAll(t, s, "/d")
			s.afterLink = func() {
				listAll(t, s, "/d")
				listAll(t, s, "/d")
				time.Sleep(10 * time.Millisecond) // past the clock tick of the link's ctime
			}
			var info backend.Info
			var err error
			switch how {
			case "create":
				info, err = s.Create(t.Context(), slices.Values([]string{"/d/a.txt", "/d/b.txt"}), strings.NewReader("b"), backend.Meta{Size: 1})
			case "put":
				info, _, err = s.Put(t.Context(), "/d/b.txt", strings.NewReader("b"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 1})
			case "lock": // the empty file of a LOCK of an unmapped URL, linked from a shard
				info, _, err = s.Put(t.Context(), "/d/b.txt", strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
			}
			mustDo(t, err)
			s.afterLink = nil
			if s.lists.kept.Load() == 0 {
				t.Fatal("no listing was kept between the link and the unlink: the test tests nothing")
			}
			for _, l := range listAll(t, s, "/d") {
				if l.info.Name == "/d/b.txt" && l.info.ETag != info.ETag {
					t.Errorf("listing has ETag %s for /d/b.txt, the commit returned %s", l.info.ETag, info.ETag)
				}
			}
		})
	}
}

// A member rewritten in place over and over while the folder is listed: no listing
// kept meanwhile may outlive the writes.
func TestListCacheConcurrentWrites(t *testing.T) {
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	for i := range 50 {
		put(t, s, fmt.Sprintf("/d/m%02d", i), "x")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.WriteFile(filepath.Join(root, "d/m07"), []byte(strings.Repeat("y", i%9)), 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 200 {
		listAll(t, s, "/d")
	}
	close(stop)
	wg.Wait()
	want := truth(t, root, "/d")
	for range 3 {
		if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
			t.Fatalf("after the writes stopped:\n got  %v\n want %v", got, want)
		}
	}
}

// The cache holds at most maxMembers members, dropping the least recently used
// listing first, and never keeps a listing larger than that.
func TestListCacheBounds(t *testing.T) {
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	s.lists.maxMembers = 5
	for _, d := range []string{"a", "b", "big"} {
		mustDo(t, os.Mkdir(filepath.Join(root, d), 0o755))
	}
	for _, d := range []string{"a", "b"} {
		for i := range 3 {
			put(t, s, fmt.Sprintf("/%s/m%d", d, i), "x")
		}
	}
	for i := range 6 {
		put(t, s, fmt.Sprintf("/big/m%d", i), "x")
	}
	for _, d := range []string{"/a", "/a", "/b", "/b", "/big", "/big"} {
		listAll(t, s, d)
	}
	if s.lists.members > s.lists.maxMembers {
		t.Errorf("cache holds %d members, limit %d", s.lists.members, s.lists.maxMembers)
	}
	if k := s.lists.kept.Load(); k != 2 {
		t.Errorf("kept %d listings, want 2 (/a and /b, not /big)", k)
	}
	var held []string
	for _, w := range s.lists.byWd {
		if w.list != nil {
			held = append(held, w.list.name)
		}
	}
	if !reflect.DeepEqual(held, []string{"/b"}) {
		t.Errorf("listings held: %v, want [/b] (the most recently used that fits)", held)
	}
	// Watches are bounded too.
	for i := range maxWatches + 5 {
		mustDo(t, os.Mkdir(filepath.Join(root, fmt.Sprintf("w%03d", i)), 0o755))
		listAll(t, s, fmt.Sprintf("/w%03d", i))
	}
	if n := len(s.lists.byWd); n > maxWatches {
		t.Errorf("%d watches, limit %d", n, maxWatches)
	}
}

// event encodes one inotify event as the kernel queues it.
func event(wd int32, mask uint32, name string) []byte {
	b := make([]byte, unix.SizeofInotifyEvent+len(name))
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(len(name)))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestListCacheEvents(t *testing.T) {
	newCache := func() (*listCache, []*dirWatch) {
		c := newListCache(100)
		var ws []*dirWatch
		for i := range 3 {
			w := &dirWatch{wd: int32(i + 1), key: dirKey{1, uint64(i + 10)}, list: &listing{files: make([]file, 2)}}
			c.byWd[w.wd], c.byDir[w.key] = w, w
			c.members += 2
			ws = append(ws, w)
		}
		return c, ws
	}
	for _, tc := range []struct {
		name    string
		events  [][]byte
		dropped []bool // per watch
		removed []bool
	}{
		{"member modified", [][]byte{event(2, unix.IN_MODIFY, "a.txt\x00\x00\x00")}, []bool{false, true, false}, []bool{false, false, false}},
		{"attributes", [][]byte{event(1, unix.IN_ATTRIB, "")}, []bool{true, false, false}, []bool{false, false, false}},
		{"unknown watch", [][]byte{event(9, unix.IN_CREATE, "x")}, []bool{false, false, false}, []bool{false, false, false}},
		{"watch gone", [][]byte{event(3, unix.IN_DELETE_SELF, ""), event(3, unix.IN_IGNORED, "")}, []bool{false, false, true}, []bool{false, false, true}},
		{"queue overflow", [][]byte{event(-1, unix.IN_Q_OVERFLOW, "")}, []bool{true, true, true}, []bool{true, true, true}},
		{"truncated buffer", [][]byte{event(1, unix.IN_CREATE, "name")[:unix.SizeofInotifyEvent+2]}, []bool{true, false, false}, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ws := newCache()
			c.handle(slices.Concat(tc.events...))
			members := 0
			for i, w := range ws {
				if (w.list == nil) != tc.dropped[i] || w.removed != tc.removed[i] {
					t.Errorf("watch %d: dropped %v removed %v; want %v %v", w.wd, w.list == nil, w.removed, tc.dropped[i], tc.removed[i])
				}
				if w.list != nil {
					members += w.list.size()
				}
				if _, ok := c.byWd[w.wd]; ok == w.removed {
					t.Errorf("watch %d: in the map %v, removed %v", w.wd, ok, w.removed)
				}
			}
			if members != c.members {
				t.Errorf("members counted %d, held %d", c.members, members)
			}
		})
	}
}

// The cache is used at all: a large folder listed again is not read again.
func TestListCacheDefault(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, false)
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	for i := range listMin {
		mustDo(t, os.WriteFile(filepath.Join(root, "d", fmt.Sprintf("m%04d", i)), nil, 0o644))
	}
	for range 3 {
		n := 0
		mustDo(t, s.List(context.Background(), "/d", func(backend.Info) error { n++; return nil }))
		if n != listMin {
			t.Fatalf("listed %d, want %d", n, listMin)
		}
	}
	if s.lists.kept.Load() != 1 || s.lists.hits.Load() != 1 {
		t.Errorf("kept %d, hits %d; want 1 and 1", s.lists.kept.Load(), s.lists.hits.Load())
	}
	off, err := New(t.TempDir(), Options{ListCache: -1})
	mustDo(t, err)
	defer off.Close()
	if off.lists != nil {
		t.Error("ListCache: -1 did not turn the cache off")
	}
}

// A member changed while the folder is being read: that listing is not kept.
func TestListCacheChangeDuringListing(t *testing.T) {
	s, root := watchedFolder(t)
	changed := false
	err := s.ListProps(t.Context(), "/d", func(backend.Info, []backend.Prop) error {
		if !changed { // every member is stat'ed by now: they are read in one batch
			changed = true
			return os.WriteFile(filepath.Join(root, "d/b"), []byte("changed meanwhile"), 0o644)
		}
		return nil
	})
	mustDo(t, err)
	want := truth(t, root, "/d")
	if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
		t.Errorf("after a change during the listing:\n got  %v\n want %v", got, want)
	}
}

func TestListCacheFilesystems(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  uint32
		want bool
	}{
		{"ext4", unix.EXT4_SUPER_MAGIC, true},
		{"xfs", unix.XFS_SUPER_MAGIC, true},
		{"btrfs", unix.BTRFS_SUPER_MAGIC, true},
		{"tmpfs", unix.TMPFS_MAGIC, true},
		{"nfs", unix.NFS_SUPER_MAGIC, false},
		{"cifs", unix.CIFS_SUPER_MAGIC, false},
		{"smb2", unix.SMB2_SUPER_MAGIC, false},
		{"fuse", unix.FUSE_SUPER_MAGIC, false},
		{"ceph", unix.CEPH_SUPER_MAGIC, false},
		{"9p", unix.V9FS_MAGIC, false},
	} {
		if got := reportsAll(tc.typ); got != tc.want {
			t.Errorf("%s: reportsAll %v, want %v", tc.name, got, tc.want)
		}
	}
}

// listTTL counts from when the members were read, not from when the listing ended: a
// slow client reading a large PROPFIND keeps the fill open for as long as it likes.
func TestListCacheTTLCountsFromRead(t *testing.T) {
	root := t.TempDir()
	s, now := cachingStore(t, root)
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(root, "other"), 0o755))
	put(t, s, "/d/a.txt", "a")
	put(t, s, "/d/b.txt", "b")
	listAll(t, s, "/d") // watches the folder
	var changed time.Time
	first := true
	err := s.ListProps(t.Context(), "/d", func(backend.Info, []backend.Prop) error {
		if first { // every member is stat'ed by now: they are read in one batch
			first = false
			// A change inotify does not report to the folder (as TestListCacheTTL).
			mustDo(t, os.Link(filepath.Join(root, "d/a.txt"), filepath.Join(root, "other/a.txt")))
			changed = *now
			*now = now.Add(listTTL - time.Millisecond) // the client reads slowly
		}
		return nil
	})
	mustDo(t, err)
	if s.lists.kept.Load() != 1 {
		t.Fatalf("kept %d listings, want 1: the test tests nothing", s.lists.kept.Load())
	}
	want := truth(t, root, "/d")
	*now = changed.Add(listTTL)
	if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
		t.Errorf("listTTL after the change, the listing is still stale:\n got  %v\n want %v", got, want)
	}
}

// A create-only commit forgets the listing of the folder it linked into, found by the
// descriptor it linked through, not by its path: a MOVE of the folder (another request:
// the commit locks only the member's name) between the link and the unlink of the
// staged name must not leave a listing kept under the new name with the new member's
// pre-unlink ctime.
func TestListCacheCreateOnlyParentMoved(t *testing.T) {
	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			root := t.TempDir()
			s, _ := cachingStore(t, root)
			if !s.staging {
				t.Skip("no staging folder")
			}
			mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			put(t, s, "/d/a.txt", "a")
			listAll(t, s, "/d") // watches the folder
			var during []listed
			s.afterLink = func() {
				if _, err := s.Move(t.Context(), "/d", "/e", backend.Cond{}); err != nil {
					t.Error(err)
				}
				listAll(t, s, "/e")
				during = listAll(t, s, "/e")
				time.Sleep(20 * time.Millisecond) // let the unlink's ctime differ
			}
			var info backend.Info
			var err error
			if create {
				info, err = s.Create(t.Context(), slices.Values([]string{"/d/b.txt"}), strings.NewReader("b"), backend.Meta{Size: 1})
			} else {
				info, _, err = s.Put(t.Context(), "/d/b.txt", strings.NewReader("b"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 1})
			}
			mustDo(t, err)
			s.afterLink = nil
			want := truth(t, root, "/e")
			if reflect.DeepEqual(want, during) {
				t.Fatal("the unlink changed nothing the listing shows: the test tests nothing")
			}
			got := listAll(t, s, "/e")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after the commit (it returned ETag %s):\n got  %v\n want %v", info.ETag, got, want)
			}
		})
	}
}

// An IN_Q_OVERFLOW means events were lost, IN_IGNORED among them: the kernel queues
// the IN_IGNORED of a removed folder's watch like any event, and drops it when the
// queue is full. A watch kept after that could have no kernel watch behind it, and a
// new folder reusing the inode number (ext4 does at once) would be kept unwatched; so
// an overflow drops every watch.
func TestListCacheOverflowLosesWatch(t *testing.T) {
	data, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip(err)
	}
	var maxEvents int
	if _, err := fmt.Sscan(string(data), &maxEvents); err != nil || maxEvents > 1<<20 {
		t.Skipf("max_queued_events %q", data)
	}
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	for _, d := range []string{"p/a", "p/noise"} {
		mustDo(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	put(t, s, "/p/a/f.txt", "a")
	put(t, s, "/p/noise/x", "x")
	put(t, s, "/p/noise/y", "y")
	listAll(t, s, "/p/a")
	listAll(t, s, "/p/noise")
	var st unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(root, "p/a"), &st))
	oldIno := st.Ino

	// Fill the queue (alternating members, so that no event merges with the last).
	for i := range maxEvents + 16 {
		n := []string{"x", "y"}[i%2]
		mustDo(t, os.Chmod(filepath.Join(root, "p/noise", n), os.FileMode(0o600+i%2*0o44)))
	}
	// Its IN_DELETE_SELF and IN_IGNORED are lost.
	mustDo(t, os.RemoveAll(filepath.Join(root, "p/a")))
	// New folders until one gets a's inode number (on ext4, at once or nearly).
	for i := 0; ; i++ {
		if i == 50 {
			t.Skipf("the inode number %d was not reused", oldIno)
		}
		mustDo(t, os.Mkdir(filepath.Join(root, "p/b"), 0o755))
		mustDo(t, unix.Stat(filepath.Join(root, "p/b"), &st))
		if st.Ino == oldIno {
			break
		}
		mustDo(t, os.Rename(filepath.Join(root, "p/b"), filepath.Join(root, fmt.Sprintf("p/b%d", i))))
	}
	put(t, s, "/p/b/f.txt", "b")
	// The first listing reads the overflow; the second watches /p/b, the third keeps it.
	listAll(t, s, "/p/b")
	listAll(t, s, "/p/b")
	listAll(t, s, "/p/b")
	if s.lists.kept.Load() == 0 {
		t.Fatal("no listing kept: the test tests nothing")
	}
	mustDo(t, os.WriteFile(filepath.Join(root, "p/b/f.txt"), []byte("written in place"), 0o644))
	want := truth(t, root, "/p/b")
	if got := listAll(t, s, "/p/b"); !reflect.DeepEqual(got, want) {
		t.Errorf("a member written in place is not seen:\n got  %v\n want %v", got, want)
	}
}

// A listing that will not be kept (larger than the cache) must not be collected whole
// in memory meanwhile: without the cache a listing streams in constant memory, and
// PROPFIND answers up to MaxPropfindEntries (100,000) members.
func TestListCacheFillMemory(t *testing.T) {
	const n = 3000
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	s.lists.maxMembers = 100
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	for i := range n {
		mustDo(t, os.WriteFile(filepath.Join(root, "d", fmt.Sprintf("member-%05d", i)), nil, 0o644))
	}
	off, err := New(root, Options{ListCache: -1})
	mustDo(t, err)
	defer off.Close()
	listAll(t, s, "/d") // watches the folder: later listings are fills
	alloc := func(st *Store) uint64 {
		best := ^uint64(0)
		for range 3 {
			var a, b runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&a)
			mustDo(t, st.List(t.Context(), "/d", func(backend.Info) error { return nil }))
			runtime.ReadMemStats(&b)
			best = min(best, b.TotalAlloc-a.TotalAlloc)
		}
		return best
	}
	// One CPU: the folder is read without workers, whose batches are allocated or
	// reused as the scheduler happens to run them.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cold, fill := alloc(off), alloc(s)
	if s.lists.kept.Load() != 0 {
		t.Fatal("a listing larger than the cache was kept")
	}
	if extra := (int64(fill) - int64(cold)) / n; extra > 32 {
		t.Errorf("a listing that cannot be kept allocates %d bytes a member more than one without the cache (%d vs %d bytes for %d members)", extra, fill, cold, n)
	}
}

// More filesystems whose changes inotify does not all see: cluster filesystems (other
// nodes write the same disk), the in-kernel AFS client (whose magic is AFS_FS_MAGIC,
// not OpenAFS's AFS_SUPER_MAGIC), and host shares.
func TestListCacheMoreFilesystems(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  uint32
	}{
		{"kafs", unix.AFS_FS_MAGIC},
		{"gfs2", 0x01161970},
		{"ocfs2", unix.OCFS2_SUPER_MAGIC},
		{"lustre", 0x0bd00bd0},
		{"orangefs", 0x20030528},
		{"coda", unix.CODA_SUPER_MAGIC},
		{"ncp", unix.NCP_SUPER_MAGIC},
		{"vboxsf", 0x786f4256},
	} {
		if reportsAll(tc.typ) {
			t.Errorf("%s (%#x): reportsAll true; its changes made elsewhere are not reported", tc.name, tc.typ)
		}
	}
}

// A member with more than one hard link is described again on every use: a change
// through another link is reported to that link's folder only.
func TestListCacheHardLinkedMember(t *testing.T) {
	root := t.TempDir()
	s, _ := cachingStore(t, root)
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(root, "other"), 0o755))
	put(t, s, "/d/a.txt", "a")
	put(t, s, "/d/b.txt", "b")
	mustDo(t, os.Link(filepath.Join(root, "d/a.txt"), filepath.Join(root, "other/a.txt")))
	listAll(t, s, "/d")
	listAll(t, s, "/d")
	if s.lists.kept.Load() != 1 {
		t.Fatalf("kept %d listings, want 1", s.lists.kept.Load())
	}
	mustDo(t, os.WriteFile(filepath.Join(root, "other/a.txt"), []byte("through the other link"), 0o644))
	want := truth(t, root, "/d")
	if got := listAll(t, s, "/d"); !reflect.DeepEqual(got, want) {
		t.Errorf("a write through another hard link is not seen:\n got  %v\n want %v", got, want)
	}
	if s.lists.hits.Load() != 1 {
		t.Errorf("%d hits, want 1: the listing was not served from memory", s.lists.hits.Load())
	}
}

// One listing of a folder at a time collects its members (a second one streams as
// without the cache), and a listing that fails lets the next one collect.
func TestListCacheOneFill(t *testing.T) {
	s, _ := watchedFolder(t)
	stop := errors.New("stop")
	err := s.List(t.Context(), "/d", func(backend.Info) error {
		// A second listing while the first collects: not kept.
		listAll(t, s, "/d")
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List: %v, want the callback's error", err)
	}
	if k := s.lists.kept.Load(); k != 0 {
		t.Fatalf("kept %d listings while another was collecting, want 0", k)
	}
	listAll(t, s, "/d")
	if k := s.lists.kept.Load(); k != 1 {
		t.Errorf("after a failed listing, the next one kept %d, want 1", k)
	}
}
