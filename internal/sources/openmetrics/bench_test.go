package openmetrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/openmetrics/synthetic"
	"github.com/statspipe/statspipe/internal/spool"
)

// The cycle in-process, for profiles (scripts/bench-openmetrics measures the programs):
// N httptest instances serving a pre-rendered (and pre-gzipped) Prometheus text body of S
// series each, pulled by the real provider and pull loop into a spool, then processed by the
// real process half. With -cpuprofile/-memprofile:
//
//	go test -run '^$' -bench Cycle -benchtime 20x -cpuprofile cpu.out ./internal/sources/openmetrics/
//
// kept-MB is the heap a Format holds after its Process calls (measured after a GC, the
// servers' bodies subtracted): what processing keeps, as against what it streams through.

const (
	benchInstances = 50
	benchSeries    = 10000
)

// benchServers starts n instances and returns their urls option.
func benchServers(b *testing.B, n, series int) string {
	var urls strings.Builder
	for i := range n {
		plain := synthetic.Exposition(i, series, 1)
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(plain)
		_ = zw.Close()
		gz := z.Bytes()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				_, _ = w.Write(gz)
				return
			}
			_, _ = w.Write(plain)
		}))
		b.Cleanup(srv.Close)
		fmt.Fprintf(&urls, "app%03d=%s/metrics\n  ", i+1, srv.URL)
	}
	return urls.String()
}

type benchSetup struct {
	dir               string
	pullCfg, procCfg  *config.Config
	log               *slog.Logger
	instances, series int
}

func newBenchSetup(b *testing.B, instances, series int, extra string) *benchSetup {
	b.Helper()
	s := &benchSetup{dir: b.TempDir(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), instances: instances, series: series}
	conf := fmt.Sprintf(`[pull]
dst-dir = %[1]s/incoming
tmp-dst-dir = %[1]s/incoming.tmp
pull-timeout = 60
[process]
src-dir = %[1]s/incoming
[graphite]
enabled = false
[local-store]
dir = %[1]s/local-store
[source.bench]
type = openmetrics
timeout = 60
urls = %[2]s
%[3]s
`, s.dir, benchServers(b, instances, series), extra)
	for _, d := range []string{"incoming", "incoming.tmp", "local-store"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	file := filepath.Join(s.dir, "conf.ini")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	loaded, err := config.Load(file, true, "")
	if err != nil {
		b.Fatal(err)
	}
	if s.pullCfg, err = loaded.Config(config.PullProgram); err != nil {
		b.Fatal(err)
	}
	if s.procCfg, err = loaded.Config(config.ProcessProgram); err != nil {
		b.Fatal(err)
	}
	return s
}

// pullOnce runs one round and returns the snapshot's path.
func (s *benchSetup) pullOnce(b *testing.B, loop *pull.Loop) string {
	path := loop.Once(context.Background())
	if path == "" {
		b.Fatal("nothing published")
	}
	return path
}

func (s *benchSetup) loop(b *testing.B) (*pull.Loop, *spool.Writer) {
	w, err := spool.NewWriter(s.pullCfg.Pull.DstDir, s.pullCfg.Pull.TmpDstDir, s.log)
	if err != nil {
		b.Fatal(err)
	}
	providers, err := sources.Providers(s.pullCfg, s.log)
	if err != nil {
		b.Fatal(err)
	}
	loop, err := pull.NewLoop(w, providers, pull.OptionsFrom(s.pullCfg.Pull), s.log)
	if err != nil {
		b.Fatal(err)
	}
	return loop, w
}

// BenchmarkCyclePull is the pull half: one round of all instances into a published snapshot.
// A round is named by its second and skipped when that name is taken, so each snapshot is
// removed (untimed) before the next round.
func BenchmarkCyclePull(b *testing.B) {
	s := newBenchSetup(b, benchInstances, benchSeries, "")
	loop, w := s.loop(b)
	defer w.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(synthetic.Exposition(0, s.series, 1)) * s.instances))
	for b.Loop() {
		path := s.pullOnce(b, loop)
		b.StopTimer()
		if err := os.RemoveAll(path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkCycleProcess is the process half on one pulled snapshot, processed again and again
// by one Format (as a stats-process worker reuses it).
func BenchmarkCycleProcess(b *testing.B) {
	for _, v := range []struct{ name, extra string }{
		{"sum", "aggregate = sum"},
		{"percentiles", "aggregate = sum\naggregate.app_cpu_* = sum avg max p95 stddev\naggregate.app_queue_depth_1* = sum avg max p95 stddev"},
		{"per-instance", "aggregate = sum\nper-instance-metrics = true"},
	} {
		for _, n := range []int{10, benchInstances} {
			b.Run(fmt.Sprintf("%s/instances=%d", v.name, n), func(b *testing.B) {
				benchProcess(b, newBenchSetup(b, n, benchSeries, v.extra))
			})
		}
	}
}

func benchProcess(b *testing.B, s *benchSetup) {
	loop, w := s.loop(b)
	path := s.pullOnce(b, loop)
	w.Close()
	ts, ok := spool.TimestampOf(filepath.Base(path))
	if !ok {
		b.Fatalf("%s: not a snapshot name", path)
	}
	mk, err := processHalf.NewFormat(s.procCfg, s.log)
	if err != nil {
		b.Fatal(err)
	}
	f := mk()
	lines := 0
	flush := func(batch *metric.Batch) error { lines += batch.Lines; metric.Recycle(batch); return nil }
	var bodyBytes int64
	matches, _ := filepath.Glob(filepath.Join(path, "bench", "*"+spool.BodySuffix))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil {
			bodyBytes += st.Size()
		}
	}
	b.SetBytes(bodyBytes)
	base := heapInuse() // the servers' bodies and the setup: not the Format's
	b.ReportAllocs()
	for b.Loop() {
		lines = 0
		if err := f.Process(filepath.Join(path, "bench"), ts, flush); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(heapInuse()-base)/(1<<20), "kept-MB")
	b.ReportMetric(float64(lines), "lines")
	runtime.KeepAlive(f)
}

// heapInuse is the heap in use after two collections: sync.Pool contents survive the first
// (as its victim cache), and would otherwise count in the baseline but not at the end.
func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
