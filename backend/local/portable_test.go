//go:build !linux || safedav_portable

package local

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"safedav/backend"
	"safedav/backend/backendtest"
)

// The tests of the portable path, which Linux runs too when built with the
// safedav_portable tag (go test -tags safedav_portable ./backend/local).

func TestConformance(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backend.Backend { return newStore(t, t.TempDir(), sync) })
		})
	}
}

func TestConfinement(t *testing.T) {
	testConfinement(t, func(*Store) {})
}

// TestSyncedFolders checks that each commit syncs the folders whose entries it changed,
// since the portable path has no syncfs round to cover them.
func TestSyncedFolders(t *testing.T) {
	s := newStore(t, t.TempDir(), true)
	var synced []string
	s.synced = func(rel string) { synced = append(synced, rel) }
	ctx := t.Context()
	step := func(name string, want []string, op func() error) {
		t.Helper()
		synced = nil
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(synced, want) {
			t.Errorf("%s synced %q, want %q", name, synced, want)
		}
	}
	step("mkdir", []string{"d", "."}, func() error { _, err := s.Mkdir(ctx, "/d", backend.Cond{}); return err })
	step("put", []string{"d"}, func() error { put(t, s, "/d/f", "x"); return nil })
	step("create-only put", []string{"d"}, func() error {
		_, _, err := s.Put(ctx, "/d/g", strings.NewReader("y"), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 1})
		return err
	})
	step("move", []string{"e", "d"}, func() error {
		if _, err := s.Mkdir(ctx, "/e", backend.Cond{}); err != nil {
			return err
		}
		synced = nil
		_, err := s.Move(ctx, "/d/f", "/e/f", backend.Cond{})
		return err
	})
	step("remove", []string{"e"}, func() error { return s.Remove(ctx, "/e/f", backend.Cond{}) })
}
