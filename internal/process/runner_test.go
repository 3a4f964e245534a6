package process

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
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// fakeFormat emits one line per snapshot naming the snapshot, in two chunks.
type fakeFormat struct {
	mu       *sync.Mutex
	seen     *[]string
	unusable map[string]bool
}

type unusableErr string

func (u unusableErr) Error() string    { return string(u) }
func (u unusableErr) Unusable() string { return string(u) }

func (f fakeFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	name := filepath.Base(dir)
	f.mu.Lock()
	*f.seen = append(*f.seen, name)
	f.mu.Unlock()
	if f.unusable[name] {
		return unusableErr("no usable file in " + dir)
	}
	line := fmt.Sprintf("test.%s 1 %d\n", name, ts)
	if err := flush(&metric.Batch{Timestamp: ts, Source: dir, Seq: 0, Data: []byte(line), Lines: 1}); err != nil {
		return err
	}
	return flush(&metric.Batch{Timestamp: ts, Source: dir, Seq: 1, Last: true})
}

// fakeDispatcher records chunks and acknowledges them at once, with ackErr, or only when
// release is closed.
type fakeDispatcher struct {
	mu      sync.Mutex
	data    bytes.Buffer
	ackErr  error
	release chan struct{}
	held    []func(error)
}

func (d *fakeDispatcher) Name() string { return "fake" }

func (d *fakeDispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data.Write(b.Data)
	if d.release == nil {
		go done(d.ackErr)
		return nil
	}
	d.held = append(d.held, done)
	return nil
}

func (d *fakeDispatcher) Close(ctx context.Context) error {
	if d.release != nil {
		select {
		case <-d.release:
			d.flush(nil)
		case <-ctx.Done():
			d.flush(ctx.Err())
		}
	}
	return nil
}

func (d *fakeDispatcher) flush(err error) {
	d.mu.Lock()
	held := d.held
	d.held = nil
	d.mu.Unlock()
	for _, done := range held {
		done(err)
	}
}

func (d *fakeDispatcher) lines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.data.String()
}

