package spool

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if f does not return within a bound: an open that blocks on a FIFO
// must show up as a failure, not as a test binary hanging until its timeout.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked for more than 5 s", what)
	}
}

// unsafeEntry makes one entry of a kind that a snapshot must never hold, or skips the test.
func unsafeEntry(t *testing.T, kind, path, outside string) {
	t.Helper()
	var err error
	switch kind {
	case "fifo":
		err = syscall.Mkfifo(path, 0o644)
	case "symlink to a file":
		err = os.Symlink(filepath.Join(outside, "secret_stat"), path)
	case "symlink to a directory":
		err = os.Symlink(outside, path)
	case "dangling symlink":
		err = os.Symlink(filepath.Join(outside, "created"), path)
	case "directory":
		err = os.Mkdir(path, 0o755)
	case "socket":
		var l *net.UnixListener
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err == nil {
			l.SetUnlinkOnClose(false)
			l.Close()
		}
	case "character device":
		err = syscall.Mknod(path, syscall.S_IFCHR|0o644, 1<<8|3) // 1:3, like /dev/null
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mknod not permitted here: %v", err)
		}
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
}

var unsafeKinds = []struct{ kind, described string }{
	{"fifo", "is a FIFO (named pipe)"},
	{"symlink to a file", "is a symlink to "},
	{"symlink to a directory", "is a symlink to "},
	{"dangling symlink", "is a symlink to "},
	{"directory", "is a directory"},
	{"socket", "is a UNIX socket"},
	{"character device", "is a character device"},
}

// outsideDir is a directory outside the spool with a file in it; unchanged checks that nothing
// in it was written, created or removed.
func outsideDir(t *testing.T) (dir string, unchanged func()) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret_stat"), []byte("# pxname,svname\nsecret,FRONTEND\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(filepath.Join(dir, "secret_stat"), past, past)
	os.Chtimes(dir, past, past)
	before := treeOf(t, dir)
	return dir, func() {
		t.Helper()
		if after := treeOf(t, dir); after != before {
			t.Errorf("the directory outside the spool changed:\nbefore:\n%safter:\n%s", before, after)
		}
	}
}

func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		data, _ := os.ReadFile(p)
		b.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + " " + string(data) + "\n")
		return nil
	})
	return b.String()
}

func TestCheckSnapshotRefusesWhatIsNotARegularFile(t *testing.T) {
	for _, k := range unsafeKinds {
		t.Run(k.kind, func(t *testing.T) {
			outside, unchanged := outsideDir(t)
			snap := filepath.Join(t.TempDir(), "1700000000")
			os.Mkdir(snap, 0o755)
			os.WriteFile(filepath.Join(snap, "a.sock_info"), []byte("Name: HAProxy\n"), 0o644)
			unsafeEntry(t, k.kind, filepath.Join(snap, "x_stat"), outside)
			var err error
			within(t, "CheckSnapshot", func() { err = CheckSnapshot(snap) })
			var unsafe *UnsafeError
			if !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, "x_stat "+k.described) {
				t.Fatalf("CheckSnapshot = %v, want an UnsafeError saying x_stat %s", err, k.described)
			}
			t.Logf("reason: %s", unsafe.Reason)
			within(t, "OpenSnapshotFile", func() { _, err = OpenSnapshotFile(filepath.Join(snap, "x_stat")) })
			if !errors.As(err, &unsafe) {
				t.Fatalf("OpenSnapshotFile = %v, want an UnsafeError", err)
			}
			unchanged()
		})
	}
}

// Dot entries are not data: whatever they are, they are never a reason to refuse a snapshot.
func TestCheckSnapshotIgnoresDotEntries(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "1700000000")
	os.Mkdir(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "a.sock_stat"), []byte("# pxname\n"), 0o644)
	os.WriteFile(filepath.Join(snap, ReasonFile), []byte("time: x\nreason: y\n"), 0o644) // a replayed snapshot
	syscall.Mkfifo(filepath.Join(snap, ".hidden.sock_stat"), 0o644)
	os.Symlink("/etc", filepath.Join(snap, ".link_stat"))
	os.Mkdir(filepath.Join(snap, ".editor-tmp"), 0o755)
	if err := CheckSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if IsSnapshotFile(".hidden.sock_stat") || IsSnapshotFile(ReasonFile) {
		t.Fatal("dot files and REASON are not data")
	}
}

