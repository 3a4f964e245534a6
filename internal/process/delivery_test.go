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
	"sync/atomic"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// countingDispatcher counts, per snapshot, how many times it was handed the snapshot (its first
// chunk), and answers each chunk with what answer returns (nil: delivered).
type countingDispatcher struct {
	name   string
	answer func(b *metric.Batch) error
	sync   bool // call done before Submit returns (as the local store does)

	mu     sync.Mutex
	counts map[string]int // by snapshot name
}

func newCounting(name string, answer func(b *metric.Batch) error) *countingDispatcher {
	return &countingDispatcher{name: name, answer: answer, counts: map[string]int{}}
}

func (d *countingDispatcher) Name() string { return d.name }

func (d *countingDispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	if b.Seq == 0 {
		d.counts[filepath.Base(b.Source)]++
	}
	d.mu.Unlock()
	var err error
	if d.answer != nil {
		err = d.answer(b)
	}
	if d.sync {
		done(err)
	} else {
		go done(err)
	}
	return nil
}

func (d *countingDispatcher) Close(context.Context) error { return nil }

func (d *countingDispatcher) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[name]
}

func (d *countingDispatcher) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.counts {
		n += c
	}
	return n
}

// failFirst answers the first n last chunks it sees with an error (n failed attempts at
// snapshots, whichever they are), then delivers everything.
func failFirst(n int) func(*metric.Batch) error {
	var failures atomic.Int64
	return func(b *metric.Batch) error {
		if b.Last && failures.Add(1) <= int64(n) {
			return errors.New("local store: disk full")
		}
		return nil
	}
}

type rejectedErr string

func (r rejectedErr) Error() string    { return "rejected: " + string(r) }
func (r rejectedErr) Rejected() string { return string(r) }

var _ dispatch.Rejected = rejectedErr("")

// mkOldSnapshot is mkSnapshot with modification times an hour ago, so that the watcher takes it
// at its first look instead of waiting for it to settle.
func mkOldSnapshot(t *testing.T, dir, name string) string {
	t.Helper()
	p := mkSnapshot(t, dir, name)
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{filepath.Join(p, "admin1.sock_info"), p} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// logRecords is a slog handler that keeps every record, for counting.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
	t    *testing.T
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Handler().Handle(context.Background(), r)
	l.t.Log(strings.TrimSpace(b.String()))
	return nil
}
func (l *logRecords) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{l, attrs}
}
func (l *logRecords) WithGroup(string) slog.Handler { return l }

// count is the number of records whose message starts with prefix.
func (l *logRecords) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			n++
		}
	}
	return n
}

// attr is the value of key in the last record whose message starts with prefix.
func (l *logRecords) attr(prefix, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := ""
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					v = a.Value.String()
				}
				return true
			})
		}
	}
	return v
}

