package testrig

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/config"
)

// StartKafka starts an in-process kfake cluster of one broker with topic of partitions
// partitions, closed at the end of the test. It fails the test unless every listener is on
// 127.0.0.1, so no test ever talks beyond loopback.
func StartKafka(t testing.TB, partitions int32, topic string, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake cluster with topic %s: %v", topic, err)
	}
	t.Cleanup(c.Close)
	for _, a := range c.ListenAddrs() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("kfake listens on %s, not loopback", a)
		}
	}
	return c
}

// KafkaConfig is [kafka] with its shipped defaults, for brokers and topic.
func KafkaConfig(brokers []string, topic, recordKey string) config.Kafka {
	return config.Kafka{Brokers: brokers, Topic: topic, ClientID: "statspipe", Compression: "lz4",
		BatchMaxBytes: 1000000, Linger: 10 * time.Millisecond, MaxBufferedRecords: 100000,
		MaxBufferedBytes: 4 << 20, RecordKey: recordKey, DeliveryTimeout: 60 * time.Second}
}

// KafkaQuick makes a kgo client retry fast: by default it waits 5 s before it asks for
// metadata again, longer than a test's outage.
func KafkaQuick() []kgo.Opt {
	return []kgo.Opt{
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
	}
}

// CloseAtEnd calls closeFn at the end of the test with a context of limit, for what the test
// may already have closed itself (so its error is not the test's business).
func CloseAtEnd(t testing.TB, limit time.Duration, closeFn func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		_ = closeFn(ctx)
	})
}

// KafkaReader is a client outside any group that reads topic from its start (long polls of at
// most 100 ms, so a test's loop comes round quickly); opts come last and override. The caller
// closes it.
func KafkaReader(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("reader of topic %s: %v", topic, err)
	}
	return cl
}

// KafkaEndOffsets is the end offset of every partition of topic (the partitions as the
// broker's metadata has them), failing the test on any error.
func KafkaEndOffsets(t testing.TB, ctx context.Context, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata of topic %s: %v", topic, err)
	}
	if len(mresp.Topics) != 1 {
		t.Fatalf("metadata of topic %s: %d topics in the reply, want 1", topic, len(mresp.Topics))
	}
	if err := kerr.ErrorForCode(mresp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("metadata of topic %s: %v", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets of topic %s: %v", topic, err)
	}
	out := map[int32]int64{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("list offsets of topic %s partition %d: %v", tp.Topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// SumOffsets adds up offsets per partition: for end offsets of a topic nothing was deleted
// from, the number of records it holds.
func SumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// KafkaOutage refuses every request of one key while it is on, counting the requests it
// refused. Once ended, it lets the next request of its key through and removes itself.
type KafkaOutage struct {
	on      atomic.Bool
	refused atomic.Int64
}

// End lets requests through again.
func (o *KafkaOutage) End() { o.on.Store(false) }

// Refused is the number of requests refused so far.
func (o *KafkaOutage) Refused() int64 { return o.refused.Load() }

// KafkaDrop starts an outage in which the cluster closes the connection of every request of
// key (a broker gone).
func KafkaDrop(c *kfake.Cluster, key kmsg.Key) *KafkaOutage {
	return startKafkaOutage(c, key, func(kmsg.Request) (kmsg.Response, error) {
		return nil, errors.New("broker down")
	})
}

// KafkaRefuse starts an outage in which the cluster answers every Produce or OffsetCommit
// request with code for each of its partitions (NOT_LEADER_OR_FOLLOWER for a Produce or
// COORDINATOR_LOAD_IN_PROGRESS for an OffsetCommit makes the client retry). Other keys fail
// the test: their replies have other shapes.
func KafkaRefuse(t testing.TB, c *kfake.Cluster, key kmsg.Key, code *kerr.Error) *KafkaOutage {
	t.Helper()
	switch key {
	case kmsg.Produce:
		return startKafkaOutage(c, key, func(req kmsg.Request) (kmsg.Response, error) {
			preq := req.(*kmsg.ProduceRequest)
			resp := preq.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range preq.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil
		})
	case kmsg.OffsetCommit:
		return startKafkaOutage(c, key, func(req kmsg.Request) (kmsg.Response, error) {
			creq := req.(*kmsg.OffsetCommitRequest)
			resp := creq.ResponseKind().(*kmsg.OffsetCommitResponse)
			for _, rt := range creq.Topics {
				st := kmsg.NewOffsetCommitResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewOffsetCommitResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil
		})
	}
	t.Fatalf("KafkaRefuse cannot answer %s requests; only Produce and OffsetCommit", key.Name())
	return nil
}

func startKafkaOutage(c *kfake.Cluster, key kmsg.Key, refuse func(kmsg.Request) (kmsg.Response, error)) *KafkaOutage {
	o := &KafkaOutage{}
	o.on.Store(true)
	c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !o.on.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		o.refused.Add(1)
		resp, err := refuse(req)
		return resp, err, true
	})
	return o
}

// WaitFor polls cond until it holds, failing the test if it does not within limit.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Receive is the next value from ch, failing the test if none comes within limit.
func Receive[T any](t testing.TB, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(limit):
		t.Fatalf("%s: nothing within %s", what, limit)
		panic("unreachable") // Fatalf does not return
	}
}

// DoneCalls collects the errors a dispatcher passes to the done funcs of what was submitted,
// for up to the n calls it was made for (a further call blocks).
type DoneCalls struct {
	calls atomic.Int64
	ch    chan error
}

// NewDoneCalls is room for n done calls.
func NewDoneCalls(n int) *DoneCalls { return &DoneCalls{ch: make(chan error, n)} }

// Done is the done func to submit with.
func (d *DoneCalls) Done(err error) {
	d.calls.Add(1)
	d.ch <- err
}

// Calls is the number of done calls so far.
func (d *DoneCalls) Calls() int64 { return d.calls.Load() }

// Wait returns the errors of the next n done calls, failing the test if they do not all come
// within limit; what names the things submitted.
func (d *DoneCalls) Wait(t testing.TB, n int, limit time.Duration, what string) []error {
	t.Helper()
	var errs []error
	deadline := time.After(limit)
	for len(errs) < n {
		select {
		case err := <-d.ch:
			errs = append(errs, err)
		case <-deadline:
			t.Fatalf("only %d of %d %s answered within %s", len(errs), n, what, limit)
		}
	}
	return errs
}
