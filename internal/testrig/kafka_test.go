package testrig

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const kafkaTestTopic = "rig"

// kafkaProducer is a client that sends each record at once to the partition it names, and
// gives up on a record after limit.
func kafkaProducer(t *testing.T, brokers []string, limit time.Duration) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(kafkaTestTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(limit),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// The end offsets are each partition's record count, and a reader reads them all from the start.
func TestKafkaEndOffsetsAndReader(t *testing.T) {
	c := StartKafka(t, 3, kafkaTestTopic)
	cl := kafkaProducer(t, c.ListenAddrs(), 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[int32]int64{0: 2, 1: 0, 2: 5}
	for p, n := range want {
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("produce to partition %d: %v", p, err)
			}
		}
	}
	if got := KafkaEndOffsets(t, ctx, cl, kafkaTestTopic); !maps.Equal(got, want) {
		t.Fatalf("end offsets %v, want %v", got, want)
	}
	r := KafkaReader(t, c.ListenAddrs(), kafkaTestTopic)
	defer r.Close()
	read := 0
	for read < 7 {
		fs := r.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 7 records", read)
		}
		read += len(fs.Records())
	}
	if read != 7 {
		t.Errorf("read %d records, want 7", read)
	}
	if n := SumOffsets(want); n != 7 {
		t.Errorf("SumOffsets = %d, want 7", n)
	}
}

// While a Produce outage is on nothing is acknowledged and the refusals are counted; after
// End the record goes through.
func TestKafkaOutageProduce(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(map[bool]string{false: "refuse", true: "drop"}[drop], func(t *testing.T) {
			c := StartKafka(t, 1, kafkaTestTopic)
			cl := kafkaProducer(t, c.ListenAddrs(), 30*time.Second)
			var o *KafkaOutage
			if drop {
				o = KafkaDrop(c, kmsg.Produce)
			} else {
				o = KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
			}
			acked := make(chan error, 1)
			cl.Produce(context.Background(), &kgo.Record{Value: []byte("v")}, func(_ *kgo.Record, err error) { acked <- err })
			WaitFor(t, 30*time.Second, "3 produce requests refused", func() bool { return o.Refused() >= 3 })
			select {
			case err := <-acked:
				t.Fatalf("record answered (%v) during the outage", err)
			default:
			}
			o.End()
			if err := Receive(t, acked, 30*time.Second, "the record's acknowledgement after the outage"); err != nil {
				t.Fatalf("record after the outage: %v", err)
			}
		})
	}
}

// An OffsetCommit outage answers every partition with the code given, so a client matches
// the reply to its request (by topic name or ID).
func TestKafkaOutageOffsetCommit(t *testing.T) {
	c := StartKafka(t, 2, kafkaTestTopic)
	cl := kafkaProducer(t, c.ListenAddrs(), 30*time.Second)
	o := KafkaRefuse(t, c, kmsg.OffsetCommit, kerr.CoordinatorLoadInProgress)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = kafkaTestTopic
	for p := range int32(2) {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, 1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			answered++
			if err := kerr.ErrorForCode(p.ErrorCode); !errors.Is(err, kerr.CoordinatorLoadInProgress) {
				t.Errorf("commit of partition %d: %v, want COORDINATOR_LOAD_IN_PROGRESS", p.Partition, err)
			}
		}
	}
	// kgo retries a retriable coordinator error itself before it returns the reply.
	if answered != 2 || o.Refused() < 1 {
		t.Errorf("%d partitions answered, %d requests refused; want 2 and at least 1", answered, o.Refused())
	}
}
