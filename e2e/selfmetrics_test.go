package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// Self-metrics end to end, with real HAProxy: stats-pull (self-metrics on, /metrics and
// /healthz on loopback) publishes snapshots, survives a SIGHUP with its counters, and reports
// unhealthy with the reason once its sockets are gone; stats-process (one worker, local store)
// delivers them with its own lines. The values in the local store are checked against counts
// known from the run: snapshot k (0-based, oldest first) says that k snapshots were published
// and k delivered before it, HAProxy's bytes are the sum of its files in snapshots 0..k, and
// the local store's line count is the lines of the files of snapshots 0..k-1. Both programs'
// /metrics pass `promtool check metrics` (Prometheus text) and the Python client's OpenMetrics
// parser (OpenMetrics text).
func TestSelfMetrics(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	base := t.TempDir()
	in := filepath.Join(base, "incoming")
	store := filepath.Join(base, "store")
	pullAddr, procAddr := testrig.FreePort(t), testrig.FreePort(t)
	conf := writeConfig(t, base, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+in+`
tmp-dst-dir = `+base+`/incoming.tmp
pull-interval = 1
pull-timeout = 0.5
self-metrics = true
listen = `+pullAddr+`
[process]
src-dir = `+in+`
workers = 1
self-metrics = true
listen = `+procAddr+`
[graphite]
enabled = false
hostname = vm
namespace = lb
[local-store]
dir = `+store+`
`)
	os.MkdirAll(in, 0o755)
	pull := start(t, "stats-pull", "-f", conf)
	waitUntil(t, 15*time.Second, "stats-pull's /healthz to answer 200", func() bool {
		code, _ := httpGet(pullAddr, "/healthz", "")
		return code == 200
	})
	const n = 3
	waitUntil(t, 20*time.Second, "3 snapshots", func() bool { return len(snapshotsIn(t, in)) >= n })

	// A reload keeps the counters.
	before := metricValue(t, pullAddr, "statspipe_pull_snapshots_published_total")
	pull.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 15*time.Second, "stats-pull to reload", func() bool { return strings.Contains(pull.out.String(), `msg=reloaded`) })
	waitUntil(t, 15*time.Second, "a snapshot after the reload", func() bool {
		return metricValue(t, pullAddr, "statspipe_pull_snapshots_published_total") > before
	})
	checkExposition(t, pullAddr)

	// The sockets go away: every round finds no source; /healthz says so.
	socks, _ := filepath.Glob(filepath.Join(h.SocketDir, "*.sock"))
	for _, s := range socks {
		os.Remove(s)
	}
	waitUntil(t, 15*time.Second, "stats-pull's /healthz to answer 503", func() bool {
		code, body := httpGet(pullAddr, "/healthz", "")
		if code == 503 && body != "the last pull round found no source to pull from (no socket in socket-dir?)\n" {
			t.Fatalf("503 with %q", body)
		}
		return code == 503
	})
	if v := metricValue(t, pullAddr, "statspipe_pull_rounds_without_snapshot_total"); v < 1 {
		t.Errorf("rounds_without_snapshot = %v", v)
	}
	published := metricValue(t, pullAddr, "statspipe_pull_snapshots_published_total")
	pull.stop(t)

	snaps := snapshotsIn(t, in)
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })
	if float64(len(snaps)) != published {
		t.Fatalf("%d snapshots in the spool, stats-pull said %v published", len(snaps), published)
	}
	// What the snapshots' own files say: HAProxy's bytes per snapshot.
	haproxyBytes := make([]int64, len(snaps))
	for k, s := range snaps {
		files, _ := filepath.Glob(filepath.Join(in, s, "admin*.sock_*"))
		if len(files) != 4 {
			t.Fatalf("snapshot %s: HAProxy files %v", s, files)
		}
		for _, f := range files {
			fi, _ := os.Stat(f)
			haproxyBytes[k] += fi.Size()
		}
	}

	// Rounds that published nothing before each snapshot, from stats-pull's log (the round that
	// starts at once after the reload may find its second taken).
	skippedBefore := map[string]float64{}
	skipped := 0.0
	for _, l := range strings.Split(pull.out.String(), "\n") {
		switch {
		case strings.Contains(l, "snapshot name already taken"), strings.Contains(l, "nothing published this round"):
			skipped++
		case strings.Contains(l, "statistics are stored in "+in+"/"):
			skippedBefore[strings.Trim(strings.Fields(l[strings.Index(l, in+"/")+len(in)+1:])[0], `"`)] = skipped
		}
	}

	proc := start(t, "stats-process", "-f", conf)
	waitUntil(t, 30*time.Second, "every snapshot delivered", func() bool {
		return len(snapshotsIn(t, in)) == 0 && len(snapshotsIn(t, store)) == len(snaps)
	})
	if code, body := httpGet(procAddr, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("stats-process /healthz: %d %q", code, body)
	}
	checkExposition(t, procAddr)

	var pulledBytes int64
	storeLines := 0
	for k, s := range snaps {
		lines := omStore(t, filepath.Join(store, s, "stats"), s)
		pulledBytes += haproxyBytes[k]
		for path, want := range map[string]float64{
			"lb.vm.statspipe.pull.snapshots_published":                  float64(k),
			"lb.vm.statspipe.pull.source.haproxy.bytes":                 float64(pulledBytes),
			"lb.vm.statspipe.pull.source.haproxy.failures":              0,
			"lb.vm.statspipe.process.snapshots_delivered":               float64(k),
			"lb.vm.statspipe.process.snapshots_processed":               float64(k),
			"lb.vm.statspipe.process.snapshots_quarantined":             0,
			"lb.vm.statspipe.process.dispatcher.local-store.lines":      float64(storeLines),
			"lb.vm.statspipe.process.dispatcher.local-store.errors":     0,
			"lb.vm.statspipe.process.queue_length":                      -1, // only present
			"lb.vm.statspipe.process.cpu_seconds":                       -1,
			"lb.vm.statspipe.pull.source.haproxy.duration_seconds":      -1,
			"lb.vm.statspipe.pull.oldest_snapshot_age_seconds":          -1,
			"lb.vm.statspipe.process.dispatcher.local-store.bytes":      -1,
			"lb.vm.statspipe.process.delay_seconds":                     -1,
			"lb.vm.statspipe.process.open_fds":                          -1,
			"lb.vm.statspipe.pull.rss_bytes":                            -1,
			"lb.vm.statspipe.pull.rounds_without_snapshot":              skippedBefore[s],
			"lb.vm.haproxy.frontend.fe_main.scur":                       -1,
			"lb.vm.statspipe.process.oldest_snapshot_age_seconds":       -1,
			"lb.vm.statspipe.process.dispatcher.local-store.reconnects": 0,
		} {
			got, ok := lines[path]
			switch {
			case !ok:
				t.Errorf("snapshot %s (#%d): no %s", s, k, path)
			case want >= 0 && got != want:
				t.Errorf("snapshot %s (#%d): %s = %v, want %v", s, k, path, got, want)
			}
		}
		storeLines += len(lines)
	}
	if v := metricValue(t, procAddr, "statspipe_process_snapshots_delivered_total"); v != float64(len(snaps)) {
		t.Errorf("delivered_total = %v, want %d", v, len(snaps))
	}
	if v := metricValue(t, procAddr, `statspipe_process_dispatcher_lines_total{dispatcher="local-store"}`); v != float64(storeLines) {
		t.Errorf("local-store lines_total = %v, want %d (the lines in the store)", v, storeLines)
	}

	// stats-process's reload keeps its counters too.
	proc.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 15*time.Second, "stats-process to reload", func() bool { return strings.Contains(proc.out.String(), `msg=reloaded`) })
	waitUntil(t, 15*time.Second, "/metrics after the reload", func() bool {
		code, _ := httpGet(procAddr, "/healthz", "")
		return code == 200
	})
	if v := metricValue(t, procAddr, "statspipe_process_snapshots_delivered_total"); v != float64(len(snaps)) {
		t.Errorf("after a reload: delivered_total = %v, want %d", v, len(snaps))
	}
	proc.stop(t)
}

