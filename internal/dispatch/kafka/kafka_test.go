package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/testrig"
)

// Every line produced is consumed exactly once, with the documented framing, in both keying
// modes; the self-metrics count what Kafka acknowledged.
func TestProducedEqualsConsumed(t *testing.T) {
	for _, mode := range []string{"path", "host"} {
		t.Run(mode, func(t *testing.T) {
			c := testrig.StartKafka(t, 4, testTopic)
			d := newDispatcher(t, testConfig(c, mode))
			reg := selfmetrics.New("process")
			d.SetMetrics(selfmetrics.NewProcess(reg).Dispatcher(d.Name()))
			var chunks []*metric.Batch
			want := map[string]int{}
			lines, size := 0, 0
			for i, n := range []int{1, 999, 4000} {
				snap := snapshot(int64(1700000000+10*i), "s", n, 700)
				chunks = append(chunks, snap...)
				for _, b := range snap {
					lines += b.Lines
					size += len(b.Data)
					for _, l := range strings.SplitAfter(string(b.Data), "\n") {
						if l != "" {
							want[l]++
						}
					}
				}
			}
			r := testrig.NewDoneCalls(len(chunks))
			submitAll(t, d, chunks, r)
			for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
				if err != nil {
					t.Fatalf("done(%v)", err)
				}
			}
			wantRecords := lines
			if mode == "host" {
				wantRecords = len(chunks)
			}
			got := consume(t, c, wantRecords)
			if got.records != wantRecords {
				t.Fatalf("%d records, want %d", got.records, wantRecords)
			}
			if len(got.lines) != len(want) {
				t.Fatalf("%d distinct lines consumed, want %d", len(got.lines), len(want))
			}
			for l, n := range want {
				if got.lines[l] != n {
					t.Fatalf("line %q consumed %d times, want %d", l, got.lines[l], n)
				}
			}
			if mode == "host" {
				if got.keys[testHostKey] != len(chunks) || len(got.keys) != 1 {
					t.Fatalf("keys %v, want %q on every record", got.keys, testHostKey)
				}
			} else if len(got.keys) != 4000 { // m0…m3999: the biggest snapshot's paths
				t.Fatalf("%d distinct keys, want 4000 paths", len(got.keys))
			}
			get := func(name string) float64 { v, _ := reg.Get("dispatcher.kafka." + name); return v }
			if get("lines") != float64(lines) || get("bytes") != float64(size) || get("errors") != 0 {
				t.Errorf("self-metrics lines %v bytes %v errors %v, want %d %d 0", get("lines"), get("bytes"), get("errors"), lines, size)
			}
		})
	}
}

// With record-key = path, each record is one line keyed by its path, so one series always
// goes to one partition.
func TestPathKeyPartitioning(t *testing.T) {
	c := testrig.StartKafka(t, 8, testTopic)
	d := newDispatcher(t, testConfig(c, "path"))
	var chunks []*metric.Batch
	for i := range 3 { // the same 200 series in 3 snapshots
		chunks = append(chunks, snapshot(int64(1700000000+10*i), "p", 200, 50)...)
	}
	r := testrig.NewDoneCalls(len(chunks))
	submitAll(t, d, chunks, r)
	r.Wait(t, len(chunks), waitLimit, "chunks")
	cl := testrig.KafkaReader(t, c.ListenAddrs(), testTopic)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	partOf := map[string]int32{}
	used := map[int32]bool{}
	for n := 0; n < 600; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 600", n)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			n++
			if !strings.HasPrefix(string(rec.Value), string(rec.Key)+" ") || strings.Count(string(rec.Value), "\n") != 1 {
				t.Fatalf("record key %q value %q", rec.Key, rec.Value)
			}
			if p, ok := partOf[string(rec.Key)]; ok && p != rec.Partition {
				t.Fatalf("series %s on partitions %d and %d", rec.Key, p, rec.Partition)
			}
			partOf[string(rec.Key)] = rec.Partition
			used[rec.Partition] = true
		})
	}
	if len(used) < 6 {
		t.Errorf("200 series used only %d of 8 partitions", len(used))
	}
}

