package consume

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/testrig"
)

// countHandler marks every record done as it is handled and says when it has seen want.
type countHandler struct {
	done [benchPartitions]func(int64)
	n    atomic.Int64
	want int64
	all  chan struct{}
}

func (h *countHandler) Assigned(p int32, done func(int64)) { h.done[p] = done }
func (h *countHandler) Revoked([]int32)                    {}
func (h *countHandler) Handle(_ context.Context, r *Record) {
	h.done[r.Partition](r.Offset + 1)
	if h.n.Add(1) == h.want {
		close(h.all)
	}
}

const benchPartitions = 4

// BenchmarkConsume: one consumer (the shipped fetch limits, lz4-compressed batches as the
// shipper writes them) reads a topic of an in-process kfake broker from the start, marking
// every record done in Handle; per iteration a new group, timed from Run to the last record
// handled (the group join included). lines: 1 M Graphite lines of about 100 bytes;
// archives: 10,000 incompressible records of 256 KiB. The broker, the consumer and the
// decompression share this process's CPUs.
func BenchmarkConsume(b *testing.B) {
	for _, bc := range []struct {
		name    string
		records int
		value   func(p int32, i int, rng *rand.Rand) []byte
	}{
		{"lines=1M-100B", 1_000_000, func(p int32, i int, _ *rand.Rand) []byte {
			return fmt.Appendf(nil, "loadbalancers.lb-%02d.haproxy.backend.app%03d.server.srv%03d.scur %d 1700000000\n",
				p, i%500, i%97, i%1000)
		}},
		{"archives=10k-256KiB", 10_000, func(_ int32, _ int, rng *rand.Rand) []byte {
			v := make([]byte, 256<<10)
			for j := 0; j < len(v); j += 8 {
				u := rng.Uint64()
				for k := range 8 {
					v[j+k] = byte(u >> (8 * k))
				}
			}
			return v
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := testrig.StartKafka(b, benchPartitions, testTopic)
			cl := newClient(b, c, kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(5*time.Millisecond),
				kgo.MaxBufferedBytes(64<<20))
			var size int64
			var wg sync.WaitGroup
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range bc.records {
				p := int32(i % benchPartitions)
				v := bc.value(p, i/benchPartitions, rng)
				size += int64(len(v))
				wg.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Partition: p, Value: v}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
					wg.Done()
				})
			}
			wg.Wait()
			var took time.Duration
			i := 0
			for b.Loop() {
				h := &countHandler{want: int64(bc.records), all: make(chan struct{})}
				t0 := time.Now()
				r := start(b, c, fmt.Sprintf("bench-%d", i), h)
				select {
				case <-h.all:
				case <-time.After(5 * time.Minute):
					b.Fatalf("handled %d of %d records", h.n.Load(), bc.records)
				}
				took += time.Since(t0)
				b.StopTimer()
				r.stop(b)
				b.StartTimer()
				i++
			}
			b.ReportMetric(float64(bc.records*i)/took.Seconds(), "records/s")
			b.ReportMetric(float64(size*int64(i))/took.Seconds()/1e6, "MB/s")
		})
	}
}
