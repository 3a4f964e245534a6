package spool

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// batchSyncSupported reports whether one syncfs(2) per snapshot may replace the fsync of each
// of its files: only where syncfs reports writeback errors, which Linux does from 5.8 on
// (errseq sampled when the descriptor is opened, checked at the call). An older syncfs returns
// 0 even when the data never reached the disk, so there every file is fsynced as before.
func batchSyncSupported() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
}

// kernelAtLeast parses the leading "major.minor" of a kernel release ("6.18.44-fc-v1045").
func kernelAtLeast(release string, major, minor int) bool {
	maj, rest, _ := strings.Cut(release, ".")
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		rest = rest[:end]
	}
	ma, err1 := strconv.Atoi(maj)
	mi, err2 := strconv.Atoi(rest)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// syncFS is syncfs(2) on the filesystem of f; a variable so that tests can see when it is called.
var syncFS = syncFSDefault

func syncFSDefault(f *os.File) error { return unix.Syncfs(int(f.Fd())) }

// createIn creates name (O_EXCL) in the directory dir, whose path is dirPath, with openat(2).
// os.OpenFile would walk the whole path again and, for every file, try to add it to the
// network poller (two fcntl to set O_NONBLOCK, epoll_ctl failing with EPERM on a regular
// file, two fcntl to undo it): a third of the system calls of a pull round.
func createIn(dir *os.File, dirPath, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, fileMode)
	path := filepath.Join(dirPath, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
