package envoy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

// The in-process harness shared by every kind's tests (package sourcetest).
var (
	loadConfig = sourcetest.LoadConfig
	baseConf   = sourcetest.BaseConf
	pullOnce   = sourcetest.PullOnce
)

// processPart runs this kind's Format on a snapshot's source directory and returns its lines.
func processPart(t testing.TB, cfg *config.Config, dir string) (string, error) {
	t.Helper()
	return sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, dir)
}

// admin is a fake Envoy admin endpoint: it answers /stats/prometheus with prom and /stats
// with text, and records the request URIs.
type admin struct {
	mu   sync.Mutex
	uris []string
	url  string
}

func serveAdmin(t *testing.T, prom, text string) *admin {
	t.Helper()
	a := &admin{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.uris = append(a.uris, r.URL.RequestURI())
		a.mu.Unlock()
		switch r.URL.Path {
		case PrometheusPath:
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write([]byte(prom))
		case TextPath:
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.Write([]byte(text))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	a.url = ts.URL
	return a
}

const promBody = `# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="svc.a"} %d
# TYPE envoy_cluster_membership_healthy gauge
envoy_cluster_membership_healthy{envoy_cluster_name="svc.a"} %d
# TYPE envoy_server_uptime gauge
envoy_server_uptime{} %d
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="svc.a",le="10"} %d
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="svc.a",le="100"} %d
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="svc.a",le="+Inf"} %d
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="svc.a"} 500
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="svc.a"} %d
`

func fill(format string, vals ...int) string {
	for _, v := range vals {
		format = strings.Replace(format, "%d", strconv.Itoa(v), 1)
	}
	return format
}

func TestPullAndProcessPrometheus(t *testing.T) {
	dir := t.TempDir()
	a1 := serveAdmin(t, fill(promBody, 10, 3, 100, 5, 8, 10, 10), "")
	a2 := serveAdmin(t, fill(promBody, 20, 3, 50, 0, 15, 20, 20), "")
	a3 := serveAdmin(t, fill(promBody, 30, 2, 70, 10, 10, 10, 10), "")
	conf := baseConf(dir) + "[source.mesh]\ntype = envoy\nurls = e1=" + a1.url + " e2=" + a2.url + "/ e3=" + a3.url +
		"\nusedonly = true\nfilter = ^(cluster|server)\\.\nper-instance-metrics = false\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	if len(a1.uris) != 1 || a1.uris[0] != "/stats/prometheus?usedonly&filter=%5E%28cluster%7Cserver%29%5C." {
		t.Fatalf("request %q", a1.uris)
	}
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), filepath.Join(snap, "mesh"))
	if err != nil {
		t.Fatal(err)
	}
	// buckets le10 15, le100 33, +Inf 40: p50 rank 20 in (10,100]: 10 + 90 × 5/18 = 35
	want := `loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_2xx 60.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.membership_healthy.min 2.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.membership_healthy.max 3.0 1700000000
loadbalancers.vm.mesh.server.uptime.min 50.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_time.p50 35.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_time.p90 100.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_time.p99 100.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_time_sum 1500.0 1700000000
loadbalancers.vm.mesh.cluster.svc_a.upstream_rq_time_count 40.0 1700000000
`
	if out != want {
		t.Fatalf("lines\n%s\nwant\n%s", out, want)
	}
	// An operator's rule wins over the defaults.
	out, err = processPart(t, loadConfig(t, conf+"aggregate.server.* = max\n", config.ProcessProgram), filepath.Join(snap, "mesh"))
	if err != nil || !strings.Contains(out, "loadbalancers.vm.mesh.server.uptime.max 100.0 1700000000\n") {
		t.Fatalf("operator rule: %v\n%s", err, out)
	}
}

