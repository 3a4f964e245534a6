package aggregate

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
)

const (
	benchInstances = 50
	benchSeries    = 10_000 // samples per instance
)

// benchBody is one instance's samples as a parser hands them over: 8,000 counter and gauge
// series (400 names × 20 label sets) and 200 histograms of 10 buckets.
func benchBody(instance int) []sample.Sample {
	var ss []sample.Sample
	for n := 0; n < 400; n++ {
		kind := sample.Counter
		name := fmt.Sprintf("http_requests_%d_total", n)
		if n%2 == 1 {
			kind = sample.Gauge
			name = fmt.Sprintf("queue_%d_bytes", n)
		}
		for l := 0; l < 20; l++ {
			ss = append(ss, smp(kind, name, float64(instance*n+l),
				"method", "GET", "handler", fmt.Sprintf("/api/v1/h%d", l), "code", "200"))
		}
	}
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"}
	for h := 0; h < 200; h++ {
		family := fmt.Sprintf("rpc_%d_seconds", h)
		for i, le := range bounds {
			ss = append(ss, bkt(family, le, float64(i*instance+i), "service", "checkout"))
		}
	}
	if len(ss) != benchSeries {
		panic(len(ss))
	}
	return ss
}

func BenchmarkAggregate(b *testing.B) {
	bodies := make([][]sample.Sample, benchInstances)
	names := make([]string, benchInstances)
	for i := range bodies {
		bodies[i] = benchBody(i)
		names[i] = fmt.Sprintf("pod-%d", i)
	}
	full, _ := ParseFuncs("sum avg max p95")
	for _, bc := range []struct {
		name string
		o    Options
	}{
		{"sum", Options{}},
		{"sum-avg-max-p95+per-instance", Options{Policies: Policies{Default: full}, PerInstance: true}},
		{"tags", Options{GraphiteTags: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			bc.o.Prefix = "ns.host.app"
			a, err := New(bc.o)
			if err != nil {
				b.Fatal(err)
			}
			c := metric.NewChunker(0)
			lines := 0
			flush := func(batch *metric.Batch) error {
				lines += batch.Lines
				metric.Recycle(batch)
				return nil
			}
			snapshot := func() {
				a.Reset("ns.host.app")
				for i, body := range bodies {
					a.BeginInstance(names[i])
					for j := range body {
						a.Add(&body[j])
					}
					a.EndInstance(true)
				}
				c.Reset(flush, "bench", 1700000000)
				a.Emit(c)
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
			}
			snapshot() // the first snapshot sizes every buffer
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				lines = 0
				snapshot()
			}
			b.StopTimer()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchInstances*benchSeries), "ns/sample")
			// the aggregator's own memory (the input bodies were there before)
			b.ReportMetric(float64(int64(ms.HeapInuse)-int64(before.HeapInuse))/(1<<20), "MB-heap")
			b.ReportMetric(float64(lines), "lines")
			runtime.KeepAlive(a)
		})
	}
}

// Add allocates nothing once the series are known (after the first snapshot).
func TestAddAllocs(t *testing.T) {
	body := benchBody(1)
	full, _ := ParseFuncs("sum avg max p95")
	for _, o := range []Options{{}, {Policies: Policies{Default: full}, PerInstance: true, GraphiteTags: true}} {
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		c := metric.NewChunker(0)
		flush := func(b *metric.Batch) error { metric.Recycle(b); return nil }
		snapshot := func() {
			a.Reset("p")
			for i := range 3 {
				a.BeginInstance(fmt.Sprint(i))
				for j := range body {
					a.Add(&body[j])
				}
				a.EndInstance(true)
			}
			c.Reset(flush, "t", 1)
			a.Emit(c)
			_ = c.Close()
		}
		snapshot()
		allocs := testing.AllocsPerRun(5, snapshot)
		// a snapshot of 30,000 samples: a handful of allocations (Batch structs, the
		// chunker's final copy), none per sample
		if allocs > 20 {
			t.Errorf("%+v: %v allocations per snapshot of %d samples", o, allocs, 3*len(body))
		}
	}
}
