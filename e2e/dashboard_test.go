package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// The Grafana dashboards of contrib/grafana, checked against a real graphite-web: real HAProxy
// (two processes, with traffic that includes 404s, 500s and slow answers, and a server put in
// maintenance for a while) and an OpenMetrics
// source (three Go-side instances whose counters, gauge and histogram move with time) →
// stats-pull → stats-process → real carbon-cache → graphite-web 1.1.8. Every template
// variable's find query must list the values the test picks, and every Graphite target of
// every panel, with those values substituted, must return at least one series, each with at
// least one non-null point.
//
// With -dashboard.screenshot=FILE the test also renders key targets as graphite-web PNGs on one
// page and takes a headless Chromium screenshot of it (scripts/dashboard-screenshot does this,
// with a longer -dashboard.duration, to refresh contrib/grafana/screenshot.png).

var (
	dashboardScreenshot = flag.String("dashboard.screenshot", "",
		"TestDashboardTargetsInGraphiteWeb: also write a Chromium screenshot of key targets to this PNG file")
	dashboardDuration = flag.Duration("dashboard.duration", 10*time.Second,
		"TestDashboardTargetsInGraphiteWeb: how long traffic and pulling run before the targets are evaluated")
)

// selfMetricsPending lists self-metric paths not written yet by the programs: a target that
// mentions one is skipped (its subtest says SKIP, with the reason) when graphite-web has no
// series for it. Empty: every target of the dashboard is required.
var selfMetricsPending = []string{}

// dashboardValues are the template variables' values used by the test, as Grafana would
// interpolate them into a Graphite target: a multi-value selection becomes a {a,b} glob, All
// becomes the variable's allValue (*). The frontends and backends are those that get traffic:
// a ratio over a backend without requests (be_noservers) has no point at all, correctly.
var dashboardValues = map[string]string{
	"namespace": "loadbalancers",
	"host":      "dash",
	"frontend":  "{fe_main,fe_dotted_name}",
	"backend":   "{be_app,be_dotted_name}",
	"server":    "*",
	"source":    "web",
	"metric":    "*",
}

// dashboardEvalLimit bounds the polling for targets that have no data yet.
const dashboardEvalLimit = 20 * time.Second

func TestDashboardTargetsInGraphiteWeb(t *testing.T) {
	files, err := filepath.Glob("../contrib/grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in contrib/grafana (%v)", err)
	}
	var dashboards []grafanaDashboard
	for _, f := range files {
		dashboards = append(dashboards, readDashboard(t, f))
	}

	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	carbon := testrig.StartCarbon(t)
	gweb := testrig.StartGraphiteWeb(t, carbon)
	om := startMovingOpenMetrics(t, 3)

	base := t.TempDir()
	conf := pipelineConfig(t, base, h.SocketDir, 2, `
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
namespace = `+dashboardValues["namespace"]+`
hostname = `+dashboardValues["host"]+`
fqdn = false
[source.web]
type = openmetrics
urls = `+strings.Join(om, "\n       ")+`
aggregate.queue_depth = sum avg min max count
`)
	// statspipe's own row: self-metrics on in both programs.
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.NewReplacer("[pull]\n", "[pull]\nself-metrics = true\n", "[process]\n", "[process]\nself-metrics = true\n").Replace(string(text)))
	if err := os.WriteFile(conf, text, 0o644); err != nil {
		t.Fatal(err)
	}
	waitServerDown(t, h, "be_app", "app.dead")
	started := time.Now()
	from := strconv.FormatInt(started.Unix()-1, 10)
	stopTraffic := sendMovingTraffic(t, h)
	pull := start(t, "stats-pull", "-f", conf)
	proc := start(t, "stats-process", "-f", conf)

	// Let traffic and pulling run for the data window (rates need at least two points). In its
	// middle third, app2 is in maintenance on every instance, so the server panels move.
	window := *dashboardDuration
	steps := []struct {
		at      time.Duration
		command string
	}{
		{window * 4 / 10, "disable server be_app/app2"},
		{window * 7 / 10, "enable server be_app/app2"},
		{window, ""},
	}
	for _, step := range steps {
		timer := time.NewTimer(time.Until(started.Add(step.at)))
		select {
		case <-timer.C:
		case <-pull.done:
			t.Fatalf("stats-pull exited:\n%s", pull.out.String())
		case <-proc.done:
			t.Fatalf("stats-process exited:\n%s", proc.out.String())
		}
		if step.command != "" {
			for _, inst := range h.Instances {
				if reply := strings.TrimSpace(inst.Command(t, step.command)); reply != "" {
					t.Fatalf("haproxy %d: %s: %q", inst.Index, step.command, reply)
				}
			}
		}
	}

	for _, d := range dashboards {
		checkVariables(t, gweb, d)
		evaluateTargets(t, gweb, d, from)
	}
	if *dashboardScreenshot != "" {
		screenshotDashboard(t, gweb, dashboards[0], from, *dashboardScreenshot)
	}
	stopTraffic()
	pull.stop(t)
	proc.stop(t)
	t.Logf("data window %v, whole test %v", *dashboardDuration, time.Since(started).Round(100*time.Millisecond))
}

