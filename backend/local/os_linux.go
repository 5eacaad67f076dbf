package local

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoAttr is the errno of a missing extended attribute.
const errNoAttr = unix.ENODATA

// metaOf describes an os.FileInfo of this package (its Sys is a *syscall.Stat_t on Linux).
func metaOf(fi fs.FileInfo) *meta {
	st := fi.Sys().(*syscall.Stat_t)
	return newMeta(st.Mode, st.Size, st.Ino, st.Mtim.Nano(), st.Ctim.Nano())
}
