package process

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// filesFormat records, per snapshot, the files present when it was processed.
type filesFormat struct {
	mu    *sync.Mutex
	files map[string][]string
}

func (f filesFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	f.mu.Lock()
	f.files[filepath.Base(dir)] = names
	f.mu.Unlock()
	return flush(&metric.Batch{Timestamp: ts, Source: dir, Seq: 0, Last: true,
		Data: fmt.Appendf(nil, "test.%d 1 %d\n", ts, ts), Lines: 1})
}

func (f filesFormat) seen(name string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	files, ok := f.files[name]
	return files, ok
}

func runWatching(t *testing.T, src string, f Format, d *fakeDispatcher) *Runner {
	t.Helper()
	r := testRunner(t, src, 1, fakeFormat{}, d)
	r.o.NewFormat = func() Format { return f }
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func() { close(ready) }) }()
	<-ready
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	return r
}

// A directory made in place and filled file by file (cp -r into the spool) is taken only once
// it stops changing, with every file; fsnotify reports its mkdir like a publication.
func TestDirectoryFilledInPlaceIsTakenWhenSettled(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filesFormat{mu: new(sync.Mutex), files: map[string][]string{}}
	runWatching(t, src, f, &fakeDispatcher{})

	dir := filepath.Join(src, "1700000010")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 6 {
		time.Sleep(settleTime / 3)
		name := fmt.Sprintf("admin%d.sock_stat", i)
		want = append(want, name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("# pxname,svname\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { _, ok := f.seen("1700000010"); return ok }, "the snapshot processed")
	if got, _ := f.seen("1700000010"); !slices.Equal(got, want) {
		t.Fatalf("processed with files %v, want all of %v", got, want)
	}
}

// A snapshot renamed in is taken within about settleTime; a backlog older than settleTime is
// taken at once.
func TestRenamedSnapshotAndOldBacklogAreTakenPromptly(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	old := mkSnapshot(t, src, "1700000010")
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(old, "admin1.sock_info"), past, past)
	os.Chtimes(old, past, past)
	d := &fakeDispatcher{}
	start := time.Now()
	runWatching(t, src, newFake(), d)
	waitFor(t, func() bool { return strings.Contains(d.lines(), "test.1700000010 ") }, "the backlog processed")
	if took := time.Since(start); took > settleTime {
		t.Errorf("an old backlog waited %v; it had settled long ago", took)
	}

	fresh := mkSnapshot(t, filepath.Join(base, "incoming.tmp"), "1700000020")
	start = time.Now()
	if err := os.Rename(fresh, filepath.Join(src, "1700000020")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(d.lines(), "test.1700000020 ") }, "the published snapshot processed")
	t.Logf("a snapshot renamed in was taken after %v", time.Since(start).Round(time.Millisecond))
}

// An inotify queue overflow loses events; the rescan it triggers finds what they announced.
func TestOverflowTriggersRescan(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &fakeDispatcher{}
	r := runWatching(t, src, newFake(), d)
	w := r.watcher.Load()
	if err := w.fs.Remove(src); err != nil { // the events from here on are "lost"
		t.Fatal(err)
	}
	p := mkSnapshot(t, src, "1700000010")
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(p, "admin1.sock_info"), past, past)
	os.Chtimes(p, past, past)
	time.Sleep(2 * settleTime)
	if d.lines() != "" {
		t.Fatalf("processed without an event: %q", d.lines())
	}
	w.fs.Errors <- fsnotify.ErrEventOverflow
	waitFor(t, func() bool { return strings.Contains(d.lines(), "test.1700000010 ") }, "the rescan after the overflow")
}

