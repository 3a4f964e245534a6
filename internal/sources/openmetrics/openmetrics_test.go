package openmetrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

// serve answers every request with body and content type ct.
func serve(t *testing.T, ct, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/metrics"
}

const text004 = "# TYPE req_total counter\nreq_total{code=\"200\"} %s\n# TYPE temp gauge\ntemp %s\n"

func TestPullAndProcessThreeInstances(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "text/plain; version=0.0.4", strings.ReplaceAll(strings.Replace(text004, "%s", "10", 1), "%s", "1"))
	u2 := serve(t, "text/plain; version=0.0.4", strings.ReplaceAll(strings.Replace(text004, "%s", "20", 1), "%s", "2"))
	u3 := serve(t, "application/openmetrics-text; version=1.0.0",
		"# TYPE req counter\nreq_total{code=\"200\"} 30\nreq_created{code=\"200\"} 1.7e9\n# TYPE temp gauge\ntemp 6\n# EOF\n")
	conf := baseConf(dir) + "[source.apps]\ntype = openmetrics\nurls = " + u1 + "\n\t" + u2 + ",\n\tthird=" + u3 +
		"\naggregate.temp = sum avg max p50 stddev\nper-instance-metrics = true\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "apps")
	info, err := spool.ReadSourceInfo(part)
	if err != nil || info.Kind != Kind {
		t.Fatalf("source.json %+v %v", info, err)
	}
	var meta spool.InstanceMeta
	if err := spool.ReadJSON(filepath.Join(part, "third"+spool.MetaSuffix), &meta); err != nil || meta.Status != 200 ||
		!strings.HasPrefix(meta.ContentType, "application/openmetrics-text") || meta.URL != u3 {
		t.Fatalf("meta %+v %v", meta, err)
	}
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	host1 := strings.NewReplacer(".", "_").Replace(strings.TrimSuffix(strings.TrimPrefix(u1, "http://"), "/metrics"))
	for _, want := range []string{
		"loadbalancers.vm.apps.req_total.code.200 60.0 1700000000\n",
		"loadbalancers.vm.apps.temp 9.0 1700000000\n",
		"loadbalancers.vm.apps.temp.avg 3.0 1700000000\n",
		"loadbalancers.vm.apps.temp.max 6.0 1700000000\n",
		"loadbalancers.vm.apps.temp.p50 2.0 1700000000\n",
		"loadbalancers.vm.apps.temp.stddev 2.6457513110645907 1700000000\n",
		"loadbalancers.vm.apps.instance.third.req_total.code.200 30.0 1700000000\n",
		"loadbalancers.vm.apps.instance." + host1 + ".temp 1.0 1700000000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "created") {
		t.Errorf("a _created sample was written:\n%s", out)
	}
}

// A body that does not parse, or an OpenMetrics body without "# EOF" (truncated), fails its
// instance at pull time: the source is left out (recorded), or kept without it.
func TestBrokenBodiesFailTheInstance(t *testing.T) {
	for _, c := range []struct{ name, ct, body, want string }{
		{"truncated OpenMetrics", "application/openmetrics-text; version=1.0.0", "# TYPE x gauge\nx 1\n", "without # EOF"},
		{"garbage", "text/plain; version=0.0.4", "x{a=\"1} 2\n", "line 1"},
		{"unknown media type", "application/json", "{}", "application/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			good := serve(t, "text/plain", "x 1\n")
			bad := serve(t, c.ct, c.body)
			conf := baseConf(dir) + "[source.apps]\ntype = openmetrics\nurls = ok=" + good + " bad=" + bad + "\n" +
				"[source.other]\ntype = openmetrics\nurls = " + good + "\n"
			snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
			if snap == "" {
				t.Fatalf("nothing published:\n%s", logs)
			}
			if _, err := os.Stat(filepath.Join(snap, "apps")); !os.IsNotExist(err) {
				t.Fatalf("source with a failed instance kept: %v", err)
			}
			if _, err := os.Stat(filepath.Join(snap, "other", "source.json")); err != nil {
				t.Fatalf("the other source is missing: %v", err)
			}
			rec, err := spool.PartialRecord(snap)
			if err != nil || len(rec) != 1 || rec[0].Name != "apps/bad" || !strings.Contains(rec[0].Err, c.want) {
				t.Fatalf("record %+v %v (want an error with %q)", rec, err, c.want)
			}

			// allow-partial keeps the instance that answered.
			dir2 := t.TempDir()
			snap2, logs := pullOnce(t, loadConfig(t, baseConf(dir2)+"[source.apps]\ntype = openmetrics\nallow-partial = true\nurls = ok="+good+" bad="+bad+"\n", config.PullProgram))
			if snap2 == "" {
				t.Fatalf("nothing published:\n%s", logs)
			}
			if _, err := os.Stat(filepath.Join(snap2, "apps", "ok.body")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(snap2, "apps", "bad.body")); !os.IsNotExist(err) {
				t.Fatalf("the failed instance left a body: %v", err)
			}
		})
	}
}