// httpGet fetches path from addr (bounded), returning the status and up to 1 MiB of body; 0
// when the request failed.
func httpGet(addr, path, accept string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// metricValue reads one sample (name with labels, as written) from addr's /metrics.
func metricValue(t *testing.T, addr, sample string) float64 {
	t.Helper()
	code, body := httpGet(addr, "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", sample, body)
	return 0
}

// checkExposition lints addr's /metrics: the Prometheus text form with promtool check metrics
// (Debian's prometheus package; installed by scripts/install-deps when root), the OpenMetrics
// form with the Python client's strict OpenMetrics parser.
func checkExposition(t *testing.T, addr string) {
	t.Helper()
	code, text := httpGet(addr, "/metrics", "text/plain;version=0.0.4")
	if code != 200 {
		t.Fatalf("GET /metrics as text: %d", code)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil && os.Geteuid() == 0 {
		install := exec.Command("../scripts/install-deps", "prometheus")
		install.Stdout, install.Stderr = os.Stderr, os.Stderr
		if install.Run() == nil {
			promtool, err = exec.LookPath("promtool")
		}
	}
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus, not root): lint skipped")
	} else {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
		}
	}
	code, om := httpGet(addr, "/metrics", "application/openmetrics-text; version=1.0.0")
	if code != 200 || !strings.HasSuffix(om, "# EOF\n") {
		t.Fatalf("GET /metrics as OpenMetrics: %d\n%s", code, om)
	}
	py := "/usr/bin/python3"
	check := exec.Command(py, "-c", "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n"+
		"fams = list(p(sys.stdin.read()))\nprint(len(fams))")
	check.Stdin = strings.NewReader(om)
	var out bytes.Buffer
	check.Stdout, check.Stderr = &out, &out
	if err := check.Run(); err != nil {
		if strings.Contains(out.String(), "No module named") || os.IsNotExist(err) {
			t.Log("python3-prometheus-client not installed: OpenMetrics parse skipped")
			return
		}
		t.Errorf("OpenMetrics parser: %v\n%s\n%s", err, out.String(), om)
	}
}