// grafanaDashboard is the part of a Grafana dashboard JSON model the test reads.
type grafanaDashboard struct {
	file          string
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID      int            `json:"id"`
	Type    string         `json:"type"`
	Title   string         `json:"title"`
	Panels  []grafanaPanel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID  string `json:"refId"`
		Target string `json:"target"`
		Hide   bool   `json:"hide"`
	} `json:"targets"`
}

type grafanaVariable struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Query    json.RawMessage `json:"query"` // a string, or {"queryType": "Default", "target": …}
	Regex    string          `json:"regex"`
	AllValue string          `json:"allValue"`
}

// target is the Graphite find query of a query variable, in either form Grafana stores.
func (v grafanaVariable) target() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Target string `json:"target"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Target
}

// allPanels flattens rows (collapsed ones carry their panels inside).
func (d grafanaDashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func readDashboard(t *testing.T, file string) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	d.file = filepath.Base(file)
	if d.SchemaVersion < 36 {
		t.Errorf("%s: schemaVersion %d, want a current model (≥ 36)", d.file, d.SchemaVersion)
	}
	var haveDatasource bool
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			haveDatasource = true
		case "query":
			if _, ok := dashboardValues[v.Name]; !ok {
				t.Errorf("%s: variable %s has no test value in dashboardValues", d.file, v.Name)
			}
		}
	}
	if !haveDatasource {
		t.Errorf("%s: no datasource variable: the Graphite datasource must be selectable", d.file)
	}
	return d
}

var grafanaVarRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute interpolates the test's variable values into a target as Grafana would; an
// unknown variable is an error.
func substitute(target string) (string, error) {
	var missing []string
	out := grafanaVarRef.ReplaceAllStringFunc(target, func(ref string) string {
		m := grafanaVarRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, ok := dashboardValues[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return v
	})
	if missing != nil {
		return "", fmt.Errorf("unknown variables %v in %q", missing, target)
	}
	return out, nil
}

// excludedByRegex reads a variable's regex. The dashboards use only the form
// /^(?!a$|b$).+/ (everything but a and b), a JavaScript look-ahead Go's RE2 cannot compile,
// so that form is recognised here; any other non-empty regex fails the test.
func excludedByRegex(t *testing.T, regex string) []string {
	t.Helper()
	if regex == "" {
		return nil
	}
	m := regexp.MustCompile(`^/\^\(\?!((?:[\w-]+\$\|)*[\w-]+\$)\)\.\+/$`).FindStringSubmatch(regex)
	if m == nil {
		t.Fatalf("variable regex %q: the test understands only /^(?!a$|b$).+/; extend excludedByRegex", regex)
	}
	var names []string
	for _, alt := range strings.Split(m[1], "|") {
		names = append(names, strings.TrimSuffix(alt, "$"))
	}
	return names
}

// checkVariables runs every query variable's find query (with the values of the variables
// before it) and wants it to list the value the test uses.
func checkVariables(t *testing.T, g *testrig.GraphiteWeb, d grafanaDashboard) {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := substitute(v.target())
		if err != nil {
			t.Errorf("%s: variable %s: %v", d.file, v.Name, err)
			continue
		}
		found, err := g.Find(q)
		if err != nil {
			t.Errorf("%s: variable %s: %v", d.file, v.Name, err)
			continue
		}
		excluded := excludedByRegex(t, v.Regex)
		var names []string
		for _, p := range found {
			name := p[strings.LastIndex(p, ".")+1:]
			if !slices.Contains(excluded, name) {
				names = append(names, name)
			}
		}
		want := dashboardValues[v.Name]
		var wanted []string
		switch {
		case want == "*" || want == v.AllValue:
			if len(names) == 0 {
				t.Errorf("%s: variable %s: find %q lists nothing", d.file, v.Name, q)
			}
		case strings.HasPrefix(want, "{"):
			wanted = strings.Split(strings.Trim(want, "{}"), ",")
		default:
			wanted = []string{want}
		}
		for _, w := range wanted {
			if !slices.Contains(names, w) {
				t.Errorf("%s: variable %s: find %q lists %v (regex %q), not %s", d.file, v.Name, q, names, v.Regex, w)
			}
		}
		t.Logf("%s: variable %s: find %s → %v", d.file, v.Name, q, names)
	}
}

// dashboardTarget is one Graphite target of a panel, substituted.
type dashboardTarget struct {
	panel, refID, raw, graphite string
	pending                     string // the selfMetricsPending entry it mentions, if any
}

func (x dashboardTarget) name() string { return x.panel + "/" + x.refID }

func collectTargets(t *testing.T, d grafanaDashboard) []dashboardTarget {
	t.Helper()
	var out []dashboardTarget
	for _, p := range d.allPanels() {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no target", d.file, p.Title)
		}
		for _, x := range p.Targets {
			if x.Hide {
				continue
			}
			if x.Target == "" {
				t.Errorf("%s: panel %q %s: no Graphite target", d.file, p.Title, x.RefID)
				continue
			}
			g, err := substitute(x.Target)
			if err != nil {
				t.Errorf("%s: panel %q %s: %v", d.file, p.Title, x.RefID, err)
				continue
			}
			dt := dashboardTarget{panel: fmt.Sprintf("%d %s", p.ID, p.Title), refID: x.RefID, raw: x.Target, graphite: g}
			for _, s := range selfMetricsPending {
				if strings.Contains(g, "."+s) {
					dt.pending = s
				}
			}
			out = append(out, dt)
		}
	}
	return out
}

// evaluateTargets renders every target over [from, now] until each returns series that all
// have a non-null point, polling for up to dashboardEvalLimit (a rate needs two points, and a
// series appears in find once its whisper file exists), then reports one subtest per target.
func evaluateTargets(t *testing.T, g *testrig.GraphiteWeb, d grafanaDashboard, from string) {
	t.Helper()
	targets := collectTargets(t, d)
	type result struct {
		series []testrig.Series
		err    error
		ok     bool
	}
	results := make([]result, len(targets))
	deadline := time.Now().Add(dashboardEvalLimit)
	for {
		missing := 0
		for i, x := range targets {
			if results[i].ok {
				continue
			}
			series, err := g.Render(x.graphite, from, "now")
			results[i] = result{series: series, err: err, ok: err == nil && allHavePoints(series)}
			if !results[i].ok && x.pending == "" {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s: %d targets in %d panels", d.file, len(targets), len(d.allPanels()))
	for i, x := range targets {
		r := results[i]
		t.Run(d.file+"/"+x.name(), func(t *testing.T) {
			if r.err != nil {
				t.Fatalf("graphite-web rejected %s: %v\n%s", x.graphite, r.err, g.Output())
			}
			var summary []string
			for _, s := range r.series {
				summary = append(summary, fmt.Sprintf("%s (%d points)", s.Target, len(s.Values())))
			}
			switch {
			case r.ok && x.pending != "":
				t.Logf("self-metric %s now has data: remove it from selfMetricsPending. %s → %v", x.pending, x.graphite, summary)
			case r.ok:
				t.Logf("%s → %v", x.graphite, summary)
			case x.pending != "":
				t.Skipf("pending self-metrics: no series for %s yet (%s); the target stays in the dashboard, "+
					"and is required once selfMetricsPending no longer names it", x.pending, x.graphite)
			case len(r.series) == 0:
				t.Errorf("%s: no series at all after %v", x.graphite, dashboardEvalLimit)
			default:
				t.Errorf("%s: a series without any non-null point after %v: %v", x.graphite, dashboardEvalLimit, summary)
			}
		})
	}
}

func allHavePoints(series []testrig.Series) bool {
	if len(series) == 0 {
		return false
	}
	for _, s := range series {
		if len(s.Values()) == 0 {
			return false
		}
	}
	return true
}

// startMovingOpenMetrics serves n OpenMetrics instances (text format 0.0.4) on loopback whose
// values are functions of time: counters grow at a rate that swings, a gauge oscillates and a
// histogram's distribution widens and narrows, differently per instance. It returns
// "name=URL" entries for a source's urls option.
func startMovingOpenMetrics(t *testing.T, n int) []string {
	t.Helper()
	t0 := time.Now()
	var urls []string
	for i := range n {
		phase := float64(i) * 2 * math.Pi / float64(n)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// As if the instances had been running for a while: the histogram has counts
			// from the first scrape on.
			s := 100 + time.Since(t0).Seconds()
			const period = 40.0 // seconds
			wave := func(s float64) float64 { return 1.2 + math.Sin(2*math.Pi*s/period+phase) }
			// The integral of base × wave from 0 to s: a counter whose rate follows the wave.
			count := func(base float64) int64 {
				k := period / (2 * math.Pi)
				return int64(base * (1.2*s - k*math.Cos(2*math.Pi*s/period+phase) + k*math.Cos(phase)))
			}
			ok, failed := count(40+10*float64(i)), count(2)
			total := ok + failed
			// The latency distribution moves in step on every instance (the merged one
			// would be flat otherwise).
			mean := 0.05 * (1.2 + math.Sin(2*math.Pi*s/period)) // seconds
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprintf(w, "# TYPE jobs_total counter\njobs_total %d\n", count(5))
			fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n", ok, failed)
			fmt.Fprintf(w, "# TYPE queue_depth gauge\nqueue_depth %.3f\n", 5*float64(i+1)*wave(s))
			fmt.Fprintf(w, "# TYPE request_seconds histogram\n")
			for _, le := range []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1} {
				fmt.Fprintf(w, "request_seconds_bucket{le=\"%g\"} %d\n", le, int64(float64(total)*(1-math.Exp(-le/mean))))
			}
			fmt.Fprintf(w, "request_seconds_bucket{le=\"+Inf\"} %d\nrequest_seconds_sum %.3f\nrequest_seconds_count %d\n",
				total, float64(total)*mean, total)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, fmt.Sprintf("app%d=%s/metrics", i+1, srv.URL))
	}
	return urls
}

// waitServerDown polls every instance's show stat until server sv of backend be is DOWN: a
// server with checks starts UP, and a request balanced to the closed port before its first
// check fails would be a 503 the traffic does not expect.
func waitServerDown(t *testing.T, h *testrig.HAProxy, be, sv string) {
	t.Helper()
	for _, inst := range h.Instances {
		waitUntil(t, 10*time.Second, fmt.Sprintf("%s/%s DOWN in haproxy %d", be, sv, inst.Index), func() bool {
			r := csv.NewReader(strings.NewReader(strings.TrimPrefix(inst.Command(t, "show stat"), "# ")))
			r.FieldsPerRecord = -1
			rows, err := r.ReadAll()
			if err != nil || len(rows) == 0 {
				return false
			}
			status := slices.Index(rows[0], "status")
			for _, row := range rows[1:] {
				if status >= 0 && len(row) > status && row[0] == be && row[1] == sv {
					return strings.HasPrefix(row[status], "DOWN")
				}
			}
			return false
		})
	}
}

// sendMovingTraffic sends requests through both frontends of every HAProxy instance until the
// returned function is called (which reports any failure): the request rate swings over a
// 60 s period, about one request in ten is a 500 and one in seven a 404, and the backends
// answer after a delay that swings too, so rates, ratios and times all move.
func sendMovingTraffic(t *testing.T, h *testrig.HAProxy) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	t0 := time.Now()
	for _, inst := range h.Instances {
		for j, fe := range []string{inst.Frontend, inst.DottedFrontend} {
			wg.Add(1)
			go func(idx int, fe string) {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				defer client.CloseIdleConnections()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				req := 0
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					s := time.Since(t0).Seconds()
					wave := 1 + math.Sin(2*math.Pi*s/60+float64(idx))
					for range 2 + int(3*wave) {
						req++
						path, want := fmt.Sprintf("/?delay=%d", 2+int(6*wave)+req%5), http.StatusOK
						switch {
						case req%10 == 9:
							path, want = "/status/500", http.StatusInternalServerError
						case req%7 == 3:
							path, want = "/missing", http.StatusNotFound
						}
						resp, err := client.Get("http://" + fe + path)
						if err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != want {
								err = fmt.Errorf("status %d, want %d", resp.StatusCode, want)
							}
						}
						if err != nil && ctx.Err() == nil {
							mu.Lock()
							if len(failures) < 10 {
								failures = append(failures, fmt.Sprintf("GET %s%s: %v", fe, path, err))
							}
							mu.Unlock()
						}
					}
				}
			}(2*(inst.Index-1)+j, fe)
		}
	}
	return func() {
		cancel()
		wg.Wait()
		if len(failures) > 0 {
			t.Errorf("traffic: %d failures, first ones: %v", len(failures), failures)
		}
	}
}

// screenshotPanels are the targets shown in the screenshot: panel title and refIds.
var screenshotPanels = []string{
	"Requests /s by frontend",
	"HTTP responses /s by class",
	"5xx ratio (% of requests)",
	"Backend times (ms): response, connect, queue, total",
	"Servers up vs TotalServers",
	"Server requests /s (lbtot)",
	"CPU usage across processes (percentiles, %)",
	"Counter rates /s ($source *_total)",
	"Histogram quantiles ($source .p50 .p90 .p99)",
	"Queue length and oldest snapshot age",
	"stats-process: delivered and quarantined (per minute), delay (s)",
	"Dispatchers: lines /s and errors",
}

// screenshotDashboard renders screenshotPanels as graphite-web PNGs (each panel's targets in
// one graph, titled) on one HTML page and takes a headless Chromium screenshot of it.
func screenshotDashboard(t *testing.T, g *testrig.GraphiteWeb, d grafanaDashboard, from, out string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("-dashboard.screenshot needs Debian's chromium: %v", err)
	}
	const cols, w, hgt = 3, 420, 230
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:8px;background:#fff;font:13px sans-serif}
h1{font-size:15px;margin:2px 0 6px}
.grid{display:grid;grid-template-columns:repeat(3,` + strconv.Itoa(w) + `px);gap:6px}
img{display:block;border:1px solid #ccc}
</style></head><body>`)
	fmt.Fprintf(&b, "<h1>%s — graphite-web 1.1.8 rendering the dashboard's targets (namespace=%s host=%s source=%s), %s</h1><div class=grid>",
		html.EscapeString(d.Title), dashboardValues["namespace"], dashboardValues["host"], dashboardValues["source"],
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	shown := 0
	for _, want := range screenshotPanels {
		var p *grafanaPanel
		for _, q := range d.allPanels() {
			if q.Title == want {
				p = &q
				break
			}
		}
		if p == nil {
			t.Fatalf("screenshot panel %q is not in %s", want, d.file)
		}
		var targets []string
		for _, x := range p.Targets {
			s, err := substitute(x.Target)
			if err != nil {
				t.Fatal(err)
			}
			targets = append(targets, s)
		}
		title, _ := substitute(p.Title)
		src := g.RenderURL(targets, url.Values{
			"from": {from}, "until": {"now"}, "width": {strconv.Itoa(w)}, "height": {strconv.Itoa(hgt)},
			"title": {title}, "bgcolor": {"white"}, "fgcolor": {"black"}, "majorGridLineColor": {"#bbbbbb"},
			"minorGridLineColor": {"#eeeeee"}, "fontSize": {"9"}, "hideLegend": {"false"}, "lineWidth": {"1.5"},
		})
		fmt.Fprintf(&b, `<img src="%s" width=%d height=%d>`, html.EscapeString(src), w, hgt)
		shown++
	}
	b.WriteString("</div></body></html>\n")
	dir := t.TempDir()
	page := filepath.Join(dir, "dashboard.html")
	if err := os.WriteFile(page, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := (shown + cols - 1) / cols
	width, height := cols*(w+8)+16, rows*(hgt+8)+40
	abs, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir="+filepath.Join(dir, "profile"),
		fmt.Sprintf("--window-size=%d,%d", width, height), "--virtual-time-budget=10000",
		"--screenshot="+abs, "file://"+page)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, output)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, output)
	}
	t.Logf("screenshot %s: %d bytes, %dx%d, %d graphs", abs, fi.Size(), width, height, shown)
}
