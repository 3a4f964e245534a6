package ship

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/statspipe/statspipe/internal/spool"
)

// BenchmarkShip ships one snapshot per iteration (a ~1 MB and a ~20 MB one: HAProxy files and
// one part of varied text) through the Dispatcher into an in-process kfake cluster (one
// broker, 4 partitions, the shipped [kafka] defaults: lz4, 1,000,000-byte batches so
// ~984 KB fragments, 4 MiB buffer, acks=all, idempotent) and waits for its done. The cluster
// is replaced every few snapshots (timer stopped) so that kfake, which keeps everything, does
// not grow without bound. It reports archive MB/s, snapshots/s and fragments per snapshot.
func BenchmarkShip(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1MB", 1 << 20}, {"20MB", 20 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			files := smallSnapshot("bench")
			files["apps/a.body"] = bigText(size.bytes, 9)
			dir := makeSnapshot(b, b.TempDir(), 1700000000, files)
			fi, err := os.Stat(filepath.Join(dir, "apps", "a.body"))
			if err != nil {
				b.Fatal(err)
			}
			perCluster := max(1, (200<<20)/size.bytes)
			var c *kfake.Cluster
			var d *Dispatcher
			closeAll := func() {
				if d != nil {
					d.Close(context.Background())
					c.Close()
				}
			}
			defer closeAll()
			done := make(chan error, 1)
			var wall time.Duration
			var packed bytes.Buffer
			if err := spool.Pack(&packed, dir, testHost); err != nil {
				b.Fatal(err)
			}
			archived := int64(packed.Len())
			b.SetBytes(archived)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%perCluster == 0 {
					b.StopTimer()
					closeAll()
					c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, testTopic))
					if err != nil {
						b.Fatal(err)
					}
					d, err = New(testConfig(c), Options{Host: testHost}, nil)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				t0 := time.Now()
				if err := d.Submit(context.Background(), lastChunk(dir), func(err error) { done <- err }); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
			}
			b.StopTimer()
			fragments := (int(archived) + d.fragment - 1) / d.fragment
			b.ReportMetric(float64(archived)*float64(b.N)/wall.Seconds()/1e6, "archive-MB/s")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "snapshots/s")
			b.ReportMetric(float64(fragments), "fragments/op")
			b.ReportMetric(float64(fi.Size())/1e6, "body-MB")
		})
	}
}
