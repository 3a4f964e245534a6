package e2e

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/central"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/testrig"
)

// The cross-host aggregation of the central tier (issue 12, part 2; its Kafka transport is
// not built yet): three simulated hosts, each a real HAProxy (two processes) pulled by a real
// stats-pull into its own spool and processed by a real stats-process with its own host name
// into a local store. The hosts' lines go through central.Aggregator; for every path, the
// cluster lines of the bucket equal the functions of the hosts' values (sums for counts,
// avg/max for times and percentiles). A late snapshot inside the
// lateness window is included; one after it is left out and counted.
func TestCentralSumsAcrossHosts(t *testing.T) {
	const bucket, lateness = 60, 120
	base := int64(1796000040) // a bucket start (a multiple of 60)
	hosts := []string{"lb1", "lb2", "lb3"}
	lines := map[string]string{} // host → its local-store lines
	for i, host := range hosts {
		snap, dir, conf := pullHAProxyHost(t, host, 20*(i+1))
		// The snapshot, renamed to a chosen second of the bucket (the spool's names are the
		// snapshots' timestamps): the hosts' pulls ran at different moments.
		ts := base + int64(10*i)
		if err := os.Rename(snap, filepath.Join(dir, "incoming", strconv.FormatInt(ts, 10))); err != nil {
			t.Fatal(err)
		}
		got := omProcess(t, conf, filepath.Join(dir, "store"), strconv.FormatInt(ts, 10))
		if len(got) < 50 {
			t.Fatalf("%s: only %d lines", host, len(got))
		}
		b, err := os.ReadFile(filepath.Join(dir, "store", strconv.FormatInt(ts, 10), "stats"))
		if err != nil {
			t.Fatal(err)
		}
		lines[host] = string(b)
	}

	agg, err := central.New(central.Options{Namespace: "lb", Cluster: "eu", Bucket: bucket, Lateness: lateness,
		Now: func() int64 { return base + 1000 }})
	if err != nil {
		t.Fatal(err)
	}
	for i, host := range hosts {
		if err := agg.Add(host, base+int64(10*i), []byte(lines[host])); err != nil {
			t.Fatal(err)
		}
	}
	// A fourth host's snapshot of the same bucket arrives late, but inside the window: the
	// newest snapshot seen is in the next bucket, not yet at bucket end + lateness.
	if err := agg.Add("lb4", base+5, []byte(strings.ReplaceAll(lines["lb1"], "lb.lb1.", "lb.lb4."))); err != nil {
		t.Fatal(err)
	}
	if err := agg.Add("lb1", base+bucket+10, []byte(lines["lb1"])); err != nil { // the next bucket
		t.Fatal(err)
	}
	var out strings.Builder
	flush := func(b *metric.Batch) error { out.Write(b.Data); metric.Recycle(b); return nil }
	if written, err := agg.Flush(flush, false); err != nil || len(written) != 0 {
		t.Fatalf("written before the window passed: %v %v", written, err)
	}
	// A snapshot at bucket end + lateness closes the bucket.
	if err := agg.Add("lb2", base+bucket+lateness, nil); err != nil {
		t.Fatal(err)
	}
	written, err := agg.Flush(flush, false)
	if err != nil || len(written) != 1 || written[0] != base {
		t.Fatalf("written %v %v", written, err)
	}
	// After the window: left out, counted.
	if err := agg.Add("lb5", base+30, []byte(strings.ReplaceAll(lines["lb1"], "lb.lb1.", "lb.lb5."))); !errors.Is(err, central.ErrLate) || agg.Late() != 1 {
		t.Fatalf("a snapshot after the window: %v, Late %d", err, agg.Late())
	}

	// The model: per path, the values of lb1, lb2, lb3 and lb4 (= lb1's). Every path has
	// cluster lines; each function line present equals that function of the hosts' values
	// (the functions are the central defaults: sums for counts, avg/max for times and
	// percentiles, which must not be summed).
	values := map[string][]float64{}
	for _, host := range append(hosts, "lb4") {
		src := host
		if host == "lb4" {
			src = "lb1"
		}
		for _, l := range strings.Split(strings.TrimSpace(lines[src]), "\n") {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			values["lb.eu."+strings.TrimPrefix(f[0], "lb."+src+".")] = append(values["lb.eu."+strings.TrimPrefix(f[0], "lb."+src+".")], v)
		}
	}
	checkClusterLines(t, values, clusterLines(t, out.String(), base))
}

// pullHAProxyHost starts a real HAProxy (two processes) for one simulated host, sends it
// traffic requests and pulls one snapshot with a real stats-pull. It returns the snapshot, the
// host's directory (incoming/, store/) and its configuration (namespace lb, hostname host,
// local store).
func pullHAProxyHost(t *testing.T, host string, traffic int) (snap, dir, conf string) {
	t.Helper()
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	h.SendTraffic(t, traffic)
	dir = t.TempDir()
	conf = writeConfig(t, dir, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+dir+`/incoming
tmp-dst-dir = `+dir+`/incoming.tmp
pull-timeout = 3
[process]
src-dir = `+dir+`/incoming
[graphite]
enabled = false
namespace = lb
hostname = `+host+`
fqdn = false
[local-store]
dir = `+dir+`/store
`)
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	snap, _ = omPull(t, conf)
	return snap, dir, conf
}

// clusterLines reads "path value ts" lines, each stamped ts, into path → value.
func clusterLines(t *testing.T, text string, ts int64) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != strconv.FormatInt(ts, 10) {
			t.Fatalf("line %q", l)
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		got[f[0]] = v
	}
	return got
}

// checkClusterLines compares the cluster lines got with the model: per cluster path, the
// hosts' values. Every path has cluster lines; each function line present equals that
// function of the hosts' values (the central defaults: sums for counts, avg/max for times and
// percentiles, which must not be summed).
func checkClusterLines(t *testing.T, values map[string][]float64, got map[string]float64) {
	t.Helper()
	for p, vs := range values {
		found := 0
		for _, fn := range []string{"sum", "avg", "max", "min"} {
			path := p
			if fn != "sum" {
				path += "." + fn
			}
			g, ok := got[path]
			if !ok {
				continue
			}
			found++
			if want, _ := omFunc(fn, vs); math.Abs(g-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Errorf("%s = %v, want %v (%s of %v)", path, g, want, fn, vs)
			}
		}
		if found == 0 {
			t.Errorf("no cluster line for %s", p)
		}
	}
	// Times are averaged, never summed.
	rt := "lb.eu.haproxy.backend.be_app.rtime"
	if _, summed := got[rt]; summed || got[rt+".max"] == 0 && got[rt+".avg"] != 0 {
		t.Errorf("%s summed (%v) or its avg/max missing (%v %v)", rt, got[rt], got[rt+".avg"], got[rt+".max"])
	}
	if _, ok := got[rt+".avg"]; !ok {
		t.Errorf("no %s.avg", rt)
	}
	// The numbers, once more: the requests of the hosts' frontends add up.
	fe := "lb.eu.haproxy.frontend.fe_main.req_tot"
	if sum, _ := omFunc("sum", values[fe]); got[fe] == 0 || got[fe] != sum {
		t.Errorf("%s = %v, want %v", fe, got[fe], sum)
	}
}