// The self-metrics lines go through Graphite like any other: real HAProxy → stats-pull →
// stats-process → real carbon-cache and the local store. carbon stores the statspipe.pull and
// statspipe.process paths of the last snapshot, and once everything is delivered the Graphite
// dispatcher's line count equals the local store's, which equals the lines in the store (every
// line goes to both), with no dispatch error; /metrics passes promtool with both dispatchers.
func TestSelfMetricsThroughGraphite(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 1})
	carbon := testrig.StartCarbon(t)
	base := t.TempDir()
	in := filepath.Join(base, "incoming")
	store := filepath.Join(base, "store")
	procAddr := testrig.FreePort(t)
	conf := writeConfig(t, base, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+in+`
tmp-dst-dir = `+base+`/incoming.tmp
pull-interval = 1
pull-timeout = 0.5
self-metrics = true
[process]
src-dir = `+in+`
workers = 2
self-metrics = true
listen = `+procAddr+`
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = vm
namespace = lb
[local-store]
dir = `+store+`
`)
	os.MkdirAll(in, 0o755)
	pull := start(t, "stats-pull", "-f", conf)
	waitUntil(t, 20*time.Second, "2 snapshots", func() bool { return len(snapshotsIn(t, in)) >= 2 })
	pull.stop(t)
	snaps := snapshotsIn(t, in)
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })

	proc := start(t, "stats-process", "-f", conf)
	waitUntil(t, 60*time.Second, "every snapshot delivered", func() bool { return len(snapshotsIn(t, in)) == 0 })
	last := snaps[len(snaps)-1]
	ts, _ := strconv.ParseInt(last, 10, 64)
	if v, ok := carbon.WaitFor(t, "lb.vm.statspipe.pull.snapshots_published", ts, 30*time.Second); !ok || v != float64(len(snaps)-1) {
		t.Errorf("carbon: statspipe.pull.snapshots_published at %d = %v %v, want %d", ts, v, ok, len(snaps)-1)
	}
	if _, ok := carbon.WaitFor(t, "lb.vm.statspipe.process.dispatcher.graphite.lines", ts, 30*time.Second); !ok {
		t.Error("carbon: no statspipe.process.dispatcher.graphite.lines")
	}
	total := 0
	for _, s := range snaps {
		total += len(omStore(t, filepath.Join(store, s, "stats"), s))
	}
	graphiteLines := metricValue(t, procAddr, `statspipe_process_dispatcher_lines_total{dispatcher="graphite"}`)
	storeLines := metricValue(t, procAddr, `statspipe_process_dispatcher_lines_total{dispatcher="local-store"}`)
	if graphiteLines != float64(total) || storeLines != float64(total) {
		t.Errorf("lines: graphite %v, local-store %v, in the store %d", graphiteLines, storeLines, total)
	}
	if v := metricValue(t, procAddr, `statspipe_process_dispatcher_errors_total{dispatcher="graphite"}`); v != 0 {
		t.Errorf("graphite errors %v", v)
	}
	if v := metricValue(t, procAddr, "statspipe_process_snapshots_delivered_total"); v != float64(len(snaps)) {
		t.Errorf("delivered %v, want %d", v, len(snaps))
	}
	checkExposition(t, procAddr)
	proc.stop(t)
}
