package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := Write(path, noSync, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
			t.Fatal(err)
		}
		// A failing writer leaves the previous content and no temporary file.
		boom := errors.New("boom")
		if err := Write(path, noSync, func(w io.Writer) error { io.WriteString(w, "partial"); return boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "one" {
			t.Fatalf("content %q after a failed write", b)
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Fatalf("left behind: %v", es)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
	}
	if err := Write(filepath.Join(t.TempDir(), "missing", "f"), false, func(io.Writer) error { return nil }); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}
