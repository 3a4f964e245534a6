package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// What may be in src-dir and in a snapshot, and how its files are opened. Nothing here follows
// a symbolic link or opens anything but a directory or a regular file: a FIFO would block the
// opener forever, a device may act on being opened, and a link leads outside the spool.

// IsQueueEntry reports whether an entry directly in src-dir belongs to the queue, from its name
// and its type as lstat reports it (fs.DirEntry.Type, or os.Lstat's Mode().Type(); never the
// type of what a link points to). Dot entries and *.quarantine never do. A real directory is a
// snapshot. A symlink, FIFO, socket or device of any name, and a regular file named like a
// snapshot (an integer), is a stray: it stays in the queue only until the processor quarantines
// it as it is, never following or opening it. Any other regular file is ignored. [List],
// [QueueLen] and stats-process's watcher all decide with this one function.
func IsQueueEntry(name string, typ fs.FileMode) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, QuarantineSuffix) {
		return false
	}
	if typ.IsRegular() {
		_, named := TimestampOf(name)
		return named
	}
	return true
}

// UnsafeError says why a queue entry is not read: it is not a real directory, or it holds
// entries that are not regular files. Its message names the entries and their types.
type UnsafeError struct {
	Path   string
	Reason string
}

func (e *UnsafeError) Error() string { return e.Path + ": " + e.Reason }

// maxNamedEntries bounds how many offending entries an UnsafeError names.
const maxNamedEntries = 5

// CheckSnapshot verifies, without following a link or opening anything but directories, that
// path is a real directory that holds only regular files and part directories (real
// directories of named sources) that hold only regular files (dot entries are not data and are
// ignored, whatever they are). It returns an *UnsafeError when it is not, and the lstat or
// listing error (fs.ErrNotExist when it is gone) when it cannot tell.
func CheckSnapshot(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &UnsafeError{Path: path, Reason: fmt.Sprintf(
			"%s is %s, not a snapshot directory; it was never followed or opened",
			quoteName(filepath.Base(path)), Describe(path, fi.Mode().Type()))}
	}
	entries, err := ReadSnapshotDir(path)
	if err != nil {
		return err
	}
	var bad []string
	n := 0
	note := func(name, what string) {
		n++
		if len(bad) < maxNamedEntries {
			bad = append(bad, quoteName(name)+" is "+what)
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Type().IsRegular() {
			continue
		}
		if !e.Type().IsDir() || CheckPartName(e.Name()) != nil {
			note(e.Name(), Describe(filepath.Join(path, e.Name()), e.Type()))
			continue
		}
		inner, err := ReadSnapshotDir(filepath.Join(path, e.Name()))
		if err != nil {
			return err
		}
		described := false
		for _, f := range inner {
			switch {
			case strings.HasPrefix(f.Name(), "."):
			case !f.Type().IsRegular():
				note(e.Name()+"/"+f.Name(), Describe(filepath.Join(path, e.Name(), f.Name()), f.Type()))
			case f.Name() == SourceInfoFile:
				described = true
			}
		}
		if !described {
			// Not a part stats-pull wrote: no processor could say what it is.
			note(e.Name(), "a directory without "+SourceInfoFile+", not a source's part")
		}
	}
	if n == 0 {
		return nil
	}
	list := strings.Join(bad, ", ")
	if n > len(bad) {
		list += fmt.Sprintf(" and %d more", n-len(bad))
	}
	return &UnsafeError{Path: path, Reason: "a snapshot holds only regular files and source directories of regular files, but " + list +
		"; nothing in the snapshot was read, and no link was followed"}
}

// ReadSnapshotDir lists a snapshot directory, sorted by name, refusing to follow path if it is
// a symbolic link. The entries' types are those of the entries themselves (lstat).
func ReadSnapshotDir(path string) ([]fs.DirEntry, error) {
	d, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// OpenSnapshotFile opens a file of a snapshot for reading. The last two components of path must
// be a real directory and, in it, a regular file: a symlink at either place is not followed, and
// a FIFO, socket, device or directory is not opened (*UnsafeError). The file's type is looked up
// in the directory before the open, which cannot block (O_NONBLOCK), and checked again on the
// opened file.
func OpenSnapshotFile(path string) (*os.File, error) {
	dirPath, name := filepath.Dir(path), filepath.Base(path)
	d, err := openDir(dirPath)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	dfd := int(d.Fd())
	var before unix.Stat_t
	if err := unix.Fstatat(dfd, name, &before, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if typ := modeType(uint32(before.Mode)); !typ.IsRegular() {
		return nil, &UnsafeError{Path: path, Reason: "not opened: it is " + Describe(path, typ) + ", not a regular file"}
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &UnsafeError{Path: path, Reason: "not opened: it became a symlink"}
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if !modeType(uint32(after.Mode)).IsRegular() || after.Dev != before.Dev || after.Ino != before.Ino {
		unix.Close(fd)
		return nil, &UnsafeError{Path: path, Reason: "not read: it was replaced while being opened"}
	}
	// A regular file never blocks; plain blocking mode keeps os.File out of the poller.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openDir opens a directory, refusing to follow path if it is a symbolic link.
func openDir(path string) (*os.File, error) {
	d, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err == nil {
		return d, nil
	}
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.IsDir() {
			return nil, &UnsafeError{Path: path, Reason: "not opened: it is " + Describe(path, fi.Mode().Type()) + ", not a directory"}
		}
	}
	return nil, err
}

// modeType converts the file type bits of a stat(2) mode (uint16 on some systems) into
// fs.FileMode's.
func modeType(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// maxLinkShown bounds the target of a symlink quoted in a reason.
const maxLinkShown = 256

// Describe names the type of the file at path for an operator ("a FIFO (named pipe)"); typ is
// its lstat type. A symlink's target is read, never followed.
func Describe(path string, typ fs.FileMode) string {
	switch {
	case typ.IsRegular():
		return "a regular file"
	case typ&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return "a symlink"
		}
		if len(target) > maxLinkShown {
			target = target[:maxLinkShown] + "…"
		}
		return "a symlink to " + strconv.Quote(target)
	case typ.IsDir():
		return "a directory"
	case typ&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case typ&fs.ModeSocket != 0:
		return "a UNIX socket"
	case typ&fs.ModeCharDevice != 0:
		return "a character device"
	case typ&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a file of unknown type"
}

// quoteName quotes a file name only when it needs it, so that the usual names read plainly.
func quoteName(name string) string {
	q := strconv.Quote(name)
	if q[1:len(q)-1] == name && !strings.ContainsAny(name, " ,;") {
		return name
	}
	return q
}