// A snapshot's recorded options are used when the configuration has no such source; the
// configuration's own section wins when it has one.
func TestRecordedOptionsAndConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "text/plain", "x 1\n")
	u2 := serve(t, "text/plain", "x 3\n")
	pullConf := baseConf(dir) + "[source.apps]\ntype = openmetrics\nurls = a=" + u1 + " b=" + u2 + "\naggregate = max\n"
	snap, logs := pullOnce(t, loadConfig(t, pullConf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "apps")
	out, err := processPart(t, loadConfig(t, baseConf(dir), config.ProcessProgram), part)
	if err != nil || out != "loadbalancers.vm.apps.x.max 3.0 1700000000\n" {
		t.Fatalf("recorded options: %q %v", out, err)
	}
	out, err = processPart(t, loadConfig(t, baseConf(dir)+"[source.apps]\ntype = openmetrics\naggregate = sum avg\n", config.ProcessProgram), part)
	if err != nil || out != "loadbalancers.vm.apps.x 4.0 1700000000\nloadbalancers.vm.apps.x.avg 2.0 1700000000\n" {
		t.Fatalf("configured options: %q %v", out, err)
	}
}

// A body spoiled in the spool after the pull: that instance is left out of the aggregation, the
// others are written, and the error is a Rejected naming the instance and line (the snapshot
// is then quarantined after delivery).
func TestSpoiledBodyIsLeftOutAndReported(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "text/plain", "x 1\n")
	u2 := serve(t, "text/plain", "x 3\n")
	conf := baseConf(dir) + "[source.apps]\ntype = openmetrics\nurls = a=" + u1 + " b=" + u2 + "\n"
	snap, _ := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	part := filepath.Join(snap, "apps")
	if err := os.WriteFile(filepath.Join(part, "b.body"), []byte("x 3\ny{ 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var rej dispatch.Rejected
	if !errors.As(err, &rej) || !strings.Contains(rej.Rejected(), "instance b:") || !strings.Contains(rej.Rejected(), "line 2") {
		t.Fatalf("error %v", err)
	}
	if out != "loadbalancers.vm.apps.x 1.0 1700000000\n" {
		t.Fatalf("lines %q: want instance a only", out)
	}
	// Both spoiled: nothing usable.
	os.WriteFile(filepath.Join(part, "a.body"), []byte("}"), 0o644)
	_, err = processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var unusable process.Unusable
	if !errors.As(err, &unusable) {
		t.Fatalf("error %v, want Unusable", err)
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []struct{ name, options, want string }{
		{"no urls", "", "option:'urls'"},
		{"bad url", "urls = ftp://x/metrics\n", "option:'urls'"},
		{"bad function", "urls = http://127.0.0.1:1/m\naggregate = sum p100\n", "option:'aggregate' value:'sum p100'"},
		{"bad glob", "urls = http://127.0.0.1:1/m\naggregate.[x = sum\n", "option:'aggregate.[x'"},
		{"bad quantiles", "urls = http://127.0.0.1:1/m\nhistogram-quantiles = 50\n", "option:'histogram-quantiles'"},
		{"bad timeout", "urls = http://127.0.0.1:1/m\ntimeout = 0\n", "option:'timeout'"},
		{"missing CA", "urls = http://127.0.0.1:1/m\ntls-ca-file = /nonexistent/ca.pem\n", "option:'tls-ca-file'"},
		{"basic and bearer", "urls = http://127.0.0.1:1/m\nbasic-auth-user = u\nbearer-token-file = /etc/hostname\n", "bearer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.conf")
			os.WriteFile(path, []byte("[source.apps]\ntype = openmetrics\n"+c.options), 0o644)
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
