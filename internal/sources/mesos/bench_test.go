package mesos

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
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
