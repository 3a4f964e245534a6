package process

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// recordingSync is a dispatcher that keeps every line and delivers each chunk before Submit
// returns (as the local store does), so that with one worker a snapshot's self-metrics see
// every earlier snapshot settled.
type recordingSync struct {
	mu   sync.Mutex
	data strings.Builder
}

func (d *recordingSync) Name() string { return "rec" }
func (d *recordingSync) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	d.mu.Lock()
	d.data.Write(b.Data)
	d.mu.Unlock()
	done(nil)
	return nil
}
func (d *recordingSync) Close(context.Context) error { return nil }

// The self-metrics part closes every snapshot's chunk sequence, stamped with the snapshot's
// timestamp, with the counts as of then; the registry's counts after the run are the known
// ones (a registry outlives the runner: a second runner keeps counting).
func TestSelfMetricsPartAndCounts(t *testing.T) {
	reg := selfmetrics.New("process")
	m := selfmetrics.NewProcess(reg)
	src := t.TempDir()
	rec := &recordingSync{}
	f := newFake()
	f.unusable["400"] = true
	opts := Options{
		SrcDir: src, Workers: 1, Dispatchers: []dispatch.Dispatcher{rec}, Metrics: m,
		NewFormat:   func() Format { return f },
		NewSelfPart: func() Format { return selfmetrics.NewLineWriter(reg, "ns.h") },
	}
	for _, n := range []string{"100", "200", "300", "400"} {
		mkSnapshot(t, src, n)
	}
	r, _ := recordingRunner(t, opts)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := rec.data.String()
	for _, want := range []string{
		"test.100 1 100\nns.h.statspipe.process.snapshots_processed 0.0 100\nns.h.statspipe.process.snapshots_delivered 0.0 100\n",
		"ns.h.statspipe.process.snapshots_delivered 1.0 200\n",
		"ns.h.statspipe.process.snapshots_delivered 2.0 300\n",
		"ns.h.statspipe.process.snapshots_processed 2.0 300\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lines lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " 400\n") {
		t.Errorf("the unusable snapshot got self-metrics lines:\n%s", out)
	}
	for path, want := range map[string]float64{
		"snapshots_processed": 3, "snapshots_delivered": 3, "snapshots_quarantined": 1, "snapshots_failed": 0,
	} {
		if v, _ := reg.Get(path); v != want {
			t.Errorf("%s = %v, want %v", path, v, want)
		}
	}
	// A reload: a new runner, the same registry.
	mkSnapshot(t, src, "500")
	r2, _ := recordingRunner(t, opts)
	if err := r2.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := reg.Get("snapshots_delivered"); v != 4 {
		t.Errorf("after a second runner: delivered %v, want 4", v)
	}
	if !strings.Contains(rec.data.String(), "ns.h.statspipe.process.snapshots_delivered 3.0 500\n") {
		t.Errorf("lines of 500:\n%s", rec.data.String())
	}
}