type attrHandler struct {
	l     *logRecords
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	return h.l.Handle(ctx, r)
}
func (h *attrHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{h.l, append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }

func recordingRunner(t *testing.T, o Options) (*Runner, *logRecords) {
	t.Helper()
	logs := &logRecords{t: t}
	o.Log = slog.New(logs)
	if o.NewFormat == nil {
		f := newFake()
		o.NewFormat = func() Format { return f }
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 300 * time.Millisecond
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, logs
}

// runUntil runs r until cond holds (bounded), then stops it and waits for Run to return.
func runUntil(t *testing.T, r *Runner, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-errc
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A failing second dispatcher makes the snapshots wait and be retried at every rescan; the
// healthy dispatcher gets each snapshot exactly once all the same.
func TestRetryGoesOnlyToTheDispatchersThatDidNotDeliver(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	names := []string{"1700000010", "1700000020", "1700000030", "1700000040"}
	for _, n := range names {
		mkOldSnapshot(t, src, n)
	}
	const failures = 7
	healthy := newCounting("graphite", nil)
	failing := newCounting("local-store", failFirst(failures))
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 2, Dispatchers: []dispatch.Dispatcher{healthy, failing},
		RescanInterval: 20 * time.Millisecond})
	runUntil(t, r, "every snapshot delivered", func() bool { return r.Summary().Delivered == int64(len(names)) })

	for _, n := range names {
		t.Logf("%s: graphite got it %d times, local-store %d times", n, healthy.count(n), failing.count(n))
		if got := healthy.count(n); got != 1 {
			t.Errorf("%s went to the healthy dispatcher %d times, want exactly 1", n, got)
		}
	}
	if got, want := failing.total(), len(names)+failures; got != want {
		t.Errorf("the failing dispatcher got %d snapshots, want %d (each once plus its %d failures)", got, want, failures)
	}
	if s := r.Summary(); s.Failed != failures {
		t.Errorf("summary %+v, want %d failed attempts", s, failures)
	}
	if left, _ := spool.List(src); len(left) != 0 {
		t.Errorf("left in the spool: %v", left)
	}
	if n := r.records.len(); n != 0 {
		t.Errorf("%d delivery records left after every snapshot was removed", n)
	}
}

// A dispatcher refusing a line for good: the other dispatcher gets the snapshot once, and the
// snapshot is quarantined with the reason instead of being reported delivered or retried.
func TestRejectedLineQuarantinesAfterEveryDispatcherSettled(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkOldSnapshot(t, src, "1700000010")
	mkOldSnapshot(t, src, "1700000020")
	graphite := newCounting("graphite", func(b *metric.Batch) error {
		if strings.HasSuffix(b.Source, "1700000010") && b.Seq == 0 {
			return rejectedErr("line 1 (test.1700000010…, 20000 bytes): carbon drops the connection on it")
		}
		return nil
	})
	// The local store fails its first attempt: the quarantine waits until it delivered too.
	local := newCounting("local-store", failFirst(2))
	r, logs := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{graphite, local},
		RescanInterval: 20 * time.Millisecond})
	runUntil(t, r, "one delivered, one quarantined", func() bool {
		s := r.Summary()
		return s.Delivered == 1 && s.Quarantined == 1
	})

	for _, n := range []string{"1700000010", "1700000020"} {
		if got := graphite.count(n); got != 1 {
			t.Errorf("%s went to graphite %d times, want 1", n, got)
		}
		if got := local.count(n); got != 2 {
			t.Errorf("%s went to the local store %d times, want 2 (one failure each)", n, got)
		}
	}
	reason, err := os.ReadFile(filepath.Join(spool.QuarantineDir(src), "1700000010", spool.ReasonFile))
	if err != nil {
		t.Fatalf("the snapshot with the rejected line is not quarantined: %v", err)
	}
	if !strings.Contains(string(reason), "graphite: line 1 (test.1700000010") {
		t.Errorf("REASON does not name the dispatcher and the line: %q", reason)
	}
	if n := logs.count("snapshot quarantined"); n != 1 {
		t.Errorf("the quarantine was logged %d times, want once", n)
	}
	if n := logs.count("snapshot delivered"); n != 1 {
		t.Errorf("%d snapshots logged as delivered, want 1 (the one without a rejected line)", n)
	}
	if left, _ := spool.List(src); len(left) != 0 {
		t.Errorf("left in the spool: %v", left)
	}
}

// rejectingFormat flushes its snapshot's line, then reports a line it left out.
type rejectingFormat struct{ fakeFormat }

func (f rejectingFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	if err := f.fakeFormat.Process(dir, ts, flush); err != nil {
		return err
	}
	return rejectedErr(fmt.Sprintf("%s/admin1.sock_stat: a line of 17000 bytes is over max-line-length 16000; left out", dir))
}

// A line the Format leaves out: the rest goes to every dispatcher once, then quarantine.
func TestFormatRejectedLineQuarantines(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkOldSnapshot(t, src, "1700000010")
	d1, d2 := newCounting("graphite", nil), newCounting("local-store", nil)
	f := rejectingFormat{newFake()}
	r, logs := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{d1, d2},
		NewFormat: func() Format { return f }})
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Quarantined != 1 || s.Delivered != 0 || s.Failed != 0 || s.Left != 0 {
		t.Fatalf("summary %+v, want 1 quarantined", s)
	}
	for _, d := range []*countingDispatcher{d1, d2} {
		if got := d.count("1700000010"); got != 1 {
			t.Errorf("%s got the snapshot %d times, want 1", d.name, got)
		}
	}
	reason, err := os.ReadFile(filepath.Join(spool.QuarantineDir(src), "1700000010", spool.ReasonFile))
	if err != nil || !strings.Contains(string(reason), "format: ") || !strings.Contains(string(reason), "over max-line-length") {
		t.Fatalf("REASON %q, %v: want the format's reason", reason, err)
	}
	if n := logs.count("snapshot quarantined"); n != 1 {
		t.Errorf("quarantine logged %d times", n)
	}
}

