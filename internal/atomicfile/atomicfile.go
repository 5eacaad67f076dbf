// Package atomicfile replaces a small state file (lock table, idempotency log) so that
// a crash at any point leaves either the old file or the new one, never a mix.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with what write produces: it writes a temporary file beside path
// (mode 0600, named path+".tmp-*"), syncs it, renames it over path and syncs the
// directory. With noSync both syncs are skipped: the replacement stays atomic for a
// crash of the process, but a power loss may bring back the old file. On any error
// before the rename the temporary file is removed and path is untouched; an error
// syncing the directory after the rename is returned with the new file in place.
func Write(path string, noSync bool, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if !noSync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
