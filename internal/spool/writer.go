package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrExists reports a name clash: the snapshot name already exists in dst-dir. The rule (see the
// package documentation) is to log a warning and skip the round.
var ErrExists = errors.New("snapshot already exists in dst-dir")

const (
	lockFileName = ".statspipe-pull.lock"
	probePrefix  = ".statspipe-probe-"
)

// Writer publishes snapshots into dst-dir, building them in tmp-dst-dir. One Writer per
// tmp-dst-dir (enforced with a lock); its methods may be called from one goroutine at a time,
// while the files of one Building may be written concurrently.
type Writer struct {
	dst, tmp string
	log      *slog.Logger
	lock     *os.File
	// batchSync: one syncfs(2) of the snapshot's filesystem at Publish makes every file of
	// the snapshot durable, instead of one fsync per file at Commit (see Publish for why that
	// is enough). False where syncfs cannot report a failed write (batchSyncSupported).
	batchSync bool
}

// NewWriter prepares dst and tmp for publishing: it creates them, refuses directories on
// different filesystems (a rename between them would not be atomic), takes the tmp-dst-dir lock
// and removes snapshots left in tmp by a crash. Close releases the lock.
func NewWriter(dst, tmp string, log *slog.Logger) (*Writer, error) {
	if dst == "" || tmp == "" {
		return nil, errors.New("spool: dst-dir and tmp-dst-dir must both be set")
	}
	dst, tmp = filepath.Clean(dst), filepath.Clean(tmp)
	for _, d := range []struct{ option, dir string }{{"dst-dir", dst}, {"tmp-dst-dir", tmp}} {
		if err := os.MkdirAll(d.dir, dirMode); err != nil {
			return nil, fmt.Errorf("%s %s does not exist and cannot be created: %w (create it beforehand, "+
				"writable by the user stats-pull runs as, or set %s to another directory)", d.option, d.dir, err, d.option)
		}
	}
	if err := checkSeparateSameFS(dst, tmp); err != nil {
		return nil, err
	}
	w := &Writer{dst: dst, tmp: tmp, log: log, batchSync: batchSyncSupported()}
	if err := w.takeLock(); err != nil {
		return nil, err
	}
	if err := w.probeRename(); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.removeLeftovers(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func checkSeparateSameFS(dst, tmp string) error {
	di, err := os.Stat(dst)
	if err != nil {
		return fmt.Errorf("dst-dir %s: %w", dst, err)
	}
	ti, err := os.Stat(tmp)
	if err != nil {
		return fmt.Errorf("tmp-dst-dir %s: %w", tmp, err)
	}
	if !di.IsDir() {
		return fmt.Errorf("dst-dir %s is not a directory", dst)
	}
	if !ti.IsDir() {
		return fmt.Errorf("tmp-dst-dir %s is not a directory", tmp)
	}
	if os.SameFile(di, ti) {
		return fmt.Errorf("tmp-dst-dir and dst-dir are the same directory (%s, %s): snapshots must be built outside the queue", tmp, dst)
	}
	if pi, err := os.Stat(filepath.Dir(tmp)); err == nil && os.SameFile(pi, di) && !strings.HasPrefix(filepath.Base(tmp), ".") {
		return fmt.Errorf("tmp-dst-dir %s is inside dst-dir %s and would be taken for a snapshot; use a sibling directory or a dot name", tmp, dst)
	}
	dd, okd := di.Sys().(*syscall.Stat_t)
	td, okt := ti.Sys().(*syscall.Stat_t)
	if okd && okt && dd.Dev != td.Dev {
		return fmt.Errorf("tmp-dst-dir %s and dst-dir %s are on different filesystems (device %d vs %d): publishing a snapshot by rename would not be atomic; put both on the same filesystem", tmp, dst, td.Dev, dd.Dev)
	}
	return nil
}

func (w *Writer) takeLock() error {
	p := filepath.Join(w.tmp, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("tmp-dst-dir lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("tmp-dst-dir %s is in use by another stats-pull (lock %s is held)", w.tmp, p)
		}
		return fmt.Errorf("tmp-dst-dir lock %s: %w", p, err)
	}
	w.lock = f
	return nil
}

// probeRename proves that a directory can be renamed from tmp into dst: st_dev equality misses
// bind mounts of one filesystem, where rename(2) fails with EXDEV.
func (w *Writer) probeRename() error {
	name := probePrefix + strconv.Itoa(os.Getpid())
	src, dst := filepath.Join(w.tmp, name), filepath.Join(w.dst, name)
	_ = os.RemoveAll(src)
	_ = os.RemoveAll(dst)
	if err := os.Mkdir(src, dirMode); err != nil {
		return fmt.Errorf("tmp-dst-dir %s is not writable: %w (make it writable by the user stats-pull runs as)", w.tmp, err)
	}
	err := renameNoReplace(src, dst)
	_ = os.Remove(src)
	_ = os.Remove(dst)
	switch {
	case errors.Is(err, syscall.EXDEV):
		return fmt.Errorf("tmp-dst-dir %s and dst-dir %s are on different mounts: a rename between them is not possible, so publishing would not be atomic; put both on the same filesystem and mount", w.tmp, w.dst)
	case err != nil:
		return fmt.Errorf("cannot publish from tmp-dst-dir %s into dst-dir %s: %w", w.tmp, w.dst, err)
	}
	return nil
}

// removeLeftovers deletes what a killed run left behind: integer-named snapshot directories in
// tmp and its own probes in both directories. Anything else is not ours and stays.
func (w *Writer) removeLeftovers() error {
	for _, dir := range []string{w.tmp, w.dst} {
		des, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cleaning %s: %w", dir, err)
		}
		for _, de := range des {
			name := de.Name()
			_, isSnapshot := TimestampOf(name)
			isSnapshot = isSnapshot && dir == w.tmp && de.IsDir()
			if !isSnapshot && !strings.HasPrefix(name, probePrefix) {
				continue
			}
			p := filepath.Join(dir, name)
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("removing leftover %s: %w", p, err)
			}
			if isSnapshot {
				w.log.Info("removed leftover snapshot of an interrupted run", "path", p)
			}
		}
	}
	return nil
}

// Close releases the tmp-dst-dir lock.
func (w *Writer) Close() error {
	if w.lock == nil {
		return nil
	}
	err := w.lock.Close()
	w.lock = nil
	return err
}

// DstDir is the queue snapshots are published into.
func (w *Writer) DstDir() string { return w.dst }

// TmpDir is where snapshots are built.
func (w *Writer) TmpDir() string { return w.tmp }

// EnsureDst recreates dst-dir when it has disappeared (someone removed it under us) and reports
// whether it had to.
func (w *Writer) EnsureDst() (recreated bool, err error) {
	if _, err := os.Stat(w.dst); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("dst-dir %s: %w", w.dst, err)
	}
	if err := os.MkdirAll(w.dst, dirMode); err != nil {
		return true, fmt.Errorf("failed to make directory %s: %w", w.dst, err)
	}
	return true, nil
}

