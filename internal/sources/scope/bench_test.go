package scope

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

// benchReport is a report of n Process nodes of host "vm" with 5 metrics of 2 samples each,
// and the process names of its PIDs (10 programs).
func benchReport(n int) (string, map[string]string) {
	var b strings.Builder
	b.WriteString(`{"Process":{"nodes":{`)
	extra := map[string]string{"host": "vm"}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"vm;%d":{"metrics":{`, 1000+i)
		for m := range 5 {
			if m > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"metric_%d":{"samples":[{"date":"2026-12-01T18:36:53.171424Z","value":%d},{"date":"2026-12-01T18:36:54.171424Z","value":%d.5}]}`, m, i, i)
		}
		b.WriteString(`}}`)
		extra[fmt.Sprintf("pid:%d", 1000+i)] = fmt.Sprintf("prog%d", i%10)
	}
	b.WriteString(`}},"Plugins":[{"id":"p","label":"P","interfaces":["reporter"],"api_version":"1"}]}`)
	return b.String(), extra
}

// BenchmarkCheck is the pull side's parse of a 1000-PID report (the PIDs collected).
func BenchmarkCheck(b *testing.B) {
	body, _ := benchReport(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var pids []string
		err := parseReport(strings.NewReader(body), "p", func(topo, id string, _ []metricValue) error {
			if _, pid, ok := processNode(id); ok {
				pids = append(pids, pid)
			}
			return nil
		})
		if err != nil || len(pids) != 1000 {
			b.Fatal(err, len(pids))
		}
	}
}

// BenchmarkProcess is the process half on one snapshot source holding that report, with
// percentiles and stddev across each program's PIDs and the per-PID lines.
func BenchmarkProcess(b *testing.B) {
	body, extra := benchReport(1000)
	dir := b.TempDir()
	conf := baseConf(dir) + "[source.scope]\ntype = scope\naggregate = sum avg p90 stddev\nper-instance-metrics = true\n"
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	path := filepath.Join(dir, "c.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	l, err := config.Load(path, true, "")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := l.Config(config.ProcessProgram)
	if err != nil {
		b.Fatal(err)
	}
	part := filepath.Join(dir, "1700000000", "scope")
	os.MkdirAll(part, 0o755)
	write := func(name string, v any) {
		f, _ := os.Create(filepath.Join(part, name))
		defer f.Close()
		if err := spool.WriteJSON(f, v); err != nil {
			b.Fatal(err)
		}
	}
	write(spool.SourceInfoFile, spool.NewSourceInfo(Kind, "scope", sources.Recorded(&cfg.Sources[0])))
	write("p"+spool.MetaSuffix, spool.InstanceMeta{Instance: "p", Status: 200, Bytes: int64(len(body)), Extra: extra})
	os.WriteFile(filepath.Join(part, "p"+spool.BodySuffix), []byte(body), 0o644)
	ctor, err := processHalf.NewFormat(cfg, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	f := ctor()
	lines := 0
	flush := func(batch *metric.Batch) error { lines += batch.Lines; metric.Recycle(batch); return nil }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		lines = 0
		if err := f.Process(part, 1700000000, flush); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines), "lines")
}
