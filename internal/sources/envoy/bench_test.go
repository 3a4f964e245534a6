package envoy

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
	"github.com/statspipe/statspipe/internal/spool"
)

// The cycle in-process: a sidecar fleet of 200 Envoy instances × about 2,000 series
// each, served (gzipped) by httptest servers, pulled by the real provider and pull loop into
// a spool, then processed by the real process half. kept-MB is the heap a Format holds after
// its Process calls (after a GC, the servers' bodies subtracted).
//
//	go test -run '^$' -bench . -benchtime 10x ./internal/sources/envoy/

const (
	benchInstances = 200
	benchSeries    = 2000
)

// Envoy's default histogram buckets.
var envoyBuckets = []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500",
	"5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"}

// sidecarBody renders instance i's /stats/prometheus (prom) or /stats body: clusters named
// like Istio's (dotted), each with counters, response classes, membership gauges and one
// histogram; a server block. About series sample lines (a text histogram is one line).
func sidecarBody(i, series int, prom bool) []byte {
	var b bytes.Buffer
	v := func(k int) int { return (k*7919 + i*104729) % 100000 }
	const perCluster = 40 + 5 + 4 + 22
	clusters := max(1, (series-6)/perCluster)
	k := 0
	for c := range clusters {
		name := fmt.Sprintf("outbound|%d||svc-%d.ns.svc.cluster.local", 8000+c, c)
		for s := range 40 {
			k++
			if prom {
				fmt.Fprintf(&b, "envoy_cluster_upstream_stat_%d_total{envoy_cluster_name=%q} %d\n", s, name, v(k))
			} else {
				fmt.Fprintf(&b, "cluster.%s.upstream_stat_%d_total: %d\n", name, s, v(k))
			}
		}
		for cl := 1; cl <= 5; cl++ {
			k++
			if prom {
				fmt.Fprintf(&b, "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"%d\",envoy_cluster_name=%q} %d\n", cl, name, v(k))
			} else {
				fmt.Fprintf(&b, "cluster.%s.upstream_rq_%dxx: %d\n", name, cl, v(k))
			}
		}
		for _, g := range []string{"membership_healthy", "membership_total", "membership_degraded", "upstream_cx_active"} {
			k++
			if prom {
				fmt.Fprintf(&b, "envoy_cluster_%s{envoy_cluster_name=%q} %d\n", g, name, v(k)%50)
			} else {
				fmt.Fprintf(&b, "cluster.%s.%s: %d\n", name, g, v(k)%50)
			}
		}
		if prom {
			cum := 0
			for j, le := range envoyBuckets {
				cum += v(k+j) % 100
				fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=%q,le=%q} %d\n", name, le, cum)
			}
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=%q} %d\n", name, cum*37)
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=%q} %d\n", name, cum)
		} else {
			fmt.Fprintf(&b, "cluster.%s.upstream_rq_time: P0(nan,1) P25(nan,3) P50(nan,%d) P75(nan,40) P90(nan,80) P95(nan,90) P99(nan,120) P99.5(nan,130) P99.9(nan,150) P100(nan,200)\n", name, v(k)%20+5)
		}
	}
	for _, s := range []string{"uptime", "version", "live", "memory_allocated", "total_connections", "concurrency"} {
		k++
		if prom {
			fmt.Fprintf(&b, "envoy_server_%s{} %d\n", s, v(k))
		} else {
			fmt.Fprintf(&b, "server.%s: %d\n", s, v(k))
		}
	}
	return b.Bytes()
}

func benchServers(b *testing.B, n, series int) string {
	var urls strings.Builder
	for i := range n {
		bodies := map[string][2][]byte{}
		for _, prom := range []bool{true, false} {
			plain := sidecarBody(i, series, prom)
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = zw.Write(plain)
			_ = zw.Close()
			path := TextPath
			if prom {
				path = PrometheusPath
			}
			bodies[path] = [2][]byte{plain, z.Bytes()}
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := bodies[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				_, _ = w.Write(body[1])
				return
			}
			_, _ = w.Write(body[0])
		}))
		b.Cleanup(srv.Close)
		fmt.Fprintf(&urls, "e%03d=%s\n  ", i+1, srv.URL)
	}
	return urls.String()
}

type benchSetup struct {
	pullCfg, procCfg *config.Config
	log              *slog.Logger
}

func newBenchSetup(b *testing.B, instances, series int, extra string) *benchSetup {
	b.Helper()
	dir := b.TempDir()
	s := &benchSetup{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
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
type = envoy
timeout = 60
urls = %[2]s
%[3]s
`, dir, benchServers(b, instances, series), extra)
	for _, d := range []string{"incoming", "incoming.tmp", "local-store"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	file := filepath.Join(dir, "conf.ini")
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

func pullRound(b *testing.B, loop *pull.Loop) string {
	path := loop.Once(context.Background())
	if path == "" {
		b.Fatal("nothing published")
	}
	return path
}

// BenchmarkCyclePull is the pull half: one round of all instances into a published snapshot
// (removed, untimed, before the next round: a round is named by its second).
func BenchmarkCyclePull(b *testing.B) {
	for _, form := range []string{"prometheus", "text"} {
		b.Run(form, func(b *testing.B) {
			s := newBenchSetup(b, benchInstances, benchSeries, "format = "+form)
			loop, w := s.loop(b)
			defer w.Close()
			b.SetBytes(int64(len(sidecarBody(0, benchSeries, form == "prometheus")) * benchInstances))
			b.ReportAllocs()
			for b.Loop() {
				path := pullRound(b, loop)
				b.StopTimer()
				if err := os.RemoveAll(path); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCycleProcess is the process half on one pulled snapshot, processed again and again
// by one Format (as a stats-process worker reuses it).
func BenchmarkCycleProcess(b *testing.B) {
	for _, v := range []struct{ name, extra string }{
		{"prometheus", "format = prometheus"},
		{"prometheus-per-instance", "format = prometheus\nper-instance-metrics = true"},
		{"text", "format = text"},
	} {
		b.Run(v.name, func(b *testing.B) {
			s := newBenchSetup(b, benchInstances, benchSeries, v.extra)
			loop, w := s.loop(b)
			path := pullRound(b, loop)
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
			base := heapInuse()
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
		})
	}
}

func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
