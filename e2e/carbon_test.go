package e2e

import (
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// Real HAProxy → stats-pull → stats-process → real carbon-cache: the values carbon stores
// equal the sums and means computed here from HAProxy's own CSV.
func TestHAProxyToCarbon(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	carbon := testrig.StartCarbon(t)
	h.SendTraffic(t, 20)

	base := t.TempDir()
	conf := pipelineConfig(t, base, h.SocketDir, 2, `
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = e2e.example.com
fqdn = false
`)
	settled := time.Now().Unix() + 1 // snapshots from here on see no more traffic
	pull := start(t, "stats-pull", "-f", conf)
	proc := start(t, "stats-process", "-f", conf)

	const prefix = "loadbalancers.e2e.haproxy."
	var ts int64
	waitUntil(t, 30*time.Second, "a snapshot taken after the traffic to reach carbon", func() bool {
		points := carbon.Fetch(t, prefix+"frontend.fe_main.req_tot", settled, time.Now().Unix()+1)
		for p := range points {
			if p > ts {
				ts = p
			}
		}
		return ts >= settled
	})
	pull.stop(t)
	proc.stop(t)

	// What haproxystats would compute from the CSV, recomputed here independently.
	type key struct{ px, sv string }
	sums := map[key]map[string]float64{}
	counts := map[key]float64{}
	for _, inst := range h.Instances {
		r := csv.NewReader(strings.NewReader(strings.TrimPrefix(inst.Command(t, "show stat"), "# ")))
		r.FieldsPerRecord = -1
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		header := rows[0]
		for _, row := range rows[1:] {
			k := key{row[0], row[1]}
			if sums[k] == nil {
				sums[k] = map[string]float64{}
			}
			counts[k]++
			for i, col := range header {
				if i < len(row) {
					v, _ := strconv.ParseFloat(row[i], 64)
					sums[k][col] += v
				}
			}
		}
	}
	maxconn := 0.0
	for _, inst := range h.Instances {
		for _, line := range strings.Split(inst.Command(t, "show info"), "\n") {
			if v, ok := strings.CutPrefix(line, "Maxconn: "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				maxconn += n
			}
		}
	}

	checks := []struct {
		path string
		want float64
	}{
		{"frontend.fe_main.req_tot", sums[key{"fe_main", "FRONTEND"}]["req_tot"]},
		{"frontend.fe_main.hrsp_2xx", sums[key{"fe_main", "FRONTEND"}]["hrsp_2xx"]},
		{"frontend.fe_main.hrsp_4xx", sums[key{"fe_main", "FRONTEND"}]["hrsp_4xx"]},
		{"frontend.fe_dotted_name.stot", sums[key{"fe.dotted.name", "FRONTEND"}]["stot"]},
		{"backend.be_app.lbtot", sums[key{"be_app", "BACKEND"}]["lbtot"]},
		{"backend.be_app.bout", sums[key{"be_app", "BACKEND"}]["bout"]},
		{"backend.be_app.act", sums[key{"be_app", "BACKEND"}]["act"] / counts[key{"be_app", "BACKEND"}]},
		{"backend.be_app.weight", sums[key{"be_app", "BACKEND"}]["weight"] / counts[key{"be_app", "BACKEND"}]},
		{"backend.be_app.server.app1.lbtot", sums[key{"be_app", "app1"}]["lbtot"]},
		{"backend.be_app.server.app2.hrsp_2xx", sums[key{"be_app", "app2"}]["hrsp_2xx"]},
		{"backend.be_dotted_name.server.web_1.lbtot", sums[key{"be.dotted.name", "web.1"}]["lbtot"]},
		{"daemon.Maxconn", maxconn},
	}
	if checks[0].want == 0 {
		t.Fatal("no traffic reached fe_main: the comparison would prove nothing")
	}
	for _, c := range checks {
		got, ok := carbon.WaitFor(t, prefix+c.path, ts, 10*time.Second)
		if !ok {
			t.Errorf("%s: no point at %d in carbon", c.path, ts)
			continue
		}
		t.Logf("%s = %v at %d (HAProxy CSV: %v)", c.path, got, ts, c.want)
		if got != c.want {
			t.Errorf("%s = %v in carbon, want %v from HAProxy's CSV", c.path, got, c.want)
		}
	}
	if _, ok := carbon.WaitFor(t, prefix+"backend.be_app.TotalServers", ts, 5*time.Second); !ok {
		t.Error("backend.be_app.TotalServers missing")
	}
}
