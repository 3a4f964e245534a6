package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Crafted bodies from loopback test servers, for what the real producers never send: empty
// label values, runes outside the path alphabet, duplicates, NaN and ±Inf, timestamps, bounds
// written two ways, and bodies that must fail their instance.

// omServe starts a loopback HTTP server answering every request with status, content type
// and body.
func omServe(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/metrics"
}

const omText = "text/plain; version=0.0.4; charset=utf-8"

// omSynOne and omSynTwo are the bodies of the two crafted instances.
const omSynOne = `# TYPE x_total counter
x_total{a="",b="1"} 2
# TYPE g gauge
g{path="/var/lib/é.x"} 4
g{path="/var/lib/é.x"} 9
# TYPE inf gauge
inf +Inf
g_nan NaN
allnan NaN
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="1"} 3
h_bucket{le="+Inf"} 4
h_sum 2.5
h_count 4
# TYPE ts gauge
ts 7 1700000000000
# TYPE lbl gauge
lbl{name="y",instance="x"} 1
`

const omSynTwo = `# TYPE x_total counter
x_total{b="1"} 3
# TYPE g gauge
g{path="/var/lib/é.x"} 6
# TYPE inf gauge
inf 5
g_nan 1
allnan NaN
# TYPE h histogram
h_bucket{le="+Inf"} 2
h_bucket{le="1.0"} 1
h_bucket{le="0.5"} 0
h_sum 1
h_count 2
# TYPE ts gauge
ts 8
# TYPE lbl gauge
lbl{name="y",instance="x"} 2
`

func TestOpenMetricsSyntheticEdgeCases(t *testing.T) {
	one := omServe(t, 200, omText, omSynOne)
	two := omServe(t, 200, omText, omSynTwo)
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.syn]
type = openmetrics
urls = one=`+one+` two=`+two+`
aggregate = sum max
`)
	snap, _ := omPull(t, conf)
	got := omProcess(t, conf, filepath.Join(base, "store"), filepath.Base(snap))
	p := omPrefix + ".syn."
	// h merged: le 0.5 → 1, le 1 → 4, +Inf → 6. p50: rank 3 falls in (0.5, 1] (counts 1 to 4):
	// 0.5 + 0.5 × (3 − 1)/(4 − 1) = 0.8333…; p90 (rank 5.4) and p99 (5.94) fall in +Inf: the
	// highest finite bound, 1.
	want := map[string]float64{
		p + "x_total.b.1":               5, // a="" is no label: one series across both
		p + "x_total.b.1.max":           3,
		p + "g.path._var_lib___x":       10, // first of the duplicates (4) + 6
		p + "g.path._var_lib___x.max":   6,
		p + "inf":                       5, // +Inf skipped
		p + "inf.max":                   5,
		p + "g_nan":                     1, // NaN skipped
		p + "g_nan.max":                 1,
		p + "h_count":                   6,
		p + "h_sum":                     3.5,
		p + "h.p50":                     0.5 + 0.5*2/3,
		p + "h.p90":                     1,
		p + "h.p99":                     1,
		p + "ts":                        15,
		p + "ts.max":                    8,
		p + "lbl.instance.x.name.y":     3, // labels named instance and name are plain labels here
		p + "lbl.instance.x.name.y.max": 2,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !omClose(g, w, 0) {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, p) {
			t.Errorf("unexpected line %s %v", k, v)
		}
	}
}

// Instances whose replies must not be used: a truncated OpenMetrics body (no # EOF), a 500,
// a body over max-body-size and a body that does not parse. Each fails on its own and is
// recorded; with allow-partial the good instance is delivered alone.
func TestOpenMetricsBrokenBodies(t *testing.T) {
	good := omServe(t, 200, omText, "# TYPE up gauge\nup 1\n")
	urls := map[string]string{
		"noeof":   omServe(t, 200, "application/openmetrics-text; version=1.0.0; charset=utf-8", "# TYPE up gauge\nup 1\n"),
		"e500":    omServe(t, 500, omText, "up 1\n"),
		"big":     omServe(t, 200, omText, strings.Repeat("# padding comment line\n", 400)+"up 1\n"),
		"garbage": omServe(t, 200, omText, "up{ 1\n"),
	}
	list := "good=" + good
	for name, u := range urls {
		list += " " + name + "=" + u
	}
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.brk]
type = openmetrics
urls = `+list+`
allow-partial = true
max-body-size = 4096
`)
	snap, log := omPull(t, conf)
	record, err := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range urls {
		if !strings.Contains(string(record), "brk/"+name+"\t") {
			t.Errorf("statspipe-partial does not record brk/%s:\n%s", name, record)
		}
		if !strings.Contains(log, "source=brk/"+name+" ") {
			t.Errorf("stats-pull log does not name brk/%s:\n%s", name, log)
		}
		if _, err := os.Stat(filepath.Join(snap, "brk", name+".body")); err == nil {
			t.Errorf("failed instance %s left its body in the snapshot", name)
		}
	}
	if n := strings.Count(string(record), "\n"); n != len(urls) {
		t.Errorf("statspipe-partial has %d lines, want %d:\n%s", n, len(urls), record)
	}
	got := omProcess(t, conf, filepath.Join(base, "store"), filepath.Base(snap))
	if len(got) != 1 || got[omPrefix+".brk.up"] != 1 {
		t.Errorf("lines %v, want only %s.brk.up 1", got, omPrefix)
	}
	if t.Failed() {
		t.Logf("statspipe-partial:\n%s", record)
	}
}

