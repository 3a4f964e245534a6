//go:build !linux

package spool

import (
	"io/fs"
	"os"
)

// renameNoReplace renames oldpath to newpath and fails with fs.ErrExist when newpath exists.
// Only this process writes into the target directory, so check-then-rename is safe here.
func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}
