//go:build linux || darwin || freebsd

package local

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"safedav/backend"
)

// mapErr is the one place errnos become sentinels: each errno of the table maps to
// its sentinel, wrapped in a *fs.PathError as os returns them or bare as x/sys does,
// and keeps the errno visible to errors.Is; the host path never reaches the text.
func TestMapErrErrnos(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		want  error
	}{
		{syscall.ENOENT, backend.ErrNotExist},
		{syscall.ELOOP, backend.ErrNotExist},
		{syscall.ENOSPC, backend.ErrNoSpace},
		{syscall.EDQUOT, backend.ErrNoSpace},
		{syscall.EACCES, backend.ErrForbidden},
		{syscall.EPERM, backend.ErrForbidden},
		{syscall.EROFS, backend.ErrForbidden},
		{syscall.ENAMETOOLONG, backend.ErrNameTooLong},
		{syscall.EISDIR, backend.ErrIsCollection},
		{syscall.ENOTDIR, backend.ErrNotCollection},
		{syscall.EEXIST, backend.ErrExist},
		{syscall.EXDEV, backend.ErrUnsupported},
	} {
		for _, in := range []error{tc.errno, &fs.PathError{Op: "open", Path: "/srv/secret/x", Err: tc.errno}} {
			got := mapErr(in)
			if !errors.Is(got, tc.want) || !errors.Is(got, tc.errno) {
				t.Errorf("%v (%T) → %v, want %v wrapping the errno", tc.errno, in, got, tc.want)
			}
			if s := fmt.Sprint(got); containsPath(s) {
				t.Errorf("%v: the host path leaks: %q", tc.errno, s)
			}
		}
	}
	// An errno without a sentinel stays an unknown error (500), path stripped.
	if got := mapErr(&fs.PathError{Op: "read", Path: "/srv/secret/x", Err: syscall.EIO}); !errors.Is(got, syscall.EIO) || containsPath(got.Error()) {
		t.Errorf("EIO → %v", got)
	}
}

func containsPath(s string) bool { return strings.Contains(s, "/srv/secret") }
