package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/central"
	"github.com/statspipe/statspipe/internal/consume"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/ship"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/nagios"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/spool"
)

// recorder is a dispatcher keeping every line; while failing is set it fails every chunk.
type recorder struct {
	mu      sync.Mutex
	lines   []string
	failing bool
	failed  int
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Submit(_ context.Context, b *metric.Batch, done func(error)) error {
	r.mu.Lock()
	if r.failing {
		r.failed++
		r.mu.Unlock()
		done(errors.New("receiver down"))
		return nil
	}
	for _, l := range strings.SplitAfter(string(b.Data), "\n") {
		if l != "" {
			r.lines = append(r.lines, l)
		}
	}
	r.mu.Unlock()
	done(nil)
	return nil
}
func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *recorder) setFailing(on bool) {
	r.mu.Lock()
	r.failing = on
	r.mu.Unlock()
}

// fileFormat writes one line per data file of a part, as the tier's own host ("lb.tier"),
// and finds a part without data files unusable.
type fileFormat struct{}

func (fileFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	entries, _ := os.ReadDir(dir)
	var data []byte
	n := 0
	for _, e := range entries {
		if spool.IsSnapshotFile(e.Name()) {
			data = fmt.Appendf(data, "lb.tier.%s 1 %d\n", strings.ReplaceAll(e.Name(), ".", "_"), ts)
			n++
		}
	}
	if n == 0 {
		return process.UnusableError(errors.New("no data file"))
	}
	return flush(&metric.Batch{Timestamp: ts, Data: data, Lines: n, Last: true})
}

func newRunner(t *testing.T, rec *recorder) *process.Runner {
	t.Helper()
	r, err := process.New(process.Options{SrcDir: t.TempDir(), Workers: 2, NewFormat: func() process.Format { return fileFormat{} },
		Dispatchers: []dispatch.Dispatcher{rec}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// committed follows what a handler says is done, per partition.
type committed struct {
	mu   sync.Mutex
	next map[int32]int64
}

func (c *committed) done(p int32) func(int64) {
	return func(n int64) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.next == nil {
			c.next = map[int32]int64{}
		}
		c.next[p] = max(c.next[p], n)
	}
}

func (c *committed) of(p int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next[p]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// archive packs a snapshot named ts with files, pulled on host, as one fragment record.
func archive(t *testing.T, host, ts string, files ...string) *consume.Record {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ts)
	os.Mkdir(dir, 0o755)
	for _, f := range files {
		os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o644)
	}
	var buf bytes.Buffer
	if err := spool.Pack(&buf, dir, host); err != nil {
		t.Fatal(err)
	}
	return &consume.Record{Key: []byte(host), Value: buf.Bytes(), Headers: []kgo.RecordHeader{
		{Key: ship.HeaderSnapshot, Value: []byte(host + "/" + ts)},
		{Key: ship.HeaderFragment, Value: []byte("1/1")},
		{Key: ship.HeaderFormat, Value: []byte(ship.Format)},
	}}
}

func quarantined(t *testing.T, workDir string) []string {
	t.Helper()
	dir := nagios.CentralQuarantineDirs(workDir)[0] // where the freshness check counts them
	entries, _ := os.ReadDir(dir)
	var reasons []string
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name(), spool.ReasonFile))
		reasons = append(reasons, string(b))
	}
	return reasons
}

