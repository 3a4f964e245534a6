package haproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

// cpuTime is the user + system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSnapshot writes a synthetic snapshot and returns its directory and total size.
func benchSnapshot(b *testing.B, cfg synthetic.Config) (string, int64) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := synthetic.Write(dir, cfg); err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			b.Fatal(err)
		}
		size += fi.Size()
	}
	return dir, size
}

// discardRecycling plays a dispatcher that is done with each chunk at once and recycles it.
func discardRecycling(b *metric.Batch) error {
	metric.Recycle(b)
	return nil
}

func benchmarkProcess(b *testing.B, cfg synthetic.Config, opts Options) {
	benchmarkProcessWith(b, cfg, opts, discardRecycling)
}

func benchmarkProcessWith(b *testing.B, cfg synthetic.Config, opts Options, discard metric.FlushFunc) {
	dir, size := benchSnapshot(b, cfg)
	p := NewProcessor(opts, nil)
	// one warm-up snapshot: a long-running worker has interned the names already
	st, err := p.Process(dir, 1700000000, discard)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := p.Process(dir, 1700000000, discard); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time (all threads, GC included) is steadier than wall time on a shared machine
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(st.Lines), "lines/op")
	b.ReportMetric(float64(st.Lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

var benchOpts = Options{Prefix: "loadbalancers.lb-01.haproxy"}

// BenchmarkProcess is the 4 processes × 1000 backends × 10 servers + 50 frontends snapshot of
// the performance target (about 21 MB of CSV); the others show that cost grows linearly.
func BenchmarkProcess(b *testing.B) {
	sizes := []synthetic.Config{
		synthetic.DefaultConfig,
		{Procs: 4, Backends: 500, Servers: 10, Frontends: 50, Idle: 0.2, Seed: 1},
		{Procs: 4, Backends: 1000, Servers: 25, Frontends: 50, Idle: 0.2, Seed: 1},
	}
	for _, cfg := range sizes {
		b.Run(fmt.Sprintf("%dx%dx%d", cfg.Procs, cfg.Backends, cfg.Servers), func(b *testing.B) {
			benchmarkProcess(b, cfg, benchOpts)
		})
	}
	b.Run("4x1000x10-norecycle", func(b *testing.B) {
		// chunks left to the garbage collector (a dispatcher that does not call Recycle)
		benchmarkProcessWith(b, synthetic.DefaultConfig, benchOpts, func(*metric.Batch) error { return nil })
	})
	b.Run("4x1000x10-server-states", func(b *testing.B) {
		opts := benchOpts
		opts.ServerStates = true
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
	b.Run("4x1000x10-filters", func(b *testing.B) {
		// every name matched by a pattern (cached with the rows), a tenth of the backends and
		// servers dropped, a few metrics dropped, skip-maint-servers checking every server row
		opts := benchOpts
		opts.Filters = Filters{
			FrontendInclude: regexp.MustCompile(`^fe_`), FrontendExclude: regexp.MustCompile(`^fe_00[0-4]`),
			BackendInclude: regexp.MustCompile(`example\.com$`), BackendExclude: regexp.MustCompile(`^be_\d\d\d0\.`),
			ServerInclude: regexp.MustCompile(`/srv`), ServerExclude: regexp.MustCompile(`/srv0[0]\.`),
			MetricExclude: regexp.MustCompile(`^(hrsp_other|comp_byp|wredis)$`), SkipMaintServers: true,
		}
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
	b.Run("4x1000x10-filters-none-match", func(b *testing.B) {
		// the filters set but dropping nothing: the cost of the checks alone
		opts := benchOpts
		opts.Filters = Filters{
			FrontendExclude: regexp.MustCompile(`^nomatch`), BackendExclude: regexp.MustCompile(`^nomatch`),
			ServerExclude: regexp.MustCompile(`^nomatch`), MetricExclude: regexp.MustCompile(`^nomatch`), SkipMaintServers: true,
		}
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
	b.Run("4x1000x10-all-metrics", func(b *testing.B) {
		opts := benchOpts
		opts.AllMetrics = true
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
	b.Run("4x1000x10-all-metrics-aggregate", func(b *testing.B) {
		opts := benchOpts
		opts.AllMetrics = true
		opts.AllMetricsAggregate = aggregate.MustRules([][2]string{{"server.*time", "p99 stddev"}})
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
	b.Run("4x1000x10-allfeatures", func(b *testing.B) {
		opts := benchOpts
		opts.PerProcessMetrics = true
		opts.CalculatePercentages = true
		opts.AggrServerMetrics = true
		benchmarkProcess(b, synthetic.DefaultConfig, opts)
	})
}

// BenchmarkProcessCold measures a fresh Processor per snapshot (names interned anew); with
// filters, every name is matched too.
func BenchmarkProcessCold(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchmarkCold(b, benchOpts) })
	b.Run("filters", func(b *testing.B) {
		opts := benchOpts
		opts.Filters = Filters{
			FrontendInclude: regexp.MustCompile(`^fe_`), BackendExclude: regexp.MustCompile(`^be_\d\d\d0\.`),
			ServerInclude: regexp.MustCompile(`^be_.*/srv`), ServerExclude: regexp.MustCompile(`/srv0[0]\.`),
			SkipMaintServers: true,
		}
		benchmarkCold(b, opts)
	})
}

func benchmarkCold(b *testing.B, opts Options) {
	dir, size := benchSnapshot(b, synthetic.DefaultConfig)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewProcessor(opts, nil).Process(dir, 1700000000, discardRecycling); err != nil {
			b.Fatal(err)
		}
	}
}
