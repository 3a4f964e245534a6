package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/testrig"
)

const (
	testTopic   = "metrics"
	testHostKey = "loadbalancers.lb-01"
	// waitLimit bounds every wait of these tests.
	waitLimit = 30 * time.Second
)

// testConfig is [kafka] with its defaults, for the cluster c.
func testConfig(c *kfake.Cluster, recordKey string) config.Kafka {
	return testrig.KafkaConfig(c.ListenAddrs(), testTopic, recordKey)
}

func newDispatcher(t testing.TB, cfg config.Kafka) *Dispatcher {
	t.Helper()
	d, err := New(cfg, Options{HostKey: testHostKey, Namespace: "loadbalancers", Extra: testrig.KafkaQuick()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testrig.CloseAtEnd(t, 5*time.Second, d.Close)
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

func submitAll(t testing.TB, d *Dispatcher, chunks []*metric.Batch, r *testrig.DoneCalls) {
	t.Helper()
	for _, b := range chunks {
		if err := d.Submit(context.Background(), b, r.Done); err != nil {
			t.Fatal(err)
		}
	}
}

// resendUntilDelivered submits chunks again as the runner would (the whole snapshot), at most
// 10 times, until every chunk is acknowledged: after an outage ends the client may still be
// reconnecting when the first retry's delivery-timeout runs out.
func resendUntilDelivered(t testing.TB, d *Dispatcher, chunks []*metric.Batch) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r := testrig.NewDoneCalls(len(chunks))
		submitAll(t, d, chunks, r)
		err := errors.Join(r.Wait(t, len(chunks), waitLimit, "chunks")...)
		if err == nil {
			return
		}
		if attempt == 10 {
			t.Fatalf("still not delivered after %d retries with the broker back: %v", attempt, err)
		}
		t.Logf("retry %d: %v", attempt, err)
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
	cl := testrig.KafkaReader(t, c.ListenAddrs(), testTopic)
	defer cl.Close()
	got := consumed{lines: map[string]int{}, keys: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	end := testrig.SumOffsets(testrig.KafkaEndOffsets(t, ctx, cl, testTopic))
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
		end = testrig.SumOffsets(testrig.KafkaEndOffsets(t, ctx, cl, testTopic))
	}
	return got
}