// A broker outage (every Produce request's connection dropped) delays delivery without
// loss: no chunk is acknowledged while Kafka acknowledges nothing, and once the broker is back
// every line is consumed at least once.
func TestBrokerOutageNoLoss(t *testing.T) {
	for _, mode := range []string{"path", "host"} {
		t.Run(mode, func(t *testing.T) {
			c := testrig.StartKafka(t, 3, testTopic)
			d := newDispatcher(t, testConfig(c, mode))
			reg := selfmetrics.New("process")
			d.SetMetrics(selfmetrics.NewProcess(reg).Dispatcher(d.Name()))
			o := testrig.KafkaDrop(c, kmsg.Produce)
			chunks := snapshot(1700000000, "o", 3000, 500)
			r := testrig.NewDoneCalls(len(chunks))
			submitAll(t, d, chunks, r)
			testrig.WaitFor(t, waitLimit, "produce requests refused", func() bool { return o.Refused() >= 5 })
			if n := r.Calls(); n != 0 {
				t.Fatalf("%d chunks answered while the broker refused every produce request", n)
			}
			o.End()
			for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
				if err != nil {
					t.Fatalf("done(%v) after the outage", err)
				}
			}
			want := 3000
			if mode == "host" {
				want = len(chunks)
			}
			got := consume(t, c, want)
			for _, b := range chunks {
				for _, l := range strings.SplitAfter(string(b.Data), "\n") {
					if l != "" && got.lines[l] < 1 {
						t.Fatalf("line %q lost", l)
					}
				}
			}
			reconnects, _ := reg.Get("dispatcher.kafka.reconnects")
			if reconnects < 1 {
				t.Errorf("reconnects %v after %d dropped connections", reconnects, o.Refused())
			}
			t.Logf("%d produce requests refused; %d records consumed for %d lines; %v reconnects counted",
				o.Refused(), got.records, 3000, reconnects)
		})
	}
}

// A retriable error on every Produce reply for longer than delivery-timeout fails the chunk
// (done(err): the snapshot stays in the spool); sent again once Kafka is back, it is delivered.
func TestDeliveryTimeout(t *testing.T) {
	c := testrig.StartKafka(t, 2, testTopic)
	cfg := testConfig(c, "path")
	cfg.DeliveryTimeout = time.Second // franz-go's minimum
	d := newDispatcher(t, cfg)
	reg := selfmetrics.New("process")
	d.SetMetrics(selfmetrics.NewProcess(reg).Dispatcher(d.Name()))
	o := testrig.KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
	chunks := snapshot(1700000000, "t", 100, 40)
	r := testrig.NewDoneCalls(len(chunks))
	start := time.Now()
	submitAll(t, d, chunks, r)
	for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
		if err == nil || !errors.Is(err, kgo.ErrRecordTimeout) || !strings.Contains(err.Error(), "delivery-timeout") {
			t.Fatalf("done(%v), want the delivery timeout", err)
		}
		var rej dispatch.Rejected
		if errors.As(err, &rej) {
			t.Fatalf("a timeout is not a rejection: %v", err)
		}
	}
	t.Logf("failed after %s, %d produce requests refused", time.Since(start).Round(time.Millisecond), o.Refused())
	if v, _ := reg.Get("dispatcher.kafka.errors"); v != float64(len(chunks)) {
		t.Errorf("errors %v, want %d", v, len(chunks))
	}
	o.End()
	resendUntilDelivered(t, d, chunks)
	got := consume(t, c, 100)
	if got.records != 100 || len(got.lines) != 100 {
		t.Fatalf("after the retry: %d records, %d lines", got.records, len(got.lines))
	}
}

