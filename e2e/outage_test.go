package e2e

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// lineSink is a Graphite plaintext receiver that keeps every whole line, in arrival order.
type lineSink struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func listenSink(t *testing.T, addr string) *lineSink {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &lineSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() { // a partial last line before a cut connection is dropped, as carbon does
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

func (s *lineSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Graphite is down while snapshots pile up; when it comes back, every line of every snapshot
// arrives (the local store holds the reference copy), oldest snapshot first, and the spool
// empties.
func TestGraphiteOutageThenBack(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	h.SendTraffic(t, 10)
	base := t.TempDir()
	graphiteAddr := testrig.FreePort(t) // nothing listens there yet
	host, port, _ := net.SplitHostPort(graphiteAddr)
	conf := pipelineConfig(t, base, h.SocketDir, 1, `
[graphite]
server = `+host+`
port = `+port+`
hostname = e2e
retries = 1
interval = 0.1
backoff = 2
delay = 0.3
connect-timeout = 0.5
[local-store]
dir = ${paths:base-dir}/local-store
`)
	incoming := filepath.Join(base, "incoming")
	pull := start(t, "stats-pull", "-f", conf)
	proc := start(t, "stats-process", "-f", conf)

	// Graphite is unreachable: snapshots are written to the local store but stay queued.
	waitUntil(t, 20*time.Second, "3 snapshots waiting in the spool while Graphite is down", func() bool {
		return len(snapshotsIn(t, incoming)) >= 3
	})
	pull.stop(t)
	waiting := snapshotsIn(t, incoming)
	t.Logf("snapshots waiting while Graphite is down: %v", waiting)

	sink := listenSink(t, graphiteAddr)
	waitUntil(t, 20*time.Second, "the spool to empty once Graphite is back", func() bool {
		return len(snapshotsIn(t, incoming)) == 0
	})
	proc.stop(t)

	got := sink.snapshot()
	received := make(map[string]int, len(got))
	var order []int64
	for _, l := range got {
		received[l]++
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("malformed line received: %q", l)
		}
		ts, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("bad timestamp in %q", l)
		}
		if len(order) == 0 || order[len(order)-1] != ts {
			order = append(order, ts)
		}
	}
	if !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Fatalf("snapshots reached Graphite out of order (want oldest first): %v", order)
	}
	for _, name := range waiting {
		want, err := os.ReadFile(filepath.Join(base, "local-store", name, "stats"))
		if err != nil {
			t.Fatalf("local store lacks snapshot %s: %v", name, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
		for _, l := range lines {
			if received[l] == 0 {
				t.Fatalf("snapshot %s: line %q never reached Graphite", name, l)
			}
		}
		t.Logf("snapshot %s: all %d lines arrived", name, len(lines))
	}
}