// Another error (not a rejection) keeps the snapshot on disk, as before.
func TestOtherErrorKeepsSnapshot(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	p := mkOldSnapshot(t, src, "1700000010")
	d1 := newCounting("graphite", func(*metric.Batch) error { return errors.New("connection reset") })
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{d1}})
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("snapshot not kept: %v", err)
	}
	if _, err := os.Stat(spool.QuarantineDir(src)); !os.IsNotExist(err) {
		t.Errorf("a plain failure must not quarantine: %v", err)
	}
	if s := r.Summary(); s.Failed != 1 || s.Left != 1 {
		t.Errorf("summary %+v", s)
	}
}

// The same ongoing fault at every rescan is logged once, then summarised.
func TestKeptWarningIsRateLimited(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	for _, n := range []string{"1700000010", "1700000020", "1700000030"} {
		mkOldSnapshot(t, src, n)
	}
	failing := newCounting("local-store", func(*metric.Batch) error { return errors.New("disk full") })
	r, logs := recordingRunner(t, Options{SrcDir: src, Workers: 2, Dispatchers: []dispatch.Dispatcher{failing},
		RescanInterval: 10 * time.Millisecond, LogEvery: time.Hour})
	runUntil(t, r, "60 failed attempts", func() bool { return r.Summary().Failed >= 60 })
	attempts := r.Summary().Failed
	kept := logs.count("snapshot kept on disk")
	t.Logf("%d failed attempts, %d log records about them", attempts, kept)
	if kept != 2 {
		t.Errorf("%d records for one ongoing fault over %d attempts; want the first and one summary at the end", kept, attempts)
	}
	if got, want := logs.attr("snapshot kept on disk", "similar_suppressed"), fmt.Sprint(attempts-1); got != want {
		t.Errorf("the summary counts %s suppressed, want %s", got, want)
	}
	// 60 retries of 3 snapshots leave state for 3 snapshots at most.
	r.queue.mu.Lock()
	known, waiting := len(r.queue.known), len(r.queue.items)
	r.queue.mu.Unlock()
	if n := r.records.len(); n > 3 || known > 3 || waiting > 3 {
		t.Errorf("after %d attempts at 3 snapshots: %d delivery records, %d known, %d waiting", attempts, n, known, waiting)
	}
}

func TestLogLimiterSummarisesEveryInterval(t *testing.T) {
	logs := &logRecords{t: t}
	log := slog.New(logs)
	now := time.Unix(1700000000, 0)
	l := newLogLimiter(log, 30*time.Second, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		l.warn("kept graphite", log, "snapshot kept on disk", "i", i)
		l.warn("kept local-store", log, "snapshot kept on disk", "i", i) // another fault: its own count
		now = now.Add(time.Second)                                       // 100 s in all
	}
	// Logged at 0 s, 30 s, 60 s, 90 s for each of the two kinds.
	if n := logs.count("snapshot kept on disk"); n != 8 {
		t.Errorf("%d records in 100 s at most one per 30 s per kind, want 8", n)
	}
	if got := logs.attr("snapshot kept on disk", "similar_suppressed"); got != "29" {
		t.Errorf("similar_suppressed %q, want 29", got)
	}
	l.flush()
	if n := logs.count("snapshot kept on disk (repeats not logged)"); n != 2 {
		t.Errorf("flush logged %d summaries, want 2", n)
	}
	if got := logs.attr("snapshot kept on disk (repeats", "similar_suppressed"); got != "9" {
		t.Errorf("final summary counts %q, want 9", got)
	}
	l.flush()
	if n := logs.count("snapshot kept on disk (repeats not logged)"); n != 2 {
		t.Errorf("a second flush logged again")
	}
}

