package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errStateBusy says another live process holds the state folder's lock.
var errStateBusy = errors.New("state folder in use")

// lockStateDir takes the exclusive lock on dir/lock that makes one process the only
// server of a root (or state folder): two servers of one root would sweep each
// other's staging files and lose each other's conditional writes (issue 20). The lock
// is an flock (LockFileEx on Windows) held on the open file, so the kernel drops it
// when the process dies, even by kill -9: a lock file left by a crash never blocks a
// restart. The file holds the pid only so that the refusal can name the other process.
// release unlocks and closes the file; the file itself stays.
func lockStateDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errStateBusy) {
			b, _ := os.ReadFile(path)
			pid := strings.TrimSpace(string(b))
			if _, perr := strconv.Atoi(pid); perr != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%s is in use by another safedav process (pid %s): only one process may serve a root or state folder; stop it first", dir, pid)
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	if err := writePid(f); err != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return func() { unlock(f); f.Close() }, nil
}

// writePid replaces the file's content with this process's pid.
func writePid(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}
