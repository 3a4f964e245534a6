package localstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

var _ dispatch.Dispatcher = (*Dispatcher)(nil)

// snapshot builds the chunks of one snapshot; the last chunk holds only the
// TotalWallClockTime line, as the processing worker sends it after everything else.
func snapshot(ts int64, source string, chunks, lines int, tag string) []*metric.Batch {
	var out []*metric.Batch
	for c := range chunks {
		var buf bytes.Buffer
		for l := range lines {
			fmt.Fprintf(&buf, "loadbalancers.lb1.haproxy.%s.c%d.l%d %d %d\n", tag, c, l, c*100+l, ts)
		}
		out = append(out, &metric.Batch{Timestamp: ts, Source: source, Seq: c, Data: buf.Bytes(), Lines: lines})
	}
	last := fmt.Appendf(nil, "loadbalancers.lb1.haproxystats.TotalWallClockTime 0.123 %d\n", ts)
	out = append(out, &metric.Batch{Timestamp: ts, Source: source, Seq: chunks, Last: true, Data: last, Lines: 1})
	return out
}

func concat(chunks []*metric.Batch) []byte {
	var all []byte
	for _, b := range chunks {
		all = append(all, b.Data...)
	}
	return all
}

type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

// submit submits one chunk and returns what done reported; done must be called exactly once,
// before Submit returns.
func submit(t *testing.T, d *Dispatcher, b *metric.Batch) error {
	t.Helper()
	calls := 0
	var got error
	if err := d.Submit(context.Background(), b, func(err error) { calls++; got = err }); err != nil {
		t.Fatalf("Submit chunk %d: %v", b.Seq, err)
	}
	if calls != 1 {
		t.Fatalf("chunk %d: done called %d times before Submit returned", b.Seq, calls)
	}
	return got
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestFileHoldsTheChunksInOrderAndAppearsOnlyAtTheLastChunk(t *testing.T) {
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	chunks := snapshot(1700000010, "/spool/1700000010", 4, 50, "backend")
	statsPath := filepath.Join(dir, "1700000010", "stats")
	for _, b := range chunks {
		if err := submit(t, d, b); err != nil {
			t.Fatalf("chunk %d: %v", b.Seq, err)
		}
		if !b.Last {
			if _, err := os.Stat(statsPath); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("after chunk %d: stats exists before the last chunk (%v)", b.Seq, err)
			}
		}
	}
	got, err := os.ReadFile(statsPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := concat(chunks); !bytes.Equal(got, want) {
		t.Fatalf("stats differs from the concatenated chunks:\n got %d bytes\nwant %d bytes", len(got), len(want))
	}
	if !bytes.HasSuffix(got, []byte("TotalWallClockTime 0.123 1700000010\n")) {
		t.Fatal("TotalWallClockTime is not in its own snapshot's file")
	}
	if names := entries(t, filepath.Dir(statsPath)); len(names) != 1 || names[0] != "stats" {
		t.Fatalf("snapshot directory holds %q, want only stats", names)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRerunReplacesTheFileAtomically(t *testing.T) {
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	first := snapshot(1700000020, "/spool/1700000020", 2, 10, "first")
	second := snapshot(1700000020, "/spool/1700000020", 3, 10, "second")
	statsPath := filepath.Join(dir, "1700000020", "stats")
	for _, b := range first {
		if err := submit(t, d, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range second {
		if err := submit(t, d, b); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(statsPath)
		if err != nil {
			t.Fatal(err)
		}
		want := concat(first)
		if b.Last {
			want = concat(second)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after chunk %d of the rerun, stats holds the wrong content", b.Seq)
		}
	}
}

func TestAbandonedSnapshotStartsOverAtChunkZero(t *testing.T) {
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	abandoned := snapshot(1700000030, "/spool/1700000030", 3, 10, "abandoned")
	for _, b := range abandoned[:2] {
		if err := submit(t, d, b); err != nil {
			t.Fatal(err)
		}
	}
	retry := snapshot(1700000030, "/spool/1700000030", 2, 10, "retry")
	for _, b := range retry {
		if err := submit(t, d, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "1700000030", "stats"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, concat(retry)) {
		t.Fatalf("stats holds %q, want only the retry's lines", got)
	}
	if names := entries(t, filepath.Join(dir, "1700000030")); len(names) != 1 {
		t.Fatalf("leftovers: %q", names)
	}
}

func TestConcurrentSnapshots(t *testing.T) {
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	var snaps [][]*metric.Batch
	for i := range 8 {
		ts := int64(1700000100 + 10*i)
		snaps = append(snaps, snapshot(ts, fmt.Sprintf("/spool/%d", ts), 20, 30, fmt.Sprintf("s%d", i)))
	}
	// Two sources with the same timestamp: they must not share a temporary file; the last one
	// to finish wins, whole.
	sameTS := [][]*metric.Batch{
		snapshot(1700000900, "/spoolA/1700000900", 20, 30, "a"),
		snapshot(1700000900, "/spoolB/1700000900", 20, 30, "b"),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for _, s := range append(snaps, sameTS...) {
		wg.Go(func() {
			for _, b := range s {
				if err := d.Submit(context.Background(), b, func(err error) {
					if err != nil {
						errs <- err
					}
				}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range snaps {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(s[0].Timestamp), "stats"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, concat(s)) {
			t.Errorf("snapshot %d: stats differs from its chunks", s[0].Timestamp)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "1700000900", "stats"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, concat(sameTS[0])) && !bytes.Equal(got, concat(sameTS[1])) {
		t.Error("two sources with one timestamp produced a mixed file")
	}
	if names := entries(t, filepath.Join(dir, "1700000900")); len(names) != 1 {
		t.Errorf("leftovers: %q", names)
	}
}

// checkFailedSnapshot submits every chunk and checks that each one failed, that the errors and
// the log name the stats file, and that nothing is left behind.
func checkFailedSnapshot(t *testing.T, d *Dispatcher, logs *logRecorder, chunks []*metric.Batch, wantErr error) {
	t.Helper()
	statsPath := filepath.Join(d.dir, fmt.Sprint(chunks[0].Timestamp), "stats")
	for _, b := range chunks {
		err := submit(t, d, b)
		if err == nil {
			t.Fatalf("chunk %d: done(nil) although the snapshot cannot be written", b.Seq)
		}
		if wantErr != nil && !errors.Is(err, wantErr) {
			t.Errorf("chunk %d: %v, want %v", b.Seq, err, wantErr)
		}
		if b.Seq == 0 && !strings.Contains(err.Error(), statsPath) {
			t.Errorf("the error does not name %s: %v", statsPath, err)
		}
	}
	if !strings.Contains(logs.all(), "ERROR local-store: cannot write snapshot file="+statsPath) {
		t.Errorf("no error logged naming %s:\n%s", statsPath, logs.all())
	}
	if strings.Count(logs.all(), "ERROR") != 1 {
		t.Errorf("want the failure logged once:\n%s", logs.all())
	}
	if _, err := os.Lstat(statsPath); err == nil {
		t.Errorf("%s exists after a failed snapshot", statsPath)
	}
	if des, err := os.ReadDir(filepath.Dir(statsPath)); err == nil {
		for _, de := range des {
			t.Errorf("left behind: %s", de.Name())
		}
	}
}

func TestWriteErrorFailsTheSnapshotAndRemovesTheTemporaryFile(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	logs := &logRecorder{}
	d := New(config.LocalStore{Dir: dir}, slog.New(logs))
	chunks := snapshot(1700000040, "/spool/1700000040", 3, 10, "x")
	// The temporary file leads to a device where every write fails with ENOSPC.
	if err := os.Mkdir(filepath.Join(dir, "1700000040"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "1700000040", tmpFileName)); err != nil {
		t.Fatal(err)
	}
	checkFailedSnapshot(t, d, logs, chunks, syscall.ENOSPC)

	// The dispatcher is not stuck: the next snapshot is written.
	next := snapshot(1700000050, "/spool/1700000050", 2, 10, "y")
	for _, b := range next {
		if err := submit(t, d, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadOnlyDirectoryFailsTheSnapshot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	logs := &logRecorder{}
	d := New(config.LocalStore{Dir: dir}, slog.New(logs))
	checkFailedSnapshot(t, d, logs, snapshot(1700000060, "/spool/1700000060", 2, 10, "x"), os.ErrPermission)
}

// Works as root too: the snapshot directory cannot be created because a file is in the way.
func TestUncreatableSnapshotDirectoryFailsTheSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1700000070"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	d := New(config.LocalStore{Dir: dir}, slog.New(logs))
	checkFailedSnapshot(t, d, logs, snapshot(1700000070, "/spool/1700000070", 2, 10, "x"), syscall.ENOTDIR)
}

func TestChunkOutOfOrderFailsTheSnapshot(t *testing.T) {
	dir := t.TempDir()
	logs := &logRecorder{}
	d := New(config.LocalStore{Dir: dir}, slog.New(logs))
	chunks := snapshot(1700000080, "/spool/1700000080", 3, 10, "x")
	if err := submit(t, d, chunks[0]); err != nil {
		t.Fatal(err)
	}
	err := submit(t, d, chunks[2])
	if err == nil || !strings.Contains(err.Error(), "expected chunk 1") {
		t.Fatalf("chunk 2 after chunk 0: %v", err)
	}
	if err := submit(t, d, chunks[3]); err == nil {
		t.Fatal("the last chunk of a failed snapshot was acknowledged")
	}
	if names := entries(t, filepath.Join(dir, "1700000080")); len(names) != 0 {
		t.Fatalf("left behind: %q", names)
	}
}

func TestCloseRemovesIncompleteSnapshotsAndRejectsSubmit(t *testing.T) {
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	chunks := snapshot(1700000090, "/spool/1700000090", 3, 10, "x")
	if err := submit(t, d, chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, filepath.Join(dir, "1700000090")); len(names) != 0 {
		t.Fatalf("left behind: %q", names)
	}
	called := false
	err := d.Submit(context.Background(), chunks[1], func(error) { called = true })
	if !errors.Is(err, dispatch.ErrClosed) || called {
		t.Fatalf("Submit after Close: %v (done called: %v)", err, called)
	}
}

func TestSubmitWithEndedContextIsRejected(t *testing.T) {
	d := New(config.LocalStore{Dir: t.TempDir()}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := d.Submit(ctx, snapshot(1, "/s/1", 1, 1, "x")[0], func(error) { called = true })
	if !errors.Is(err, context.Canceled) || called {
		t.Fatalf("Submit: %v (done called: %v)", err, called)
	}
}