// holdingDispatcher accepts chunks and never acknowledges them until Close gives up (a
// Graphite that accepts the connection and never reads); with full set, Submit blocks until
// ctx ends (back-pressure).
type holdingDispatcher struct {
	full      bool
	submitted atomic.Int64
	mu        sync.Mutex
	held      []func(error)
}

func (d *holdingDispatcher) Name() string { return "graphite" }
func (d *holdingDispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	d.submitted.Add(1)
	if d.full {
		<-ctx.Done()
		return ctx.Err()
	}
	d.mu.Lock()
	d.held = append(d.held, done)
	d.mu.Unlock()
	return nil
}
func (d *holdingDispatcher) Close(ctx context.Context) error {
	<-ctx.Done()
	d.mu.Lock()
	held := d.held
	d.held = nil
	d.mu.Unlock()
	for _, done := range held {
		done(fmt.Errorf("not delivered at shutdown: %w", ctx.Err()))
	}
	return nil
}

// --once with a dispatcher that never delivers gives up after OnceTimeout, not later, and
// leaves every snapshot in the spool.
func TestOnceGivesUpWhenNothingIsDelivered(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	names := []string{"1700000010", "1700000020", "1700000030"}
	for _, n := range names {
		mkOldSnapshot(t, src, n)
	}
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("back-pressure=%v", full), func(t *testing.T) {
			d := &holdingDispatcher{full: full}
			const timeout = 300 * time.Millisecond
			r, logs := recordingRunner(t, Options{SrcDir: src, Workers: 2, Dispatchers: []dispatch.Dispatcher{d},
				OnceTimeout: timeout, DrainTimeout: time.Hour})
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- r.Once(context.Background()) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Once did not give up")
			}
			took := time.Since(start)
			t.Logf("gave up after %v (once timeout %v)", took, timeout)
			if took < timeout {
				t.Errorf("gave up after %v, before its timeout", took)
			}
			if s := r.Summary(); s.Left != int64(len(names)) || s.Delivered != 0 {
				t.Errorf("summary %+v, want all %d left", s, len(names))
			}
			if left, _ := spool.List(src); len(left) != len(names) {
				t.Errorf("spool holds %v, want every snapshot", left)
			}
			if got := logs.attr("--once: snapshots left", "snapshots"); got != strings.Join(names, " ") {
				t.Errorf("left snapshots logged as %q", got)
			}
		})
	}
}

// A dispatcher that is slow but keeps delivering is not given up on, however long the run.
func TestOnceTimeoutIsAboutProgressNotTotalTime(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	const n = 12
	for i := 0; i < n; i++ {
		mkOldSnapshot(t, src, fmt.Sprint(1700000000+10*i))
	}
	slow := newCounting("graphite", func(*metric.Batch) error { time.Sleep(40 * time.Millisecond); return nil })
	const timeout = 400 * time.Millisecond
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{slow},
		OnceTimeout: timeout})
	start := time.Now()
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d snapshots in %v with a once timeout of %v", n, time.Since(start), timeout)
	if s := r.Summary(); s.Delivered != n || s.Left != 0 {
		t.Fatalf("summary %+v, want all %d delivered", s, n)
	}
}

// --once stops starting snapshots once a dispatcher gave up on one: the rest stay untouched.
func TestOnceStopsAtTheFirstSnapshotADispatcherGaveUpOn(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	for i := 0; i < 5; i++ {
		mkOldSnapshot(t, src, fmt.Sprint(1700000000+10*i))
	}
	failing := newCounting("graphite", func(*metric.Batch) error { return errors.New("cannot connect") })
	failing.sync = true // settled before the worker looks for the next snapshot
	f := newFake()
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{failing},
		NewFormat: func() Format { return f }})
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(*f.seen) != 1 {
		t.Errorf("processed %v after the dispatcher gave up", *f.seen)
	}
	if s := r.Summary(); s.Left != 5 || s.Delivered != 0 {
		t.Errorf("summary %+v, want all 5 left", s)
	}
}

