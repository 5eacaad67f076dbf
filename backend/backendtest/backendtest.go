// Package backendtest is the conformance suite of the backend contract: every backend's
// tests call Run with a constructor, so the disk and the bucket are held to the same
// rules. It tests only what backend.go promises, nothing of one store's internals.
package backendtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"safedav/backend"
)

// Run runs the conformance suite. newBackend must return an empty backend for each
// subtest (cleaning up through t.Cleanup). Property subtests are skipped when the
// backend does not implement backend.PropStore.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"stat_root", testStatRoot},
		{"put_create_replace [RFC9110 9.3.4]", testPutCreateReplace},
		{"put_modtime", testPutModTime},
		{"etag_changes_on_write [RFC9110 8.8.3]", testETag},
		{"cond_put [RFC9110 13.1]", testCondPut},
		{"cond_mkdir", testCondMkdir},
		{"cond_remove", testCondRemove},
		{"cond_copy", testCondCopyMove(false)},
		{"cond_move", testCondCopyMove(true)},
		{"cond_patchprops", testCondPatchProps},
		{"concurrent_create_only", one(testConcurrentCreate)},
		{"create_first_free_name", testCreate},
		{"concurrent_create_first_free_name", one(testConcurrentCreateFree)},
		{"concurrent_if_match_no_lost_update", one(testConcurrentIfMatch)},
		{"failing_body", testFailingBody},
		{"cancelled_ctx", testCancelled},
		{"short_body", testShortBody},
		{"structure_errors [RFC4918 9.7.1]", testStructureErrors},
		{"mkdir_list", testMkdirList},
		{"remove_recursive [RFC4918 9.6.1]", testRemove},
		{"copy [RFC4918 9.8]", testCopy},
		{"copy_replaces_not_merges [RFC4918 9.8.4]", testCopyReplace},
		{"move [RFC4918 9.9]", testMove},
		{"move_replaces_not_merges [RFC4918 9.9.3]", testMoveReplace},
		{"copy_move_name_rules [RFC4918 9.8.5]", testCopyRules},
		{"reserved_names", testBadNames(reservedNames)},
		{"invalid_names", testBadNames(invalidNames)},
		{"remove_root", testRemoveRoot},
		{"props [RFC4918 9.2]", testProps},
		{"props_all_or_nothing [RFC4918 9.2]", testPropsAtomic},
		{"props_follow_resource", testPropsFollow},
		{"list_props", testListProps},
		{"names", testNames},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
	// The races are most of the suite's time, waiting on the store rather than the
	// CPU (S3 over HTTP): each has its own instance, so they run side by side.
	for _, tc := range races {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

var errBoom = errors.New("backendtest: body failed")

// wrongETag is a well-formed ETag that no backend will have produced.
const wrongETag = `"backendtest-wrong-etag"`

// RunShared runs the concurrency cases across several instances that share one store
// (two safedav processes on one bucket): newInstances returns them, all empty and
// seeing the same data. Only backends whose commits are atomic across processes (the
// S3 backend's conditional writes) can pass it.
func RunShared(t *testing.T, newInstances func(t *testing.T) []backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, bs []backend.Backend)
	}{
		{"concurrent_create_only", testConcurrentCreate},
		{"concurrent_if_match_no_lost_update", testConcurrentIfMatch},
		{"concurrent_create_first_free_name", testConcurrentCreateFree},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newInstances(t)) })
	}
}

// one adapts a case written for several instances to a single one.
func one(fn func(*testing.T, []backend.Backend)) func(*testing.T, backend.Backend) {
	return func(t *testing.T, b backend.Backend) { fn(t, []backend.Backend{b}) }
}

func put(t *testing.T, b backend.Backend, name, content string) backend.Info {
	t.Helper()
	info, _, err := b.Put(t.Context(), name, strings.NewReader(content), backend.Cond{},
		backend.Meta{Size: int64(len(content))})
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return info
}

func mkdir(t *testing.T, b backend.Backend, name string) backend.Info {
	t.Helper()
	info, err := b.Mkdir(t.Context(), name, backend.Cond{})
	if err != nil {
		t.Fatalf("Mkdir(%q): %v", name, err)
	}
	return info
}

func stat(t *testing.T, b backend.Backend, name string) backend.Info {
	t.Helper()
	info, err := b.Stat(t.Context(), name)
	if err != nil {
		t.Fatalf("Stat(%q): %v", name, err)
	}
	return info
}

func read(t *testing.T, b backend.Backend, name string) string {
	t.Helper()
	rc, info, err := b.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Open(%q) Info.Size = %d, read %d bytes", name, info.Size, len(data))
	}
	return string(data)
}

func wantContent(t *testing.T, b backend.Backend, name, want string) {
	t.Helper()
	if got := read(t, b, name); got != want {
		t.Errorf("content of %q = %q, want %q", name, got, want)
	}
}

