package selfmetrics

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func testRegistry() (*Registry, *Pull) {
	r := New("pull")
	m := NewPull(r)
	return r, m
}

func TestExpositionAndLines(t *testing.T) {
	r, m := testRegistry()
	m.Source("apps", 1500*time.Millisecond, 1000, 0)
	m.Source("haproxy", 250*time.Millisecond, 20, 2)
	m.Source("apps", 500*time.Millisecond, 24, 1)
	m.Round(true, false, 0)
	m.Round(false, true, 3)
	m.Round(true, false, 0)
	got := string(AppendOpenMetrics(nil, r.Collect()))
	want := `# TYPE statspipe_pull_snapshots_published counter
# HELP statspipe_pull_snapshots_published snapshots published into dst-dir (before the one carrying this value)
statspipe_pull_snapshots_published_total 2
# TYPE statspipe_pull_rounds_without_snapshot counter
# HELP statspipe_pull_rounds_without_snapshot pull rounds that published nothing (every source failed, none found, name clash, spool error)
statspipe_pull_rounds_without_snapshot_total 1
# TYPE statspipe_pull_source_duration_seconds gauge
# HELP statspipe_pull_source_duration_seconds how long the source took in the last round it was pulled, in seconds
statspipe_pull_source_duration_seconds{source="apps"} 0.5
statspipe_pull_source_duration_seconds{source="haproxy"} 0.25
# TYPE statspipe_pull_source_bytes counter
# HELP statspipe_pull_source_bytes bytes the source wrote into snapshots
statspipe_pull_source_bytes_total{source="apps"} 1024
statspipe_pull_source_bytes_total{source="haproxy"} 20
# TYPE statspipe_pull_source_failures counter
# HELP statspipe_pull_source_failures instances of the source that failed a round (or listing them failed)
statspipe_pull_source_failures_total{source="apps"} 1
statspipe_pull_source_failures_total{source="haproxy"} 2
# EOF
`
	if got != want {
		t.Errorf("OpenMetrics:\n%s\nwant:\n%s", got, want)
	}
	body := string(r.AppendBody(nil))
	wantBody := `pull.snapshots_published 2.0
pull.rounds_without_snapshot 1.0
pull.source.apps.duration_seconds 0.5
pull.source.haproxy.duration_seconds 0.25
pull.source.apps.bytes 1024.0
pull.source.haproxy.bytes 20.0
pull.source.apps.failures 1.0
pull.source.haproxy.failures 2.0
`
	if body != wantBody {
		t.Errorf("body:\n%s\nwant:\n%s", body, wantBody)
	}
	if v, ok := r.Get("source.apps.bytes"); !ok || v != 1024 {
		t.Errorf("Get = %v %v", v, ok)
	}

	// The Prometheus text form parses with the reference parser, with the right types.
	text := AppendPrometheusText(nil, r.Collect())
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if f := fams["statspipe_pull_source_bytes_total"]; f == nil || f.GetType().String() != "COUNTER" || len(f.Metric) != 2 {
		t.Errorf("source bytes family: %v", f)
	}
	if f := fams["statspipe_pull_source_duration_seconds"]; f == nil || f.GetType().String() != "GAUGE" {
		t.Errorf("duration family: %v", f)
	}
	promtoolCheck(t, text)
}

// promtoolCheck lints text with promtool check metrics when it is installed.
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus): lint skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, text)
	}
}

func TestUpdatesAllocateNothingAndAreNilSafe(t *testing.T) {
	r := New("process")
	m := NewProcess(r)
	d := m.Dispatcher("graphite")
	s := r.Counter("x", "x")
	allocs := testing.AllocsPerRun(1000, func() {
		s.Inc()
		d.Delivered(10, 100)
		d.Error()
		d.Reconnect()
		d.Replayed(3)
		m.Processed()
		m.Delivered(1)
	})
	if allocs != 0 {
		t.Errorf("updates allocate %v times", allocs)
	}
	var nilS *Series
	var nilD *Dispatcher
	var nilP *Process
	var nilPull *Pull
	nilS.Inc()
	nilD.Delivered(1, 1)
	nilP.Delivered(1)
	nilP.Dispatcher("x").Error()
	nilPull.Round(true, false, 0)
	nilPull.Source("a", time.Second, 1, 1)
	if ok, _ := nilPull.Health(); !ok {
		t.Error("nil Pull unhealthy")
	}
	// Same names give the same series: a dispatcher rebuilt by a reload keeps counting.
	m.Dispatcher("graphite").Delivered(5, 50)
	if v, _ := r.Get("dispatcher.graphite.lines"); v != 1001*10+5 { // AllocsPerRun runs once more to warm up
		t.Errorf("lines = %v", v)
	}
}

