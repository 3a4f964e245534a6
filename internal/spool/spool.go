package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
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
	// maxQuarantineSuffix bounds the search for a free name in the quarantine directory.
	maxQuarantineSuffix = 10000
)

// Entry is one snapshot directory of a queue.
type Entry struct {
	Name string // directory name, normally the epoch timestamp
	Path string // dir joined with Name
}

// List returns the snapshot directories in dir, oldest first: integer names in numeric order,
// then the other names sorted by name. Dot entries, *.quarantine and non-directories (symlinks
// included) are skipped.
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
		if !isQueueEntry(name, de.IsDir()) {
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

func isQueueEntry(name string, isDir bool) bool {
	return isDir && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, QuarantineSuffix)
}

// QueueLen is the number of snapshot directories in dir, counted as List counts them. It does
// not sort, so pull can call it every round cheaply.
func QueueLen(dir string) (int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("counting snapshot queue %s: %w", dir, err)
	}
	n := 0
	for _, de := range des {
		if isQueueEntry(de.Name(), de.IsDir()) {
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
// *_stat. Dot files are not (as with haproxystats' glob).
func IsSnapshotFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return strings.HasSuffix(name, "_info") || strings.HasSuffix(name, "_stat")
}

// QuarantineDir is where snapshots from srcDir are quarantined: "<srcDir>.quarantine", beside
// srcDir.
func QuarantineDir(srcDir string) string {
	return filepath.Clean(srcDir) + QuarantineSuffix
}

// Quarantine moves snapshotPath into QuarantineDir(srcDir) and appends a REASON record to it.
// An existing entry is never replaced: the name gets a suffix .1, .2, … instead. It returns the
// new path of the snapshot.
func Quarantine(srcDir, snapshotPath, reason string) (string, error) {
	qdir := QuarantineDir(srcDir)
	if err := os.MkdirAll(qdir, dirMode); err != nil {
		return "", fmt.Errorf("quarantining %s: %w", snapshotPath, err)
	}
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
		err := renameNoReplace(snapshotPath, target)
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

	f, err := os.OpenFile(filepath.Join(target, ReasonFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return target, fmt.Errorf("quarantined %s as %s but writing %s failed: %w", snapshotPath, target, ReasonFile, err)
	}
	_, err = fmt.Fprintf(f, "time: %s\nreason: %s\n", time.Now().UTC().Format(time.RFC3339), oneLine(reason))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return target, fmt.Errorf("quarantined %s as %s but writing %s failed: %w", snapshotPath, target, ReasonFile, err)
	}
	return target, nil
}

// Remove deletes a snapshot directory; a snapshot that is already gone is not an error.
func Remove(snapshotPath string) error {
	if err := os.RemoveAll(snapshotPath); err != nil {
		return fmt.Errorf("removing snapshot %s: %w", snapshotPath, err)
	}
	return nil
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
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading partial record: %w", err)
	}
	defer f.Close()
	var out []FailedSource
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
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
