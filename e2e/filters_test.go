package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// filtersCounters is what the test compares of `show stat`: "pxname/svname" → column → value,
// for the columns that move only with traffic, and the status.
func filtersCounters(t *testing.T, sock string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for key, row := range omShowStat(t, sock) {
		out[key] = map[string]string{"stot": row["stot"], "bin": row["bin"], "status": row["status"], "type": row["type"]}
	}
	return out
}

func filtersSameCounters(a, b []map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for k, row := range a[i] {
			for c, v := range row {
				if b[i][k][c] != v {
					return false
				}
			}
		}
	}
	return true
}

// TestFiltersRealHAProxy pulls two real HAProxy 2.6 processes with stats-pull --once and
// processes the snapshot twice with stats-process --once: without the cardinality controls,
// then with frontend-, backend-, server- and metric-exclude and skip-maint-servers
// (server-states and aggr-server-metrics on). be_app/app2 is set to MAINT on instance 1 only,
// be.dotted.name/web.1 on both. The dropped names are absent; TotalServers, the state counts,
// the server.* aggregates and app2's sums are those of the rows kept, computed from the raw
// `show stat` of the two processes; the other lines are as without filters.
func TestFiltersRealHAProxy(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	i1, i2 := h.Instances[0], h.Instances[1]
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for _, inst := range h.Instances {
		for n := range 12 {
			for _, fe := range []string{inst.Frontend, inst.DottedFrontend} {
				resp, err := client.Get(fmt.Sprintf("http://%s/?n=%d", fe, n))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	client.CloseIdleConnections()
	for _, c := range []struct {
		inst *testrig.HAProxyInstance
		cmd  string
	}{
		{i1, "set server be_app/app2 state maint"},
		{i1, "set server be.dotted.name/web.1 state maint"},
		{i2, "set server be.dotted.name/web.1 state maint"},
	} {
		if reply := strings.TrimSpace(omHAProxy(t, c.inst.Socket, c.cmd)); reply != "" {
			t.Fatalf("%q answered %q", c.cmd, reply)
		}
	}
	read := func() []map[string]map[string]string {
		return []map[string]map[string]string{filtersCounters(t, i1.Socket), filtersCounters(t, i2.Socket)}
	}
	// settled: app.dead DOWN, the forced states shown, the counters still (sessions closed)
	last := read()
	waitUntil(t, 10*time.Second, "checks and counters to settle", func() bool {
		now := read()
		ok := filtersSameCounters(last, now) && now[0]["be_app/app.dead"]["status"] == "DOWN" &&
			now[1]["be_app/app.dead"]["status"] == "DOWN" && now[0]["be_app/app2"]["status"] == "MAINT" &&
			now[1]["be_app/app2"]["status"] == "UP" && now[1]["be.dotted.name/web.1"]["status"] == "MAINT"
		last = now
		return ok
	})

	dir := t.TempDir()
	conf := func(name, extra string) string {
		sub := filepath.Join(dir, name)
		os.MkdirAll(filepath.Join(sub, "incoming"), 0o755)
		return writeConfig(t, sub, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+sub+`/incoming
tmp-dst-dir = `+sub+`/incoming.tmp
pull-timeout = 3
[process]
src-dir = `+sub+`/incoming
server-states = true
aggr-server-metrics = true
`+extra+`
[graphite]
enabled = false
namespace = lb
hostname = h1
fqdn = false
[local-store]
dir = `+sub+`/store
`)
	}
	plain := conf("plain", "")
	filtered := conf("filtered", `
frontend-exclude = ^fe\.dotted
backend-exclude = ^be_only
server-exclude = ^be_app/app\.dead$$
metric-exclude = ^(bout|hrsp_5xx|ServersNolb)$$
skip-maint-servers = true
`)
	snap, _ := omPull(t, plain)
	raw := read()
	if !filtersSameCounters(last, raw) {
		t.Fatalf("counters moved during the pull:\n%v\n%v", last, raw)
	}
	epoch := filepath.Base(snap)
	filtersCopySnapshot(t, snap, filepath.Join(dir, "filtered", "incoming", epoch))
	off := omProcess(t, plain, filepath.Join(dir, "plain", "store"), epoch)
	on := omProcess(t, filtered, filepath.Join(dir, "filtered", "store"), epoch)

	const p = "lb.h1.haproxy."
	dropped := func(path string) bool {
		return strings.HasPrefix(path, p+"frontend.fe_dotted_name.") ||
			strings.HasPrefix(path, p+"backend.be_onlyodd.") || strings.HasPrefix(path, p+"server.s1.") ||
			strings.HasPrefix(path, p+"backend.be_app.server.app_dead.") || strings.HasPrefix(path, p+"server.app_dead.") ||
			strings.HasPrefix(path, p+"backend.be_dotted_name.server.web_1.") || strings.HasPrefix(path, p+"server.web_1.") ||
			strings.HasPrefix(path, p+"backend.be_dotted_name.TotalServers") || strings.HasPrefix(path, p+"backend.be_dotted_name.Servers") ||
			strings.HasSuffix(path, ".bout") || strings.HasSuffix(path, ".hrsp_5xx") || strings.HasSuffix(path, ".ServersNolb")
	}
	// recomputed: what the rows kept give
	recomputed := func(path string) bool {
		return strings.HasPrefix(path, p+"backend.be_app.server.app2.") || strings.HasPrefix(path, p+"server.app2.") ||
			strings.HasPrefix(path, p+"backend.be_app.TotalServers") || strings.HasPrefix(path, p+"backend.be_app.Servers") ||
			strings.HasPrefix(path, p+"haproxystats.")
	}
	for _, path := range []string{p + "frontend.fe_dotted_name.stot", p + "backend.be_onlyodd.stot", p + "server.s1.stot",
		p + "backend.be_app.server.app_dead.stot", p + "backend.be_dotted_name.server.web_1.stot", p + "server.web_1.stot",
		p + "backend.be_app.bout", p + "backend.be_dotted_name.TotalServers", p + "backend.be_app.ServersNolb"} {
		if _, ok := off[path]; !ok {
			t.Errorf("%s missing without filters: the test would prove nothing", path)
		}
	}
	for path, v := range on {
		if dropped(path) {
			t.Errorf("%s = %v written despite the filters", path, v)
		}
	}
	for path, v := range off {
		if dropped(path) || recomputed(path) {
			continue
		}
		if w, ok := on[path]; !ok || w != v {
			t.Errorf("%s = %v (%v) with filters, %v without", path, w, ok, v)
		}
	}

	num := func(inst int, key, col string) float64 {
		s := raw[inst][key][col]
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("instance %d %s %s = %q", inst+1, key, col, s)
		}
		return v
	}
	for path, want := range map[string]float64{
		// app2 is MAINT on instance 1: instance 2's row alone
		"backend.be_app.server.app2.stot": num(1, "be_app/app2", "stot"),
		"backend.be_app.server.app2.bin":  num(1, "be_app/app2", "bin"),
		"server.app2.stot":                num(1, "be_app/app2", "stot"),
		"server.app1.stot":                num(0, "be_app/app1", "stot") + num(1, "be_app/app1", "stot"),
		// HAProxy's own BACKEND row, not recomputed
		"backend.be_app.stot": num(0, "be_app/BACKEND", "stot") + num(1, "be_app/BACKEND", "stot"),
		// app1 and app2 (UP on instance 2); app.dead excluded
		"backend.be_app.TotalServers": 2, "backend.be_app.ServersUp": 2, "backend.be_app.ServersDown": 0,
		"backend.be_app.ServersMaint": 0, "backend.be_app.server.app2.status_code": 1,
		"frontend.fe_main.stot": num(0, "fe_main/FRONTEND", "stot") + num(1, "fe_main/FRONTEND", "stot"),
	} {
		if got, ok := on[p+path]; !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", path, got, ok, want)
		}
	}
	if num(0, "be_app/app2", "stot") == 0 || num(1, "be_app/app2", "stot") == 0 {
		t.Errorf("app2 had no traffic on both instances: the MAINT row would not be told apart")
	}
	if off[p+"backend.be_app.TotalServers"] != 3 || off[p+"backend.be_app.ServersMaint"] != 1 {
		t.Errorf("without filters be_app has TotalServers %v, ServersMaint %v; want 3 and 1",
			off[p+"backend.be_app.TotalServers"], off[p+"backend.be_app.ServersMaint"])
	}
	// the Metrics* counts are smaller, not absent
	for _, m := range []string{"MetricsFrontend", "MetricsBackend", "MetricsServer"} {
		if on[p+"haproxystats."+m] >= off[p+"haproxystats."+m] || on[p+"haproxystats."+m] < 1 {
			t.Errorf("%s = %v with filters, %v without", m, on[p+"haproxystats."+m], off[p+"haproxystats."+m])
		}
	}

	// --check names a bad pattern and what is wrong with it
	bad := conf("bad", "server-include = be_app/(app\nmetric-exclude = (?!x)\n")
	_, stderr, code := omRun(t, "stats-process", "-f", bad, "--check")
	if code != 1 || !strings.Contains(stderr, "option:'server-include'") || !strings.Contains(stderr, "missing closing )") ||
		!strings.Contains(stderr, "option:'metric-exclude'") || !strings.Contains(stderr, "invalid or unsupported Perl syntax") {
		t.Errorf("--check exited %d:\n%s", code, stderr)
	}
}

// filtersCopySnapshot copies the regular files of directory src into a new directory dst.
func filtersCopySnapshot(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
