package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/statspipe/statspipe/internal/metric"
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
