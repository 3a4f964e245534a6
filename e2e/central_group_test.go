package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// Two central stats-process instances in one consumer group share the snapshot-topic: while
// snapshots are shipped, the second one joins, then the first one stops (SIGTERM) and is
// started again later. Every shipped snapshot is delivered by one of them (a rebalance loses
// nothing), and the restarted one resumes from the committed offsets: it does not deliver
// again what it had delivered and committed before it stopped, nor after a reload (SIGHUP).
func TestCentralGroupRebalanceAndRestart(t *testing.T) {
	c := testrig.StartKafka(t, 6, "snapshots")
	brokers := strings.Join(c.ListenAddrs(), ",")
	tierConf := func(name string) (conf, store string) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
		store = filepath.Join(dir, "store")
		return writeConfig(t, dir, `
[process]
src-dir = `+dir+`/incoming
[graphite]
enabled = false
namespace = lb
hostname = `+name+`
[local-store]
dir = `+store+`
[central]
brokers = `+brokers+`
snapshot-topic = snapshots
work-dir = `+dir+`/central
`), store
	}
	confA, storeA := tierConf("tier-a")
	confB, storeB := tierConf("tier-b")

	snap, _, _ := pullHAProxyHost(t, "lb1", 10)
	edge := t.TempDir()
	edgeConf := writeConfig(t, edge, `
[process]
src-dir = `+edge+`/incoming
[graphite]
enabled = false
namespace = lb
hostname = lb-edge
[ship]
brokers = `+brokers+`
topic = snapshots
`)
	base := int64(1796000000)
	shipped := 0
	// shipMore ships n snapshots, each as another host (another key, so spread over the
	// partitions) at its own timestamp, in one edge stats-process --once.
	shipMore := func(n int) {
		t.Helper()
		for range n {
			ts := base + int64(shipped)
			copyTree(t, snap, filepath.Join(edge, "incoming", strconv.FormatInt(ts, 10)))
			shipped++
		}
		// The host name is the edge's: vary it per batch through -d.
		confd := filepath.Join(edge, "conf.d")
		os.MkdirAll(confd, 0o755)
		os.WriteFile(filepath.Join(confd, "host.conf"), []byte("[graphite]\nhostname = lb"+strconv.Itoa(shipped)+"\n"), 0o644)
		if out, code := runProcess(t, nil, "-f", edgeConf, "-d", confd, "--once"); code != 0 {
			t.Fatalf("edge stats-process --once exited %d:\n%s", code, out)
		}
	}
	delivered := func(store string) map[string]bool {
		got := map[string]bool{}
		for _, name := range snapshotsIn(t, store) {
			if _, err := os.Stat(filepath.Join(store, name, "stats")); err == nil {
				got[name] = true
			}
		}
		return got
	}
	all := func() bool {
		a, b := delivered(storeA), delivered(storeB)
		for i := range shipped {
			name := strconv.FormatInt(base+int64(i), 10)
			if !a[name] && !b[name] {
				return false
			}
		}
		return true
	}

	a := start(t, "stats-process", "-f", confA)
	for range 3 {
		shipMore(2)
	}
	waitUntil(t, 60*time.Second, "tier A's deliveries", all)
	b := start(t, "stats-process", "-f", confB)
	waitUntil(t, 60*time.Second, "tier B joining the group", func() bool {
		return strings.Contains(b.out.String(), "kafka partitions assigned")
	})
	for range 3 {
		shipMore(2)
	}
	a.stop(t) // its partitions move to B
	for range 3 {
		shipMore(2)
	}
	waitUntil(t, 60*time.Second, "every snapshot delivered by A or B", all)
	beforeRestart := delivered(storeA)

	// A comes back and B stops: A owns every partition again and resumes at the committed
	// offsets: it delivers what is shipped now, and nothing it had delivered and committed
	// before (its store's files keep their times).
	mtimes := map[string]time.Time{}
	for name := range beforeRestart {
		fi, _ := os.Stat(filepath.Join(storeA, name, "stats"))
		mtimes[name] = fi.ModTime()
	}
	a2 := start(t, "stats-process", "-f", confA)
	waitUntil(t, 60*time.Second, "tier A rejoining", func() bool {
		return strings.Contains(a2.out.String(), "kafka partitions assigned")
	})
	// A reload (SIGHUP) restarts A's consumers on the configuration read again: they rejoin and
	// go on from the committed offsets.
	a2.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 60*time.Second, "tier A reloaded", func() bool {
		return strings.Contains(a2.out.String(), "msg=reloaded")
	})
	b.stop(t)
	from := shipped
	for range 3 {
		shipMore(2)
	}
	waitUntil(t, 60*time.Second, "tier A delivering every snapshot shipped after its restart", func() bool {
		got := delivered(storeA)
		for i := from; i < shipped; i++ {
			if !got[strconv.FormatInt(base+int64(i), 10)] {
				return false
			}
		}
		return true
	})
	for name, was := range mtimes {
		if fi, _ := os.Stat(filepath.Join(storeA, name, "stats")); !fi.ModTime().Equal(was) {
			t.Errorf("snapshot %s delivered again by the restarted tier A", name)
		}
	}
	a2.stop(t)
	t.Logf("%d snapshots: %d delivered by A before its restart, %d by B, %d by A in all",
		shipped, len(beforeRestart), len(delivered(storeB)), len(delivered(storeA)))
}
