package graphite

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// benchSnapshot is the size of haproxystats' 4 × 1000 × 10 synthetic snapshot
// (haproxystats.md §9): 362,605 lines of about 90 bytes, cut into 256 KiB chunks.
func benchSnapshot() ([]*metric.Batch, int, int) {
	const lines, chunkSize = 362_605, 256 << 10
	var chunks []*metric.Batch
	buf := make([]byte, 0, chunkSize)
	n, size := 0, 0
	flush := func(last bool) {
		chunks = append(chunks, &metric.Batch{Timestamp: 1700000000, Source: "/spool/1700000000",
			Seq: len(chunks), Last: last, Data: buf, Lines: n})
		size += len(buf)
		buf, n = make([]byte, 0, chunkSize), 0
	}
	for i := range lines {
		var line []byte
		line = append(line, "loadbalancers.lb-0001_example_com.haproxy.backend.be_"...)
		line = strconv.AppendInt(line, int64(i/400), 10)
		line = append(line, ".server.srv_"...)
		line = strconv.AppendInt(line, int64(i/40%10), 10)
		line = append(line, ".hrsp_"...)
		line = strconv.AppendInt(line, int64(i%40), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i*7919%1000003), 10)
		line = append(line, " 1700000000\n"...)
		if len(buf)+len(line) > chunkSize {
			flush(false)
		}
		buf = append(buf, line...)
		n++
	}
	flush(true)
	return chunks, lines, size
}

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
