package e2e

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

// withoutTimings drops the WallClockTime self-metrics, the only lines whose values differ from
// one run to the next.
func withoutTimings(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !strings.Contains(l, "WallClockTime") {
			out = append(out, l)
		}
	}
	return out
}

// writingSince reports whether a local-store temporary file under store was written to since
// start: the program is in the middle of writing a snapshot.
func writingSince(store string, start time.Time) bool {
	tmp, _ := filepath.Glob(filepath.Join(store, "*", ".stats*.tmp"))
	for _, f := range tmp {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(start) {
			return true
		}
	}
	return false
}

// stats-process is killed with SIGKILL at random moments while it delivers a backlog to
// Graphite and the local store, and restarted each time. Nothing is lost: in the end the spool
// is empty, every snapshot's local-store file is complete and equal to a clean run's, no
// temporary file is left behind, and every line of every snapshot reached Graphite (at least
// once: a snapshot cut mid-delivery is delivered again).
func TestKill9StatsProcessLosesNothing(t *testing.T) {
	const snapshots = 16
	base := t.TempDir()
	proto := filepath.Join(base, "proto")
	var names []string
	for i := range snapshots {
		name := strconv.Itoa(1700000000 + 10*i)
		names = append(names, name)
		cfg := synthetic.Config{Procs: 2, Backends: 400, Servers: 10, Frontends: 20, Idle: 0.2, Seed: uint64(i + 1)}
		if err := os.MkdirAll(filepath.Join(proto, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := synthetic.Write(filepath.Join(proto, name), cfg); err != nil {
			t.Fatal(err)
		}
	}

	// The reference: one clean --once run into the local store.
	clean := filepath.Join(base, "clean")
	copyTree(t, proto, filepath.Join(clean, "incoming"))
	cleanConf := writeConfig(t, clean, `
[process]
src-dir = `+filepath.Join(clean, "incoming")+`
[graphite]
enabled = false
hostname = e2e
[local-store]
dir = `+filepath.Join(clean, "local-store")+`
`)
	if out, code := runProcess(t, nil, "-f", cleanConf, "--once"); code != 0 {
		t.Fatalf("clean run exited %d:\n%s", code, out)
	}

	sink := listenSink(t, "127.0.0.1:0")
	host, port, _ := net.SplitHostPort(sink.ln.Addr().String())
	crash := filepath.Join(base, "crash")
	incoming := filepath.Join(crash, "incoming")
	store := filepath.Join(crash, "local-store")
	copyTree(t, proto, incoming)
	conf := writeConfig(t, crash, `
[process]
src-dir = `+incoming+`
workers = 2
[graphite]
server = `+host+`
port = `+port+`
hostname = e2e
[local-store]
dir = `+store+`
`)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, midway, midWrite := 0, 0, 0
	for round := 0; round < 40 && len(snapshotsIn(t, incoming)) > 0; round++ {
		before := len(snapshotsIn(t, incoming))
		roundStart := time.Now()
		p := start(t, "stats-process", "-f", conf)
		time.Sleep(time.Duration(150+rng.IntN(550)) * time.Millisecond)
		if writingSince(store, roundStart) {
			midWrite++
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		kills++
		if after := len(snapshotsIn(t, incoming)); after == before {
			midway++ // killed before finishing even one snapshot
		}
	}
	t.Logf("%d kills: %d before a single snapshot was finished, %d while a local-store file was being written",
		kills, midway, midWrite)

	// Whatever is left is delivered by a last, uninterrupted run.
	if out, code := runProcess(t, nil, "-f", conf, "--once"); code != 0 {
		t.Fatalf("final run exited %d:\n%s", code, out)
	}
	if left := snapshotsIn(t, incoming); len(left) != 0 {
		t.Fatalf("snapshots left in the spool: %v", left)
	}
	if q := snapshotsIn(t, incoming+".quarantine"); len(q) != 0 {
		t.Fatalf("snapshots quarantined: %v", q)
	}

	received := map[string]bool{}
	for _, l := range sink.snapshot() {
		received[l] = true
	}
	for _, name := range names {
		entries, err := os.ReadDir(filepath.Join(store, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "stats" {
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			t.Errorf("local store %s holds %v, want only the stats file", name, got)
		}
		want, err := os.ReadFile(filepath.Join(clean, "local-store", name, "stats"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(store, name, "stats"))
		if err != nil {
			t.Fatal(err)
		}
		wantLines, gotLines := withoutTimings(string(want)), withoutTimings(string(got))
		if strings.Join(wantLines, "\n") != strings.Join(gotLines, "\n") {
			t.Errorf("snapshot %s: the local-store file differs from a clean run's (%d lines, want %d)", name, len(gotLines), len(wantLines))
		}
		missing := 0
		for _, l := range wantLines {
			if !received[l] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("snapshot %s: %d of %d lines never reached Graphite", name, missing, len(wantLines))
		}
	}
}