func TestConcurrentAddsAndBound(t *testing.T) {
	r := New("pull")
	f := r.CounterVec("source", "bytes", "b")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				f.With("a").Add(2)
			}
		}()
	}
	wg.Wait()
	if v, _ := r.Get("source.a.bytes"); v != 16000 {
		t.Errorf("concurrent adds: %v", v)
	}
	for i := 0; i < MaxSeries+10; i++ {
		f.With(strings.Repeat("x", 1+i%7) + string(rune('a'+i%26)) + string(rune('A'+i/26%26)) + string(rune('0'+i/676)))
	}
	if n := len(r.Collect()); n != MaxSeries {
		t.Errorf("%d series, want the bound %d", n, MaxSeries)
	}
	if r.Dropped() == 0 {
		t.Error("no drop counted")
	}
}

func TestHealth(t *testing.T) {
	_, m := testRegistry()
	m.SetSchedule(10*time.Millisecond, 5*time.Millisecond)
	if ok, why := m.Health(); !ok {
		t.Fatalf("fresh: %s", why)
	}
	m.start.Store(time.Now().Add(-time.Second).UnixNano())
	if ok, why := m.Health(); ok || !strings.Contains(why, "no snapshot published") {
		t.Errorf("stale: %v %q", ok, why)
	}
	m.Suspended()
	if ok, why := m.Health(); !ok {
		t.Errorf("suspended on a full queue is healthy: %s", why)
	}
	m.Round(false, true, 4)
	if ok, why := m.Health(); ok || why != "every source failed in the last pull round (4 failed)" {
		t.Errorf("all failed: %v %q", ok, why)
	}
	m.Round(false, true, 0)
	if ok, why := m.Health(); ok || why != "the last pull round found no source to pull from (no socket in socket-dir?)" {
		t.Errorf("none found: %v %q", ok, why)
	}
	m.Round(true, false, 0)
	if ok, why := m.Health(); !ok {
		t.Errorf("published: %s", why)
	}

	p := NewProcess(New("process"))
	dead := func() bool { return false }
	if ok, why := p.Health(dead, nil); ok || !strings.Contains(why, "watcher") {
		t.Errorf("dead watcher: %v %q", ok, why)
	}
	old := StuckAfter
	defer func() { StuckAfter = old }()
	StuckAfter = 10 * time.Millisecond
	p.lastSettled.Store(time.Now().Add(-time.Second).UnixNano())
	queue := func() (int, time.Duration) { return 3, time.Second }
	if ok, why := p.Health(nil, queue); ok || !strings.Contains(why, "while 3 wait") {
		t.Errorf("stuck: %v %q", ok, why)
	}
	if ok, _ := p.Health(nil, func() (int, time.Duration) { return 0, 0 }); !ok {
		t.Error("empty queue unhealthy")
	}
}

func TestServer(t *testing.T) {
	r, m := testRegistry()
	r.AddProcessStats()
	m.Source("apps", time.Second, 7, 0)
	healthy := true
	var mu sync.Mutex
	s, err := Serve("127.0.0.1:0", r, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			return true, ""
		}
		return false, "every source failed"
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path, accept string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ct, body := get("/metrics", "")
	if code != 200 || ct != OpenMetricsType || !strings.HasSuffix(body, "# EOF\n") ||
		!strings.Contains(body, `statspipe_pull_source_bytes_total{source="apps"} 7`) ||
		!strings.Contains(body, "statspipe_pull_cpu_seconds_total ") || !strings.Contains(body, "statspipe_pull_open_fds ") {
		t.Errorf("/metrics: %d %q\n%s", code, ct, body)
	}
	code, ct, body = get("/metrics", "text/plain;version=0.0.4")
	if code != 200 || ct != PrometheusTextType || strings.Contains(body, "# EOF") {
		t.Errorf("/metrics as text: %d %q\n%s", code, ct, body)
	}
	promtoolCheck(t, []byte(body))
	if code, _, body := get("/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	mu.Lock()
	healthy = false
	mu.Unlock()
	if code, _, body := get("/healthz", ""); code != 503 || body != "every source failed\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	resp, err := c.Post("http://"+s.Addr()+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if v, _ := r.Get("open_fds"); v < 3 {
		t.Errorf("open_fds = %v", v)
	}
	if v, _ := r.Get("rss_bytes"); v < 1<<20 {
		t.Errorf("rss_bytes = %v", v)
	}
}