// Submit blocks while the producer holds max-buffered-records, resumes when Kafka drains it,
// and returns ctx's error (done never called) when ctx ends while it waits.
func TestBackPressure(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	cfg := testConfig(c, "path")
	cfg.MaxBufferedRecords = 10
	d := newDispatcher(t, cfg)
	o := testrig.KafkaDrop(c, kmsg.Produce)
	chunk := snapshot(1700000000, "b", 50, 50)[0]
	r := testrig.NewDoneCalls(2)
	returned := make(chan error, 1)
	go func() { returned <- d.Submit(context.Background(), chunk, r.Done) }()
	testrig.WaitFor(t, waitLimit, "a full producer buffer", func() bool { return d.cl.BufferedProduceRecords() >= 10 })
	testrig.WaitFor(t, waitLimit, "produce requests refused", func() bool { return o.Refused() >= 2 })
	select {
	case err := <-returned:
		t.Fatalf("Submit returned (%v) with the buffer full", err)
	default:
	}
	// A second Submit whose context ends while it waits gives up without calling done.
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	var calls2 int
	go func() {
		second <- d.Submit(ctx, snapshot(1700000010, "c", 5, 5)[0], func(error) { calls2++ })
	}()
	cancel()
	if err := testrig.Receive(t, second, waitLimit, "second Submit's return after its context ended"); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Submit: %v, want context.Canceled", err)
	}
	o.End()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Submit still blocked after the outage ended")
	}
	if err := r.Wait(t, 1, waitLimit, "chunks")[0]; err != nil {
		t.Fatalf("done(%v)", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	if err := d.Close(ctx2); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if calls2 != 0 {
		t.Fatalf("done called %d times for a Submit that returned an error", calls2)
	}
	if err := d.Submit(context.Background(), chunk, r.Done); !errors.Is(err, dispatch.ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

// Close flushes what the producer holds; when its context ends first, the rest fails with
// done(err) and Close says so.
func TestClose(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	d := newDispatcher(t, testConfig(c, "host"))
	o := testrig.KafkaDrop(c, kmsg.Produce)
	chunks := snapshot(1700000000, "x", 100, 30)
	r := testrig.NewDoneCalls(len(chunks))
	submitAll(t, d, chunks, r)
	testrig.WaitFor(t, waitLimit, "produce requests refused", func() bool { return o.Refused() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("Close during an outage: %v", err)
	}
	for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
		if err == nil {
			t.Fatal("a chunk was acknowledged during the outage")
		}
	}
}

// A broker gone mid-request (every Produce connection dropped): franz-go cannot fail such
// records safely (idempotent sequence numbers), so the chunk's own timer (1.5 ×
// delivery-timeout) fails it; sent again once the broker is back, every line arrives at least
// once (the first attempt's records may arrive too: duplicates).
func TestDeliveryTimeoutBrokerGone(t *testing.T) {
	c := testrig.StartKafka(t, 2, testTopic)
	cfg := testConfig(c, "path")
	cfg.DeliveryTimeout = time.Second
	d := newDispatcher(t, cfg)
	o := testrig.KafkaDrop(c, kmsg.Produce)
	chunks := snapshot(1700000000, "g", 100, 40)
	r := testrig.NewDoneCalls(len(chunks))
	start := time.Now()
	submitAll(t, d, chunks, r)
	for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
		if err == nil || !strings.Contains(err.Error(), "delivery-timeout") {
			t.Fatalf("done(%v), want the delivery timeout", err)
		}
	}
	took := time.Since(start)
	if took < time.Second {
		t.Fatalf("failed after %s, before delivery-timeout", took)
	}
	t.Logf("failed after %s, %d produce connections dropped", took.Round(time.Millisecond), o.Refused())
	o.End()
	resendUntilDelivered(t, d, chunks)
	got := consume(t, c, 100)
	for _, b := range chunks {
		for _, l := range strings.SplitAfter(string(b.Data), "\n") {
			if l != "" && got.lines[l] < 1 {
				t.Fatalf("line %q lost", l)
			}
		}
	}
	t.Logf("%d records consumed for 100 lines", got.records)
}

// record-key = series: one record per line, keyed by the path without the host component, so
// two hosts' lines of one series share a key (and a partition).
func TestSeriesKey(t *testing.T) {
	c := testrig.StartKafka(t, 4, testTopic)
	chunks := snapshot(1700000000, "s", 20, 10)
	r := testrig.NewDoneCalls(len(chunks))
	submitAll(t, newDispatcher(t, testConfig(c, "series")), chunks, r)
	r.Wait(t, len(chunks), waitLimit, "chunks")
	got := consume(t, c, 20)
	if got.records != 20 || len(got.keys) != 20 {
		t.Fatalf("%d records, %d keys", got.records, len(got.keys))
	}
	for k := range got.keys {
		if !strings.HasPrefix(k, "s.m") {
			t.Fatalf("key %q still has the host prefix %s", k, testHostKey)
		}
	}
}