// Received snapshots are written under their edge's host name and committed once delivered; a
// failing dispatcher holds the commit until a retry delivers; what cannot be used is
// quarantined with the reason and committed.
func TestSnapshots(t *testing.T) {
	rec := &recorder{}
	work := t.TempDir()
	h, err := NewSnapshots(SnapshotOptions{Runner: newRunner(t, rec), Namespace: "lb", OwnPrefix: "lb.tier", WorkDir: work,
		MaxSnapshotBytes: 1 << 20, Log: slog.New(slog.DiscardHandler), Retry: Retry{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var c committed
	h.Assigned(0, c.done(0))
	ctx := context.Background()
	handle := func(r *consume.Record, offset int64) {
		r.Partition, r.Offset = 0, offset
		h.Handle(ctx, r)
	}

	handle(archive(t, "edge-1", "1700000000", "a_stat", "b_info"), 0)
	waitFor(t, "the first snapshot", func() bool { return c.of(0) == 1 })
	if got := rec.snapshot(); !slices.Equal(got, []string{"lb.edge-1.a_stat 1 1700000000\n", "lb.edge-1.b_info 1 1700000000\n"}) {
		t.Fatalf("lines %q", got)
	}

	rec.setFailing(true)
	handle(archive(t, "edge-2", "1700000010", "c_stat"), 1)
	waitFor(t, "failed attempts", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.failed >= 3 })
	if c.of(0) != 1 {
		t.Fatalf("committed %d while the snapshot at offset 1 is not delivered", c.of(0))
	}
	rec.setFailing(false)
	waitFor(t, "the retried snapshot", func() bool { return c.of(0) == 2 })
	if got := rec.snapshot(); got[len(got)-1] != "lb.edge-2.c_stat 1 1700000010\n" {
		t.Fatalf("lines %q", got)
	}

	handle(&consume.Record{Key: []byte("edge-3"), Value: []byte("no headers")}, 2)
	handle(archive(t, "edge-3", "1700000020", "not-data"), 3) // nothing a format can read
	bad := archive(t, "edge-4", "1700000030", "d_stat")
	bad.Value = bad.Value[:100] // a cut archive
	handle(bad, 4)
	lied := archive(t, "edge-5", "1700000040", "e_stat")
	lied.Key = []byte("edge-6")
	lied.Headers[0].Value = []byte("edge-6/1700000040") // the archive says edge-5
	handle(lied, 5)
	waitFor(t, "the unusable records committed", func() bool { return c.of(0) == 6 })
	reasons := strings.Join(quarantined(t, work), "\n")
	for _, want := range []string{"record at partition 0 offset 2", "no data file", "not a statspipe snapshot archive",
		`the archive's host "edge-5" is not its records' key "edge-6"`} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no quarantine reason %q in:\n%s", want, reasons)
		}
	}
	if n := len(rec.snapshot()); n != 3 {
		t.Errorf("%d lines delivered, want 3", n)
	}

	// Revoked: nothing more is committed for the partition.
	rec.setFailing(true)
	handle(archive(t, "edge-7", "1700000050", "f_stat"), 6)
	h.Revoked([]int32{0})
	rec.setFailing(false)
	handle(archive(t, "edge-8", "1700000060", "g_stat"), 7)
	if c.of(0) != 6 {
		t.Fatalf("committed %d after the revocation", c.of(0))
	}
}

// Lines aggregates across hosts per partition and commits a record only once the cluster lines
// of its bucket are delivered; the tier's own cluster lines coming back are skipped, a late line
// is left out and counted, a line of another namespace quarantined.
func TestLines(t *testing.T) {
	rec := &recorder{}
	work := t.TempDir()
	h, err := NewLines(LineOptions{Runner: newRunner(t, rec), WorkDir: work, Log: slog.New(slog.DiscardHandler),
		Retry:   Retry{Min: time.Millisecond, Max: 5 * time.Millisecond},
		Central: central.Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 10, Now: func() int64 { return 1700000100 }}})
	if err != nil {
		t.Fatal(err)
	}
	var c committed
	h.Assigned(0, c.done(0))
	h.Assigned(1, c.done(1))
	ctx := context.Background()
	offsets := map[int32]int64{}
	line := func(p int32, text string) {
		h.Handle(ctx, &consume.Record{Partition: p, Offset: offsets[p], Value: []byte(text + "\n")})
		offsets[p]++
	}
	line(0, "lb.a.req 1 1700000000")
	line(0, "lb.b.req 2 1700000005")
	line(1, "lb.a.conn 3 1700000001")
	line(0, "lb.eu.req 99 1700000000") // the tier's own, back from the line-topic
	line(0, "other.a.req 5 1700000001")
	line(0, "lb.c.req 4 1700000012") // the next bucket
	if got := rec.snapshot(); len(got) != 0 || c.of(0) != 0 {
		t.Fatalf("written before the window passed: %q, committed %d", got, c.of(0))
	}
	rec.setFailing(true)
	line(0, "lb.a.req 7 1700000020") // closes bucket 1700000000 of partition 0
	waitFor(t, "failed attempts", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.failed >= 2 })
	if c.of(0) != 0 {
		t.Fatalf("committed %d before the bucket was delivered", c.of(0))
	}
	rec.setFailing(false)
	// Partition 0's records of bucket 1700000000 are done; the one of 1700000010 (offset 4) is not.
	waitFor(t, "the bucket delivered", func() bool { return c.of(0) == 4 })
	if got := rec.snapshot(); !slices.Equal(got, []string{"lb.eu.req 3.0 1700000000\n"}) {
		t.Fatalf("cluster lines %q", got)
	}
	if c.of(1) != 0 {
		t.Fatalf("partition 1 committed %d: its bucket is open", c.of(1))
	}
	line(0, "lb.d.req 1 1700000003") // late
	if h.Late() != 1 {
		t.Fatalf("Late %d", h.Late())
	}
	if q, _ := os.ReadDir(nagios.CentralQuarantineDirs(work)[1]); len(q) != 1 {
		t.Fatalf("quarantined %d records, want 1 (the other namespace's)", len(q))
	}
	h.Revoked([]int32{1})
	line(1, "lb.a.conn 3 1700000100")
	if c.of(1) != 0 {
		t.Fatalf("revoked partition 1 committed %d", c.of(1))
	}
}
