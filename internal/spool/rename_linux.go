package spool

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// The syscall package has no renameat2 on most architectures; these are the kernel's numbers.
var sysRenameat2 = map[string]uintptr{
	"amd64": 316, "386": 353, "arm64": 276, "arm": 382, "riscv64": 276, "loong64": 276,
	"ppc64le": 357, "ppc64": 357, "s390x": 347, "mips64le": 5311, "mips64": 5311,
}[runtime.GOARCH]

const renameNoReplaceFlag = 1 // RENAME_NOREPLACE

// renameNoReplace renames oldpath to newpath atomically and fails with an error matching
// fs.ErrExist when newpath exists, even as an empty directory (which plain rename(2) would
// silently replace).
func renameNoReplace(oldpath, newpath string) error {
	if sysRenameat2 != 0 {
		err := renameat2(oldpath, newpath)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EINVAL):
			// Old kernel or a filesystem without RENAME_NOREPLACE: fall through.
		default:
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
		}
	}
	// Only this process writes into the target directory, so check-then-rename is safe here.
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}

func renameat2(oldpath, newpath string) error {
	o, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	n, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	cwd := -100 // AT_FDCWD; a variable, since a negative constant cannot become a uintptr
	_, _, e := syscall.Syscall6(sysRenameat2, uintptr(cwd), uintptr(unsafe.Pointer(o)),
		uintptr(cwd), uintptr(unsafe.Pointer(n)), renameNoReplaceFlag, 0)
	if e != 0 {
		return e
	}
	return nil
}
