package graphite

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch/dispatchtest"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

var benchSnapshot = dispatchtest.BenchSnapshot

// BenchmarkThroughput streams one large snapshot per iteration into a loopback sink that
// discards, with the shipped queue-bytes (4 MiB): Submit waits for space, so the rate is that
// of chunks proven read. The timer stops after the last Submit; the wait for the last proofs
// (a drain, then the replay hold) is reported as tail-ms, not timed.
func BenchmarkThroughput(b *testing.B) {
	chunks, lines, size := benchSnapshot()
	cfg := testConfig(discardSink(b))
	cfg.QueueBytes = 4 << 20
	if v, err := strconv.Atoi(os.Getenv("STATSPIPE_BENCH_QUEUE_BYTES")); err == nil {
		cfg.QueueBytes = v // to measure other settings
	}
	d := newDispatcher(cfg, nil, nil, nil)
	if os.Getenv("STATSPIPE_BENCH_SELFMETRICS") != "" {
		d.SetMetrics(selfmetrics.NewProcess(selfmetrics.New("process")).Dispatcher("graphite")) // the hooks' cost
	}
	d.start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			b.Error(err)
		}
	}()
	var wg sync.WaitGroup
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		wg.Add(len(chunks))
		for _, c := range chunks {
			if err := d.Submit(ctx, c, done); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	wg.Wait()
	tail := time.Since(start) - elapsed
	runtime.ReadMemStats(&after)
	st := d.Stats()
	b.ReportMetric(float64(lines*b.N)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(len(chunks)*b.N), "allocs/chunk")
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(float64(tail.Milliseconds()), "tail-ms")
	b.ReportMetric(float64(st.Drains)/float64(b.N), "drains/op")
}
