package haproxy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/testrig"
)

// TestAllMetricsRealHAProxy: two real HAProxy 2.6 instances with different traffic (and
// listener rows); their `show stat` and `show info` replies make a snapshot, and every
// all-metrics line (sums, maxima and their sums, minima, means across the two) equals what
// the two raw replies give, while haproxystats' lines stay as they are.
func TestAllMetricsRealHAProxy(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2, SocketStats: true})
	h.Instances[0].SendTraffic(t, 5)
	h.Instances[1].SendTraffic(t, 15)
	dir := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var stats, infos []string
	for _, inst := range h.Instances {
		st, info := inst.Command(t, "show stat"), inst.Command(t, "show info")
		if !strings.HasPrefix(st, "# pxname") || !strings.Contains(info, "Uptime_sec: ") {
			t.Fatalf("haproxy %d: unexpected replies %.80q %.80q", inst.Index, st, info)
		}
		stats, infos = append(stats, st), append(infos, info)
		base := filepath.Join(dir, filepath.Base(inst.Socket))
		if err := os.WriteFile(base+"_stat", []byte(st), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+"_info", []byte(info), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	off := run(t, dir, 1700000000, Options{Prefix: prefixVM})
	all := run(t, dir, 1700000000, Options{Prefix: prefixVM, AllMetrics: true})
	if off.err != nil || all.err != nil {
		t.Fatal(off.err, all.err)
	}
	hs := map[string]string{}
	for _, l := range off.lines {
		hs[l.path] = l.value
	}
	want := amExpect(t, prefixVM, stats, infos, hs)
	checkAllMetrics(t, off.lines, all.lines, want)

	// by hand, from the replies: the instances differ, so sum, max and min differ too
	got := paths(all.lines)
	cell := func(reply, px, sv, col string) int {
		rows := strings.Split(reply, "\n")
		header := strings.Split(strings.TrimPrefix(rows[0], "# "), ",")
		i := -1
		for j, c := range header {
			if c == col {
				i = j
			}
		}
		for _, r := range rows[1:] {
			f := strings.Split(r, ",")
			if len(f) > i && f[0] == px && f[1] == sv {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("%s/%s %s: %q", px, sv, col, f[i])
				}
				return n
			}
		}
		t.Fatalf("no %s/%s in reply", px, sv)
		return 0
	}
	r1 := cell(stats[0], "fe_main", "FRONTEND", "req_tot")
	r2 := cell(stats[1], "fe_main", "FRONTEND", "req_tot")
	if r1 == r2 {
		t.Fatalf("instances have the same req_tot %d: the test cannot tell sum from max", r1)
	}
	checks := map[string]int{
		prefixVM + ".frontend.fe_main.h1_total_streams":                  cell(stats[0], "fe_main", "FRONTEND", "h1_total_streams") + cell(stats[1], "fe_main", "FRONTEND", "h1_total_streams"),
		prefixVM + ".frontend.fe_main.req_rate_max_max":                  max(cell(stats[0], "fe_main", "FRONTEND", "req_rate_max"), cell(stats[1], "fe_main", "FRONTEND", "req_rate_max")),
		prefixVM + ".frontend.fe_main.listener.sock-1.bin":               cell(stats[0], "fe_main", "sock-1", "bin") + cell(stats[1], "fe_main", "sock-1", "bin"),
		prefixVM + ".frontend.fe_dotted_name.listener.l_dotted.smax":     max(cell(stats[0], "fe.dotted.name", "l.dotted", "smax"), cell(stats[1], "fe.dotted.name", "l.dotted", "smax")),
		prefixVM + ".frontend.fe_dotted_name.listener.l_dotted.smax_sum": cell(stats[0], "fe.dotted.name", "l.dotted", "smax") + cell(stats[1], "fe.dotted.name", "l.dotted", "smax"),
		prefixVM + ".backend.be_app.server.app1.lastchg":                 min(cell(stats[0], "be_app", "app1", "lastchg"), cell(stats[1], "be_app", "app1", "lastchg")),
		prefixVM + ".backend.be_app.server.app1.check_duration":          max(cell(stats[0], "be_app", "app1", "check_duration"), cell(stats[1], "be_app", "app1", "check_duration")),
	}
	for path, w := range checks {
		if got[path] != strconv.Itoa(w) {
			t.Errorf("%s = %q, want %d", path, got[path], w)
		}
	}
	t.Logf("%d haproxystats lines, %d with all-metrics, %d all-metrics lines checked", len(off.lines), len(all.lines), len(want))
}
