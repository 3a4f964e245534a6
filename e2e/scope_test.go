package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Weave Scope kind end to end: two plugins served by the test on UNIX sockets in Scope's
// layout, one reporting Process nodes for real processes of this host (two `sleep`, one
// `tail`) and a Host node, the other answering after 600 ms (Scope's budget is 500 ms) →
// stats-pull --once → stats-process --once → the local store. The expected lines are computed
// here from the report as the snapshot holds it (decoded with encoding/json, the process names
// read from /proc by the test), not by the kind's code.

// scopeProcess starts a process of this host that lives until the test ends, and returns its PID.
func scopeProcess(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// scopeServe serves h on the UNIX socket path until the test ends.
func scopeServe(t *testing.T, path string, h http.HandlerFunc) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// scopeReport is the test's decoding of a report.
type scopeReport map[string]json.RawMessage

type scopeTopology struct {
	Nodes map[string]struct {
		Metrics map[string]struct {
			Samples []struct {
				Date  string  `json:"date"`
				Value float64 `json:"value"`
			} `json:"samples"`
		} `json:"metrics"`
	} `json:"nodes"`
}

// scopeLatest is the value of the latest sample of each metric of each node of a topology.
func scopeLatest(t *testing.T, raw json.RawMessage) map[string]map[string]float64 {
	t.Helper()
	var top scopeTopology
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for id, n := range top.Nodes {
		out[id] = map[string]float64{}
		for m, ms := range n.Metrics {
			var best time.Time
			for i, s := range ms.Samples {
				d, err := time.Parse(time.RFC3339Nano, s.Date)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 || !d.Before(best) {
					best = d
					out[id][m] = s.Value
				}
			}
		}
	}
	return out
}

func TestScopePlugins(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{scopeProcess(t, "sleep", "300"), scopeProcess(t, "sleep", "301"), scopeProcess(t, "tail", "-f", "/dev/null")}
	// Wait (bounded) until each child's comm is its program's, not the test's (exec done).
	for _, pid := range pids {
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if c := strings.TrimSpace(string(b)); c == "sleep" || c == "tail" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d did not exec", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The report: per process an older and a newer sample (the newer, written first, must
	// win), dates with 9, 6 and no fractional digits, a `latest` string, min/max present or
	// not; and this host's Host node.
	var nodes []string
	for i, pid := range pids {
		cpu := []float64{1.5, 2.25, 4}[i]
		mem := []float64{100, 250, 1e3}[i]
		nodes = append(nodes, fmt.Sprintf(`%q:{"metrics":{
			"cpu":{"samples":[{"date":"2026-12-01T18:36:54.000000001Z","value":%v},{"date":"2026-12-01T18:36:53.849681086Z","value":99}],"min":0,"max":100},
			"mem":{"samples":[{"date":"2026-12-01T18:36:52Z","value":7},{"date":"2026-12-01T18:36:53.171424Z","value":%v}]}},
			"latest":{"name":{"timestamp":"2026-12-01T18:36:53Z","value":"not a number"}}}`, fmt.Sprintf("%s;%d", host, pid), cpu, mem))
	}
	report := `{"Process":{"nodes":{` + strings.Join(nodes, ",") + `},"metric_templates":{}},` +
		`"Host":{"nodes":{` + fmt.Sprintf("%q", host+";<host>") + `:{"metrics":{"load":{"samples":[{"date":"2026-12-01T18:36:53Z","value":0.5}]}}}}},` +
		`"Plugins":[{"id":"procstats","label":"Process stats","interfaces":["reporter"],"api_version":"1"}]}`

	root, err := os.MkdirTemp("", "sc") // sun_path holds 108 bytes: t.TempDir's names are long
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	scopeServe(t, filepath.Join(root, "procstats", "procstats.sock"), func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/report" || r.URL.Query().Get("api_version") != "1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(report)) // no Content-Type: sniffed as text/plain, like scope-iowait
	})
	scopeServe(t, filepath.Join(root, "slow", "slow.sock"), func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(600 * time.Millisecond):
			w.Write([]byte(strings.ReplaceAll(report, "procstats", "slow")))
		case <-r.Context().Done():
		}
	})

	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.scope]
