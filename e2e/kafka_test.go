package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/testrig"
)

// stats-process --once with [kafka] and [local-store] delivers a real snapshot (golden set A)
// to an in-process kfake cluster on 127.0.0.1: the lines consumed from the topic are exactly
// the lines of the local-store file of the same run, in both keying modes.
func TestKafkaOnceGoldenSnapshot(t *testing.T) {
	for _, mode := range []string{"path", "host"} {
		t.Run(mode, func(t *testing.T) {
			c := testrig.StartKafka(t, 4, "haproxy")
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
	cl := testrig.KafkaReader(t, brokers, topic)
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

// SIGHUP adds a [kafka] section to a running stats-process: the snapshot delivered before goes
// only to the local store; the one after reaches the topic too, every line of its local-store
// file consumed; then a broker outage keeps the next snapshot in the spool until it ends.
func TestKafkaReload(t *testing.T) {
	c := testrig.StartKafka(t, 2, "haproxy")
	notify := testrig.ListenNotify(t)
	base := t.TempDir()
	in := filepath.Join(base, "incoming")
	os.MkdirAll(in, 0o755)
	store := filepath.Join(base, "store")
	common := "[paths]\nbase-dir = " + base + "\n[process]\nsrc-dir = ${paths:base-dir}/incoming\nworkers = 1\n" +
		"[graphite]\nenabled = false\nhostname = vm\n[local-store]\ndir = " + store + "\n"
	conf := writeConfig(t, base, common)
	p := startWithEnv(t, []string{"NOTIFY_SOCKET=" + notify.Path}, "stats-process", "-f", conf)
	next := func(prefix string) {
		t.Helper()
		for range 100 {
			if m := notify.Next(t, 15*time.Second); strings.HasPrefix(m, prefix) {
				return
			}
		}
		t.Fatalf("no %s", prefix)
	}
	next("READY=1")
	input := filepath.Join(goldenDir, "A-real-default", "input", "1795312594")
	ts := int64(1795312594)
	publish := func() (int64, func() string) {
		t.Helper()
		ts += 10
		tmp := filepath.Join(base, fmt.Sprintf(".tmp-%d", ts))
		copyTree(t, input, tmp)
		if err := os.Rename(tmp, filepath.Join(in, fmt.Sprint(ts))); err != nil {
			t.Fatal(err)
		}
		this := ts
		return this, func() string {
			var b []byte
			waitUntil(t, 30*time.Second, fmt.Sprintf("snapshot %d in the local store", this), func() bool {
				var err error
				b, err = os.ReadFile(filepath.Join(store, fmt.Sprint(this), "stats"))
				return err == nil
			})
			return string(b)
		}
	}
	_, stored := publish()
	stored()
	os.WriteFile(conf, []byte(common+"[kafka]\nbrokers = "+strings.Join(c.ListenAddrs(), ",")+
		"\ntopic = haproxy\ndelivery-timeout = 2\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	second, stored := publish()
	want := strings.SplitAfter(stored(), "\n")
	want = want[:len(want)-1]
	waitUntil(t, 30*time.Second, "the snapshot to leave the spool", func() bool { return len(snapshotsIn(t, in)) == 0 })
	got, _ := consumeLines(t, c.ListenAddrs(), "haproxy", len(want))
	for _, l := range got {
		if !strings.HasSuffix(strings.TrimSuffix(l, "\n"), fmt.Sprint(" ", second)) {
			t.Fatalf("a line not of the snapshot after the reload: %q", l)
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("consumed %d lines, the local store has %d; they differ", len(got), len(want))
	}

	// A broker outage: every Produce request's connection is dropped. The snapshot stays in
	// the spool (its Kafka delivery fails after delivery-timeout and is retried) until the
	// outage ends, then its lines reach the topic.
	var on atomic.Bool
	on.Store(true)
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !on.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		refused.Add(1)
		return nil, errors.New("broker down"), true
	})
	third, stored := publish()
	stored() // the local store has it
	waitUntil(t, 30*time.Second, "a failed Kafka delivery in the log", func() bool {
		return strings.Contains(p.out.String(), "not acknowledged within delivery-timeout")
	})
	if left := snapshotsIn(t, in); len(left) != 1 {
		t.Fatalf("during the outage the spool holds %v, want snapshot %d", left, third)
	}
	on.Store(false)
	waitUntil(t, 60*time.Second, "the snapshot to leave the spool after the outage", func() bool { return len(snapshotsIn(t, in)) == 0 })
	all, _ := consumeLines(t, c.ListenAddrs(), "haproxy", 2*len(want))
	n := 0
	for _, l := range all {
		if strings.HasSuffix(strings.TrimSuffix(l, "\n"), fmt.Sprint(" ", third)) {
			n++
		}
	}
	if n < len(want) {
		t.Fatalf("%d lines of snapshot %d consumed after the outage, want at least %d", n, third, len(want))
	}
	t.Logf("%d produce requests refused during the outage; %d lines of the snapshot consumed (%d in its file)", refused.Load(), n, len(want))
}