// Begin starts building snapshot <ts> in tmp-dst-dir. It fails with ErrExists when dst-dir
// already has that name. Call Abort when done, even after Publish (it is then a no-op).
func (w *Writer) Begin(ts int64) (*Building, error) {
	if ts < 0 {
		return nil, fmt.Errorf("snapshot timestamp %d is negative", ts)
	}
	name := strconv.FormatInt(ts, 10)
	final := filepath.Join(w.dst, name)
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", final, err)
	}
	path := filepath.Join(w.tmp, name)
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("removing stale %s: %w", path, err)
	}
	if err := os.MkdirAll(w.tmp, dirMode); err != nil {
		return nil, fmt.Errorf("failed to make directory %s: %w", w.tmp, err)
	}
	if err := os.Mkdir(path, dirMode); err != nil {
		return nil, fmt.Errorf("failed to make directory %s: %w", path, err)
	}
	// Opened before any file is written: syncfs reports the writeback errors of the
	// filesystem that happened since this descriptor was opened, so none of the snapshot's
	// can be missed. Files are also created relative to it (no path walk per file).
	d, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return &Building{w: w, name: name, path: path, batch: w.batchSync, dir: d, files: map[string]*File{}, parts: map[string]bool{}}, nil
}

// Building is one snapshot under construction in tmp-dst-dir.
type Building struct {
	w    *Writer
	name string
	path string

	// batch: the snapshot is synced at once by Publish (the Writer's batchSync), through
	// dir. Otherwise each file is fsynced at Commit.
	batch bool
	dir   *os.File // the snapshot directory, open from Begin to Publish or Abort (guarded by mu)

	mu    sync.Mutex
	files map[string]*File // open or committed; discarded files are forgotten
	parts map[string]bool  // part directories made (named sources)
	done  bool             // published or aborted
}

