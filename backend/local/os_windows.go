package local

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"

	"safedav/backend"
)

// stampStep is the finest modification time NTFS keeps: 100 ns. Two stamps closer than
// that would become one file time, and so one ETag.
const stampStep = 100

// Flags of os.Root.OpenFile: none is needed to open a folder, and Windows has no FIFOs
// that could block an open.
const (
	oDirectory = 0
	oNonblock  = 0
)

// metaOf describes an os.FileInfo. Windows has no inode numbers or change times that
// os.FileInfo gives, so the ETag rests on the size and the modification time: every
// commit is a new file with a unique mtime (stamp, in steps of 100 ns), except an
// upload that sets its own mtime, whose ETag changes only if its size or that mtime
// does.
func metaOf(fi fs.FileInfo) *meta {
	var mode uint32
	switch t := fi.Mode().Type(); {
	case t&fs.ModeSymlink != 0:
		mode = modeLink
	case t&fs.ModeDir != 0:
		mode = modeDir
	case t == 0:
		mode = modeRegular
	}
	// Anything else (a junction, which os reports as irregular; a device) has no
	// type the store serves.
	return newMeta(mode, fi.Size(), 0, fi.ModTime().UnixNano(), 0)
}

// isNotExist reports a missing entry (or a missing folder on its path).
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// isDenied reports a refused access.
func isDenied(err error) bool { return errors.Is(err, fs.ErrPermission) }

// syncDir does nothing on Windows: it has no fsync of a folder that Go can reach (os
// opens a folder read-only, and FlushFileBuffers needs a handle open for writing).
// NTFS records creates and renames in its own metadata journal, which it writes on its
// own shortly after, not before the write is acknowledged: there the file's content is
// durable when the write is acknowledged (its fsync), and its new name a moment later.
func (s *Store) syncDir(rel string) error {
	if s.sync && s.synced != nil {
		s.synced(rel)
	}
	return nil
}

// setMtime sets the modification time of f, leaving its access time. It goes through
// f itself, the handle that wrote the file: NTFS sets the modification time of a file
// written through a handle when that handle is closed, unless the time was set through
// it.
func (s *Store) setMtime(f *os.File, _ string, t time.Time) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ft := windows.NsecToFiletime(t.UnixNano())
	var serr error
	if err := rc.Control(func(h uintptr) { serr = windows.SetFileTime(windows.Handle(h), nil, nil, &ft) }); err != nil {
		return err
	}
	return serr
}

// diskSpace reports the free space for this user and the space in use on the root's
// volume.
func (s *Store) diskSpace() (available, used int64, err error) {
	abs, err := filepath.Abs(s.path)
	if err != nil {
		return 0, 0, err
	}
	p, err := windows.UTF16PtrFromString(abs)
	if err != nil {
		return 0, 0, err
	}
	var free, total, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, &total, &totalFree); err != nil {
		return 0, 0, err
	}
	return int64(free), int64(total - totalFree), nil
}

// getProps reads the dead properties of f: none, since Windows has no extended
// attributes that Go reaches (NTFS's are not the POSIX kind).
func getProps(*os.File) ([]byte, error) { return nil, nil }

// setProps stores the dead properties of f: only the empty set can be stored on
// Windows, as on a Linux filesystem without extended attributes.
func setProps(_ *os.File, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	return backend.ErrUnsupported
}

// syncProps has nothing to make durable on Windows, where setProps writes nothing;
// f.Sync would fail anyway, f being open read-only (FlushFileBuffers needs write
// access).
func syncProps(*os.File) error { return nil }

// markFile would mark the folder f as having entries with dead properties; on Windows
// none can have any.
func markFile(*os.File) error { return nil }

// sentinelOf is the backend sentinel for a filesystem error of this system, or nil
// when none fits (mapErr then keeps the error as it is, less its host path).
func sentinelOf(err error) error {
	switch {
	case isEscape(err), errors.Is(err, fs.ErrNotExist), errors.Is(err, windows.ERROR_CANT_RESOLVE_FILENAME):
		return backend.ErrNotExist
	case errors.Is(err, windows.ERROR_DISK_FULL), errors.Is(err, windows.ERROR_HANDLE_DISK_FULL):
		return backend.ErrNoSpace
	case errors.Is(err, fs.ErrPermission), errors.Is(err, windows.ERROR_WRITE_PROTECT):
		// fs.ErrPermission covers ERROR_ACCESS_DENIED (and EACCES, EPERM).
		return backend.ErrForbidden
	case errors.Is(err, windows.ERROR_FILENAME_EXCED_RANGE):
		return backend.ErrNameTooLong
	case errors.Is(err, windows.ERROR_DIRECTORY):
		// "The directory name is invalid": a file where a folder was expected.
		return backend.ErrNotCollection
	case errors.Is(err, fs.ErrExist), errors.Is(err, windows.ERROR_DIR_NOT_EMPTY):
		return backend.ErrExist
	case errors.Is(err, errors.ErrUnsupported), errors.Is(err, windows.ERROR_NOT_SAME_DEVICE):
		return backend.ErrUnsupported
	}
	return nil
}
