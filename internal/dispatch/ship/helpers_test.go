package ship

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

const (
	testTopic = "snapshots"
	testHost  = "lb1.example.com"
	// waitLimit bounds every wait of these tests.
	waitLimit = 30 * time.Second
)

func newCluster(t testing.TB, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testConfig is [kafka] with its shipped defaults, for the cluster c.
func testConfig(c *kfake.Cluster) config.Kafka {
	return config.Kafka{Brokers: c.ListenAddrs(), Topic: testTopic, ClientID: "statspipe", Compression: "lz4",
		BatchMaxBytes: 1000000, Linger: 10 * time.Millisecond, MaxBufferedRecords: 100000,
		MaxBufferedBytes: 4 << 20, RecordKey: "host", DeliveryTimeout: 60 * time.Second}
}

// quick makes retries fast (kgo waits 5 s for metadata by default).
var quick = []kgo.Opt{
	kgo.MetadataMinAge(50 * time.Millisecond),
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

func newDispatcher(t testing.TB, cfg config.Kafka, o Options) *Dispatcher {
	t.Helper()
	if o.Host == "" {
		o.Host = testHost
	}
	o.Extra = append(o.Extra, quick...)
	d, err := New(cfg, o, nil)
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

// makeSnapshot writes files (name → body; "<source>/<file>" for a part directory) into
// <parent>/<epoch> and returns that directory.
func makeSnapshot(t testing.TB, parent string, epoch int64, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(parent, fmt.Sprint(epoch))
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// smallSnapshot is HAProxy files at the top and a named source's part directory.
func smallSnapshot(tag string) map[string]string {
	return map[string]string{
		"admin1.sock_info": "Name: HAProxy\nPid: 42\n" + tag + "\n",
		"admin1.sock_stat": "# pxname,svname,scur\nfe_main,FRONTEND,7\n",
		"apps/source.json": `{"format":1,"kind":"openmetrics","source":"apps"}` + "\n",
		"apps/a.body":      "http_requests_total 12\n",
		"apps/a.meta.json": `{"instance":"a","duration_seconds":0.01,"bytes":23}` + "\n",
	}
}

// bigText is n bytes of varied, compressible-ish lines, different for every seed.
func bigText(n int, seed int) string {
	b := make([]byte, 0, n+64)
	x := uint32(seed*2654435761 + 1)
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = fmt.Appendf(b, "be_%d,srv_%d,%d,%d\n", x%997, x%13, x, x>>7)
	}
	return string(b[:n])
}

// lastChunk is the one chunk the runner hands a SnapshotShipper for the snapshot dir.
func lastChunk(dir string) *metric.Batch {
	ts, _ := spool.TimestampOf(filepath.Base(dir))
	return &metric.Batch{Timestamp: ts, Source: dir, Last: true}
}

// results collects done calls.
type results struct {
	calls atomic.Int64
	ch    chan error
}

func newResults(n int) *results { return &results{ch: make(chan error, n)} }

func (r *results) done(err error) {
	r.calls.Add(1)
	r.ch <- err
}

func (r *results) wait(t testing.TB, n int) []error {
	t.Helper()
	var errs []error
	deadline := time.After(waitLimit)
	for len(errs) < n {
		select {
		case err := <-r.ch:
			errs = append(errs, err)
		case <-deadline:
			t.Fatalf("only %d of %d snapshots answered within %s", len(errs), n, waitLimit)
		}
	}
	return errs
}

// consumeArchives reads the topic from the start through an Assembler until it has want
// archives and every partition's end is reached, failing on any Assembler error; records
// counts what it read.
func consumeArchives(t testing.TB, c *kfake.Cluster, want int) (archives []*Archive, records int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	asm := NewAssembler(Limits{})
	for len(archives) < want || int64(records) < endOffsets(t, ctx, cl) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d archives from %d records, want %d", len(archives), records, want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			records++
			a, err := asm.Add(r.Partition, r.Offset, r.Key, r.Headers, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if a != nil {
				archives = append(archives, a)
			}
		})
	}
	return archives, records
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

// outage makes the cluster answer every Produce request with NOT_LEADER_OR_FOLLOWER (a
// retriable error) while it is on, counting the requests it refused.
type outage struct {
	on      atomic.Bool
	refused atomic.Int64
}

func startOutage(c *kfake.Cluster) *outage {
	o := &outage{}
	o.on.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !o.on.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		o.refused.Add(1)
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
