//go:build linux && !safedav_portable

package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"safedav/backend"
	"safedav/backend/backendtest"
)

func TestConformance(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backend.Backend { return newStore(t, t.TempDir(), sync) })
		})
	}
	// Every listing kept and served again while the folder stays the same.
	t.Run("list-cache", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend {
			s := newStore(t, t.TempDir(), false)
			s.lists.min = 1
			return s
		})
	})
	// The os.Root paths that kernels without openat2 take.
	t.Run("no-openat2", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend { return withoutOpenat2(newStore(t, t.TempDir(), false)) })
	})
}

// withoutOpenat2 makes s behave as on a kernel without openat2(2).
func withoutOpenat2(s *Store) *Store {
	s.noOpenat2.Store(true)
	return s
}

func TestMountinfoPaths(t *testing.T) {
	for _, tc := range []struct {
		p, dir string
		want   bool
	}{
		{"/srv/data/sub", "/srv/data", true},
		{"/srv/data", "/srv/data", false},
		{"/srv/database", "/srv/data", false},
		{"/srv", "/srv/data", false},
		{"/anything", "/", true},
		{"/", "/", false},
	} {
		if got := within(tc.p, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v, want %v", tc.p, tc.dir, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		`/mnt/my\040disk`: "/mnt/my disk",
		`/plain`:          "/plain",
		`/tab\011x`:       "/tab\tx",
		`/trailing\04`:    `/trailing\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
	if dir := t.TempDir(); !nestedMounts("/") || nestedMounts(dir) {
		t.Errorf("nestedMounts: / has none inside it, or a fresh temp folder has some")
	}
}

// TestConfinement checks that symlinks leading out of the tree are never followed,
// whether relative or absolute, to a directory or to a file.
func TestConfinement(t *testing.T) {
	for _, noOpenat2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-openat2=%v", noOpenat2), func(t *testing.T) {
			testConfinement(t, func(s *Store) { s.noOpenat2.Store(noOpenat2) })
		})
	}
}

// TestFailedPutCleansUp checks every failure path of Put: no temporary file is left
// and the old content is intact.
func TestFailedPutCleansUp(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, true)
	before := put(t, s, "/f", "old")
	big := strings.Repeat("z", 1<<20)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		body io.Reader
		cond backend.Cond
		meta backend.Meta
		hook func() error
		want error
	}{
		{"body_error", t.Context(), io.MultiReader(strings.NewReader(big), iotestErr{}), backend.Cond{}, backend.Meta{Size: -1}, nil, errIO},
		{"short_body", t.Context(), strings.NewReader(big), backend.Cond{}, backend.Meta{Size: 2 << 20}, nil, backend.ErrShortBody},
		{"long_body", t.Context(), strings.NewReader(big), backend.Cond{}, backend.Meta{Size: 10}, nil, backend.ErrShortBody},
		{"cancelled", cancelled, strings.NewReader(big), backend.Cond{}, backend.Meta{Size: -1}, nil, context.Canceled},
		{"no_space", t.Context(), strings.NewReader(big), backend.Cond{}, backend.Meta{Size: -1},
			func() error { return &fs.PathError{Op: "write", Path: dir + "/x", Err: syscall.ENOSPC} }, backend.ErrNoSpace},
		{"quota", t.Context(), strings.NewReader(big), backend.Cond{}, backend.Meta{Size: -1},
			func() error { return syscall.EDQUOT }, backend.ErrNoSpace},
		{"precondition", t.Context(), strings.NewReader(big), backend.Cond{IfMatch: `"other"`}, backend.Meta{Size: -1}, nil, backend.ErrPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.failWrite = tc.hook
			defer func() { s.failWrite = nil }()
			fds := openFds()
			_, _, err := s.Put(tc.ctx, "/f", tc.body, tc.cond, tc.meta)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			// The staged file is closed, not left to the garbage collector with its
			// disk space (a failing return of stage zeroes its named results).
			if got := openFds(); got != fds {
				t.Errorf("%d open descriptors after the failure, %d before", got, fds)
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("error %q reveals the host path", err)
			}
			if left := tempFiles(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %q", left)
			}
			info, err := s.Stat(t.Context(), "/f")
			if err != nil || info != before {
				t.Errorf("after failure Stat = %+v, %v; want %+v", info, err, before)
			}
			if got := readFile(t, s, "/f"); got != "old" {
				t.Errorf("content %q", got)
			}
		})
	}
}

// openFds counts the process's open descriptors.
func openFds() int {
	e, _ := os.ReadDir("/proc/self/fd")
	return len(e)
}

// TestNFD checks that names stored in NFD by another tool are found by their NFC name.
func TestNFD(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	ctx := t.Context()
	nfdDir, nfcDir := "re\u0301sume\u0301", "r\u00e9sum\u00e9"
	nfdFile, nfcFile := "cafe\u0301.txt", "caf\u00e9.txt"
	if err := os.Mkdir(filepath.Join(dir, nfdDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{nfdFile, filepath.Join(nfdDir, nfdFile)} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("nfd"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"/" + nfcFile, "/" + nfcDir + "/" + nfcFile} {
		info, err := s.Stat(ctx, name)
		if err != nil || info.Name != name {
			t.Fatalf("Stat(%q) = %+v, %v", name, info, err)
		}
		if got := readFile(t, s, name); got != "nfd" {
			t.Errorf("Open(%q) = %q", name, got)
		}
	}
	var listed []string
	if err := s.List(ctx, "/"+nfcDir, func(in backend.Info) error { listed = append(listed, in.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/" + nfcDir + "/" + nfcFile}; !slices.Equal(listed, want) {
		t.Errorf("List = %q, want %q", listed, want)
	}

	// Replacing keeps the one entry on disk; creating beside it goes into the NFD dir.
	if _, created, err := s.Put(ctx, "/"+nfcFile, strings.NewReader("new"), backend.Cond{IfMatch: "*"}, backend.Meta{Size: 3}); err != nil || created {
		t.Fatalf("Put replace = %v, %v", created, err)
	}
	put(t, s, "/"+nfcDir+"/other", "o")
	entries, _ := os.ReadDir(dir)
	var disk []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), backend.ReservedPrefix) { // the store's own staging folder
			disk = append(disk, e.Name())
		}
	}
	slices.Sort(disk)
	if want := []string{nfdFile, nfdDir}; !slices.Equal(disk, want) {
		t.Errorf("on disk: %q, want %q", disk, want)
	}
	if got := readFile(t, s, "/"+nfcFile); got != "new" {
		t.Errorf("content %q", got)
	}
	if _, err := s.Copy(ctx, "/"+nfcDir, "/copy", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s, "/copy/"+nfcFile); got != "nfd" {
		t.Errorf("copied content %q", got)
	}
	if _, err := s.Move(ctx, "/"+nfcFile, "/moved", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "/"+nfcDir, backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, nfdDir)); !os.IsNotExist(err) {
		t.Errorf("NFD directory still there: %v", err)
	}
}

// TestReservedNames checks that reserved entries on disk, ours or not, are hidden from
// listings and refused by name (backendtest checks the refusal for every operation).
func TestReservedNames(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	ctx := t.Context()
	for _, n := range []string{".safedav2", ".safedav-tmp-x", ".safedav-locks"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".safedavmeta"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"/.safedav", "/.safedav2", "/.safedav-locks", "/.safedavmeta", "/.safedavmeta/x"} {
		if _, err := s.Stat(ctx, n); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("Stat(%s) = %v", n, err)
		}
		if _, _, err := s.Put(ctx, n, strings.NewReader("y"), backend.Cond{}, backend.Meta{Size: 1}); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("Put(%s) = %v", n, err)
		}
		if err := s.Remove(ctx, n, backend.Cond{}); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("Remove(%s) = %v", n, err)
		}
	}
	n := 0
	s.List(ctx, "/", func(backend.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("List(/) shows %d reserved entries", n)
	}
	if data, err := os.ReadFile(filepath.Join(dir, ".safedav2")); err != nil || string(data) != "x" {
		t.Errorf("reserved file changed: %q, %v", data, err)
	}
}

// TestPropsOnDisk checks the storage of dead properties: one attribute, and ErrNoSpace
// when the filesystem cannot hold it.
func TestPropsOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	put(t, s, "/f", "x")
	p := backend.Prop{Name: xmlName("a"), InnerXML: []byte("<b>1</b>")}
	q := backend.Prop{Name: xmlName("b"), Lang: "en", InnerXML: []byte("2")}
	if err := s.PatchProps(t.Context(), "/f", backend.Cond{}, []backend.PropPatch{{Prop: p}, {Prop: q}}); err != nil {
		t.Fatal(err)
	}
	sz, err := unix.Listxattr(filepath.Join(dir, "f"), make([]byte, 1024))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, sz)
	unix.Listxattr(filepath.Join(dir, "f"), buf)
	if got := strings.Trim(string(buf), "\x00"); got != propsAttr {
		t.Errorf("attributes on disk: %q, want only %s", got, propsAttr)
	}
	// ext4 keeps attributes in one block: 60 KiB does not fit (64 KiB+ never does).
	for _, size := range []int{60 << 10, 70 << 10} {
		huge := backend.Prop{Name: xmlName("huge"), InnerXML: []byte(strings.Repeat("h", size))}
		err = s.PatchProps(t.Context(), "/f", backend.Cond{}, []backend.PropPatch{{Remove: true, Prop: p}, {Prop: huge}})
		if err == nil {
			t.Logf("filesystem accepted a %d-byte attribute", size)
			continue
		}
		if !errors.Is(err, backend.ErrNoSpace) {
			t.Fatalf("huge property: %v, want ErrNoSpace", err)
		}
		got, _ := s.Props(t.Context(), "/f")
		if len(got) != 2 {
			t.Errorf("after a failed patch: %d props, want the 2 before", len(got))
		}
	}
	// A corrupt attribute is an error, not an empty set.
	if err := unix.Setxattr(filepath.Join(dir, "f"), propsAttr, []byte{9, 9}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Props(t.Context(), "/f"); err == nil {
		t.Error("corrupt attribute read without error")
	}
}

func TestNewFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := New(f, Options{}); err == nil {
		t.Error("New on a file succeeded")
	}
}

func BenchmarkPutSmall(b *testing.B) {
	body := strings.Repeat("x", 4<<10)
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s := newStore(b, b.TempDir(), sync)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			i := 0
			for b.Loop() {
				name := fmt.Sprintf("/f%d", i%100)
				i++
				if _, _, err := s.Put(ctx, name, strings.NewReader(body), backend.Cond{}, backend.Meta{Size: int64(len(body))}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkList lists a folder of 10,000 files from the disk (cold) and from the
// listing cache (kept).
func BenchmarkList(b *testing.B) {
	dir := b.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		if err := os.WriteFile(filepath.Join(dir, "d", fmt.Sprintf("file-%05d.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cold", -1}, {"kept", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := New(dir, Options{ListCache: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := s.List(ctx, "/d", func(backend.Info) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
				if n != 10_000 {
					b.Fatalf("listed %d", n)
				}
			}
		})
	}
}

// Uploads are staged in the store's staging folder, and a bind mount inside the tree
// (same device, but rename cannot cross it: EXDEV) still gets its uploads, by moving
// the staged file beside the target.
func TestStagingAcrossBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	base := t.TempDir()
	dir, other := filepath.Join(base, "root"), filepath.Join(base, "other")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.MkdirAll(other, 0o755)
	s := newStore(t, dir, true)
	if !s.staging {
		t.Fatal("staging folder not set up")
	}
	put(t, s, "/plain", "through staging")
	if out, err := exec.Command("mount", "--bind", other, filepath.Join(dir, "sub")).CombinedOutput(); err != nil {
		t.Skipf("mount --bind: %v %s", err, out)
	}
	defer exec.Command("umount", filepath.Join(dir, "sub")).Run()
	put(t, s, "/sub/replaced", "v1")
	put(t, s, "/sub/replaced", "v2")
	if _, _, err := s.Put(t.Context(), "/sub/created", strings.NewReader("c"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 1}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Create(t.Context(), func(yield func(string) bool) { yield("/sub/created"); yield("/sub/created2") },
		strings.NewReader("d"), backend.Meta{Size: 1})
	if err != nil || info.Name != "/sub/created2" {
		t.Fatalf("Create = %v, %v", info.Name, err)
	}
	for name, want := range map[string]string{"replaced": "v2", "created": "c", "created2": "d"} {
		if b, _ := os.ReadFile(filepath.Join(other, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
	if left := stagedFiles(t, dir); len(left) != 0 {
		t.Errorf("staged files left: %v", left)
	}
}

func stagedFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dir, stagingDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestETagFields checks that a change of any one of inode, size, mtime or ctime gives
// another ETag, and that the form is a quoted 16-digit hex string.
func TestETagFields(t *testing.T) {
	base := meta{mode: unix.S_IFREG, ino: 1234, size: 4096, mtime: 1_700_000_000_123456789, ctime: 1_700_000_000_123456789}
	tag := base.etag()
	if len(tag) != 18 || tag[0] != '"' || tag[17] != '"' || strings.Trim(tag[1:17], "0123456789abcdef") != "" {
		t.Fatalf("etag %s: want a quoted 16-digit hex string", tag)
	}
	for _, tc := range []struct {
		name   string
		change func(*meta)
	}{
		{"inode", func(m *meta) { m.ino++ }},
		{"size", func(m *meta) { m.size++ }},
		{"mtime", func(m *meta) { m.mtime++ }},
		{"ctime", func(m *meta) { m.ctime++ }},
		{"mtime and ctime swapped", func(m *meta) { m.mtime, m.ctime = m.ctime+1, m.mtime }},
	} {
		m := base
		tc.change(&m)
		if m.etag() == tag {
			t.Errorf("%s changed but the ETag stayed %s", tc.name, tag)
		}
	}
}

// A large upload asks the disk to start writing each chunk as it arrives when the
// store syncs, and never when it does not; the content is whole either way.
func TestWritebackDuringUpload(t *testing.T) {
	for _, sync := range []bool{true, false} {
		s := newStore(t, t.TempDir(), sync)
		f, err := os.CreateTemp(t.TempDir(), "up")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wb := s.writeback(f)
		if !sync {
			if wb.f != nil {
				t.Fatal("writeback without sync")
			}
			continue
		}
		const size = 2*writebackChunk + 12345
		n, err := s.copyBody(context.Background(), f, io.LimitReader(zeros{}, size), size)
		if err != nil || n != size {
			t.Fatalf("copyBody: %d, %v", n, err)
		}
		// copyBody's own writeback ran; check the same steps on a fresh one.
		for _, step := range []struct{ wrote, start int64 }{
			{writebackChunk - 1, 0}, {writebackChunk, writebackChunk}, {writebackChunk + 1, writebackChunk},
			{2*writebackChunk + 5, 2*writebackChunk + 5},
		} {
			wb.wrote(step.wrote)
			if wb.f == nil || wb.start != step.start {
				t.Fatalf("after %d bytes: file %v, start %d; want start %d", step.wrote, wb.f, wb.start, step.start)
			}
		}
		if fi, _ := f.Stat(); fi.Size() != size {
			t.Fatalf("size %d", fi.Size())
		}
	}
}

var errIO = errors.New("read failed")

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errIO }