// Every processing option, recorded by stats-pull and used by a stats-process without
// [source.*]: the same output as with the pulling configuration. And max-series keeps the
// first series seen (instance one's first three), drops the rest and still delivers.
func TestOpenMetricsRecordedOptionsAndMaxSeries(t *testing.T) {
	one := omServe(t, 200, omText, omSynOne)
	two := omServe(t, 200, omText, omSynTwo)
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.syn]
type = openmetrics
urls = one=`+one+` two=`+two+`
aggregate = min
aggregate.x_* = count
histogram-quantiles = p75
histogram-buckets = true
graphite-tags = true
per-instance-metrics = true
`)
	snap, _ := omPull(t, conf)
	epoch := filepath.Base(snap)
	bare, bareStore := omProcessOnly(t, snap, "")
	small, smallStore := omProcessOnly(t, snap, `
[source.syn]
type = openmetrics
max-series = 3
`)
	unlimited, unlimitedStore := omProcessOnly(t, snap, `
[source.syn]
type = openmetrics
`)
	withFull := omProcess(t, conf, filepath.Join(base, "store"), epoch)
	withBare := omProcess(t, bare, bareStore, epoch)
	fullFile, _ := os.ReadFile(filepath.Join(base, "store", epoch, "stats"))
	bareFile, _ := os.ReadFile(filepath.Join(bareStore, epoch, "stats"))
	if string(fullFile) != string(bareFile) {
		t.Errorf("without [source.*]:\n%s\nwith the pulling configuration:\n%s", bareFile, fullFile)
	}
	p := omPrefix + ".syn."
	// h merged (see TestOpenMetricsSyntheticEdgeCases): p75, rank 4.5, falls in +Inf → 1.
	for k, w := range map[string]float64{
		p + "x_total.count;b=1":                    2,
		p + "g.min;path=/var/lib/é.x":              4,
		p + "h.p75":                                1,
		p + "h_bucket;le=0.5":                      1,
		p + "h_bucket;le=1.0":                      4, // le="1" and le="1.0": one bound
		p + "h_bucket;le=inf":                      6,
		p + "lbl.min;_instance=x;_name=y":          1, // Graphite's name tag, and ours
		p + "lbl;_instance=x;_name=y;instance=two": 2,
		p + "h_count":                              6,
		p + "g;instance=two;path=/var/lib/é.x":     6, // an instance's own value has no function
	} {
		if g, ok := withBare[k]; !ok || !omClose(g, w, 0) {
			t.Errorf("without [source.*]: %s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if t.Failed() {
		t.Logf("lines:\n%s", bareFile)
	}
	if len(withFull) != len(withBare) {
		t.Errorf("%d lines with the pulling configuration, %d without [source.*]", len(withFull), len(withBare))
	}

	out, log, code := omRun(t, "stats-process", "-f", small, "--once")
	if code != 0 {
		t.Fatalf("max-series 3: stats-process --once exited %d:\n%s%s", code, out, log)
	}
	gotSmall := omStore(t, filepath.Join(smallStore, epoch, "stats"), epoch)
	gotUnlimited := omProcess(t, unlimited, unlimitedStore, epoch)
	// Which series fill the last slots is the engine's business (a bucket needs two: its own
	// and its histogram's); what holds: at most 3 series, the first one seen among them, and
	// every kept series whole (the value it has without the limit).
	if len(gotSmall) == 0 || len(gotSmall) > 3 {
		t.Errorf("max-series 3: %d lines %v, want 1 to 3", len(gotSmall), gotSmall)
	}
	if _, ok := gotSmall[p+"x_total.b.1"]; !ok {
		t.Errorf("max-series 3: the first series seen, x_total{b=1}, was not kept: %v", gotSmall)
	}
	for k, v := range gotSmall {
		if w, ok := gotUnlimited[k]; !ok || w != v {
			t.Errorf("max-series 3: %s %v; without the limit %v (present %v)", k, v, w, ok)
		}
	}
	if !strings.Contains(log, `msg="series over max-series were left out"`) || !strings.Contains(log, "source=syn") {
		t.Errorf("max-series 3: the log does not say series were left out:\n%s%s", out, log)
	}
}
