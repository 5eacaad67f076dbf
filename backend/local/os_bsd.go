//go:build darwin || freebsd

package local

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoAttr is the errno of a missing extended attribute.
const errNoAttr = unix.ENOATTR

// metaOf describes an os.FileInfo of this package (its Sys is a *syscall.Stat_t).
func metaOf(fi fs.FileInfo) *meta {
	st := fi.Sys().(*syscall.Stat_t)
	return newMeta(uint32(st.Mode), st.Size, st.Ino, st.Mtimespec.Nano(), st.Ctimespec.Nano())
}
