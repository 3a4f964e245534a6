package spool

import (
	"os"
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
var syncFS = func(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}
