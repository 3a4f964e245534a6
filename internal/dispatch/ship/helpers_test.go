package ship

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

const (
	testTopic = "snapshots"
	testHost  = "lb1.example.com"
	// waitLimit bounds every wait of these tests.
	waitLimit = 30 * time.Second
)

// testConfig is [kafka] with its shipped defaults, for the cluster c.
func testConfig(c *kfake.Cluster) config.Kafka {
	return testrig.KafkaConfig(c.ListenAddrs(), testTopic, "host")
}

func newDispatcher(t testing.TB, cfg config.Kafka, o Options) *Dispatcher {
	t.Helper()
	if o.Host == "" {
		o.Host = testHost
	}
	o.Extra = append(o.Extra, testrig.KafkaQuick()...)
	d, err := New(cfg, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	testrig.CloseAtEnd(t, 5*time.Second, d.Close)
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

// consumeArchives reads the topic from the start through an Assembler until it has want
// archives and every partition's end is reached, failing on any Assembler error; records
// counts what it read.
func consumeArchives(t testing.TB, c *kfake.Cluster, want int) (archives []*Archive, records int) {
	t.Helper()
	cl := testrig.KafkaReader(t, c.ListenAddrs(), testTopic)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	asm := NewAssembler(Limits{})
	for len(archives) < want || int64(records) < testrig.SumOffsets(testrig.KafkaEndOffsets(t, ctx, cl, testTopic)) {
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
