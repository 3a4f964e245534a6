package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// PartialFile is the record of the failed sources of a partial snapshot.
	PartialFile = "statspipe-partial"
	// ReasonFile is added to a quarantined snapshot: why and when it was quarantined.
	ReasonFile = "REASON"
	// QuarantineSuffix is appended to src-dir to name the quarantine directory.
	QuarantineSuffix = ".quarantine"

	dirMode  = 0o777
	fileMode = 0o666
	// maxPartialRecord bounds the partial record: one short line per failed source.
	maxPartialRecord = 1 << 20
	// maxQuarantineSuffix bounds the search for a free name in the quarantine directory.
	maxQuarantineSuffix = 10000
)

// Entry is one snapshot directory of a queue.
type Entry struct {
	Name string // directory name, normally the epoch timestamp
	Path string // dir joined with Name
}

// List returns the queue in dir ([IsQueueEntry]: snapshot directories, and strays the processor
// quarantines as they are), oldest first: integer names in numeric order, then the other names
// sorted by name. Nothing is followed or opened.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing snapshot queue %s: %w", dir, err)
	}
	type keyed struct {
		Entry
		ts    int64
		isInt bool
	}
	ks := make([]keyed, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if !IsQueueEntry(name, de.Type()) {
			continue
		}
		ts, ok := TimestampOf(name)
		ks = append(ks, keyed{Entry{name, filepath.Join(dir, name)}, ts, ok})
	}
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a.isInt != b.isInt {
			return a.isInt
		}
		if a.isInt && a.ts != b.ts {
			return a.ts < b.ts
		}
		return a.Name < b.Name
	})
	out := make([]Entry, len(ks))
	for i := range ks {
		out[i] = ks[i].Entry
	}
	return out, nil
}

// QueueLen is the length of the queue in dir, counted as List counts it ([IsQueueEntry]). It
// does not sort, so pull can call it every round cheaply.
func QueueLen(dir string) (int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("counting snapshot queue %s: %w", dir, err)
	}
	n := 0
	for _, de := range des {
		if IsQueueEntry(de.Name(), de.Type()) {
			n++
		}
	}
	return n, nil
}

// TimestampOf parses a snapshot name: decimal digits only (no sign, no '+', no spaces) that fit
// an int64.
func TimestampOf(name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	ts, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		return 0, false
	}
	return ts, true
}

// IsSnapshotFile reports whether a file of a snapshot is data a processor reads: *_info or
// *_stat, or their typed forms *_info.typed and *_stat.typed ([pull] typed). Dot files are not
// (as with haproxystats' glob).
func IsSnapshotFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	name = strings.TrimSuffix(name, TypedSuffix)
	return strings.HasSuffix(name, "_info") || strings.HasSuffix(name, "_stat")
}

// TypedSuffix ends the files of typed HAProxy replies: <socket>_info.typed holds `show info
// typed`, <socket>_stat.typed `show stat typed`.
const TypedSuffix = ".typed"

// QuarantineDir is where snapshots from srcDir are quarantined: "<srcDir>.quarantine", beside
// srcDir.
func QuarantineDir(srcDir string) string {
	return filepath.Clean(srcDir) + QuarantineSuffix
}

// Quarantine moves snapshotPath into QuarantineDir(srcDir) and appends a REASON record to it.
// An existing entry is never replaced: the name gets a suffix .1, .2, … instead. It returns the
// new path of the snapshot. Nothing is followed: a snapshot directory is renamed (which moves
// the directory itself); any other entry (a symlink, FIFO, socket, device or file: a stray) is
// moved as it is into a new directory of its name in the quarantine, which also gets the REASON.
// The quarantine directory must be a real directory, not a symlink.
func Quarantine(srcDir, snapshotPath, reason string) (string, error) {
	qdir := QuarantineDir(srcDir)
	if err := os.MkdirAll(qdir, dirMode); err != nil {
		return "", fmt.Errorf("quarantining %s: %w", snapshotPath, err)
	}
	if fi, err := os.Lstat(qdir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("quarantining %s: %s is not a directory (a symlink is not followed)", snapshotPath, qdir)
	}
	fi, err := os.Lstat(snapshotPath)
	if err != nil {
		return "", fmt.Errorf("quarantining %s: %w", snapshotPath, err)
	}
	isDir := fi.IsDir()
	base := filepath.Base(snapshotPath)
	var target string
	for i := 0; ; i++ {
		if i > maxQuarantineSuffix {
			return "", fmt.Errorf("quarantining %s: no free name in %s after %d tries", snapshotPath, qdir, maxQuarantineSuffix)
		}
		target = filepath.Join(qdir, base)
		if i > 0 {
			target += "." + strconv.Itoa(i)
		}
		if isDir {
			err = renameNoReplace(snapshotPath, target)
		} else {
			err = moveInto(snapshotPath, target)
		}
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return "", fmt.Errorf("quarantining %s into %s: %w", snapshotPath, qdir, err)
	}
	// Best effort durability of the move itself; the REASON write below reports real errors.
	_ = syncDir(qdir)
	_ = syncDir(filepath.Dir(snapshotPath))

	if err := appendReason(target, reason); err != nil {
		return target, fmt.Errorf("quarantined %s as %s but writing %s failed: %w", snapshotPath, target, ReasonFile, err)
	}
	return target, nil
}

// moveInto makes the directory target (fs.ErrExist if it exists) and renames the stray entry
// path into it under its own name. rename(2) moves a symlink, never what it points to.
func moveInto(path, target string) error {
	if err := os.Mkdir(target, dirMode); err != nil {
		return err
	}
	if err := renameNoReplace(path, filepath.Join(target, filepath.Base(path))); err != nil {
		os.Remove(target)
		// %v, not %w: fs.ErrExist here would make Quarantine retry under another name.
		return fmt.Errorf("moving it into %s: %v", target, err)
	}
	return syncDir(target)
}

