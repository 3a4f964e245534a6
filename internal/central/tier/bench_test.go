package tier

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/central"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/consume"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/ship"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/process/haproxy"
	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// counter is a dispatcher that counts the lines it is given (and lets the runner recycle them).
type counter struct{ lines atomic.Int64 }

func (c *counter) Name() string { return "counter" }
func (c *counter) Submit(_ context.Context, b *metric.Batch, done func(error)) error {
	c.lines.Add(int64(b.Lines))
	done(nil)
	return nil
}
func (c *counter) Close(context.Context) error { return nil }

// consumeUntil runs one consumer of topic (a new group) with h until finished holds, and
// returns the CPU and wall time from its start; the benchmark's measured part.
func consumeUntil(b *testing.B, c *kfake.Cluster, topic string, h consume.Handler, finished func() bool) (cpu, wall time.Duration) {
	k, err := consume.New(consume.Options{Conn: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Topic: topic,
		Group: "bench", Log: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c0, w0 := cpuTime(b), time.Now()
	go func() { defer close(done); k.Run(ctx) }()
	for !finished() {
		time.Sleep(time.Millisecond)
	}
	cpu, wall = cpuTime(b)-c0, time.Since(w0)
	cancel()
	<-done
	return cpu, wall
}

func benchRunner(b *testing.B, d dispatch.Dispatcher) *process.Runner {
	r, err := process.New(process.Options{SrcDir: b.TempDir(), Workers: 1, NewFormat: func() process.Format { return fileFormat{} },
		Dispatchers: []dispatch.Dispatcher{d}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// fleet makes the lines of hosts hosts × series series at ts, one line each, appended to buf.
type fleet struct {
	hosts  []string
	series []string
}

func newFleet(hosts, series int) *fleet {
	f := &fleet{}
	for h := range hosts {
		f.hosts = append(f.hosts, fmt.Sprintf("lb.edge-%04d.", h))
	}
	for s := range series {
		f.series = append(f.series, fmt.Sprintf("haproxy.backend.be_%03d.server.srv_%02d.m%02d ", s/200, s/20%10, s%20))
	}
	return f
}

func (f *fleet) line(buf []byte, h, s int, ts int64) []byte {
	buf = append(buf[:0], f.hosts[h]...)
	buf = append(buf, f.series[s]...)
	buf = strconv.AppendInt(buf, int64((h*31+s*7)%1000), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, ts, 10)
	return append(buf, '\n')
}

// BenchmarkLinesThroughKafka is the line stage whole: 1,000 hosts × 1,000 series (1 M lines,
// one record each, keyed by series as [kafka] record-key = series keys them, lz4) in an
// in-process kfake topic of 8 partitions, consumed by one consumer.Consumer whose tier.Lines
// aggregates them across hosts; one iteration ends when every cluster line of the bucket is
// delivered (a line of the next-but-one bucket closes it). The broker shares the CPUs, so
// the CPU per million lines includes kfake's.
func BenchmarkLinesThroughKafka(b *testing.B) {
	const hosts, series, partitions = 1000, 1000, 8
	f := newFleet(hosts, series)
	ts := int64(1700000000)
	now := func() int64 { return ts + 100 }
	var produced int64
	var cpu, wall time.Duration
	for n := 0; n < b.N; n++ {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "lines"))
		if err != nil {
			b.Fatal(err)
		}
		pr, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("lines"),
			kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(10*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		var buf []byte
		for s := range series {
			for h := range hosts {
				buf = f.line(buf, h, s, ts)
				key := buf[len(f.hosts[h]) : len(f.hosts[h])+len(f.series[s])-1]
				pr.Produce(context.Background(), &kgo.Record{Key: append([]byte(nil), key...), Value: append([]byte(nil), buf...)}, nil)
			}
		}
		for s := range series { // host 0's next-but-one bucket closes bucket ts on every partition
			pr.Produce(context.Background(), &kgo.Record{Key: []byte(f.series[s][:len(f.series[s])-1]),
				Value: f.line(nil, 0, s, ts+20)}, nil)
		}
		if err := pr.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		pr.Close()
		produced = int64(hosts * series)

		out := &counter{}
		h, err := NewLines(LineOptions{Runner: benchRunner(b, out), WorkDir: b.TempDir(), Log: slog.New(slog.DiscardHandler),
			Central: central.Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 0, Now: now}})
		if err != nil {
			b.Fatal(err)
		}
		dc, dw := consumeUntil(b, c, "lines", h, func() bool { return out.lines.Load() >= series })
		cpu, wall = cpu+dc, wall+dw
		c.Close()
	}
	lines := float64(produced) * float64(b.N)
	b.ReportMetric(lines/wall.Seconds(), "lines/s")
	b.ReportMetric(cpu.Seconds()/(lines/1e6), "cpu-s/Mlines")
}

// BenchmarkSimulateFleet simulates the line stage at fleet scale without Kafka: hosts hosts ×
// series series per 10 s bucket, spread over 32 partitions by a hash of the series (as the
// topic's partitioner spreads series keys), fed record by record to one tier.Lines (one
// consumer owning every partition), three buckets in a row with a lateness of one bucket.
// It reports the aggregation's lines/s on one core, the CPU seconds one bucket costs (to set
// against its 10 s), and the heap held with the open buckets of the window.
func BenchmarkSimulateFleet(b *testing.B) {
	for _, bc := range []struct{ hosts, series int }{{1000, 1000}, {1000, 10000}} {
		b.Run(fmt.Sprintf("hosts=%d/series=%d", bc.hosts, bc.series), func(b *testing.B) {
			const partitions, buckets = 32, 3
			f := newFleet(bc.hosts, bc.series)
			partOf := make([]int32, bc.series)
			for s := range partOf {
				hash := fnv.New32a()
				hash.Write([]byte(f.series[s]))
				partOf[s] = int32(hash.Sum32() % partitions)
			}
			start := int64(1700000000)
			var cpu time.Duration
			var peak uint64
			var out int64
			for n := 0; n < b.N; n++ {
				cl := &counter{}
				h, err := NewLines(LineOptions{Runner: benchRunner(b, cl), WorkDir: b.TempDir(), Log: slog.New(slog.DiscardHandler),
					Central: central.Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 10,
						Now: func() int64 { return start + 1000 }, MaxHosts: 2 * bc.hosts}})
				if err != nil {
					b.Fatal(err)
				}
				for p := range partitions {
					h.Assigned(int32(p), func(int64) {})
				}
				offsets := make([]int64, partitions)
				rec := &consume.Record{}
				var buf []byte
				c0 := cpuTime(b)
				for k := range buckets {
					ts := start + int64(10*k)
					for s := range bc.series {
						for host := range bc.hosts {
							buf = f.line(buf, host, s, ts)
							p := partOf[s]
							rec.Partition, rec.Offset, rec.Value = p, offsets[p], buf
							offsets[p]++
							h.Handle(context.Background(), rec)
						}
					}
					if k == buckets-2 {
						var ms runtime.MemStats
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}
				}
				cpu += cpuTime(b) - c0
				out = cl.lines.Load()
			}
			lines := float64(bc.hosts*bc.series*buckets) * float64(b.N)
			b.ReportMetric(lines/cpu.Seconds(), "lines/cpu-s")
			b.ReportMetric(cpu.Seconds()/float64(b.N*buckets), "cpu-s/bucket")
			b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
			b.ReportMetric(float64(out), "cluster-lines/op")
		})
	}
}

// haproxyFormat is the tuned HAProxy processor as a process.Format.
type haproxyFormat struct{ p *haproxy.Processor }

func (f haproxyFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	_, err := f.p.Process(dir, ts, flush)
	return err
}

// BenchmarkSnapshotsThroughKafka is the snapshot stage whole: 20 edges' snapshots of the
// 4 × 1000 × 10 set (21 MB of CSV, 22 fragments each), shipped by the [ship] dispatcher into an
// in-process kfake topic beforehand, then consumed by one consume.Consumer whose tier.Snapshots
// joins, unpacks and processes them (the HAProxy processor, two workers) under each edge's
// host name. Timed from Run to the last line delivered; CPU includes kfake's.
func BenchmarkSnapshotsThroughKafka(b *testing.B) {
	const edges = 20
	src := filepath.Join(b.TempDir(), "1700000000")
	os.Mkdir(src, 0o755)
	if err := synthetic.Write(src, synthetic.DefaultConfig); err != nil {
		b.Fatal(err)
	}
	var cpu, wall time.Duration
	var lines int64
	for n := 0; n < b.N; n++ {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "snapshots"))
		if err != nil {
			b.Fatal(err)
		}
		cfg := config.Kafka{Brokers: c.ListenAddrs(), Topic: "snapshots", ClientID: "bench", Compression: "lz4",
			BatchMaxBytes: 1000000, Linger: 10 * time.Millisecond, MaxBufferedRecords: 100000, MaxBufferedBytes: 64 << 20,
			RecordKey: "host", DeliveryTimeout: 60 * time.Second}
		for e := range edges {
			d, err := ship.New(cfg, ship.Options{Host: fmt.Sprintf("edge-%02d", e)}, nil)
			if err != nil {
				b.Fatal(err)
			}
			res := make(chan error, 1)
			if err := d.Submit(context.Background(), &metric.Batch{Timestamp: 1700000000, Source: src, Last: true},
				func(err error) { res <- err }); err != nil {
				b.Fatal(err)
			}
			if err := <-res; err != nil {
				b.Fatal(err)
			}
			d.Close(context.Background())
		}
		out := &counter{}
		r, err := process.New(process.Options{SrcDir: b.TempDir(), Workers: 2, Dispatchers: []dispatch.Dispatcher{out},
			NewFormat: func() process.Format {
				return haproxyFormat{haproxy.NewProcessor(haproxy.Options{Prefix: "lb.tier.haproxy"}, nil)}
			}, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		h, err := NewSnapshots(SnapshotOptions{Runner: r, Namespace: "lb", OwnPrefix: "lb.tier", WorkDir: b.TempDir(),
			MaxSnapshotBytes: 256 << 20, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		dc, dw := consumeUntil(b, c, "snapshots", h, func() bool { return r.Summary().Delivered >= edges })
		cpu, wall = cpu+dc, wall+dw
		lines = out.lines.Load()
		r.Close(context.Background())
		c.Close()
	}
	total := float64(lines) * float64(b.N)
	b.ReportMetric(total/wall.Seconds(), "lines/s")
	b.ReportMetric(cpu.Seconds()/(total/1e6), "cpu-s/Mlines")
	b.ReportMetric(float64(lines)/edges, "lines/snapshot")
}
