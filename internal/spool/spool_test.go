package spool

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newWriter(t *testing.T) (w *Writer, dst, tmp string) {
	t.Helper()
	base := t.TempDir()
	dst, tmp = filepath.Join(base, "incoming"), filepath.Join(base, "incoming.tmp")
	w, err := NewWriter(dst, tmp, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, dst, tmp
}

func writeFile(t *testing.T, b *Building, name, content string) {
	t.Helper()
	f, err := b.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func TestPublishMovesCompleteSnapshot(t *testing.T) {
	w, dst, tmp := newWriter(t)
	b, err := w.Begin(1795312744)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	writeFile(t, b, "admin1.sock_info", "Name: HAProxy\n")
	writeFile(t, b, "127.0.0.1:5555_stat", "# pxname,svname,\n\n")
	dropped, err := b.Create("admin2.sock_stat")
	if err != nil {
		t.Fatal(err)
	}
	dropped.Write([]byte("half a rep"))
	if err := dropped.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "1795312744")); !os.IsNotExist(err) {
		t.Fatalf("snapshot visible in dst-dir before Publish: %v", err)
	}
	final, err := b.Publish(nil)
	if err != nil {
		t.Fatal(err)
	}
	if final != filepath.Join(dst, "1795312744") {
		t.Fatalf("published as %s", final)
	}
	if got, want := names(t, final), []string{"127.0.0.1:5555_stat", "admin1.sock_info"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("published files %v, want %v", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(final, "admin1.sock_info")); string(got) != "Name: HAProxy\n" {
		t.Fatalf("content %q", got)
	}
	if got := names(t, tmp); !reflect.DeepEqual(got, []string{lockFileName}) {
		t.Fatalf("tmp-dst-dir after publish: %v", got)
	}
	if rec, err := PartialSources(final); rec != nil || err != nil {
		t.Fatalf("complete snapshot reported partial: %v %v", rec, err)
	}
	if err := b.Abort(); err != nil || !dirExists(final) {
		t.Fatalf("Abort after Publish must be a no-op: %v", err)
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func TestNameClashNeverOverwrites(t *testing.T) {
	w, dst, _ := newWriter(t)
	b, err := w.Begin(100)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, "a_info", "first")
	if _, err := b.Publish(nil); err != nil {
		t.Fatal(err)
	}
	// A second round in the same second is refused up front.
	if _, err := w.Begin(100); !errors.Is(err, ErrExists) {
		t.Fatalf("Begin on an existing name: %v, want ErrExists", err)
	}
	// The name appears while the round is being built: rename(2) would silently replace an
	// empty directory; the publish must refuse instead.
	b2, err := w.Begin(101)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b2, "a_info", "second")
	if err := os.Mkdir(filepath.Join(dst, "101"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Publish(nil); !errors.Is(err, ErrExists) {
		t.Fatalf("Publish onto an existing empty directory: %v, want ErrExists", err)
	}
	if got := names(t, filepath.Join(dst, "101")); len(got) != 0 {
		t.Fatalf("existing directory was overwritten, now holds %v", got)
	}
	if err := b2.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "100", "a_info")); string(got) != "first" {
		t.Fatalf("first snapshot changed: %q", got)
	}
}

func TestPublishRefusesUncommittedFile(t *testing.T) {
	w, dst, tmp := newWriter(t)
	b, err := w.Begin(5)
	if err != nil {
		t.Fatal(err)
	}
	f, err := b.Create("x_stat")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	if _, err := b.Publish(nil); err == nil || !strings.Contains(err.Error(), "x_stat") {
		t.Fatalf("Publish with an open file: %v", err)
	}
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dst); len(got) != 0 {
		t.Fatalf("dst-dir after abort: %v", got)
	}
	if got := names(t, tmp); !reflect.DeepEqual(got, []string{lockFileName}) {
		t.Fatalf("tmp-dst-dir after abort: %v", got)
	}
}

func TestCreateRejectsBadAndReservedNames(t *testing.T) {
	w, _, _ := newWriter(t)
	b, err := w.Begin(7)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	for _, n := range []string{"", ".", "..", "a/b/c", "/b", "a/", "1/x", ".a/x", "x_stat/y", PartialFile, ReasonFile} {
		if _, err := b.Create(n); err == nil {
			t.Errorf("Create(%q) accepted", n)
		}
	}
	writeFile(t, b, "dup_info", "x")
	if _, err := b.Create("dup_info"); err == nil {
		t.Error("second Create of the same name accepted")
	}
}