// Name is the snapshot name (the epoch timestamp).
func (b *Building) Name() string { return b.name }

// Path is the snapshot's directory in tmp-dst-dir.
func (b *Building) Path() string { return b.path }

// Create adds a file to the snapshot: "<name>" at its top, or "<part>/<name>" in the directory
// of a named source, made on first use. Write it, then Commit it, or Discard it. It is safe to
// call from several goroutines.
func (b *Building) Create(name string) (*File, error) {
	part, file, inPart := strings.Cut(name, "/")
	if !inPart {
		file, part = part, ""
	}
	if err := checkFileName(file); err != nil {
		return nil, err
	}
	if inPart {
		if err := CheckPartName(part); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil, fmt.Errorf("snapshot %s is already published or aborted", b.path)
	}
	if _, dup := b.files[name]; dup {
		return nil, fmt.Errorf("file %s created twice in snapshot %s", name, b.path)
	}
	if inPart && !b.parts[part] {
		if err := os.Mkdir(filepath.Join(b.path, part), dirMode); err != nil {
			return nil, fmt.Errorf("failed to make directory %s: %w", filepath.Join(b.path, part), err)
		}
		b.parts[part] = true
	}
	f, err := createIn(b.dir, b.path, name)
	if err != nil {
		return nil, err
	}
	sf := &File{b: b, name: name, f: f}
	b.files[name] = sf
	return sf, nil
}

func checkFileName(name string) error {
	switch {
	case name == "", name == ".", name == "..", strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid snapshot file name %q", name)
	case name == PartialFile, name == ReasonFile:
		return fmt.Errorf("snapshot file name %q is reserved", name)
	}
	return nil
}

// Publish makes the snapshot visible in dst-dir, atomically, and returns its path there. failed
// lists the sources that are missing; when it is not empty the snapshot gets the partial
// record. Every file must have been committed or discarded. A name clash gives ErrExists. On
// error, call Abort.
func (b *Building) Publish(failed []FailedSource) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return "", fmt.Errorf("snapshot %s is already published or aborted", b.path)
	}
	for name, f := range b.files {
		if !f.committed {
			return "", fmt.Errorf("snapshot %s: file %s was neither committed nor discarded", b.path, name)
		}
	}
	if len(failed) > 0 {
		if err := b.writePartialRecord(failed); err != nil {
			return "", err
		}
	}
	if err := b.makeDurable(); err != nil {
		return "", err
	}
	final := filepath.Join(b.w.dst, b.name)
	if err := renameNoReplace(b.path, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%w: %s", ErrExists, final)
		}
		return "", fmt.Errorf("publishing %s: %w", final, err)
	}
	b.done = true
	b.closeDir()
	if err := syncDir(b.w.dst); err != nil {
		// The snapshot is published and complete; only its survival of a power loss is in doubt.
		b.w.log.Warn("snapshot published but dst-dir could not be synced", "path", final, "error", err)
	}
	return final, nil
}

// makeDurable puts every file and directory of the snapshot on stable storage; Publish renames
// the snapshot into dst-dir only after it returned nil. Every file is complete and closed by
// then (committed, or discarded and unlinked).
//
// With batchSync it is one syncfs(2) of the filesystem holding tmp-dst-dir: syncfs writes
// back and waits for all of that filesystem's dirty data and metadata — each file's data, its
// inode, the snapshot directory's and the part directories' entries — and flushes the device
// cache, exactly what an fsync of each file and directory gives, in one batch (one writeback
// pass and one cache flush instead of several per file). Its result covers every write of the
// snapshot: from Linux 5.8 syncfs returns the filesystem's writeback errors since b.dir was
// opened (before the first file was created), so a page of a snapshot file that failed to
// reach the disk fails the Publish, as a failed fsync would. It may also report another
// program's failed write on that filesystem since then: the round is then not published
// (conservative; the next round starts afresh). dst-dir is on the same filesystem (checked
// by NewWriter), so the rename's own durability is the fsync of dst-dir that follows it.
//
// Without batchSync (older kernels, other systems) every file was fsynced by Commit; the
// directories are fsynced here.
func (b *Building) makeDurable() error {
	if b.batch {
		if err := syncFS(b.dir); err != nil {
			return fmt.Errorf("syncing snapshot %s to disk (syncfs): %w", b.path, err)
		}
		return nil
	}
	for part := range b.parts {
		if err := syncDir(filepath.Join(b.path, part)); err != nil {
			return err
		}
	}
	return syncDir(b.path)
}