type = scope
socket-dir = `+root+`
allow-partial = true
aggregate.*.cpu = sum avg max p50 stddev
per-instance-metrics = true
`)
	snap, log := omPull(t, conf)
	part := filepath.Join(snap, "scope")
	body, err := os.ReadFile(filepath.Join(part, "procstats.body"))
	if err != nil || string(body) != report {
		t.Fatalf("procstats.body is not the report as served (%v)\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(part, "slow.body")); !os.IsNotExist(err) {
		t.Fatalf("the late plugin left a body: %v", err)
	}
	partial, err := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
	if err != nil || !strings.HasPrefix(string(partial), "scope/slow\t") || strings.Count(string(partial), "\n") != 1 {
		t.Fatalf("statspipe-partial %q %v: want the late plugin only", partial, err)
	}
	var meta struct {
		ContentType string            `json:"content_type"`
		Extra       map[string]string `json:"extra"`
	}
	if data, err := os.ReadFile(filepath.Join(part, "procstats.meta.json")); err != nil || json.Unmarshal(data, &meta) != nil {
		t.Fatalf("procstats.meta.json: %v", err)
	}
	if !strings.HasPrefix(meta.ContentType, "text/plain") || meta.Extra["host"] != host {
		t.Fatalf("meta %+v", meta)
	}

	// The model: per process name, the values of its PIDs; per PID its own lines.
	var rep scopeReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	const prefix = omPrefix + ".scope"
	byGroup := map[string][]float64{} // "<comm>.<metric>" → values
	want := map[string]float64{}
	for id, metrics := range scopeLatest(t, rep["Process"]) {
		h, pid, _ := strings.Cut(id, ";")
		if h != host {
			t.Fatalf("node %s", id)
		}
		b, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		comm := strings.TrimSpace(string(b))
		if meta.Extra["pid:"+pid] != comm {
			t.Errorf("meta extra pid:%s = %q, want %q", pid, meta.Extra["pid:"+pid], comm)
		}
		for m, v := range metrics {
			key := omComponent(t, strings.ReplaceAll(comm, ".", "_")) + "." + m
			byGroup[key] = append(byGroup[key], v)
			want[prefix+".instance.procstats_"+pid+".procstats."+key] = v
		}
	}
	for key, values := range byGroup {
		funcs := []string{"sum"}
		if strings.HasSuffix(key, ".cpu") {
			funcs = []string{"sum", "avg", "max", "p50", "stddev"}
		}
		for _, fn := range funcs {
			v, ok := omFunc(fn, values)
			if !ok {
				continue
			}
			p := prefix + ".procstats." + key
			if fn != "sum" {
				p += "." + fn
			}
			want[p] = v
		}
	}
	for id, metrics := range scopeLatest(t, rep["Host"]) {
		for m, v := range metrics {
			want[prefix+".procstats.Host."+m] = v
			want[prefix+".instance.procstats_Host_"+omComponent(t, id)+".procstats.Host."+m] = v
		}
	}
	if len(byGroup) != 4 || len(byGroup["sleep.cpu"]) != 2 || len(byGroup["tail.mem"]) != 1 {
		t.Fatalf("the model's groups: %v", byGroup)
	}

	epoch := filepath.Base(snap)
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)
	for p, v := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing %s (want %v)", p, v)
		} else if math.Abs(g-v) > 1e-9*math.Max(1, math.Abs(v)) {
			t.Errorf("%s = %v, want %v", p, g, v)
		}
	}
	var extra []string
	for p := range got {
		if _, ok := want[p]; !ok && strings.HasPrefix(p, prefix+".") {
			extra = append(extra, p)
		}
	}
	slices.Sort(extra)
	if len(extra) > 0 {
		t.Errorf("lines the model does not have: %s", strings.Join(extra, ", "))
	}
	// The numbers, stated once more: sleep cpu 1.5 + 2.25, tail cpu 4.
	if got[prefix+".procstats.sleep.cpu"] != 3.75 || got[prefix+".procstats.tail.cpu"] != 4 ||
		got[prefix+".procstats.sleep.mem"] != 350 || got[prefix+".procstats.sleep.cpu.max"] != 2.25 {
		t.Errorf("sleep cpu %v, tail cpu %v, sleep mem %v", got[prefix+".procstats.sleep.cpu"], got[prefix+".procstats.tail.cpu"], got[prefix+".procstats.sleep.mem"])
	}
	t.Logf("%d lines under %s compared; pids %v", len(want), prefix, pids)
}
