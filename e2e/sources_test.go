package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/testrig"
)

// One round with every source kind at once — HAProxy's stats socket, an OpenMetrics source
// (a real node_exporter), Envoy and Mesos (fixture servers replaying real payloads) and a
// Weave Scope plugin on a UNIX socket — where one source fails (a Mesos agent that refuses
// connections): that source is left out and recorded, and every other source's data reaches
// the local store intact.
func TestAllSourceKindsInOneRound(t *testing.T) {
	nodes := testrig.StartNodeExporters(t, 1)
	hs := testrig.StartPromexHAProxy(t, 1)
	replay := func(file, contentType string) string {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Write(body)
		}))
		t.Cleanup(ts.Close)
		return ts.URL
	}
	envoy := replay("../internal/sources/envoy/testdata/netdata_envoy_stats_prometheus.txt", "text/plain; version=0.0.4")
	mesos := replay("../internal/sources/mesos/testdata/master_snapshot_escaped_slashes.json", "application/json")
	report, err := os.ReadFile("../internal/sources/scope/testdata/iowait_report.json")
	if err != nil {
		t.Fatal(err)
	}
	plugins, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(plugins) })
	scopeServe(t, filepath.Join(plugins, "iowait", "iowait.sock"), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(report)
	})

	for _, failing := range []bool{false, true} {
		name := "all answer"
		if failing {
			name = "a Mesos agent refuses"
		}
		t.Run(name, func(t *testing.T) {
			mesosURLs := "master=" + mesos
			if failing {
				mesosURLs += " agent=http://" + closedPort(t)
			}
			base := t.TempDir()
			conf := omConfig(t, base, "socket-dir = "+filepath.Dir(hs[0].StatsSocket), `
[source.node]
type = openmetrics
urls = `+nodes[0]+`
[source.envoy]
type = envoy
urls = sidecar=`+envoy+`
[source.mesos]
type = mesos
urls = `+mesosURLs+`
[source.plugins]
type = scope
socket-dir = `+plugins+`
host-id = vm
`)
			snap, log := omPull(t, conf)
			for _, dir := range []string{"node", "envoy", "plugins"} {
				if _, err := os.Stat(filepath.Join(snap, dir, "source.json")); err != nil {
					t.Errorf("source %s is not in the snapshot: %v\n%s", dir, err, log)
				}
			}
			_, mesosErr := os.Stat(filepath.Join(snap, "mesos"))
			record, recErr := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
			if failing {
				if !os.IsNotExist(mesosErr) {
					t.Errorf("the failing Mesos source is in the snapshot: %v", mesosErr)
				}
				if recErr != nil || !strings.HasPrefix(string(record), "mesos/agent\t") || strings.Count(string(record), "\n") != 1 {
					t.Errorf("statspipe-partial = %q (%v), want one line for mesos/agent", record, recErr)
				}
			} else {
				if mesosErr != nil {
					t.Errorf("Mesos is missing: %v", mesosErr)
				}
				if recErr == nil {
					t.Errorf("a complete round has a partial record: %q", record)
				}
			}
			got := omProcess(t, conf, filepath.Join(base, "store"), filepath.Base(snap))
			counts := map[string]int{}
			for path := range got {
				rest := strings.TrimPrefix(path, omPrefix+".")
				counts[strings.SplitN(rest, ".", 2)[0]]++
			}
			for source, least := range map[string]int{"haproxy": 50, "node": 100, "envoy": 100, "plugins": 1} {
				if counts[source] < least {
					t.Errorf("source %s wrote %d lines, want at least %d (counts %v)", source, counts[source], least, counts)
				}
			}
			if failing && counts["mesos"] != 0 {
				t.Errorf("the failing Mesos source wrote %d lines", counts["mesos"])
			}
			if !failing && counts["mesos"] < 50 {
				t.Errorf("Mesos wrote %d lines", counts["mesos"])
			}
			if v, ok := got[omPrefix+".node.node_memory_MemTotal_bytes"]; !ok || v <= 0 {
				t.Errorf("node_memory_MemTotal_bytes = %v, %v", v, ok)
			}
			t.Logf("lines per source: %v", counts)
		})
	}
}