func (b *Building) closeDir() {
	if b.dir != nil {
		b.dir.Close()
		b.dir = nil
	}
}

func (b *Building) writePartialRecord(failed []FailedSource) error {
	p := filepath.Join(b.path, PartialFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return fmt.Errorf("writing partial record: %w", err)
	}
	var sb strings.Builder
	for _, rec := range failed {
		sb.WriteString(oneLine(rec.Name))
		sb.WriteByte('\t')
		sb.WriteString(oneLine(rec.Err))
		sb.WriteByte('\n')
	}
	_, err = f.WriteString(sb.String())
	if err == nil && !b.batch {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing partial record %s: %w", p, err)
	}
	return nil
}

// HasPart reports whether the directory of a named source was made.
func (b *Building) HasPart(part string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.parts[part]
}

// RemovePart removes a named source's directory and every file in it (a source left out of
// the round). Its files must not be open for writing any more.
func (b *Building) RemovePart(part string) error {
	if err := CheckPartName(part); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return fmt.Errorf("snapshot %s is already published or aborted", b.path)
	}
	for name, f := range b.files {
		if strings.HasPrefix(name, part+"/") {
			if !f.committed {
				f.f.Close()
			}
			delete(b.files, name)
		}
	}
	delete(b.parts, part)
	if err := os.RemoveAll(filepath.Join(b.path, part)); err != nil {
		return fmt.Errorf("removing %s: %w", filepath.Join(b.path, part), err)
	}
	return nil
}

// Abort removes the snapshot from tmp-dst-dir, closing files still open. It is a no-op after
// Publish or a previous Abort.
func (b *Building) Abort() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	b.closeDir()
	for _, f := range b.files {
		if !f.committed {
			f.f.Close()
		}
	}
	if err := os.RemoveAll(b.path); err != nil {
		return fmt.Errorf("removing unpublished snapshot %s: %w", b.path, err)
	}
	return nil
}

// File is one file of a Building. Its writes go straight to the file (no buffering), so use a
// buffer of a useful size.
type File struct {
	b         *Building
	name      string
	f         *os.File
	committed bool // guarded by b.mu
}

// Name is the file name inside the snapshot.
func (f *File) Name() string { return f.name }

// Write writes to the file.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Committed reports whether Commit succeeded.
func (f *File) Committed() bool {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	return f.committed
}

// Commit closes the file, complete: Publish will not rename the snapshot into dst-dir before
// it is durable. Where the Writer syncs each file (no batchSync), Commit fsyncs it first;
// otherwise Publish syncs all of them at once. After an error the file is incomplete: Discard
// it.
func (f *File) Commit() error {
	f.b.mu.Lock()
	committed := f.committed
	f.b.mu.Unlock()
	if committed {
		return fmt.Errorf("snapshot file %s committed twice", f.f.Name())
	}
	var err error
	if !f.b.batch { // immutable after Begin
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.f.Name(), err)
	}
	f.b.mu.Lock()
	f.committed = true
	f.b.mu.Unlock()
	return nil
}

// Discard closes and removes the file; the snapshot will not contain it.
func (f *File) Discard() error {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	if !f.committed {
		f.f.Close()
	}
	delete(f.b.files, f.name)
	if f.b.done {
		return nil // published (impossible with an uncommitted file) or aborted: nothing to remove
	}
	if err := os.Remove(filepath.Join(f.b.path, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discarding %s: %w", f.name, err)
	}
	return nil
}
