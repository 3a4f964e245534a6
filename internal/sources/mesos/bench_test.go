package mesos

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

// benchBody is a Mesos-style body of n keys: escaped slashes, per-framework and per-role
// paths, timers, integers and floats.
func benchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, `"master\/frameworks\/app%05d\/tasks\/task_running":%d`, i, i)
		case 1:
			fmt.Fprintf(&b, `"allocator\/mesos\/roles\/role%05d\/shares\/dominant":%g`, i, float64(i)/7)
		case 2:
			fmt.Fprintf(&b, `"registrar\/op%05d_ms\/p9999":%g`, i, float64(i)*1.000001)
		default:
			fmt.Fprintf(&b, `"slave\/executors\/e%05d\/mem_used_bytes":%d`, i, i*4096)
		}
	}
	b.WriteString(`,"master\/elected":1}`)
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	body := benchBody(20000)
	p := NewParser()
	keys := 0
	fn := func(*sample.Sample) error { keys++; return nil }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(bytes.NewReader(body), fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(body))/1e6, "body-MB")
}

// The real master payload, many times (small bodies: per-body overhead included).
func BenchmarkParseRealMaster(b *testing.B) {
	body := readTestdata(b, "master_snapshot_escaped_slashes.json")
	p := NewParser()
	fn := func(*sample.Sample) error { return nil }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	r := bytes.NewReader(body)
	for b.Loop() {
		r.Reset(body)
		if err := p.Parse(r, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcess is the process half on one source directory of 20 instances with the
// 20,000-key body each (parse, leader rule, default policies, engine, lines).
func BenchmarkProcess(b *testing.B) {
	const instances = 20
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := loadConfig(b, baseConf(dir)+"[source.m]\ntype = mesos\n", config.ProcessProgram)
	part := filepath.Join(dir, "1700000000", "m")
	os.MkdirAll(part, 0o755)
	write := func(name string, v any) {
		f, _ := os.Create(filepath.Join(part, name))
		defer f.Close()
		if err := spool.WriteJSON(f, v); err != nil {
			b.Fatal(err)
		}
	}
	write(spool.SourceInfoFile, spool.NewSourceInfo(Kind, "m", sources.Recorded(&cfg.Sources[0])))
	body := benchBody(20000)
	for i := range instances {
		name := fmt.Sprintf("i%02d", i)
		os.WriteFile(filepath.Join(part, name+spool.BodySuffix), body, 0o644)
		write(name+spool.MetaSuffix, spool.InstanceMeta{Instance: name, Status: 200, Bytes: int64(len(body))})
	}
	ctor, err := processHalf.NewFormat(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	f := ctor()
	out := 0
	flush := func(bt *metric.Batch) error { out += len(bt.Data); metric.Recycle(bt); return nil }
	b.SetBytes(int64(instances * len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Process(part, 1700000000, flush); err != nil {
			b.Fatal(err)
		}
	}
}