// SIGTERM while every worker waits on a full dispatcher still ends within DrainTimeout.
func TestStopDuringBackPressureEndsWithinDrainTimeout(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	for i := 0; i < 6; i++ {
		mkOldSnapshot(t, src, fmt.Sprint(1700000000+10*i))
	}
	d := &holdingDispatcher{full: true}
	const drain = 300 * time.Millisecond
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 3, Dispatchers: []dispatch.Dispatcher{d},
		DrainTimeout: drain, RescanInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, nil) }()
	waitFor(t, func() bool { return d.submitted.Load() == 3 }, "every worker blocked in Submit")
	start := time.Now()
	cancel()
	select {
	case <-errc:
	case <-time.After(drain + 5*time.Second):
		t.Fatal("Run did not return after its drain timeout")
	}
	took := time.Since(start)
	t.Logf("stopped %v after the stop (drain timeout %v)", took, drain)
	if took < drain {
		t.Errorf("stopped after %v: the drain timeout was not given", took)
	}
	if left, _ := spool.List(src); len(left) != 6 {
		t.Errorf("spool holds %d snapshots, want all 6", len(left))
	}
	if n := r.records.len(); n > 6 {
		t.Errorf("%d delivery records for 6 snapshots", n)
	}
}

// Records of snapshots removed by hand are pruned as the map grows: it stays bounded by the
// snapshots in the spool.
func TestRecordsStayBoundedBySpool(t *testing.T) {
	src := t.TempDir()
	q := newQueue()
	var rs records
	rs.byName = map[string]*record{}
	for i := 0; i < 10000; i++ {
		name := fmt.Sprint(1700000000 + i)
		rs.getOrAdd(snapshot{Entry: spool.Entry{Name: name, Path: filepath.Join(src, name)}}, 2, q)
		if n := rs.len(); n > 2*minPrune {
			t.Fatalf("%d records for snapshots of which none exists", n)
		}
	}
	present := mkSnapshot(t, src, "1600000000")
	rs.getOrAdd(snapshot{Entry: spool.Entry{Name: "1600000000", Path: present}}, 2, q)
	for i := 0; i < 200; i++ {
		name := fmt.Sprint(1800000000 + i)
		rs.getOrAdd(snapshot{Entry: spool.Entry{Name: name, Path: filepath.Join(src, name)}}, 2, q)
	}
	if rs.get("1600000000") == nil {
		t.Fatal("the record of a snapshot still in the spool was pruned")
	}
}

// sloppyFormat emits three chunks and, unlike the real one, stops at a refused chunk without
// reporting it.
type sloppyFormat struct{}

func (sloppyFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	for seq := 0; seq < 3; seq++ {
		b := &metric.Batch{Timestamp: ts, Source: dir, Seq: seq, Last: seq == 2, Lines: 1,
			Data: fmt.Appendf(nil, "test.%d 1 %d\n", seq, ts)}
		if flush(b) != nil {
			return nil
		}
	}
	return nil
}

// refusingDispatcher refuses (Submit error) the first chunk with Seq 1 it sees.
type refusingDispatcher struct {
	countingDispatcher
	refused atomic.Bool
}

func (d *refusingDispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if b.Seq == 1 && d.refused.CompareAndSwap(false, true) {
		return errors.New("queue closed")
	}
	return d.countingDispatcher.Submit(ctx, b, done)
}

// A dispatcher that acknowledged every chunk it was handed has not delivered the snapshot if the
// producer stopped early: it gets the snapshot again.
func TestIncompleteAttemptDeliversNothing(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkOldSnapshot(t, src, "1700000010")
	first := newCounting("graphite", nil)
	second := &refusingDispatcher{countingDispatcher: *newCounting("local-store", nil)}
	r, _ := recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{first, second},
		NewFormat: func() Format { return sloppyFormat{} }, RescanInterval: 20 * time.Millisecond})
	runUntil(t, r, "the snapshot delivered", func() bool { return r.Summary().Delivered == 1 })
	if got := first.count("1700000010"); got != 2 {
		t.Errorf("the first dispatcher got the snapshot %d times, want 2: its first copy lacked the last chunk", got)
	}
}