// appendReason appends the REASON record to the quarantined directory dir. A REASON entry that
// is not a regular file (a symlink, a FIFO: it came with the snapshot) is neither followed nor
// opened: the record goes to the first free REASON.<n> instead, and says why.
func appendReason(dir, reason string) error {
	record := fmt.Sprintf("time: %s\nreason: %s\n", time.Now().UTC().Format(time.RFC3339), oneLine(reason))
	d, err := openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	name := ReasonFile
	f, err := openReason(dfd, dir, name)
	for i := 1; err != nil && errors.Is(err, errNotRegular); i++ {
		if i > maxQuarantineSuffix {
			return fmt.Errorf("no free name for %s in %s", ReasonFile, dir)
		}
		what := err.Error()
		name = ReasonFile + "." + strconv.Itoa(i)
		f, err = openReason(dfd, dir, name)
		if err == nil {
			record = fmt.Sprintf("note: %s; this record is in %s instead\n", what, name) + record
		}
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(record)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var errNotRegular = errors.New("not a regular file")

// openReason opens dir/name for appending, creating it if missing, and only if it is (or
// becomes) a regular file with a single link: O_EXCL for a new one (never through a dangling
// link), O_NOFOLLOW and O_NONBLOCK for an existing one, whose type and link count are checked
// before and after the open.
func openReason(dfd int, dir, name string) (*os.File, error) {
	path := filepath.Join(dir, name)
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	var st unix.Stat_t
	err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	var fd int
	switch {
	case errors.Is(err, syscall.ENOENT):
		fd, err = unix.Openat(dfd, name, flags|unix.O_CREAT|unix.O_EXCL, fileMode)
	case err != nil:
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	case !modeType(uint32(st.Mode)).IsRegular():
		return nil, fmt.Errorf("%w: %s is %s", errNotRegular, name, Describe(path, modeType(uint32(st.Mode))))
	case st.Nlink != 1: // a hard link may be a file outside the spool
		return nil, fmt.Errorf("%w: %s is a regular file with %d hard links", errNotRegular, name, st.Nlink)
	default:
		fd, err = unix.Openat(dfd, name, flags, 0)
	}
	if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s appeared while the record was written", errNotRegular, name)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil || !modeType(uint32(st.Mode)).IsRegular() || st.Nlink != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s changed while being opened", errNotRegular, name)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// removingPrefix starts the dot name a delivered snapshot is renamed to before it is deleted.
const removingPrefix = ".removing."

// Remove deletes a delivered snapshot directory; a snapshot that is already gone is not an
// error. It first renames the snapshot to a dot name in its directory (out of the queue, in one
// atomic step, made durable), then deletes it: a crash in the middle of the deletion must not
// leave a snapshot with some of its files gone in the queue, to be processed again into an
// incomplete local-store file or fewer Graphite lines. A leftover dot directory is deleted by
// RemoveLeftovers.
func Remove(snapshotPath string) error {
	dir, name := filepath.Split(filepath.Clean(snapshotPath))
	gone := filepath.Join(dir, removingPrefix+name)
	if err := os.RemoveAll(gone); err != nil { // a leftover of an earlier crash
		return fmt.Errorf("removing snapshot %s: %w", snapshotPath, err)
	}
	if err := os.Rename(snapshotPath, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing snapshot %s: %w", snapshotPath, err)
	}
	if err := syncDir(filepath.Clean(dir)); err != nil {
		return fmt.Errorf("removing snapshot %s: %w", snapshotPath, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("removing snapshot %s (renamed %s): %w", snapshotPath, gone, err)
	}
	return nil
}

// RemoveLeftovers deletes what Remove left in srcDir when the process died in the middle of a
// removal (dot directories, not in the queue). The processor calls it at start.
func RemoveLeftovers(srcDir string) error {
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), removingPrefix) && e.IsDir() {
			if err := os.RemoveAll(filepath.Join(srcDir, e.Name())); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// FailedSource is one line of a partial snapshot's record.
type FailedSource struct {
	Name string
	Err  string
}

// PartialRecord returns the failed sources recorded in a partial snapshot, in file order, or nil
// when the snapshot is complete (it has no statspipe-partial file).
func PartialRecord(snapshotPath string) ([]FailedSource, error) {
	p := filepath.Join(snapshotPath, PartialFile)
	f, err := OpenSnapshotFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading partial record: %w", err)
	}
	defer f.Close()
	var out []FailedSource
	sc := bufio.NewScanner(io.LimitReader(f, maxPartialRecord+1))
	read := 0
	for sc.Scan() {
		line := sc.Text()
		if read += len(line) + 1; read > maxPartialRecord {
			return nil, fmt.Errorf("reading partial record %s: longer than %d bytes, not written by stats-pull", p, maxPartialRecord)
		}
		if line == "" {
			continue
		}
		name, msg, _ := strings.Cut(line, "\t")
		out = append(out, FailedSource{Name: name, Err: msg})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading partial record %s: %w", p, err)
	}
	if out == nil {
		// An empty record still marks the snapshot as partial; keep that distinguishable.
		out = []FailedSource{}
	}
	return out, nil
}

// PartialSources returns the names of the sources missing from a partial snapshot, or nil when
// the snapshot is complete.
func PartialSources(snapshotPath string) ([]string, error) {
	rec, err := PartialRecord(snapshotPath)
	if rec == nil || err != nil {
		return nil, err
	}
	names := make([]string, len(rec))
	for i, r := range rec {
		names[i] = r.Name
	}
	return names, nil
}

// oneLine keeps a field of a line-oriented record on its line and in its column.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return ' '
		}
		return r
	}, s)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}