func TestPartialRecord(t *testing.T) {
	w, _, _ := newWriter(t)
	b, err := w.Begin(42)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, "admin1.sock_info", "x")
	final, err := b.Publish([]FailedSource{
		{Name: "admin2.sock", Err: "received zero data"},
		{Name: "127.0.0.1:5555", Err: "dial tcp:\tconnection\nrefused"},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(final, PartialFile))
	if want := "admin2.sock\treceived zero data\n127.0.0.1:5555\tdial tcp: connection refused\n"; string(raw) != want {
		t.Fatalf("record %q, want %q", raw, want)
	}
	got, err := PartialSources(final)
	if err != nil || !reflect.DeepEqual(got, []string{"admin2.sock", "127.0.0.1:5555"}) {
		t.Fatalf("PartialSources = %v, %v", got, err)
	}
	if IsSnapshotFile(PartialFile) {
		t.Fatal("the partial record must not be taken for data")
	}
}

func TestDifferentFilesystemsRefused(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "spooltest")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	disk := t.TempDir()
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(disk, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm and the test temp dir are on the same filesystem")
	}
	_, err = NewWriter(filepath.Join(disk, "incoming"), filepath.Join(shm, "incoming.tmp"), quietLog())
	if err == nil || !strings.Contains(err.Error(), "different filesystems") {
		t.Fatalf("NewWriter across filesystems: %v", err)
	}
}

func TestSameOrNestedDirsRefused(t *testing.T) {
	base := t.TempDir()
	if _, err := NewWriter(base, base+"/.", quietLog()); err == nil || !strings.Contains(err.Error(), "same directory") {
		t.Fatalf("same dir: %v", err)
	}
	if _, err := NewWriter(base, filepath.Join(base, "tmp"), quietLog()); err == nil || !strings.Contains(err.Error(), "inside dst-dir") {
		t.Fatalf("visible tmp inside dst: %v", err)
	}
	w, err := NewWriter(base, filepath.Join(base, ".tmp"), quietLog())
	if err != nil {
		t.Fatalf("dot tmp inside dst must be allowed: %v", err)
	}
	w.Close()
}

func TestSecondWriterOnSameTmpRefused(t *testing.T) {
	_, dst, tmp := newWriter(t)
	if _, err := NewWriter(dst, tmp, quietLog()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second writer: %v", err)
	}
}

func TestLeftoversRemovedAtStart(t *testing.T) {
	base := t.TempDir()
	dst, tmp := filepath.Join(base, "in"), filepath.Join(base, "in.tmp")
	for _, d := range []string{filepath.Join(tmp, "1700000000"), filepath.Join(tmp, "keepme"), dst} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tmp, "1700000000", "admin1.sock_stat"), []byte("# pxname,half"), 0o644)
	os.WriteFile(filepath.Join(tmp, "123"), []byte("a file, not ours"), 0o644)
	os.Mkdir(filepath.Join(dst, probePrefix+"999"), 0o755)
	var logBuf bytes.Buffer
	w, err := NewWriter(dst, tmp, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, want := names(t, tmp), []string{lockFileName, "123", "keepme"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tmp after start: %v, want %v", got, want)
	}
	if got := names(t, dst); len(got) != 0 {
		t.Fatalf("dst after start: %v", got)
	}
	if !strings.Contains(logBuf.String(), "1700000000") {
		t.Fatalf("removal not logged: %s", logBuf.String())
	}
}

