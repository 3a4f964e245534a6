package kafka

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/dispatch/dispatchtest"
	"github.com/statspipe/statspipe/internal/testrig"
)

var benchSnapshot = dispatchtest.BenchSnapshot

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThroughput produces one large snapshot per iteration through the dispatcher into a
// fresh in-process kfake cluster (one broker, 4 partitions, the shipped defaults: lz4,
// 10 ms linger, 4 MiB buffer, acks=all, idempotent), waits for every chunk's done, then
// consumes every record back with a kgo consumer. It reports lines/s for each phase and the
// process CPU per million lines (getrusage: the producer, the in-process broker and, for the
// consume phase, the consumer: all in this process), for record-key path and host.
func BenchmarkThroughput(b *testing.B) {
	chunks, lines, size := benchSnapshot()
	for _, mode := range []string{"path", "host"} {
		b.Run("key="+mode, func(b *testing.B) {
			var prodWall, consWall, prodCPU, consCPU time.Duration
			records := 0
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := testrig.StartKafka(b, 4, testTopic)
				d, err := New(testConfig(c, mode), Options{HostKey: testHostKey}, nil)
				if err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				done := func(err error) {
					if err != nil {
						b.Error(err)
					}
					wg.Done()
				}
				b.StartTimer()
				cpu0, t0 := cpuTime(b), time.Now()
				wg.Add(len(chunks))
				for _, ch := range chunks {
					if err := d.Submit(context.Background(), ch, done); err != nil {
						b.Fatal(err)
					}
				}
				wg.Wait()
				prodWall += time.Since(t0)
				prodCPU += cpuTime(b) - cpu0
				b.StopTimer()
				d.Close(context.Background())

				cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
					kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cpu0, t0 = cpuTime(b), time.Now()
				got := 0
				for got < lines {
					fs := cl.PollFetches(ctx)
					if ctx.Err() != nil {
						b.Fatalf("consumed %d of %d lines", got, lines)
					}
					fs.EachRecord(func(r *kgo.Record) {
						records++
						for _, c := range r.Value {
							if c == '\n' {
								got++
							}
						}
					})
				}
				consWall += time.Since(t0)
				consCPU += cpuTime(b) - cpu0
				cancel()
				cl.Close()
				c.Close()
			}
			total := float64(lines * b.N)
			b.ReportMetric(total/prodWall.Seconds(), "produced-lines/s")
			b.ReportMetric(total/consWall.Seconds(), "consumed-lines/s")
			b.ReportMetric(prodCPU.Seconds()/total*1e6, "produce-cpu-s/Mlines")
			b.ReportMetric(consCPU.Seconds()/total*1e6, "consume-cpu-s/Mlines")
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}