func TestCheckSnapshotOfAnEntryThatIsNotADirectory(t *testing.T) {
	outside, unchanged := outsideDir(t)
	src := t.TempDir()
	link := filepath.Join(src, "1700000000")
	os.Symlink(outside, link)
	var unsafe *UnsafeError
	if err := CheckSnapshot(link); !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, "1700000000 is a symlink to \""+outside+"\", not a snapshot directory") {
		t.Fatalf("a symlinked snapshot: %v", err)
	}
	fifo := filepath.Join(src, "1700000001")
	syscall.Mkfifo(fifo, 0o644)
	within(t, "CheckSnapshot of a FIFO", func() {
		if err := CheckSnapshot(fifo); !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, "FIFO") {
			t.Errorf("a FIFO snapshot: %v", err)
		}
	})
	if err := CheckSnapshot(filepath.Join(src, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing snapshot: %v, want fs.ErrNotExist", err)
	}
	// Listing or opening through the symlinked snapshot is refused too.
	if _, err := ReadSnapshotDir(link); !errors.As(err, &unsafe) {
		t.Fatalf("ReadSnapshotDir through a symlink: %v", err)
	}
	if _, err := OpenSnapshotFile(filepath.Join(link, "secret_stat")); !errors.As(err, &unsafe) {
		t.Fatalf("OpenSnapshotFile through a symlinked directory: %v", err)
	}
	unchanged()
}

func TestOpenSnapshotFileReadsARegularFile(t *testing.T) {
	snap := t.TempDir()
	p := filepath.Join(snap, "a.sock_stat")
	os.WriteFile(p, []byte("# pxname\n"), 0o644)
	f, err := OpenSnapshotFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || string(data) != "# pxname\n" || f.Name() != p {
		t.Fatalf("read %q, %v (name %s)", data, err, f.Name())
	}
	if _, err := OpenSnapshotFile(filepath.Join(snap, "missing_stat")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// A stray (anything in src-dir that is not a real directory but is in the queue) is moved as it
// is into a directory of its name in the quarantine, which gets the REASON; it is never followed.
func TestQuarantineMovesAStrayAsItIs(t *testing.T) {
	outside, unchanged := outsideDir(t)
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	os.Mkdir(src, 0o755)
	os.Symlink(outside, filepath.Join(src, "1700000000"))
	syscall.Mkfifo(filepath.Join(src, "1700000001"), 0o644)
	os.WriteFile(filepath.Join(src, "1700000002"), []byte("not a snapshot"), 0o644)
	os.Symlink(outside, filepath.Join(src, "not-a-number"))
	if es, _ := List(src); len(es) != 4 {
		t.Fatalf("List = %v, want the 4 strays", es)
	}
	q := QuarantineDir(src)
	os.MkdirAll(filepath.Join(q, "1700000000"), 0o755) // a clash: the stray goes to .1
	for _, c := range []struct{ name, to, typ string }{
		{"1700000000", "1700000000.1", "symlink"},
		{"1700000001", "1700000001", "FIFO"},
		{"1700000002", "1700000002", "regular file"},
		{"not-a-number", "not-a-number", "symlink"},
	} {
		p := filepath.Join(src, c.name)
		err := CheckSnapshot(p)
		var unsafe *UnsafeError
		if !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, c.typ) {
			t.Fatalf("%s: CheckSnapshot = %v", c.name, err)
		}
		var dest string
		within(t, "Quarantine", func() { dest, err = Quarantine(src, p, unsafe.Reason) })
		if err != nil || dest != filepath.Join(q, c.to) {
			t.Fatalf("%s: Quarantine = %s, %v; want %s", c.name, dest, err, filepath.Join(q, c.to))
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s is still in src-dir", c.name)
		}
		moved, err := os.Lstat(filepath.Join(dest, c.name))
		if err != nil || moved.IsDir() {
			t.Fatalf("%s: the entry itself was not moved: %v", c.name, err)
		}
		reason, err := os.ReadFile(filepath.Join(dest, ReasonFile))
		if err != nil || !strings.Contains(string(reason), "reason: "+c.name+" is a") {
			t.Fatalf("%s: REASON %q, %v", c.name, reason, err)
		}
	}
	if n, _ := QueueLen(src); n != 0 {
		t.Fatalf("QueueLen after quarantining every stray = %d", n)
	}
	if n, _ := QueueLen(q); n != 5 {
		t.Fatalf("QueueLen of the quarantine = %d, want 5 (the clash and four strays)", n)
	}
	unchanged()
}

// Quarantine never writes through a REASON that came with the snapshot and is not a regular file.
func TestQuarantineNeverFollowsOrOpensAReasonThatIsNotAFile(t *testing.T) {
	for _, kind := range []string{"dangling symlink", "symlink to a file", "fifo", "directory"} {
		t.Run(kind, func(t *testing.T) {
			outside, unchanged := outsideDir(t)
			src := filepath.Join(t.TempDir(), "incoming")
			snap := filepath.Join(src, "1700000000")
			os.MkdirAll(snap, 0o755)
			unsafeEntry(t, kind, filepath.Join(snap, ReasonFile), outside)
			var dest string
			var err error
			within(t, "Quarantine", func() { dest, err = Quarantine(src, snap, "a test") })
			if err != nil {
				t.Fatal(err)
			}
			rec, err := os.ReadFile(filepath.Join(dest, ReasonFile+".1"))
			if err != nil || !strings.Contains(string(rec), "note: not a regular file: REASON is a") ||
				!strings.Contains(string(rec), "reason: a test\n") {
				t.Fatalf("REASON.1 = %q, %v", rec, err)
			}
			if fi, err := os.Lstat(filepath.Join(dest, ReasonFile)); err != nil || fi.Mode().IsRegular() {
				t.Fatalf("the snapshot's own REASON entry must stay as it was: %v", err)
			}
			unchanged()
			if _, err := os.Lstat(filepath.Join(outside, "created")); err == nil {
				t.Fatal("a REASON was created outside the spool")
			}
		})
	}
}

// A replayed snapshot keeps its REASON (it is not data); quarantined again, the new record is
// appended to it.
func TestQuarantineAppendsToARegularReason(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	snap := filepath.Join(src, "1700000000")
	os.MkdirAll(snap, 0o755)
	dest, err := Quarantine(src, snap, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dest, snap); err != nil { // the documented replay: move it back
		t.Fatal(err)
	}
	if err := CheckSnapshot(snap); err != nil {
		t.Fatalf("a replayed snapshot with its REASON: %v", err)
	}
	dest, err = Quarantine(src, snap, "second")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := os.ReadFile(filepath.Join(dest, ReasonFile))
	if strings.Count(string(rec), "reason: ") != 2 || !strings.Contains(string(rec), "reason: second\n") {
		t.Fatalf("REASON = %q", rec)
	}
}

func TestQuarantineRefusesASymlinkedQuarantineDirectory(t *testing.T) {
	outside, unchanged := outsideDir(t)
	src := filepath.Join(t.TempDir(), "incoming")
	snap := filepath.Join(src, "1700000000")
	os.MkdirAll(snap, 0o755)
	os.Symlink(outside, QuarantineDir(src))
	if _, err := Quarantine(src, snap, "x"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Quarantine into a symlink: %v", err)
	}
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("the snapshot must stay in place: %v", err)
	}
	unchanged()
}