func TestTimestampOf(t *testing.T) {
	good := map[string]int64{"0": 0, "1795312744": 1795312744, "0042": 42, "9223372036854775807": 1<<63 - 1}
	for s, want := range good {
		if got, ok := TimestampOf(s); !ok || got != want {
			t.Errorf("TimestampOf(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "+1", "-1", " 1", "1 ", "1a", "1.5", "9223372036854775808", "１２"} {
		if _, ok := TimestampOf(s); ok {
			t.Errorf("TimestampOf(%q) accepted", s)
		}
	}
}

func TestListOrderAndQueueLen(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"100", "9", "10", "zz", "abc", "09", ".hidden", "old" + QuarantineSuffix, "99999999999999999999"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Strays are queue entries (the processor quarantines them as they are): a file named like a
	// snapshot, a symlink whatever it points to, a FIFO. Other plain files and dot entries are not.
	os.WriteFile(filepath.Join(dir, "5"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "notes"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".read_write_check"), nil, 0o644)
	os.Symlink(filepath.Join(dir, "10"), filepath.Join(dir, "11"))
	os.Symlink("/nonexistent", filepath.Join(dir, "link"))
	if err := syscall.Mkfifo(filepath.Join(dir, "12"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Mkfifo(filepath.Join(dir, ".fifo"), 0o644)
	got, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var gotNames []string
	for _, e := range got {
		if e.Path != filepath.Join(dir, e.Name) {
			t.Errorf("entry %s has path %s", e.Name, e.Path)
		}
		gotNames = append(gotNames, e.Name)
	}
	want := []string{"5", "09", "9", "10", "11", "12", "100", "99999999999999999999", "abc", "link", "zz"}
	if !reflect.DeepEqual(gotNames, want) {
		t.Fatalf("List = %v, want %v", gotNames, want)
	}
	n, err := QueueLen(dir)
	if err != nil || n != len(want) {
		t.Fatalf("QueueLen = %d, %v; want %d", n, err, len(want))
	}
	if _, err := QueueLen(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("QueueLen of a missing dir must fail")
	}
}

func TestQuarantineNeverOverwrites(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	if got := QuarantineDir(src + "/"); got != src+".quarantine" {
		t.Fatalf("QuarantineDir = %s", got)
	}
	var paths []string
	for i, reason := range []string{"first: bad", "second\tbad\nline", "third"} {
		snap := filepath.Join(src, "1700000000")
		if err := os.MkdirAll(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(snap, "a_stat"), []byte{byte('0' + i)}, 0o644)
		p, err := Quarantine(src, snap, reason)
		if err != nil {
			t.Fatal(err)
		}
		if dirExists(snap) {
			t.Fatal("snapshot still in src-dir")
		}
		paths = append(paths, p)
	}
	q := src + ".quarantine"
	want := []string{q + "/1700000000", q + "/1700000000.1", q + "/1700000000.2"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("quarantined as %v, want %v", paths, want)
	}
	for i, p := range paths {
		if got, _ := os.ReadFile(filepath.Join(p, "a_stat")); string(got) != string(rune('0'+i)) {
			t.Errorf("%s holds %q: an earlier quarantine was overwritten", p, got)
		}
	}
	reason, _ := os.ReadFile(filepath.Join(paths[1], ReasonFile))
	lines := strings.Split(string(reason), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "time: 20") || lines[1] != "reason: second bad line" {
		t.Fatalf("REASON = %q", reason)
	}
	if n, _ := QueueLen(src); n != 0 {
		t.Fatalf("queue after quarantine: %d", n)
	}
}

func TestRemoveToleratesMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "1")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	if err := Remove(dir); err != nil || dirExists(dir) {
		t.Fatalf("Remove: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatalf("Remove of a gone snapshot: %v", err)
	}
}

func TestIsSnapshotFile(t *testing.T) {
	for n, want := range map[string]bool{
		"admin1.sock_info": true, "127.0.0.1:5555_stat": true, "::1:4444_stat": true,
		"x_stats": false, "REASON": false, PartialFile: false, ".a_info": false, "info": false,
		"admin1.sock_info.typed": true, "::1:4444_stat.typed": true, "x_stat.typed.typed": false,
		"x.typed": false, ".a_stat.typed": false, "x_stats.typed": false,
	} {
		if IsSnapshotFile(n) != want {
			t.Errorf("IsSnapshotFile(%q) != %v", n, want)
		}
	}
}

// Remove takes the snapshot out of the queue in one step before deleting it: a removal cut
// short leaves a dot directory (never a snapshot with some files gone), which RemoveLeftovers
// deletes.
func TestRemoveIsAtomicForTheQueue(t *testing.T) {
	src := t.TempDir()
	snap := filepath.Join(src, "1700000000")
	os.Mkdir(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "a_stat"), []byte("x"), 0o644)
	// A leftover of a crash in the middle of an earlier removal of the same name.
	stale := filepath.Join(src, removingPrefix+"1700000000")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "b_stat"), []byte("y"), 0o644)
	if err := Remove(snap); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(src); len(entries) != 0 {
		t.Fatalf("left in src-dir: %v", entries)
	}
	if err := Remove(snap); err != nil {
		t.Fatalf("a snapshot already gone: %v", err)
	}
	// What a crash between the rename and the deletion leaves is no queue entry, and goes.
	os.MkdirAll(filepath.Join(src, removingPrefix+"1700000010"), 0o755)
	if n, err := QueueLen(src); err != nil || n != 0 {
		t.Fatalf("queue length %d %v", n, err)
	}
	if err := RemoveLeftovers(src); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(src); len(entries) != 0 {
		t.Fatalf("left in src-dir: %v", entries)
	}
}
