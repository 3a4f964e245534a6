package testrig

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Accept header the Prometheus/OpenMetrics source sends: OpenMetrics preferred, text
// 0.0.4 as the fallback.
const promAccept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

// scrape GETs a metrics URL with the given Accept header (none when empty) and returns the
// Content-Type and the body. The default transport asks for gzip and unpacks it.
func scrape(t *testing.T, metricsURL, accept string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, metricsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, promMaxBody))
	if err != nil {
		t.Fatalf("GET %s: %v", metricsURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%.500s", metricsURL, resp.Status, body)
	}
	return resp.Header.Get("Content-Type"), string(body)
}

// labelValues returns the sorted distinct values of label in the samples of family prefix.
func labelValues(body, prefix, label string) []string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `[a-z_]*\{(?:[^}]*,)?` + label + `="([^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

func TestStartNodeExporters(t *testing.T) {
	urls := StartNodeExporters(t, 3)
	if len(urls) != 3 {
		t.Fatalf("%d URLs", len(urls))
	}
	hosts := map[string]bool{}
	for _, u := range urls {
		parsed, err := url.Parse(u)
		if err != nil || parsed.Hostname() != "127.0.0.1" || parsed.Path != "/metrics" {
			t.Fatalf("URL %q (%v)", u, err)
		}
		hosts[parsed.Host] = true
	}
	if len(hosts) != 3 {
		t.Fatalf("URLs not on distinct ports: %v", urls)
	}
	want := slices.Sorted(slices.Values(NodeExporterCollectors))
	for _, u := range urls {
		for _, accept := range []string{"", promAccept} {
			ctype, body := scrape(t, u, accept)
			// node_exporter 1.5 has no OpenMetrics: it answers 0.0.4 whatever is asked.
			if !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
				t.Errorf("%s (Accept %q): Content-Type %q", u, accept, ctype)
			}
			if !strings.Contains(body, "\n# TYPE node_load1 gauge\nnode_load1 ") {
				t.Errorf("%s: no node_load1 gauge in %d bytes", u, len(body))
			}
			if strings.Contains(body, "# EOF") {
				t.Errorf("%s: an OpenMetrics # EOF in a 0.0.4 body", u)
			}
			if got := labelValues(body, "node_scrape_collector_success", "collector"); !slices.Equal(got, want) {
				t.Errorf("%s: collectors %v, want %v", u, got, want)
			}
		}
	}
}

func TestStartPromexHAProxy(t *testing.T) {
	insts := StartPromexHAProxy(t, 2)
	if len(insts) != 2 || insts[0].MetricsURL == insts[1].MetricsURL || insts[0].StatsSocket == insts[1].StatsSocket {
		t.Fatalf("instances %+v", insts)
	}
	wantFrontends := slices.Sorted(slices.Values(PromexFrontends))
	for _, inst := range insts {
		if len(inst.StatsSocket) >= 108 {
			t.Errorf("socket path of %d bytes: %s", len(inst.StatsSocket), inst.StatsSocket)
		}
		ctype, body := scrape(t, inst.MetricsURL, promAccept)
		// PROMEX writes "content-type: text/plain; version=0.0.4", without a charset.
		if !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
			t.Errorf("%s: Content-Type %q", inst.MetricsURL, ctype)
		}
		for _, family := range []string{"haproxy_process_", "haproxy_frontend_", "haproxy_backend_", "haproxy_server_"} {
			if !strings.Contains(body, "\n# TYPE "+family) {
				t.Errorf("%s: no %s* family", inst.MetricsURL, family)
			}
		}
		if strings.Contains(body, "# EOF") {
			t.Errorf("%s: an OpenMetrics # EOF in a 0.0.4 body", inst.MetricsURL)
		}
		promFrontends := labelValues(body, "haproxy_frontend_", "proxy")
		if !slices.Equal(promFrontends, wantFrontends) {
			t.Errorf("%s: PROMEX frontends %v, want %v", inst.MetricsURL, promFrontends, wantFrontends)
		}
		if got := labelValues(body, "haproxy_server_", "server"); !slices.Equal(got, []string{"app.dead", "app1"}) {
			t.Errorf("%s: PROMEX servers %v", inst.MetricsURL, got)
		}

		stat, err := haproxyCommand(inst.StatsSocket, "show stat")
		if err != nil {
			t.Fatal(err)
		}
		rows := statRows(t, stat)
		var statFrontends []string
		for key := range rows {
			if proxy, ok := strings.CutSuffix(key, "/FRONTEND"); ok {
				statFrontends = append(statFrontends, proxy)
			}
		}
		slices.Sort(statFrontends)
		if !slices.Equal(statFrontends, promFrontends) {
			t.Errorf("%s: show stat frontends %v, PROMEX %v", inst.StatsSocket, statFrontends, promFrontends)
		}
		for _, key := range []string{"be_app/app1", "be_app/app.dead", "be_app/BACKEND"} {
			if rows[key] == nil {
				t.Errorf("%s: no show stat row %s", inst.StatsSocket, key)
			}
		}
	}
}

func TestStartPythonOpenMetricsApp(t *testing.T) {
	u := StartPythonOpenMetricsApp(t)

	ctype, body := scrape(t, u, promAccept)
	// prometheus_client 0.16 labels its OpenMetrics version=0.0.1, not 1.0.0.
	if !strings.HasPrefix(ctype, "application/openmetrics-text") {
		t.Errorf("OpenMetrics asked: Content-Type %q", ctype)
	}
	if !strings.HasSuffix(body, "\n# EOF\n") {
		t.Errorf("OpenMetrics body does not end in # EOF: %.200q", body[max(0, len(body)-200):])
	}
	for _, want := range []string{
		"\n# TYPE app_version info\n", "\n# TYPE app_mode stateset\n",
		"\n# UNIT app_room_temp_celsius celsius\n", "\napp_jobs_total{", "\napp_jobs_created{",
		`result="bad \"x\"\nline"`, " NaN\n",
	} {
		if !strings.Contains("\n"+body, want) {
			t.Errorf("OpenMetrics body has no %q", want)
		}
	}

	ctype, body = scrape(t, u, "")
	if !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Errorf("no Accept: Content-Type %q", ctype)
	}
	if strings.Contains(body, "# EOF") || strings.Contains(body, "# UNIT") {
		t.Errorf("text 0.0.4 body has OpenMetrics lines: %.300q", body)
	}
	if !strings.Contains(body, "\n# TYPE app_jobs_total counter\n") {
		t.Errorf("text 0.0.4 body has no app_jobs_total counter: %.300q", body)
	}
}

// A port picked free can be taken before the program binds it. Both ways that shows — the
// program exits with "address already in use", or the other holder answers /metrics with 200
// first — make the rig start again on another port.
func TestPromRigRestartsOnPortClash(t *testing.T) {
	if _, err := os.Stat(NodeExporterBinary); err != nil {
		t.Skipf("node_exporter is not installed (%s)", NodeExporterBinary)
	}
	cases := map[string]http.HandlerFunc{
		"closes connections": nil,
		"answers 200": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "# TYPE impostor gauge\nimpostor 1\n")
		},
	}
	for name, handler := range cases {
		t.Run(name, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if handler != nil {
				srv := &http.Server{Handler: handler, ReadHeaderTimeout: time.Second}
				go srv.Serve(taken)
				t.Cleanup(func() { srv.Close() })
			} else {
				t.Cleanup(func() { taken.Close() })
				go func() {
					for {
						c, err := taken.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
			}
			takenPort := taken.Addr().(*net.TCPAddr).Port
			dir := t.TempDir()
			var attempts []int
			p := startPromProgram(t, "node_exporter", dir, func(attempt int) ([]string, int) {
				port := takenPort
				if attempt > 1 {
					port = FreeLoopbackPort(t)
				}
				attempts = append(attempts, port)
				return []string{NodeExporterBinary, "--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
					"--collector.disable-defaults", "--collector.loadavg"}, port
			}, nil)
			if len(attempts) != 2 || p.port == takenPort {
				t.Fatalf("attempts on ports %v, running on %d (taken: %d)", attempts, p.port, takenPort)
			}
			if _, body := scrape(t, p.metricsURL, ""); !strings.Contains(body, "\nnode_load1 ") {
				t.Fatalf("%s is not node_exporter: %.200q", p.metricsURL, body)
			}
			if handler == nil {
				first, _ := os.ReadFile(filepath.Join(dir, "node_exporter.1.stderr"))
				if !addressInUse(string(first)) {
					t.Errorf("first attempt's stderr: %s", first)
				}
			}
		})
	}
}
