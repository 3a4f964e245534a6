package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// stats-process --once with [kafka] and [local-store] delivers a real snapshot (golden set A)
// to an in-process kfake cluster on 127.0.0.1: the lines consumed from the topic are exactly
// the lines of the local-store file of the same run, in both keying modes.
func TestKafkaOnceGoldenSnapshot(t *testing.T) {
	for _, mode := range []string{"path", "host"} {
		t.Run(mode, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "haproxy"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, a := range c.ListenAddrs() {
				if !strings.HasPrefix(a, "127.0.0.1:") {
					t.Fatalf("kfake listens on %s, not loopback", a)
				}
			}
			dir := filepath.Join(goldenDir, "A-real-default")
			inputs, _ := filepath.Glob(filepath.Join(dir, "input", "*"))
			if len(inputs) != 1 {
				t.Fatalf("want one input snapshot, got %v", inputs)
			}
			base := t.TempDir()
			raw, err := os.ReadFile(filepath.Join(dir, "haproxystats.conf.used"))
			if err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(base, "haproxystats.conf")
			os.WriteFile(conf, []byte(strings.ReplaceAll(string(raw), "@BASE_DIR@", base)), 0o644)
			confd := filepath.Join(base, "conf.d")
			os.MkdirAll(confd, 0o755)
			os.WriteFile(filepath.Join(confd, "99-test.conf"), []byte("[graphite]\nhostname = vm\nenabled = false\n"+
				"[local-store]\ndir = "+base+"/local-store\n"+
				"[kafka]\nbrokers = "+strings.Join(c.ListenAddrs(), ",")+"\ntopic = haproxy\nrecord-key = "+mode+"\n"), 0o644)
			ts := filepath.Base(inputs[0])
			copyTree(t, inputs[0], filepath.Join(base, "incoming", ts))
			start := time.Now()
			out, code := runProcess(t, nil, "-f", conf, "-d", confd, "--once")
			if code != 0 {
				t.Fatalf("stats-process --once exited %d:\n%s", code, out)
			}
			took := time.Since(start)
			if _, err := os.Stat(filepath.Join(base, "incoming", ts)); !os.IsNotExist(err) {
				t.Fatalf("the snapshot is still in the spool (%v):\n%s", err, out)
			}
			stats, err := os.ReadFile(filepath.Join(base, "local-store", ts, "stats"))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.SplitAfter(string(stats), "\n")
			want = want[:len(want)-1] // after the last newline
			got, records := consumeLines(t, c.ListenAddrs(), "haproxy", len(want))
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "") != strings.Join(want, "") {
				t.Fatalf("consumed %d lines, local-store has %d; they differ", len(got), len(want))
			}
			t.Logf("%d lines in %d records; --once took %s", len(got), records, took.Round(time.Millisecond))
		})
	}
}

// consumeLines reads the topic from the start until it has want lines (failing after 30 s),
// and returns them with their newlines and the number of records.
func consumeLines(t *testing.T, brokers []string, topic string, want int) ([]string, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lines []string
	records := 0
	for len(lines) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d lines", len(lines), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			records++
			v := string(r.Value)
			if !strings.HasSuffix(v, "\n") {
				t.Fatalf("record value without its final newline: %q", v)
			}
			lines = append(lines, strings.SplitAfter(strings.TrimSuffix(v, "\n"), "\n")...)
			lines[len(lines)-1] += "\n"
		})
	}
	return lines, records
}
