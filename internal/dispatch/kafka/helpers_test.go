package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
)

const (
	testTopic   = "metrics"
	testHostKey = "loadbalancers.lb-01"
	// waitLimit bounds every wait of these tests.
	waitLimit = 30 * time.Second
)

// newCluster starts an in-process kfake cluster on random 127.0.0.1 ports with testTopic.
func newCluster(t testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, testTopic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testConfig is [kafka] with its defaults, for the cluster c.
func testConfig(c *kfake.Cluster, recordKey string) config.Kafka {
	return config.Kafka{Brokers: c.ListenAddrs(), Topic: testTopic, ClientID: "statspipe", Compression: "lz4",
		BatchMaxBytes: 1000000, Linger: 10 * time.Millisecond, MaxBufferedRecords: 100000,
		MaxBufferedBytes: 4 << 20, RecordKey: recordKey, DeliveryTimeout: 60 * time.Second}
}

// quick makes retries fast (kgo waits 5 s for metadata by default, rigs.md §2.1).
var quick = []kgo.Opt{
	kgo.MetadataMinAge(50 * time.Millisecond),
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

func newDispatcher(t testing.TB, cfg config.Kafka) *Dispatcher {
	t.Helper()
	d, err := New(cfg, Options{HostKey: testHostKey, Namespace: "loadbalancers", Extra: quick}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d
}

// snapshot builds a snapshot's chunks of Graphite lines: lines lines at ts, at most perChunk
// lines a chunk, paths <testHostKey>.<tag>.m<i>.
func snapshot(ts int64, tag string, lines, perChunk int) []*metric.Batch {
	var out []*metric.Batch
	var b strings.Builder
	n := 0
	flush := func(last bool) {
		out = append(out, &metric.Batch{Timestamp: ts, Source: fmt.Sprintf("snap-%d", ts), Seq: len(out),
			Last: last, Data: []byte(b.String()), Lines: n})
		b.Reset()
		n = 0
	}
	for i := range lines {
		fmt.Fprintf(&b, "%s.%s.m%d %d %d\n", testHostKey, tag, i, i*7, ts)
		n++
		if n == perChunk && i != lines-1 {
			flush(false)
		}
	}
	flush(true)
	return out
}

// results collects the done calls of submitted chunks.
type results struct {
	mu    sync.Mutex
	errs  []error
	calls atomic.Int64
	ch    chan error
}

func newResults(n int) *results { return &results{ch: make(chan error, n)} }

func (r *results) done(err error) {
	r.calls.Add(1)
	r.ch <- err
}

// wait returns the errors of n done calls, failing the test after waitLimit.
func (r *results) wait(t testing.TB, n int) []error {
	t.Helper()
	var errs []error
	deadline := time.After(waitLimit)
	for len(errs) < n {
		select {
		case err := <-r.ch:
			errs = append(errs, err)
		case <-deadline:
			t.Fatalf("only %d of %d chunks answered within %s", len(errs), n, waitLimit)
		}
	}
	return errs
}

func submitAll(t testing.TB, d *Dispatcher, chunks []*metric.Batch, r *results) {
	t.Helper()
	for _, b := range chunks {
		if err := d.Submit(context.Background(), b, r.done); err != nil {
			t.Fatal(err)
		}
	}
}

// consumed is what a test consumer read from the topic.
type consumed struct {
	records int
	lines   map[string]int // line (with its newline) → times seen
	keys    map[string]int
}

// consume reads the topic from the start until it has at least wantRecords records and every
// partition's end offset is reached, so an exact count proves no duplicate and no loss.
func consume(t testing.TB, c *kfake.Cluster, wantRecords int) consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consumed{lines: map[string]int{}, keys: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	end := endOffsets(t, ctx, cl)
	for got.records < wantRecords || got.records < int(end) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d (end offsets add up to %d)", got.records, wantRecords, end)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got.records++
			got.keys[string(r.Key)]++
			for v := string(r.Value); v != ""; {
				i := strings.IndexByte(v, '\n')
				if i < 0 {
					t.Fatalf("record value ends without a newline: %q", v)
				}
				got.lines[v[:i+1]]++
				v = v[i+1:]
			}
		})
		end = endOffsets(t, ctx, cl)
	}
	return got
}

// endOffsets adds up the topic's partitions' end offsets (= records, as nothing is deleted).
func endOffsets(t testing.TB, ctx context.Context, cl *kgo.Client) int64 {
	t.Helper()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(testTopic)
	md.Topics = append(md.Topics, mt)
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = testTopic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	var sum int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("list offsets: %v", err)
			}
			sum += p.Offset
		}
	}
	return sum
}

// outage makes the cluster refuse every Produce request while it is on: drop closes the
// client connection (a broker gone), otherwise the reply carries NOT_LEADER_OR_FOLLOWER for
// every partition (a retriable error). It counts the requests it refused.
type outage struct {
	on      atomic.Bool
	refused atomic.Int64
}

func startOutage(c *kfake.Cluster, drop bool) *outage {
	o := &outage{}
	o.on.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !o.on.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		o.refused.Add(1)
		if drop {
			return nil, fmt.Errorf("broker down"), true
		}
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return o
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
