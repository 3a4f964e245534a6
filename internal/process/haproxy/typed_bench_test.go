package haproxy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
)

// typedBenchInput is the typed `show stat` capture of admin1 repeated n times (a reply of
// n × 11 objects, 826 fields each time): the transcoder sees every copy's objects as new rows.
func typedBenchInput(b *testing.B, n int) []byte {
	data, err := os.ReadFile(filepath.Join(typedDir, "admin1.sock_stat.typed"))
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Repeat(append(bytes.TrimRight(data, "\n"), '\n'), n)
}

// BenchmarkTranscodeTyped: one `show stat typed` reply to CSV, in the reused buffer. It must
// not allocate once the buffers have grown (no per-field, per-row or per-file allocation).
func BenchmarkTranscodeTyped(b *testing.B) {
	for _, n := range []int{1, 100} {
		data := typedBenchInput(b, n)
		b.Run(fmt.Sprintf("objects=%d", 11*n), func(b *testing.B) {
			var tc typedTranscoder
			if err := tc.transcodeStat(data); err != nil {
				b.Fatal(err)
			}
			fields := bytes.Count(data, []byte("\n"))
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := tc.transcodeStat(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fields), "ns/field")
		})
	}
}

// BenchmarkProcessTypedVsPlain: a whole snapshot of the two captures (2 processes, 11 objects
// each) processed from the typed and from the plain files.
func BenchmarkProcessTypedVsPlain(b *testing.B) {
	for _, typed := range []bool{false, true} {
		b.Run(fmt.Sprintf("typed=%v", typed), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "1796276700")
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			suffix := ""
			if typed {
				suffix = typedSuffix
			}
			for _, s := range typedSockets {
				for _, f := range []string{s + "_info" + suffix, s + "_stat" + suffix} {
					data, err := os.ReadFile(filepath.Join(typedDir, f))
					if err != nil {
						b.Fatal(err)
					}
					// 50 copies of the objects: a larger reply
					if bytes.Contains([]byte(f), []byte("_stat")) && typed {
						data = bytes.Repeat(append(bytes.TrimRight(data, "\n"), '\n'), 50)
					} else if bytes.Contains([]byte(f), []byte("_stat")) {
						hdr, rows, _ := bytes.Cut(bytes.TrimRight(data, "\n"), []byte("\n"))
						data = append(append(hdr, '\n'), bytes.Repeat(append(rows, '\n'), 50)...)
					}
					if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
						b.Fatal(err)
					}
				}
			}
			p := NewProcessor(Options{Prefix: "lb"}, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Process(dir, 1796276700, func(*metric.Batch) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