const textBody = "cluster.outbound|80||a.b.svc.upstream_rq_2xx: %d\n" +
	"listener.10.0.0.1_80.downstream_cx_total: %d\n" +
	"server.uptime: %d\n" +
	"server.version_label: \"1.28.0\"\n" +
	"cluster.outbound|80||a.b.svc.upstream_rq_time: P0(nan,1) P50(nan,%d) P100(nan,90)\n" +
	"cluster.outbound|80||a.b.svc.upstream_cx_length_ms: No recorded values\n"

func TestPullAndProcessText(t *testing.T) {
	dir := t.TempDir()
	a1 := serveAdmin(t, "", fill(textBody, 1, 2, 30, 5))
	a2 := serveAdmin(t, "", fill(textBody, 10, 20, 40, 7))
	conf := baseConf(dir) + "[source.mesh]\ntype = envoy\nformat = text\nurls = e1=" + a1.url + " e2=" + a2.url + "\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	if a1.uris[0] != "/stats" {
		t.Fatalf("request %q", a1.uris)
	}
	part := filepath.Join(snap, "mesh")
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	want := `loadbalancers.vm.mesh.cluster.outbound_80__a_b_svc.upstream_rq_2xx 11.0 1700000000
loadbalancers.vm.mesh.listener.10_0_0_1_80.downstream_cx_total 22.0 1700000000
loadbalancers.vm.mesh.server.uptime.min 30.0 1700000000
`
	if out != want {
		t.Fatalf("lines\n%s\nwant\n%s", out, want)
	}
	// The histogram quantiles are written per instance only.
	out, err = processPart(t, loadConfig(t, conf+"per-instance-metrics = true\n", config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"loadbalancers.vm.mesh.instance.e1.cluster.outbound_80__a_b_svc.upstream_rq_time.cumulative.quantile.0_5 5.0 1700000000\n",
		"loadbalancers.vm.mesh.instance.e2.cluster.outbound_80__a_b_svc.upstream_rq_time.cumulative.quantile.1_0 90.0 1700000000\n",
		"loadbalancers.vm.mesh.instance.e2.server.uptime 40.0 1700000000\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	if strings.Contains(out, "mesh.cluster.outbound_80__a_b_svc.upstream_rq_time") || strings.Contains(out, "interval") {
		t.Errorf("a histogram quantile was aggregated, or a nan interval written:\n%s", out)
	}
}

// A body that does not parse, that was cut inside a line, or is not of the form asked for
// fails its instance at pull time.
func TestBrokenBodiesFailTheInstance(t *testing.T) {
	for _, c := range []struct{ name, format, prom, text, want string }{
		{"truncated prometheus", "prometheus", "envoy_server_uptime 1\nenvoy_server_live 1", "", "truncated"},
		{"garbage prometheus", "prometheus", "envoy_x{a=\"1} 2\n", "", "line 1"},
		{"truncated text", "text", "", "server.uptime: 1\nserver.li", "truncated"},
		{"garbage text", "text", "", "server.uptime 1\n", "line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			good := serveAdmin(t, "envoy_server_uptime 1\n", "server.uptime: 1\n")
			bad := serveAdmin(t, c.prom, c.text)
			conf := baseConf(dir) + "[source.mesh]\ntype = envoy\nformat = " + c.format + "\nallow-partial = true\nurls = ok=" + good.url + " bad=" + bad.url + "\n"
			snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
			if snap == "" {
				t.Fatalf("nothing published:\n%s", logs)
			}
			if _, err := os.Stat(filepath.Join(snap, "mesh", "ok.body")); err != nil {
				t.Fatal(err)
			}
			rec, err := spool.PartialRecord(snap)
			if err != nil || len(rec) != 1 || rec[0].Name != "mesh/bad" || !strings.Contains(rec[0].Err, c.want) {
				t.Fatalf("record %+v %v (want an error with %q)", rec, err, c.want)
			}
		})
	}
}