func wantMissing(t *testing.T, b backend.Backend, name string) {
	t.Helper()
	if info, err := b.Stat(t.Context(), name); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat(%q) = %+v, %v; want ErrNotExist", name, info, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func sameInfo(t *testing.T, what string, got, want backend.Info) {
	t.Helper()
	if got.Name != want.Name || got.Dir != want.Dir || got.Size != want.Size ||
		!got.ModTime.Equal(want.ModTime) || got.ETag != want.ETag || got.ContentType != want.ContentType {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// names lists the members of dir by name.
func names(t *testing.T, b backend.Backend, dir string) []string {
	t.Helper()
	var out []string
	err := b.List(t.Context(), dir, func(in backend.Info) error {
		out = append(out, in.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	slices.Sort(out)
	return out
}

func testStatRoot(t *testing.T, b backend.Backend) {
	info := stat(t, b, "/")
	if !info.Dir || info.Name != "/" {
		t.Errorf("Stat(/) = %+v, want a collection named /", info)
	}
	if got := names(t, b, "/"); len(got) != 0 {
		t.Errorf("new backend lists %q, want nothing", got)
	}
}

func testPutCreateReplace(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	info, created, err := b.Put(ctx, "/a.txt", strings.NewReader("hello"), backend.Cond{}, backend.Meta{Size: 5})
	if err != nil || !created {
		t.Fatalf("Put create = %v, %v; want created", created, err)
	}
	if info.Name != "/a.txt" || info.Dir || info.Size != 5 || info.ETag == "" {
		t.Errorf("Put Info = %+v", info)
	}
	if !strings.HasPrefix(info.ETag, `"`) || !strings.HasSuffix(info.ETag, `"`) || strings.HasPrefix(info.ETag, "W/") {
		t.Errorf("ETag %s is not a quoted strong ETag", info.ETag)
	}
	sameInfo(t, "Stat after create", stat(t, b, "/a.txt"), info)
	wantContent(t, b, "/a.txt", "hello")

	// Unknown size (chunked upload).
	info2, created, err := b.Put(ctx, "/a.txt", strings.NewReader("replaced!"), backend.Cond{}, backend.Meta{Size: -1})
	if err != nil || created {
		t.Fatalf("Put replace = %v, %v; want replaced", created, err)
	}
	if info2.Size != 9 {
		t.Errorf("replace Size = %d, want 9", info2.Size)
	}
	sameInfo(t, "Stat after replace", stat(t, b, "/a.txt"), info2)
	wantContent(t, b, "/a.txt", "replaced!")

	// Empty and larger-than-a-buffer bodies.
	put(t, b, "/empty", "")
	wantContent(t, b, "/empty", "")
	big := strings.Repeat("0123456789abcdef", 100_000) // 1.6 MB
	put(t, b, "/big", big)
	if got := read(t, b, "/big"); got != big {
		t.Errorf("big file: read %d bytes, differs from the %d written", len(got), len(big))
	}
}

func testPutModTime(t *testing.T, b backend.Backend) {
	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	info, _, err := b.Put(t.Context(), "/m", strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1, ModTime: mt})
	if err != nil {
		t.Fatal(err)
	}
	if got := stat(t, b, "/m").ModTime; got.Unix() != mt.Unix() {
		t.Errorf("ModTime = %v, want the client's %v", got, mt)
	}
	sameInfo(t, "Stat after Put with ModTime", stat(t, b, "/m"), info)
	before := time.Now().Add(-time.Minute)
	info, _, err = b.Put(t.Context(), "/m", strings.NewReader("y"), backend.Cond{}, backend.Meta{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if info.ModTime.Before(before) {
		t.Errorf("ModTime without a client time = %v, want about now", info.ModTime)
	}
}

func testETag(t *testing.T, b backend.Backend) {
	seen := map[string]int{}
	for i := range 100 {
		info := put(t, b, "/f", fmt.Sprintf("%04d", i%10)) // same size every time, contents repeat
		if j, dup := seen[info.ETag]; dup {
			t.Fatalf("write %d got the ETag %s of write %d", i, info.ETag, j)
		}
		seen[info.ETag] = i
	}
	a, c := stat(t, b, "/f"), stat(t, b, "/f")
	if a.ETag != c.ETag {
		t.Errorf("ETag changed without a write: %s then %s", a.ETag, c.ETag)
	}
	read(t, b, "/f")
	if c := stat(t, b, "/f"); a.ETag != c.ETag {
		t.Errorf("ETag changed by a read: %s then %s", a.ETag, c.ETag)
	}
	r, info, err := b.Open(t.Context(), "/f")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if info.ETag != a.ETag {
		t.Errorf("Open ETag %s, Stat ETag %s", info.ETag, a.ETag)
	}
}

// condCase is one row of a conditional-write matrix: whether the target exists
// beforehand, the condition (given the target's current ETag) and the expected error.
type condCase struct {
	name   string
	exists bool
	cond   func(etag string) backend.Cond
	want   error
}

var condCases = []condCase{
	{"if_match_right [RFC9110 13.1.1]", true, func(e string) backend.Cond { return backend.Cond{IfMatch: e} }, nil},
	{"if_match_wrong [RFC9110 13.1.1]", true, func(string) backend.Cond { return backend.Cond{IfMatch: wrongETag} }, backend.ErrPrecondition},
	{"if_match_star_existing [RFC9110 13.1.1]", true, func(string) backend.Cond { return backend.Cond{IfMatch: "*"} }, nil},
	{"if_match_star_missing [RFC9110 13.1.1]", false, func(string) backend.Cond { return backend.Cond{IfMatch: "*"} }, backend.ErrPrecondition},
	{"if_match_etag_missing [RFC9110 13.1.1]", false, func(string) backend.Cond { return backend.Cond{IfMatch: wrongETag} }, backend.ErrPrecondition},
	{"if_none_match_existing [RFC9110 13.1.2]", true, func(string) backend.Cond { return backend.Cond{IfNoneMatch: true} }, backend.ErrPrecondition},
	{"if_none_match_missing [RFC9110 13.1.2]", false, func(string) backend.Cond { return backend.Cond{IfNoneMatch: true} }, nil},
}

func testCondPut(t *testing.T, b backend.Backend) {
	for _, tc := range condCases {
		t.Run(tc.name, func(t *testing.T) {
			name := "/" + strings.Fields(tc.name)[0]
			var before backend.Info
			if tc.exists {
				before = put(t, b, name, "old")
			}
			info, created, err := b.Put(t.Context(), name, strings.NewReader("new!"), tc.cond(before.ETag), backend.Meta{Size: 4})
			wantErr(t, "Put", err, tc.want)
			switch {
			case tc.want == nil:
				if created == tc.exists {
					t.Errorf("created = %v with target existing = %v", created, tc.exists)
				}
				sameInfo(t, "Stat", stat(t, b, name), info)
				wantContent(t, b, name, "new!")
			case tc.exists:
				sameInfo(t, "Stat after failed Put", stat(t, b, name), before)
				wantContent(t, b, name, "old")
			default:
				wantMissing(t, b, name)
			}
		})
	}
}

func testCondMkdir(t *testing.T, b backend.Backend) {
	for _, tc := range condCases {
		t.Run(tc.name, func(t *testing.T) {
			name := "/" + strings.Fields(tc.name)[0]
			var before backend.Info
			if tc.exists {
				before = mkdir(t, b, name)
			}
			info, err := b.Mkdir(t.Context(), name, tc.cond(before.ETag))
			want := tc.want
			if want == nil && tc.exists {
				want = backend.ErrExist // the condition holds, but the name is taken
			}
			wantErr(t, "Mkdir", err, want)
			switch {
			case want == nil:
				if !info.Dir || info.Name != name {
					t.Errorf("Mkdir Info = %+v", info)
				}
				if !stat(t, b, name).Dir {
					t.Errorf("%s is not a collection", name)
				}
			case tc.exists:
				if !stat(t, b, name).Dir {
					t.Errorf("%s is no longer a collection", name)
				}
			default:
				wantMissing(t, b, name)
			}
		})
	}
}

func testCondRemove(t *testing.T, b backend.Backend) {
	for _, dir := range []bool{false, true} {
		for _, tc := range condCases {
			t.Run(fmt.Sprintf("%s/dir=%v", tc.name, dir), func(t *testing.T) {
				name := "/" + strings.Fields(tc.name)[0] + strconv.FormatBool(dir)
				var before backend.Info
				if tc.exists {
					if dir {
						mkdir(t, b, name)
						put(t, b, name+"/member", "m")
						before = stat(t, b, name)
					} else {
						before = put(t, b, name, "old")
					}
				}
				err := b.Remove(t.Context(), name, tc.cond(before.ETag))
				switch {
				case !tc.exists && tc.want == nil:
					// Nothing to remove, whatever the condition.
					wantErr(t, "Remove of a missing name", err, backend.ErrNotExist)
				case !tc.exists:
					// Either answer is right: the condition fails and the name is missing.
					if !errors.Is(err, backend.ErrPrecondition) && !errors.Is(err, backend.ErrNotExist) {
						t.Errorf("Remove: err = %v, want ErrPrecondition or ErrNotExist", err)
					}
				default:
					wantErr(t, "Remove", err, tc.want)
				}
				switch {
				case tc.exists && tc.want == nil:
					wantMissing(t, b, name)
					wantMissing(t, b, name+"/member")
				case tc.exists:
					stat(t, b, name)
					if dir {
						wantContent(t, b, name+"/member", "m")
					}
				}
			})
		}
	}
}

func testCondCopyMove(move bool) func(t *testing.T, b backend.Backend) {
	return func(t *testing.T, b backend.Backend) {
		for _, tc := range condCases {
			t.Run(tc.name, func(t *testing.T) {
				base := "/" + strings.Fields(tc.name)[0]
				src, dst := base+"-src", base+"-dst"
				put(t, b, src, "source")
				var before backend.Info
				if tc.exists {
					before = put(t, b, dst, "old dst")
				}
				var created bool
				var err error
				if move {
					created, err = b.Move(t.Context(), src, dst, tc.cond(before.ETag))
				} else {
					created, err = b.Copy(t.Context(), src, dst, tc.cond(before.ETag), backend.DepthInfinity)
				}
				wantErr(t, "Copy/Move", err, tc.want)
				if tc.want == nil {
					if created == tc.exists {
						t.Errorf("created = %v with dst existing = %v", created, tc.exists)
					}
					wantContent(t, b, dst, "source")
					if move {
						wantMissing(t, b, src)
					} else {
						wantContent(t, b, src, "source")
					}
					return
				}
				wantContent(t, b, src, "source")
				if tc.exists {
					sameInfo(t, "dst after failed Copy/Move", stat(t, b, dst), before)
					wantContent(t, b, dst, "old dst")
				} else {
					wantMissing(t, b, dst)
				}
			})
		}
	}
}

func propStore(t *testing.T, b backend.Backend) backend.PropStore {
	t.Helper()
	ps, ok := b.(backend.PropStore)
	if !ok {
		t.Skip("backend does not implement PropStore")
	}
	return ps
}

func prop(space, local, value string) backend.Prop {
	return backend.Prop{Name: xml.Name{Space: space, Local: local}, InnerXML: []byte(value)}
}

func setProps(t *testing.T, ps backend.PropStore, name string, props ...backend.Prop) {
	t.Helper()
	var patches []backend.PropPatch
	for _, p := range props {
		patches = append(patches, backend.PropPatch{Prop: p})
	}
	if err := ps.PatchProps(t.Context(), name, backend.Cond{}, patches); err != nil {
		t.Fatalf("PatchProps(%q): %v", name, err)
	}
}

func wantProps(t *testing.T, ps backend.PropStore, name string, want ...backend.Prop) {
	t.Helper()
	got, err := ps.Props(t.Context(), name)
	if err != nil {
		t.Fatalf("Props(%q): %v", name, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Props(%q) = %s, want %s", name, fmtProps(got), fmtProps(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Lang != want[i].Lang || !bytes.Equal(got[i].InnerXML, want[i].InnerXML) {
			t.Fatalf("Props(%q) = %s, want %s", name, fmtProps(got), fmtProps(want))
		}
	}
}

func fmtProps(props []backend.Prop) string {
	var s []string
	for _, p := range props {
		s = append(s, fmt.Sprintf("{%s %s lang=%q %q}", p.Name.Space, p.Name.Local, p.Lang, p.InnerXML))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func testCondPatchProps(t *testing.T, b backend.Backend) {
	ps := propStore(t, b)
	for _, tc := range condCases {
		if !tc.exists {
			continue // properties of a missing name: see testProps
		}
		t.Run(tc.name, func(t *testing.T) {
			name := "/" + strings.Fields(tc.name)[0]
			put(t, b, name, "x")
			old := prop("urn:t", "p", "old")
			setProps(t, ps, name, old)
			etag := stat(t, b, name).ETag
			neu := prop("urn:t", "p", "new")
			err := ps.PatchProps(t.Context(), name, tc.cond(etag), []backend.PropPatch{{Prop: neu}})
			wantErr(t, "PatchProps", err, tc.want)
			if tc.want == nil {
				wantProps(t, ps, name, neu)
			} else {
				wantProps(t, ps, name, old)
			}
		})
	}
}

func testConcurrentCreate(t *testing.T, bs []backend.Backend) {
	b := bs[0]
	const n = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf("writer %02d", i)
			_, _, errs[i] = bs[i%len(bs)].Put(t.Context(), "/race", strings.NewReader(body), backend.Cond{IfNoneMatch: true},
				backend.Meta{Size: int64(len(body))})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both created /race", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, backend.ErrPrecondition):
			t.Errorf("writer %d: %v, want ErrPrecondition", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created /race")
	}
	wantContent(t, b, "/race", fmt.Sprintf("writer %02d", winner))
}

// candidates yields "/d/f", "/d/f1", "/d/f2", … up to n names.
func candidates(n int) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range n {
			name := "/d/f"
			if i > 0 {
				name = fmt.Sprintf("/d/f%d", i)
			}
			if !yield(name) {
				return
			}
		}
	}
}

func testCreate(t *testing.T, b backend.Backend) {
	mkdir(t, b, "/d")
	put(t, b, "/d/f", "taken")
	put(t, b, "/d/f1", "taken too")
	info, err := b.Create(t.Context(), candidates(5), strings.NewReader("new"), backend.Meta{Size: 3})
	if err != nil || info.Name != "/d/f2" {
		t.Fatalf("Create = %+v, %v; want /d/f2", info, err)
	}
	sameInfo(t, "Create", info, stat(t, b, "/d/f2"))
	wantContent(t, b, "/d/f2", "new")
	wantContent(t, b, "/d/f", "taken")
	_, err = b.Create(t.Context(), candidates(3), strings.NewReader("x"), backend.Meta{Size: 1})
	wantErr(t, "Create with every name taken", err, backend.ErrExist)
	_, err = b.Create(t.Context(), func(yield func(string) bool) { yield("/nodir/f") }, strings.NewReader("x"), backend.Meta{Size: 1})
	wantErr(t, "Create without parent", err, backend.ErrParentMissing)
	if got := names(t, b, "/d"); len(got) != 3 {
		t.Fatalf("after Create: %v (a temporary file left behind?)", got)
	}
}

// Concurrent creators of the same names all get distinct names, none overwritten.
func testConcurrentCreateFree(t *testing.T, bs []backend.Backend) {
	b := bs[0]
	mkdir(t, b, "/d")
	const n = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	got := make([]string, n)
	for i := range n {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf("writer %02d", i)
			info, err := bs[i%len(bs)].Create(t.Context(), candidates(100), strings.NewReader(body), backend.Meta{Size: int64(len(body))})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				return
			}
			got[i] = info.Name
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i, name := range got {
		if seen[name] {
			t.Fatalf("two writers got %s", name)
		}
		seen[name] = true
		wantContent(t, b, name, fmt.Sprintf("writer %02d", i))
	}
}

func testConcurrentIfMatch(t *testing.T, bs []backend.Backend) {
	const workers, rounds = 8, 50
	b := bs[0]
	put(t, b, "/counter", "0")
	var wg sync.WaitGroup
	var mu sync.Mutex
	commits := 0
	for w := range workers {
		b := bs[w%len(bs)]
		wg.Go(func() {
			for range rounds {
				rc, info, err := b.Open(t.Context(), "/counter")
				if err != nil {
					t.Error(err)
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Error(err)
					return
				}
				n, err := strconv.Atoi(string(data))
				if err != nil {
					t.Errorf("counter holds %q: %v", data, err)
					return
				}
				next := strconv.Itoa(n + 1)
				_, _, err = b.Put(t.Context(), "/counter", strings.NewReader(next), backend.Cond{IfMatch: info.ETag},
					backend.Meta{Size: int64(len(next))})
				switch {
				case err == nil:
					mu.Lock()
					commits++
					mu.Unlock()
				case !errors.Is(err, backend.ErrPrecondition):
					t.Errorf("Put: %v, want nil or ErrPrecondition", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if commits == 0 {
		t.Fatal("no read-modify-write committed")
	}
	wantContent(t, b, "/counter", strconv.Itoa(commits))
}

// failingReader yields n bytes and then fails with err, after calling before (if set).
type failingReader struct {
	n      int
	err    error
	before func()
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		if r.before != nil {
			r.before()
		}
		return 0, r.err
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

func testFailingBody(t *testing.T, b backend.Backend) {
	before := put(t, b, "/f", "old content")
	for _, size := range []int64{-1, 1 << 20} {
		_, _, err := b.Put(t.Context(), "/f", &failingReader{n: 300 << 10, err: errBoom}, backend.Cond{}, backend.Meta{Size: size})
		wantErr(t, "Put with a failing body", err, errBoom)
		sameInfo(t, "Stat after failed Put", stat(t, b, "/f"), before)
		wantContent(t, b, "/f", "old content")

		_, _, err = b.Put(t.Context(), "/new", &failingReader{n: 300 << 10, err: errBoom}, backend.Cond{}, backend.Meta{Size: size})
		wantErr(t, "Put of a new name with a failing body", err, errBoom)
		wantMissing(t, b, "/new")
	}
	if got := names(t, b, "/"); !slices.Equal(got, []string{"/f"}) {
		t.Errorf("after failed Puts, / lists %q, want only /f", got)
	}
}

// endlessReader yields bytes forever, calling tick before each read.
type endlessReader struct{ tick func() }

func (r endlessReader) Read(p []byte) (int, error) {
	r.tick()
	for i := range p {
		p[i] = 'y'
	}
	return len(p), nil
}

func testCancelled(t *testing.T, b backend.Backend) {
	before := put(t, b, "/f", "old content")

	ctx, cancel := context.WithCancel(t.Context())
	reads := 0
	body := endlessReader{tick: func() {
		if reads++; reads == 3 {
			cancel() // the client goes away mid-upload
		}
	}}
	_, _, err := b.Put(ctx, "/f", body, backend.Cond{}, backend.Meta{Size: -1})
	wantErr(t, "Put with ctx cancelled mid-body", err, context.Canceled)
	sameInfo(t, "Stat after cancelled Put", stat(t, b, "/f"), before)
	wantContent(t, b, "/f", "old content")

	_, _, err = b.Put(ctx, "/g", strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1})
	if err == nil {
		t.Error("Put with a cancelled ctx succeeded")
	}
	wantMissing(t, b, "/g")
	if got := names(t, b, "/"); !slices.Equal(got, []string{"/f"}) {
		t.Errorf("after cancelled Puts, / lists %q, want only /f", got)
	}
}

func testShortBody(t *testing.T, b backend.Backend) {
	before := put(t, b, "/f", "old")
	for _, tc := range []struct {
		body string
		size int64
	}{{"short", 10}, {"longer than announced", 5}, {"", 1}} {
		_, _, err := b.Put(t.Context(), "/f", strings.NewReader(tc.body), backend.Cond{}, backend.Meta{Size: tc.size})
		wantErr(t, fmt.Sprintf("Put %d bytes announced as %d", len(tc.body), tc.size), err, backend.ErrShortBody)
		_, _, err = b.Put(t.Context(), "/new", strings.NewReader(tc.body), backend.Cond{}, backend.Meta{Size: tc.size})
		wantErr(t, "Put of a new name with a wrong size", err, backend.ErrShortBody)
	}
	sameInfo(t, "Stat after short bodies", stat(t, b, "/f"), before)
	wantContent(t, b, "/f", "old")
	wantMissing(t, b, "/new")
}

func testStructureErrors(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	put(t, b, "/file", "x")
	mkdir(t, b, "/dir")
	body := func() io.Reader { return strings.NewReader("y") }
	meta := backend.Meta{Size: 1}

	_, _, err := b.Put(ctx, "/missing/x", body(), backend.Cond{}, meta)
	wantErr(t, "Put under a missing parent", err, backend.ErrParentMissing)
	_, _, err = b.Put(ctx, "/missing/deeper/x", body(), backend.Cond{}, meta)
	wantErr(t, "Put under a missing grandparent", err, backend.ErrParentMissing)
	_, _, err = b.Put(ctx, "/file/x", body(), backend.Cond{}, meta)
	wantErr(t, "Put under a file", err, backend.ErrNotCollection)
	_, _, err = b.Put(ctx, "/dir", body(), backend.Cond{}, meta)
	wantErr(t, "Put onto a collection", err, backend.ErrIsCollection)
	_, _, err = b.Put(ctx, "/", body(), backend.Cond{}, meta)
	wantErr(t, "Put onto the root", err, backend.ErrIsCollection)

	_, err = b.Mkdir(ctx, "/missing/x", backend.Cond{})
	wantErr(t, "Mkdir under a missing parent", err, backend.ErrParentMissing)
	_, err = b.Mkdir(ctx, "/file/x", backend.Cond{})
	wantErr(t, "Mkdir under a file", err, backend.ErrNotCollection)
	_, err = b.Mkdir(ctx, "/dir", backend.Cond{})
	wantErr(t, "Mkdir of a collection", err, backend.ErrExist)
	_, err = b.Mkdir(ctx, "/file", backend.Cond{})
	wantErr(t, "Mkdir of a file", err, backend.ErrExist)
	_, err = b.Mkdir(ctx, "/", backend.Cond{})
	wantErr(t, "Mkdir of the root", err, backend.ErrExist)

	_, _, err = b.Open(ctx, "/dir")
	wantErr(t, "Open of a collection", err, backend.ErrIsCollection)
	_, _, err = b.Open(ctx, "/nope")
	wantErr(t, "Open of a missing name", err, backend.ErrNotExist)
	wantMissing(t, b, "/nope")
	wantMissing(t, b, "/file/x")
	wantMissing(t, b, "/missing/x")

	noop := func(backend.Info) error { return nil }
	wantErr(t, "List of a file", b.List(ctx, "/file", noop), backend.ErrNotCollection)
	wantErr(t, "List of a missing name", b.List(ctx, "/nope", noop), backend.ErrNotExist)

	wantErr(t, "Remove of a missing name", b.Remove(ctx, "/nope", backend.Cond{}), backend.ErrNotExist)

	_, err = b.Copy(ctx, "/nope", "/x", backend.Cond{}, backend.DepthInfinity)
	wantErr(t, "Copy of a missing src", err, backend.ErrNotExist)
	_, err = b.Copy(ctx, "/file", "/missing/x", backend.Cond{}, backend.DepthInfinity)
	wantErr(t, "Copy to a missing parent", err, backend.ErrParentMissing)
	_, err = b.Move(ctx, "/nope", "/x", backend.Cond{})
	wantErr(t, "Move of a missing src", err, backend.ErrNotExist)
	_, err = b.Move(ctx, "/file", "/missing/x", backend.Cond{})
	wantErr(t, "Move to a missing parent", err, backend.ErrParentMissing)
	wantContent(t, b, "/file", "x")
}

func testMkdirList(t *testing.T, b backend.Backend) {
	info := mkdir(t, b, "/d")
	if !info.Dir || info.Name != "/d" {
		t.Errorf("Mkdir Info = %+v", info)
	}
	if got := names(t, b, "/d"); len(got) != 0 {
		t.Errorf("new collection lists %q", got)
	}
	put(t, b, "/d/a", "abc")
	put(t, b, "/d/b", "")
	mkdir(t, b, "/d/sub")
	put(t, b, "/d/sub/deep", "deep")

	got := map[string]backend.Info{}
	err := b.List(t.Context(), "/d", func(in backend.Info) error {
		if _, dup := got[in.Name]; dup {
			t.Errorf("List reports %s twice", in.Name)
		}
		got[in.Name] = in
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		dir  bool
		size int64
	}{"/d/a": {false, 3}, "/d/b": {false, 0}, "/d/sub": {true, 0}}
	if len(got) != len(want) {
		t.Errorf("List(/d) = %v, want %v", got, want)
	}
	for name, w := range want {
		in, ok := got[name]
		if !ok {
			t.Errorf("List(/d) misses %s", name)
			continue
		}
		if in.Dir != w.dir || (!w.dir && in.Size != w.size) {
			t.Errorf("List: %s = %+v, want dir=%v size=%d", name, in, w.dir, w.size)
		}
		sameInfo(t, "Stat of a listed member", stat(t, b, name), in)
	}
	if !slices.Equal(names(t, b, "/"), []string{"/d"}) {
		t.Errorf("List(/) = %q, want [/d]", names(t, b, "/"))
	}

	stop := errors.New("stop")
	calls := 0
	err = b.List(t.Context(), "/d", func(backend.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with fn failing: %d calls, err %v; want 1 call and fn's error", calls, err)
	}
}

func testRemove(t *testing.T, b backend.Backend) {
	mkdir(t, b, "/d")
	mkdir(t, b, "/d/sub")
	put(t, b, "/d/sub/f", "x")
	put(t, b, "/d/g", "y")
	put(t, b, "/keep", "k")
	if err := b.Remove(t.Context(), "/d", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"/d", "/d/sub", "/d/sub/f", "/d/g"} {
		wantMissing(t, b, n)
	}
	if err := b.Remove(t.Context(), "/keep", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, b, "/keep")
	if got := names(t, b, "/"); len(got) != 0 {
		t.Errorf("after Remove, / lists %q", got)
	}
	// The name is free again, for either kind.
	put(t, b, "/d", "now a file")
	mkdir(t, b, "/keep")
}

// tree creates dir with a file, a sub-collection and a file in it.
func tree(t *testing.T, b backend.Backend, dir string) {
	t.Helper()
	mkdir(t, b, dir)
	put(t, b, dir+"/a", "file a")
	mkdir(t, b, dir+"/sub")
	put(t, b, dir+"/sub/b", "file b")
}

func wantTree(t *testing.T, b backend.Backend, dir string) {
	t.Helper()
	if !stat(t, b, dir).Dir {
		t.Errorf("%s is not a collection", dir)
	}
	if got, want := names(t, b, dir), []string{dir + "/a", dir + "/sub"}; !slices.Equal(got, want) {
		t.Errorf("List(%s) = %q, want %q", dir, got, want)
	}
	wantContent(t, b, dir+"/a", "file a")
	wantContent(t, b, dir+"/sub/b", "file b")
}

func testCopy(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	put(t, b, "/f", "content")
	created, err := b.Copy(ctx, "/f", "/g", backend.Cond{}, backend.DepthInfinity)
	if err != nil || !created {
		t.Fatalf("Copy file = %v, %v; want created", created, err)
	}
	wantContent(t, b, "/g", "content")
	wantContent(t, b, "/f", "content")

	put(t, b, "/h", "old h")
	created, err = b.Copy(ctx, "/f", "/h", backend.Cond{}, backend.DepthZero)
	if err != nil || created {
		t.Fatalf("Copy over a file = %v, %v; want replaced", created, err)
	}
	wantContent(t, b, "/h", "content")

	tree(t, b, "/src")
	created, err = b.Copy(ctx, "/src", "/dst", backend.Cond{}, backend.DepthInfinity)
	if err != nil || !created {
		t.Fatalf("Copy tree = %v, %v; want created", created, err)
	}
	wantTree(t, b, "/dst")
	wantTree(t, b, "/src")
	// The copy is independent of its source.
	put(t, b, "/dst/a", "changed")
	wantContent(t, b, "/src/a", "file a")

	created, err = b.Copy(ctx, "/src", "/shallow", backend.Cond{}, backend.DepthZero)
	if err != nil || !created {
		t.Fatalf("Copy depth 0 = %v, %v; want created", created, err)
	}
	if !stat(t, b, "/shallow").Dir {
		t.Error("depth-0 copy of a collection is not a collection")
	}
	if got := names(t, b, "/shallow"); len(got) != 0 {
		t.Errorf("depth-0 copy has members %q", got)
	}
	wantTree(t, b, "/src")
}

func testCopyReplace(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	tree(t, b, "/src")
	mkdir(t, b, "/dst")
	put(t, b, "/dst/old", "must go")
	put(t, b, "/dst/a", "must be replaced")
	created, err := b.Copy(ctx, "/src", "/dst", backend.Cond{}, backend.DepthInfinity)
	if err != nil || created {
		t.Fatalf("Copy onto a collection = %v, %v; want replaced", created, err)
	}
	wantTree(t, b, "/dst")
	wantMissing(t, b, "/dst/old")

	// A collection onto a file, and a file onto a collection.
	put(t, b, "/file", "x")
	if _, err := b.Copy(ctx, "/src", "/file", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	wantTree(t, b, "/file")
	if _, err := b.Copy(ctx, "/src/a", "/dst", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	if stat(t, b, "/dst").Dir {
		t.Error("/dst is still a collection after a file was copied onto it")
	}
	wantContent(t, b, "/dst", "file a")
	wantMissing(t, b, "/dst/sub/b")
}

func testMove(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	put(t, b, "/f", "content")
	created, err := b.Move(ctx, "/f", "/g", backend.Cond{})
	if err != nil || !created {
		t.Fatalf("Move file = %v, %v; want created", created, err)
	}
	wantMissing(t, b, "/f")
	wantContent(t, b, "/g", "content")

	tree(t, b, "/src")
	mkdir(t, b, "/into")
	created, err = b.Move(ctx, "/src", "/into/dst", backend.Cond{})
	if err != nil || !created {
		t.Fatalf("Move tree = %v, %v; want created", created, err)
	}
	wantMissing(t, b, "/src")
	wantMissing(t, b, "/src/a")
	wantTree(t, b, "/into/dst")

	put(t, b, "/h", "old h")
	created, err = b.Move(ctx, "/g", "/h", backend.Cond{})
	if err != nil || created {
		t.Fatalf("Move over a file = %v, %v; want replaced", created, err)
	}
	wantMissing(t, b, "/g")
	wantContent(t, b, "/h", "content")
}

func testMoveReplace(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	tree(t, b, "/src")
	mkdir(t, b, "/dst")
	put(t, b, "/dst/old", "must go")
	created, err := b.Move(ctx, "/src", "/dst", backend.Cond{})
	if err != nil || created {
		t.Fatalf("Move onto a collection = %v, %v; want replaced", created, err)
	}
	wantMissing(t, b, "/src")
	wantTree(t, b, "/dst")
	wantMissing(t, b, "/dst/old")

	put(t, b, "/file", "x")
	if _, err := b.Move(ctx, "/dst", "/file", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	wantTree(t, b, "/file")
	wantMissing(t, b, "/dst")

	put(t, b, "/f2", "f2")
	if _, err := b.Move(ctx, "/f2", "/file", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, "/file", "f2")
	wantMissing(t, b, "/file/a")
	wantMissing(t, b, "/f2")
}

// copyRules are the requests Copy and Move refuse from the names alone (see
// backend.CheckCopy), whatever the store holds, with these exact errors.
var copyRules = []struct {
	name, src, dst string
	want           error
}{
	{"same_collection [RFC4918 9.8.5]", "/src", "/src", backend.ErrSameName},
	{"same_file [RFC4918 9.9.4]", "/src/a", "/src/a", backend.ErrSameName},
	{"same_root", "/", "/", backend.ErrSameName},
	{"into_self", "/src", "/src/copy", backend.ErrIntoSelf},
	{"into_descendant", "/src", "/src/sub/copy", backend.ErrIntoSelf},
	{"into_own_member", "/src", "/src/sub", backend.ErrIntoSelf},
	{"file_into_itself", "/src/a", "/src/a/x", backend.ErrIntoSelf},
	{"root_anywhere", "/", "/copy", backend.ErrIntoSelf},
	{"missing_source_into_self", "/gone", "/gone/x", backend.ErrIntoSelf},
	{"onto_parent [RFC4918 9.8.4]", "/src/sub", "/src", backend.ErrOntoAncestor},
	{"onto_ancestor [RFC4918 9.9.3]", "/src/sub/b", "/src", backend.ErrOntoAncestor},
	{"onto_root", "/src", "/", backend.ErrOntoAncestor},
	{"reserved_destination_inside", "/src", "/src/.safedav", backend.ErrInvalidName},
}

// testCopyRules checks that Copy (at both depths) and Move give the exact error of each
// rule, under any condition (the names decide before the store is looked at), and
// change nothing.
func testCopyRules(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	tree(t, b, "/src")
	conds := []backend.Cond{{}, {IfNoneMatch: true}, {IfMatch: "*"}}
	for _, tc := range copyRules {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range conds {
				_, err := b.Copy(ctx, tc.src, tc.dst, c, backend.DepthInfinity)
				wantErr(t, fmt.Sprintf("Copy(%q, %q, %+v, infinity)", tc.src, tc.dst, c), err, tc.want)
				_, err = b.Copy(ctx, tc.src, tc.dst, c, backend.DepthZero)
				wantErr(t, fmt.Sprintf("Copy(%q, %q, %+v, 0)", tc.src, tc.dst, c), err, tc.want)
				_, err = b.Move(ctx, tc.src, tc.dst, c)
				wantErr(t, fmt.Sprintf("Move(%q, %q, %+v)", tc.src, tc.dst, c), err, tc.want)
			}
			wantTree(t, b, "/src")
			if got := names(t, b, "/"); !slices.Equal(got, []string{"/src"}) {
				t.Errorf("List(/) = %q, want [/src]", got)
			}
		})
	}
}

// testRemoveRoot checks that the root cannot be removed, under any condition.
func testRemoveRoot(t *testing.T, b backend.Backend) {
	tree(t, b, "/src")
	for _, c := range []backend.Cond{{}, {IfMatch: "*"}, {IfMatch: stat(t, b, "/").ETag}} {
		wantErr(t, fmt.Sprintf("Remove(/, %+v)", c), b.Remove(t.Context(), "/", c), backend.ErrInvalidName)
	}
	wantTree(t, b, "/src")
}

// reservedNames are names a store keeps for itself (backend.ReservedPrefix): every
// operation refuses them with ErrInvalidName, reads included.
var reservedNames = []string{
	"/.safedav", "/.safedav-tmp-1", "/.safedavish", "/.safedav/staging", "/.safedav/props/.safedav",
	"/src/.safedav", "/src/.safedav-tmp-1", "/src/.safedav/x",
}

// invalidNames are not names as backend.CleanName gives them; every operation refuses
// them with ErrInvalidName.
var invalidNames = []string{
	"", "src", "src/a", "/src/", "//src", "/src//a", "/src/./a", "/src/.", "/src/..", "/src/../src",
	"/a\x00b", "/a\nb", "/a\x7fb", "/a\\b", "/src\\..\\x", "/\xff", "/caf\u0065\u0301",
}

// nameOp is one operation on a name, returning its error.
type nameOp struct {
	name string
	fn   func(ctx context.Context, name string) error
}

// nameOps lists every operation of b that takes a name, with the name in each place.
func nameOps(b backend.Backend) []nameOp {
	ops := []nameOp{
		{"Stat", func(ctx context.Context, n string) error { _, err := b.Stat(ctx, n); return err }},
		{"List", func(ctx context.Context, n string) error {
			return b.List(ctx, n, func(backend.Info) error { return nil })
		}},
		{"Open", func(ctx context.Context, n string) error {
			r, _, err := b.Open(ctx, n)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{"Put", func(ctx context.Context, n string) error {
			_, _, err := b.Put(ctx, n, strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1})
			return err
		}},
		{"Put_create_only", func(ctx context.Context, n string) error {
			_, _, err := b.Put(ctx, n, strings.NewReader("x"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: -1})
			return err
		}},
		{"Put_volatile_empty", func(ctx context.Context, n string) error {
			_, _, err := b.Put(ctx, n, strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
			return err
		}},
		{"Create", func(ctx context.Context, n string) error {
			_, err := b.Create(ctx, slices.Values([]string{n}), strings.NewReader("x"), backend.Meta{Size: 1})
			return err
		}},
		{"Mkdir", func(ctx context.Context, n string) error { _, err := b.Mkdir(ctx, n, backend.Cond{}); return err }},
		{"Remove", func(ctx context.Context, n string) error { return b.Remove(ctx, n, backend.Cond{}) }},
		{"Copy_source", func(ctx context.Context, n string) error {
			_, err := b.Copy(ctx, n, "/copy", backend.Cond{}, backend.DepthInfinity)
			return err
		}},
		{"Copy_destination", func(ctx context.Context, n string) error {
			_, err := b.Copy(ctx, "/src/a", n, backend.Cond{}, backend.DepthInfinity)
			return err
		}},
		{"Move_source", func(ctx context.Context, n string) error {
			_, err := b.Move(ctx, n, "/moved", backend.Cond{})
			return err
		}},
		{"Move_destination", func(ctx context.Context, n string) error {
			_, err := b.Move(ctx, "/src/a", n, backend.Cond{})
			return err
		}},
	}
	if ps, ok := b.(backend.PropStore); ok {
		ops = append(ops,
			nameOp{"Props", func(ctx context.Context, n string) error { _, err := ps.Props(ctx, n); return err }},
			nameOp{"PatchProps", func(ctx context.Context, n string) error {
				return ps.PatchProps(ctx, n, backend.Cond{}, []backend.PropPatch{{Prop: prop("urn:t", "p", "v")}})
			}})
	}
	if pl, ok := b.(backend.PropLister); ok {
		ops = append(ops, nameOp{"ListProps", func(ctx context.Context, n string) error {
			return pl.ListProps(ctx, n, func(backend.Info, []backend.Prop) error { return nil })
		}})
	}
	return ops
}

// testBadNames checks that every operation refuses each of bad with ErrInvalidName,
// and that none of them changed anything.
func testBadNames(bad []string) func(t *testing.T, b backend.Backend) {
	return func(t *testing.T, b backend.Backend) {
		tree(t, b, "/src")
		for _, op := range nameOps(b) {
			t.Run(op.name, func(t *testing.T) {
				for _, n := range bad {
					wantErr(t, fmt.Sprintf("%s(%q)", op.name, n), op.fn(t.Context(), n), backend.ErrInvalidName)
				}
			})
		}
		wantTree(t, b, "/src")
		if got := names(t, b, "/"); !slices.Equal(got, []string{"/src"}) {
			t.Errorf("List(/) = %q, want [/src]", got)
		}
	}
}

func testProps(t *testing.T, b backend.Backend) {
	ps := propStore(t, b)
	ctx := t.Context()
	put(t, b, "/f", "x")
	wantProps(t, ps, "/f")

	a := prop("urn:a", "one", "1")
	bb := backend.Prop{Name: xml.Name{Space: "http://example.com/ns", Local: "two"}, Lang: "fr",
		InnerXML: []byte(`<x:v xmlns:x="urn:x">deux &amp; <x:w/></x:v>`)}
	c := prop("", "three", "") // no namespace, empty value
	setProps(t, ps, "/f", a, bb, c)
	wantProps(t, ps, "/f", a, bb, c)

	// Setting an existing property replaces it in place.
	a2 := prop("urn:a", "one", "uno")
	setProps(t, ps, "/f", a2)
	wantProps(t, ps, "/f", a2, bb, c)

	// Same local name, other namespace: another property.
	other := prop("urn:other", "one", "other")
	setProps(t, ps, "/f", other)
	wantProps(t, ps, "/f", a2, bb, c, other)

	// Removal, of a set and of an unset property; patches apply in order.
	err := ps.PatchProps(ctx, "/f", backend.Cond{}, []backend.PropPatch{
		{Remove: true, Prop: backend.Prop{Name: bb.Name}},
		{Remove: true, Prop: backend.Prop{Name: xml.Name{Space: "urn:none", Local: "none"}}},
		{Prop: prop("urn:t", "temp", "t")},
		{Remove: true, Prop: backend.Prop{Name: xml.Name{Space: "urn:t", Local: "temp"}}},
		{Remove: true, Prop: backend.Prop{Name: xml.Name{Space: "urn:t", Local: "back"}}},
		{Prop: prop("urn:t", "back", "b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/f", a2, c, other, prop("urn:t", "back", "b"))

	// Remove everything.
	err = ps.PatchProps(ctx, "/f", backend.Cond{}, []backend.PropPatch{
		{Remove: true, Prop: a2}, {Remove: true, Prop: c}, {Remove: true, Prop: other},
		{Remove: true, Prop: prop("urn:t", "back", "")},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/f")

	// Collections, including the root, have properties too.
	mkdir(t, b, "/d")
	setProps(t, ps, "/d", a)
	wantProps(t, ps, "/d", a)
	setProps(t, ps, "/", c)
	wantProps(t, ps, "/", c)

	_, err = ps.Props(ctx, "/missing")
	wantErr(t, "Props of a missing name", err, backend.ErrNotExist)
	err = ps.PatchProps(ctx, "/missing", backend.Cond{}, []backend.PropPatch{{Prop: a}})
	wantErr(t, "PatchProps of a missing name", err, backend.ErrNotExist)
	wantMissing(t, b, "/missing")
}

func testPropsAtomic(t *testing.T, b backend.Backend) {
	ps := propStore(t, b)
	put(t, b, "/f", "x")
	keep := prop("urn:a", "keep", "k")
	setProps(t, ps, "/f", keep)
	small := prop("urn:a", "small", "s")
	huge := prop("urn:a", "huge", "<v>"+strings.Repeat("h", 4<<20)+"</v>")
	err := ps.PatchProps(t.Context(), "/f", backend.Cond{}, []backend.PropPatch{
		{Remove: true, Prop: keep}, {Prop: small}, {Prop: huge},
	})
	if err != nil {
		// The store cannot hold it: nothing of the patch may have been applied.
		wantErr(t, "PatchProps too large", err, backend.ErrNoSpace)
		wantProps(t, ps, "/f", keep)
		return
	}
	wantProps(t, ps, "/f", small, huge)
}

func testPropsFollow(t *testing.T, b backend.Backend) {
	ps := propStore(t, b)
	ctx := t.Context()
	p := prop("urn:a", "p", "v")
	q := prop("urn:a", "q", "w")

	put(t, b, "/f", "x")
	setProps(t, ps, "/f", p)
	put(t, b, "/f", "replaced")
	wantProps(t, ps, "/f", p)
	if _, _, err := b.Put(ctx, "/f", strings.NewReader("cond"), backend.Cond{IfMatch: "*"}, backend.Meta{Size: 4}); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/f", p)

	// Copy: file and tree, depth 0 keeps the collection's own properties.
	tree(t, b, "/src")
	setProps(t, ps, "/src", p)
	setProps(t, ps, "/src/sub/b", q)
	if _, err := b.Copy(ctx, "/f", "/g", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/g", p)
	if _, err := b.Copy(ctx, "/src", "/dst", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/dst", p)
	wantProps(t, ps, "/dst/sub/b", q)
	wantProps(t, ps, "/dst/a")
	wantProps(t, ps, "/src", p)
	if _, err := b.Copy(ctx, "/src", "/shallow", backend.Cond{}, backend.DepthZero); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/shallow", p)

	// A replaced destination does not keep its own properties.
	put(t, b, "/h", "h")
	setProps(t, ps, "/h", q)
	if _, err := b.Copy(ctx, "/f", "/h", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/h", p)

	// Move carries them.
	if _, err := b.Move(ctx, "/src", "/moved", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/moved", p)
	wantProps(t, ps, "/moved/sub/b", q)
	if _, err := b.Move(ctx, "/g", "/h", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	wantProps(t, ps, "/h", p)
}

// ListProps reports the same properties as Props, member by member.
func testListProps(t *testing.T, b backend.Backend) {
	ps := propStore(t, b)
	lister, ok := b.(backend.PropLister)
	if !ok {
		t.Skip("no PropLister")
	}
	mkdir(t, b, "/d")
	put(t, b, "/d/with", "x")
	put(t, b, "/d/without", "y")
	mkdir(t, b, "/d/sub")
	setProps(t, ps, "/d/with", prop("urn:x", "a", "1"), prop("urn:y", "b", "<y:c xmlns:y=\"urn:y\">2</y:c>"))
	setProps(t, ps, "/d/sub", prop("urn:x", "dir", "3"))
	seen := map[string]int{}
	err := lister.ListProps(t.Context(), "/d", func(info backend.Info, props []backend.Prop) error {
		want, err := ps.Props(t.Context(), info.Name)
		if err != nil {
			return err
		}
		if fmtProps(props) != fmtProps(want) {
			t.Errorf("%s: ListProps gave %s, Props %s", info.Name, fmtProps(props), fmtProps(want))
		}
		seen[info.Name] = len(props)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen["/d/with"] != 2 || seen["/d/sub"] != 1 || seen["/d/without"] != 0 {
		t.Fatalf("listed %v", seen)
	}
	// Properties that arrive by MOVE, COPY (of files and trees) and PUT are listed too.
	mkdir(t, b, "/m")
	mkdir(t, b, "/c")
	if _, err := b.Move(t.Context(), "/d/with", "/m/with", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Copy(t.Context(), "/m/with", "/c/with", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Copy(t.Context(), "/d", "/c/tree", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{"/m": "/m/with", "/c": "/c/with", "/c/tree": "/c/tree/sub"} {
		found := false
		err := lister.ListProps(t.Context(), dir, func(info backend.Info, props []backend.Prop) error {
			if info.Name == want {
				found = len(props) > 0
			}
			return nil
		})
		if err != nil || !found {
			t.Errorf("ListProps(%s) lost the properties of %s (err %v)", dir, want, err)
		}
	}
}

func testNames(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	odd := []string{
		"/with space.txt",
		`/#%?&+'"`,
		"/a%20b%2Fc",
		"/emoji 😀🚀.txt",
		"/café ünïcödé",
		"/日本語",
		"/-leading-dash",
		"/trailing.",
	}
	mkdir(t, b, "/d ir#1")
	for _, name := range odd {
		for _, n := range []string{name, "/d ir#1" + name} {
			put(t, b, n, "content of "+n)
			if got := stat(t, b, n).Name; got != n {
				t.Errorf("Stat(%q).Name = %q", n, got)
			}
			wantContent(t, b, n, "content of "+n)
		}
	}
	want := append([]string{"/d ir#1"}, odd...)
	slices.Sort(want)
	if got := names(t, b, "/"); !slices.Equal(got, want) {
		t.Errorf("List(/) = %q, want %q", got, want)
	}
	for _, name := range odd {
		dst := name + " copy"
		if _, err := b.Copy(ctx, name, dst, backend.Cond{}, backend.DepthInfinity); err != nil {
			t.Errorf("Copy(%q): %v", name, err)
			continue
		}
		moved := name + " moved"
		if _, err := b.Move(ctx, dst, moved, backend.Cond{}); err != nil {
			t.Errorf("Move(%q): %v", dst, err)
			continue
		}
		wantContent(t, b, moved, "content of "+name)
		if err := b.Remove(ctx, moved, backend.Cond{}); err != nil {
			t.Errorf("Remove(%q): %v", moved, err)
		}
	}
	if _, err := b.Copy(ctx, "/d ir#1", "/d ir#2 😀", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, "/d ir#2 😀/emoji 😀🚀.txt", "content of /d ir#1/emoji 😀🚀.txt")
}