// The watcher's two ways of finding snapshots, inotify events and scans, take exactly what
// spool.List (and so pull's spool.QueueLen) counts: one predicate, applied to the entry itself.
func TestWatcherAndListAgreeOnWhatIsQueued(t *testing.T) {
	outside := t.TempDir()
	src := filepath.Join(t.TempDir(), "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	q := newQueue()
	w, err := newWatcher(src, q, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.fs.Close()
	for _, d := range []string{"1700000010", "abc", ".hidden", "x.quarantine"} {
		mkSnapshot(t, src, d)
	}
	os.WriteFile(filepath.Join(src, "notes"), nil, 0o644)
	os.WriteFile(filepath.Join(src, "1700000020"), nil, 0o644)
	os.WriteFile(filepath.Join(src, ".1700000021"), nil, 0o644)
	os.Symlink(outside, filepath.Join(src, "1700000030"))
	os.Symlink(filepath.Join(src, "1700000010"), filepath.Join(src, "1700000031"))
	os.Symlink(outside, filepath.Join(src, "link"))
	if err := syscall.Mkfifo(filepath.Join(src, "1700000040"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		w.event(fsnotify.Event{Name: filepath.Join(src, e.Name()), Op: fsnotify.Create})
	}
	listed, err := spool.List(src)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range listed {
		want = append(want, e.Name)
	}
	taken := func(q *queue, w *watcher) []string {
		var names []string
		for _, e := range listed {
			w.mu.Lock()
			_, pending := w.pending[e.Name]
			w.mu.Unlock()
			if q.knows(e.Name) || pending {
				names = append(names, e.Name)
			}
		}
		if n := q.len() + len(w.pending); n != len(names) {
			t.Errorf("the watcher took %d entries, %d of them not listed", n, n-len(names))
		}
		return names
	}
	if got := taken(q, w); !slices.Equal(got, want) {
		t.Errorf("events took %v, spool.List has %v", got, want)
	}
	q2 := newQueue()
	w2, err := newWatcher(src, q2, slog.New(slog.DiscardHandler), 0) // its first scan
	if err != nil {
		t.Fatal(err)
	}
	defer w2.fs.Close()
	if got := taken(q2, w2); !slices.Equal(got, want) {
		t.Errorf("a scan took %v, spool.List has %v", got, want)
	}
	if n, _ := spool.QueueLen(src); n != len(want) {
		t.Errorf("spool.QueueLen = %d, spool.List has %d", n, len(want))
	}
	wantNames := []string{"1700000010", "1700000020", "1700000030", "1700000031", "1700000040", "abc", "link"}
	if !slices.Equal(want, wantNames) {
		t.Errorf("spool.List = %v, want %v", want, wantNames)
	}
}

// treeOf describes a directory tree (names, types, sizes, modification times, contents) to
// show that nothing outside the spool was read into, written, created or removed.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %v %d %v %q\n", p, fi.Mode(), fi.Size(), fi.ModTime(), data)
		return nil
	})
	return b.String()
}

// A symlink published into src-dir, to a directory holding snapshot files outside the spool,
// is never followed: the link itself is quarantined, nothing is read or written outside. A
// snapshot holding a FIFO, or a symlink to a file, is quarantined without opening either.
func TestUnsafeEntriesAreQuarantinedNeverFollowedOrOpened(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	tmp := filepath.Join(base, "incoming.tmp")
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "admin1.sock_info"), []byte("Name: HAProxy\n"), 0o644)
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(outside, "admin1.sock_info"), past, past)
	os.Chtimes(outside, past, past)
	before := treeOf(t, outside)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filesFormat{mu: new(sync.Mutex), files: map[string][]string{}}
	d := &fakeDispatcher{}
	r := runWatching(t, src, f, d)

	if err := os.Symlink(outside, filepath.Join(src, "1700000010")); err != nil {
		t.Fatal(err)
	}
	fifo := mkSnapshot(t, tmp, "1700000020")
	if err := syscall.Mkfifo(filepath.Join(fifo, "admin1.sock_stat"), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := mkSnapshot(t, tmp, "1700000030")
	os.Symlink(filepath.Join(outside, "admin1.sock_info"), filepath.Join(linked, "admin2.sock_info"))
	good := mkSnapshot(t, tmp, "1700000040")
	for _, p := range []string{fifo, linked, good} {
		if err := os.Rename(p, filepath.Join(src, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return r.Summary().Quarantined == 3 && r.Summary().Delivered == 1 }, "three quarantined, one delivered")
	qdir := spool.QuarantineDir(src)
	for name, want := range map[string]string{
		"1700000010": "1700000010 is a symlink to \"" + outside + "\", not a snapshot directory",
		"1700000020": "admin1.sock_stat is a FIFO (named pipe)",
		"1700000030": "admin2.sock_info is a symlink to \"" + filepath.Join(outside, "admin1.sock_info") + "\"",
	} {
		if files, ok := f.seen(name); ok {
			t.Errorf("%s was processed (files %v); it must be quarantined unread", name, files)
		}
		reason, err := os.ReadFile(filepath.Join(qdir, name, spool.ReasonFile))
		if err != nil || !strings.Contains(string(reason), want) {
			t.Errorf("%s: REASON %q (%v), want it to say %q", name, reason, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(qdir, "1700000010", "1700000010")); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the symlink itself must be in the quarantine: %v", err)
	}
	if after := treeOf(t, outside); after != before {
		t.Errorf("outside the spool changed:\nbefore:\n%safter:\n%s", before, after)
	}
	if _, ok := f.seen("1700000040"); !ok {
		t.Error("the good snapshot was not processed")
	}
}

// A body still being copied into a source's directory grows there: the settle check must see
// it change, not only the snapshot's own entries.
func TestContentsOfSeesPartFilesGrow(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "1700000000")
	part := filepath.Join(snap, "apps")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(part, "i1.body")
	os.WriteFile(body, []byte("x 1\n"), 0o644)
	before, _, err := contentsOf(snap)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(body, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("y 2\n"))
	f.Close()
	after, _, err := contentsOf(snap)
	if err != nil {
		t.Fatal(err)
	}
	if before == after || !strings.Contains(after, "apps/i1.body 8 ") {
		t.Fatalf("the growth of apps/i1.body is not seen:\nbefore %q\nafter  %q", before, after)
	}
}