// A body spoiled in the spool: left out and reported; the others are written.
func TestSpoiledBodyIsLeftOutAndReported(t *testing.T) {
	dir := t.TempDir()
	a1 := serveAdmin(t, "envoy_server_live 1\n", "")
	a2 := serveAdmin(t, "envoy_server_live 1\n", "")
	conf := baseConf(dir) + "[source.mesh]\ntype = envoy\nurls = a=" + a1.url + " b=" + a2.url + "\n"
	snap, _ := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	part := filepath.Join(snap, "mesh")
	os.WriteFile(filepath.Join(part, "b.body"), []byte("envoy_server_live 1\ny{ 2\n"), 0o644)
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var rej dispatch.Rejected
	if !errors.As(err, &rej) || !strings.Contains(rej.Rejected(), "instance b:") || !strings.Contains(rej.Rejected(), "line 2") {
		t.Fatalf("error %v", err)
	}
	if out != "loadbalancers.vm.mesh.server.live 1.0 1700000000\nloadbalancers.vm.mesh.server.live.min 1.0 1700000000\n" {
		t.Fatalf("lines %q", out)
	}
	os.WriteFile(filepath.Join(part, "a.body"), []byte("}"), 0o644)
	_, err = processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var unusable process.Unusable
	if !errors.As(err, &unusable) {
		t.Fatalf("error %v, want Unusable", err)
	}
}

func TestAdminURL(t *testing.T) {
	for _, c := range []struct {
		in     string
		prom   bool
		used   bool
		filter string
		want   string
	}{
		{"http://10.0.0.7:9901", true, false, "", "http://10.0.0.7:9901/stats/prometheus"},
		{"http://10.0.0.7:9901/", false, false, "", "http://10.0.0.7:9901/stats"},
		{"http://h:9901", true, true, "cluster\\.a b", "http://h:9901/stats/prometheus?usedonly&filter=cluster%5C.a%20b"},
		{"http://h:9901/stats?filter=x", false, true, "y", "http://h:9901/stats?filter=x&usedonly"},
		{"http://h:9901/stats?format=prometheus&usedonly", true, true, "", "http://h:9901/stats?format=prometheus&usedonly"},
		{"https://h/envoy/stats/prometheus", true, false, "", "https://h/envoy/stats/prometheus"},
		{"http://h:9901/stats/prometheus", false, false, "", "error"},
		{"http://h:9901/stats", true, false, "", "error"},
		{"http://h:9901/stats?format=json", false, false, "", "error"},
	} {
		got, err := AdminURL(c.in, c.prom, c.used, c.filter)
		if err != nil {
			got = "error"
		}
		if got != c.want {
			t.Errorf("%s: %s (%v), want %s", c.in, got, err, c.want)
		}
		if err == nil {
			u, _ := url.Parse(got)
			if IsPrometheusURL(u) != c.prom {
				t.Errorf("%s: form not recognised", got)
			}
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []struct{ name, options, want string }{
		{"no urls", "", "option:'urls'"},
		{"bad format", "urls = http://127.0.0.1:1\nformat = json\n", "option:'format'"},
		{"form mismatch", "urls = http://127.0.0.1:1/stats\n", "option:'urls'"},
		{"bad usedonly", "urls = http://127.0.0.1:1\nusedonly = maybe\n", "option:'usedonly'"},
		{"bad function", "urls = http://127.0.0.1:1\naggregate = sum p100\n", "option:'aggregate'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.conf")
			os.WriteFile(path, []byte("[source.mesh]\ntype = envoy\n"+c.options), 0o644)
			l, err := config.Load(path, true, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Config(config.PullProgram)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, c.want)
			}
		})
	}
}

// sample.conf is valid for both programs.
func TestSampleConf(t *testing.T) {
	sample, err := os.ReadFile("sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, prog := range []config.Program{config.PullProgram, config.ProcessProgram} {
		cfg := loadConfig(t, baseConf(dir)+string(sample), prog)
		if len(cfg.Sources) != 1 || cfg.Sources[0].Kind != Kind {
			t.Fatalf("%v: sources %+v", prog, cfg.Sources)
		}
	}
}