func TestPartialRecordIsOpenedSafely(t *testing.T) {
	for _, kind := range []string{"fifo", "symlink to a file", "socket", "directory"} {
		t.Run(kind, func(t *testing.T) {
			outside, unchanged := outsideDir(t)
			snap := t.TempDir()
			unsafeEntry(t, kind, filepath.Join(snap, PartialFile), outside)
			var err error
			within(t, "PartialRecord", func() { _, err = PartialRecord(snap) })
			var unsafe *UnsafeError
			if !errors.As(err, &unsafe) {
				t.Fatalf("PartialRecord = %v, want an UnsafeError", err)
			}
			unchanged()
		})
	}
	snap := t.TempDir()
	os.WriteFile(filepath.Join(snap, PartialFile), []byte(strings.Repeat("a\tb\n", maxPartialRecord/4+1)), 0o644)
	if _, err := PartialRecord(snap); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("an oversized record: %v", err)
	}
}

// A REASON that is a hard link (perhaps to a file outside the spool) is not appended to.
func TestQuarantineNeverAppendsToAHardLinkedReason(t *testing.T) {
	outside, unchanged := outsideDir(t)
	src := filepath.Join(t.TempDir(), "incoming")
	snap := filepath.Join(src, "1700000000")
	os.MkdirAll(snap, 0o755)
	if err := os.Link(filepath.Join(outside, "secret_stat"), filepath.Join(snap, ReasonFile)); err != nil {
		t.Skipf("no hard link across the test directories: %v", err)
	}
	dest, err := Quarantine(src, snap, "a test")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(dest, ReasonFile+".1"))
	if err != nil || !strings.Contains(string(rec), "REASON is a regular file with 2 hard links") {
		t.Fatalf("REASON.1 = %q, %v", rec, err)
	}
	unchanged()
}