func mkSnapshot(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "admin1.sock_info"), []byte("Name: HAProxy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testRunner(t *testing.T, src string, workers int, f fakeFormat, ds ...dispatch.Dispatcher) *Runner {
	t.Helper()
	r, err := New(Options{
		SrcDir:       src,
		Workers:      workers,
		NewFormat:    func() Format { return f },
		Dispatchers:  ds,
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DrainTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newFake() fakeFormat {
	return fakeFormat{mu: new(sync.Mutex), seen: new([]string), unusable: map[string]bool{}}
}

func TestOnceOldestFirstRemovesDeliveredAndQuarantines(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	for _, n := range []string{"1700000030", "1700000010", "abc", "1700000020", "999"} {
		mkSnapshot(t, src, n)
	}
	mkSnapshot(t, src, ".hidden")
	if err := os.WriteFile(filepath.Join(src, "stray-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFake()
	f.unusable["1700000020"] = true
	d1, d2 := &fakeDispatcher{}, &fakeDispatcher{}
	r := testRunner(t, src, 1, f, d1, d2)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"999", "1700000010", "1700000020", "1700000030"}
	if fmt.Sprint(*f.seen) != fmt.Sprint(want) {
		t.Fatalf("processing order %v, want %v (oldest first; the non-integer name is never parsed)", *f.seen, want)
	}
	for _, d := range []*fakeDispatcher{d1, d2} {
		if got, w := d.lines(), "test.999 1 999\ntest.1700000010 1 1700000010\ntest.1700000030 1 1700000030\n"; got != w {
			t.Fatalf("dispatched %q, want %q", got, w)
		}
	}
	left, _ := spool.List(src)
	if len(left) != 0 {
		t.Fatalf("snapshots left in src-dir: %v", left)
	}
	for _, n := range []string{".hidden", "stray-file"} {
		if _, err := os.Stat(filepath.Join(src, n)); err != nil {
			t.Fatalf("%s must be left alone: %v", n, err)
		}
	}
	q := spool.QuarantineDir(src)
	for _, n := range []string{"abc", "1700000020"} {
		reason, err := os.ReadFile(filepath.Join(q, n, "REASON"))
		if err != nil {
			t.Fatalf("%s not quarantined with a reason: %v", n, err)
		}
		if len(reason) == 0 {
			t.Fatalf("%s: empty reason", n)
		}
		if _, err := os.Stat(filepath.Join(q, n, "admin1.sock_info")); err != nil {
			t.Fatalf("%s: quarantine lost the snapshot's files: %v", n, err)
		}
	}
	if s := r.Summary(); s.Delivered != 3 || s.Quarantined != 2 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestFailedDeliveryKeepsSnapshot(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	p := mkSnapshot(t, src, "1700000010")
	ok, failing := &fakeDispatcher{}, &fakeDispatcher{ackErr: errors.New("peer gone")}
	r := testRunner(t, src, 2, newFake(), ok, failing)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("a snapshot one dispatcher failed to deliver must stay: %v", err)
	}
	if s := r.Summary(); s.Failed != 1 || s.Delivered != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestRunRemovesOnlyAfterAckAndWatchesNewSnapshots(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	tmp := filepath.Join(base, "incoming.tmp")
	old := mkSnapshot(t, src, "1700000010")
	d := &fakeDispatcher{release: make(chan struct{})}
	r := testRunner(t, src, 2, newFake(), d)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func() { close(ready) }) }()
	<-ready

	// Publish the way stats-pull does: build aside, rename in.
	fresh := mkSnapshot(t, tmp, "1700000020")
	if err := os.Rename(fresh, filepath.Join(src, "1700000020")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(d.lines(), "\n") == 2 }, "both snapshots dispatched")
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("snapshot removed before its delivery was acknowledged: %v", err)
	}
	close(d.release)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if left, _ := spool.List(src); len(left) != 0 {
		t.Fatalf("acknowledged snapshots must be removed, left %v", left)
	}
}

func TestStopKeepsUndeliveredSnapshot(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	p := mkSnapshot(t, src, "1700000010")
	d := &fakeDispatcher{release: make(chan struct{})} // never released: Graphite is down
	r := testRunner(t, src, 1, newFake(), d)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, nil) }()
	waitFor(t, func() bool { return d.lines() != "" }, "snapshot dispatched")
	start := time.Now()
	cancel()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its drain timeout")
	}
	t.Logf("stopped in %v", time.Since(start))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("undelivered snapshot must stay on disk: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A delivery begun after Close (a central tier's retry timer firing while it stops) is
// refused with ErrClosed and sends nothing; one racing Close is either refused or settled
// before Close returns (the race detector checks the WaitGroup order).
func TestDeliverAfterCloseIsRefused(t *testing.T) {
	src := t.TempDir()
	snap := mkSnapshot(t, src, "1700000000")
	d := &fakeDispatcher{}
	r := testRunner(t, src, 2, newFake(), d)
	results := make(chan error, 64)
	var started sync.WaitGroup
	for range 32 {
		started.Add(1)
		go func() {
			started.Done()
			r.Deliver(context.Background(), snap, 1700000000, nil, func(err error) { results <- err })
		}()
	}
	started.Wait()
	r.Close(context.Background())
	r.Deliver(context.Background(), snap, 1700000000, nil, func(err error) { results <- err })
	r.DeliverLines(context.Background(), "lines", 1700000000,
		[]*metric.Batch{{Timestamp: 1700000000, Data: []byte("a 1 1700000000\n"), Lines: 1, Last: true}},
		func(err error) { results <- err })
	before := d.lines()
	deadline := time.After(10 * time.Second)
	for i := range 34 {
		select {
		case err := <-results:
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Fatalf("result %d: %v", i, err)
			}
			if i >= 32 && !errors.Is(err, ErrClosed) {
				t.Fatalf("delivery after Close: %v, want ErrClosed", err)
			}
		case <-deadline:
			t.Fatalf("%d of 34 deliveries reported", i)
		}
	}
	if d.lines() != before {
		t.Errorf("a delivery after Close sent lines")
	}
}
