//go:build !safedav_portable

package local

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStagingShardsSpread checks, on ext4, that the staging folder is marked as the top
// of a hierarchy so that its shards are spread over block groups, and that a shard
// made before the mark is made again while empty but left alone while it holds a file.
func TestStagingShardsSpread(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skip("FS_TOPDIR_FL is ext4's; the temporary folder is on another filesystem")
	}
	staging := filepath.Join(dir, filepath.FromSlash(stagingDir))
	empty, full := filepath.Join(staging, "3"), filepath.Join(staging, "5")
	for _, d := range []string{empty, full} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(full, "kept"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyIno, fullIno := inode(t, empty), inode(t, full)

	newStore(t, dir, false)

	f, err := os.Open(staging)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	if flags&fsTopdirFl == 0 {
		t.Errorf("staging flags %#x: FS_TOPDIR_FL not set", flags)
	}
	if inode(t, empty) == emptyIno {
		t.Error("the empty shard made before the mark was not made again")
	}
	if inode(t, full) != fullIno {
		t.Error("the shard holding a file was replaced")
	}
	if _, err := os.Stat(filepath.Join(full, "kept")); err != nil {
		t.Error(err)
	}

	// Made in its parent's block group, every shard's inode would fall within one
	// group (at most 32,768 inodes); spread at random over a filesystem of a million
	// inodes or more, 64 shards cannot all fall within 65,536 of each other.
	if fs.Files < 1<<20 {
		return
	}
	var inos []uint64
	for i := range stagingShards {
		inos = append(inos, inode(t, filepath.Join(staging, strconv.Itoa(i))))
	}
	if spread := slices.Max(inos) - slices.Min(inos); spread < 1<<16 {
		t.Errorf("shards' inodes within %d of each other: not spread over block groups", spread)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
