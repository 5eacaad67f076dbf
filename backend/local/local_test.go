package local

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"safedav/backend"
)

func newStore(t testing.TB, dir string, sync bool) *Store {
	t.Helper()
	s, err := New(dir, Options{Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s *Store, name, content string) backend.Info {
	t.Helper()
	info, _, err := s.Put(context.Background(), name, strings.NewReader(content), backend.Cond{}, backend.Meta{Size: int64(len(content))})
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return info
}

func readFile(t *testing.T, s *Store, name string) string {
	t.Helper()
	rc, _, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testConfinement checks that symlinks leading out of the tree are never followed,
// whether relative or absolute, to a directory or to a file, by a Store that setup
// has prepared.
func testConfinement(t *testing.T, setup func(*Store)) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	root := filepath.Join(base, "root")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, root, true)
	setup(s)
	for link, target := range map[string]string{
		"reldir": "../outside", "absdir": outside, "absfile": secret, "relfile": "../outside/secret",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink that stays inside is followed.
	put(t, s, "/inner", "inside")
	if err := os.Symlink("inner", filepath.Join(root, "innerlink")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s, "/innerlink"); got != "inside" {
		t.Errorf("inner symlink reads %q", got)
	}

	ctx := t.Context()
	for _, name := range []string{"/reldir", "/reldir/secret", "/absdir/secret", "/absfile", "/relfile"} {
		if _, err := s.Stat(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want ErrNotExist", name, err)
		}
		if _, _, err := s.Open(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := s.Props(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Props(%s) = %v, want ErrNotExist", name, err)
		}
		err := s.PatchProps(ctx, name, backend.Cond{}, []backend.PropPatch{{Prop: backend.Prop{Name: xmlName("p")}}})
		if !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("PatchProps(%s) = %v, want ErrNotExist", name, err)
		}
		if err := s.Remove(ctx, name+"/secret", backend.Cond{}); err == nil {
			t.Errorf("Remove(%s/secret) succeeded", name)
		}
		if _, err := s.Copy(ctx, name, "/copied", backend.Cond{}, backend.DepthInfinity); err == nil {
			t.Errorf("Copy(%s) succeeded", name)
		}
	}
	for _, name := range []string{"/reldir/new", "/absdir/new", "/absdir/secret", "/reldir/secret"} {
		_, _, err := s.Put(ctx, name, strings.NewReader("pwned"), backend.Cond{}, backend.Meta{Size: 5})
		if !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Put(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := s.Mkdir(ctx, name, backend.Cond{}); err == nil {
			t.Errorf("Mkdir(%s) succeeded", name)
		}
	}
	if err := s.List(ctx, "/reldir", func(backend.Info) error { return nil }); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("List(/reldir) = %v, want ErrNotExist", err)
	}
	var listed []string
	s.List(ctx, "/", func(in backend.Info) error { listed = append(listed, in.Name); return nil })
	slices.Sort(listed)
	if want := []string{"/inner", "/innerlink"}; !slices.Equal(listed, want) {
		t.Errorf("List(/) = %q, want %q (escaping links hidden)", listed, want)
	}
	// A tree copy skips links out of the tree.
	if _, err := s.Mkdir(ctx, "/d", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "d", "out")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, "/d", "/d2", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "d2", "out")); !os.IsNotExist(err) {
		t.Errorf("copy of a tree took its escaping link along: %v", err)
	}

	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside directory now holds %d entries", len(entries))
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Errorf("outside file changed to %q", b)
	}
}

func xmlName(local string) xml.Name { return xml.Name{Space: "urn:t", Local: local} }
