package promtext

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/statspipe/statspipe/internal/sample"
)

// synthetic10k is a gauge family of 10,000 series with a couple of labels.
func synthetic10k() []byte {
	var b bytes.Buffer
	b.WriteString("# HELP app_queue_depth Depth of a queue.\n# TYPE app_queue_depth gauge\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "app_queue_depth{queue=\"q%05d\",shard=\"%d\"} %d.5\n", i, i%16, i*7)
	}
	return b.Bytes()
}

func benchBodies(b *testing.B) map[string][]byte {
	return map[string][]byte{
		"node_exporter": readPayload(b, "node_exporter.metrics"),
		"synthetic10k":  synthetic10k(),
	}
}

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"node_exporter", "synthetic10k"} {
		body := benchBodies(b)[name]
		b.Run(name, func(b *testing.B) {
			p := NewParser(0)
			var sum float64
			fn := func(s *sample.Sample) error { sum += s.Value; return nil }
			r := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(body)
				if err := p.Parse(r, Text, fn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(p.Stats().Samples), "ns/sample")
		})
	}
}

func BenchmarkExpfmt(b *testing.B) {
	for _, name := range []string{"node_exporter", "synthetic10k"} {
		body := benchBodies(b)[name]
		b.Run(name, func(b *testing.B) {
			r := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.Reset(body)
				tp := expfmt.NewTextParser(model.UTF8Validation)
				mfs, err := tp.TextToMetricFamilies(r)
				if err != nil {
					b.Fatal(err)
				}
				n = len(mfs)
			}
			_ = n
		})
	}
}
