package mesos

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
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

// serve answers requests for /metrics/snapshot with body and content type ct (none if ""),
// and 404 elsewhere; it returns the base URL.
func serve(t *testing.T, ct, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != DefaultPath {
			http.NotFound(w, r)
			return
		}
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil // no sniffing: no content type at all
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func lines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// Three masters (one elected) and their real bodies: the cluster values are the leader's,
// master/elected sums to 1, timers are maxima and means, never sums.
func TestPullAndProcessMasters(t *testing.T) {
	dir := t.TempDir()
	leader := readTestdata(t, "master_snapshot_escaped_slashes.json")
	standby := bytes.Replace(leader, []byte(`"master\/elected":1`), []byte(`"master\/elected":0`), 1)
	standby = bytes.Replace(standby, []byte(`"master\/uptime_secs":3267541.51136102`), []byte(`"master\/uptime_secs":12.5`), 1)
	standby = bytes.Replace(standby, []byte(`"registrar\/state_store_ms\/p99":4.57152`), []byte(`"registrar\/state_store_ms\/p99":9.5`), 1)
	u1 := serve(t, "application/json", string(leader))
	u2 := serve(t, "", string(standby))
	u3 := serve(t, "text/plain; charset=utf-8", string(standby))
	conf := baseConf(dir) + "[source.masters]\ntype = mesos\nurls = m1=" + u1 + " m2=" + u2 + "/ m3=" + u3 + DefaultPath + "\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "masters")
	var meta spool.InstanceMeta
	if err := spool.ReadJSON(filepath.Join(part, "m2"+spool.MetaSuffix), &meta); err != nil || meta.URL != u2+DefaultPath || meta.ContentType != "" {
		t.Fatalf("meta %+v %v", meta, err)
	}
	if got, _ := os.ReadFile(filepath.Join(part, "m1.body")); !bytes.Equal(got, leader) {
		t.Fatal("the body is not kept as received")
	}
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(out)
	p := "loadbalancers.vm.masters."
	for path, want := range map[string]string{
		"master.cpus_total":                           "2.0", // the leader's only
		"master.messages_decline_offers":              "1099789.0",
		"master.slave_removals":                       "1.0", // a leaf…
		"master.slave_removals.reason_registered":     "1.0", // …and a node
		"master.elected":                              "1.0",
		"master.uptime_secs.min":                      "12.5",
		"master.uptime_secs.max":                      "3267541.51136102",
		"registrar.state_store_ms.p99.max":            "9.5",
		"registrar.state_store_ms.p99.avg":            "7.857173333333333", // (4.57152 + 9.5 + 9.5) / 3, as the engine rounds it
		"registrar.state_store_ms.count":              "6.0",
		"registrar.state_store_ms.max":                "4.573184", // the timer's last value
		"registrar.state_store_ms.max.max":            "4.573184",
		"system.load_1min.avg":                        "0.03",
		"system.mem_total_bytes":                      "12436463616.0",
		"allocator.event_queue_dispatches":            "0.0",
		"master.cpus_percent":                         "2.77555756156289e-17",
		"registrar.state_fetch_ms.avg":                "80.187904",
		"master.valid_status_update_acknowledgements": "152.0",
	} {
		if got[p+path] != want {
			t.Errorf("%s = %q, want %s", path, got[p+path], want)
		}
	}
	for _, not := range []string{"registrar.state_store_ms.p99", "master.uptime_secs", "system.load_1min", "registrar.state_store_ms"} {
		if v, ok := got[p+not]; ok {
			t.Errorf("%s written (%s): these are never summed", not, v)
		}
	}

	// elected-only = false: every master's master/* values are summed.
	out, err = processPart(t, loadConfig(t, conf+"elected-only = false\n", config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	if g := lines(out)[p+"master.cpus_total"]; g != "6.0" {
		t.Errorf("elected-only = false: master.cpus_total = %s, want 6.0", g)
	}
}

// elected-only recorded in source.json is applied by a stats-process without the section.
func TestRecordedElectedOnly(t *testing.T) {
	dir := t.TempDir()
	leader := readTestdata(t, "master_snapshot_escaped_slashes.json")
	standby := bytes.Replace(leader, []byte(`"master\/elected":1`), []byte(`"master\/elected":0`), 1)
	u1, u2 := serve(t, "application/json", string(leader)), serve(t, "application/json", string(standby))
	for _, c := range []struct{ opt, want string }{{"", "2.0"}, {"elected-only = false\n", "4.0"}} {
		conf := baseConf(dir) + "[source.m]\ntype = mesos\nurls = a=" + u1 + " b=" + u2 + "\n" + c.opt
		snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
		if snap == "" {
			t.Fatalf("nothing published:\n%s", logs)
		}
		out, err := processPart(t, loadConfig(t, baseConf(dir), config.ProcessProgram), filepath.Join(snap, "m"))
		if err != nil {
			t.Fatal(err)
		}
		if g := lines(out)["loadbalancers.vm.m.master.cpus_total"]; g != c.want {
			t.Errorf("recorded %q: master.cpus_total = %s, want %s", c.opt, g, c.want)
		}
		os.RemoveAll(snap)
	}
}

// A body that is not a snapshot, a truncated one or an HTML page fails its instance at pull
// time: the source is left out, recorded.
func TestBrokenBodiesFailTheInstance(t *testing.T) {
	for _, c := range []struct{ name, ct, body, want string }{
		{"truncated", "application/json", `{"master\/elected":1,"master\/cpus`, "truncated"},
		{"nested", "application/json", `{"frameworks":[{"id":1}]}`, "object or array"},
		{"html", "text/html", "<html></html>", "text/html"},
		{"empty", "application/json", "", "empty body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			good := serve(t, "application/json", `{"slave/registered":1}`)
			bad := serve(t, c.ct, c.body)
			conf := baseConf(dir) + "[source.agents]\ntype = mesos\nurls = ok=" + good + " bad=" + bad + "\n" +
				"[source.other]\ntype = mesos\nurls = " + good + "\n"
			snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
			if snap == "" {
				t.Fatalf("nothing published:\n%s", logs)
			}
			if _, err := os.Stat(filepath.Join(snap, "agents")); !os.IsNotExist(err) {
				t.Fatalf("source with a failed instance kept: %v", err)
			}
			rec, err := spool.PartialRecord(snap)
			if err != nil || len(rec) != 1 || rec[0].Name != "agents/bad" || !strings.Contains(rec[0].Err, c.want) {
				t.Fatalf("record %+v %v (want an error with %q)", rec, err, c.want)
			}
		})
	}
}

// A body spoiled in the spool: that instance is left out and reported, the others written.
func TestSpoiledBodyIsLeftOutAndReported(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "application/json", `{"slave/tasks_running":1}`)
	u2 := serve(t, "application/json", `{"slave/tasks_running":3}`)
	conf := baseConf(dir) + "[source.agents]\ntype = mesos\nurls = a=" + u1 + " b=" + u2 + "\n"
	snap, _ := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	part := filepath.Join(snap, "agents")
	os.WriteFile(filepath.Join(part, "b.body"), []byte(`{"slave/tasks_running":3,`), 0o644)
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var rej dispatch.Rejected
	if !errors.As(err, &rej) || !strings.Contains(rej.Rejected(), "instance b:") || !strings.Contains(rej.Rejected(), "truncated") {
		t.Fatalf("error %v", err)
	}
	if out != "loadbalancers.vm.agents.slave.tasks_running 1.0 1700000000\n" {
		t.Fatalf("lines %q: want instance a only", out)
	}
}

func TestWithDefaultPath(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.0.1:5050":                          "http://10.0.0.1:5050/metrics/snapshot",
		"http://10.0.0.1:5050/":                         "http://10.0.0.1:5050/metrics/snapshot",
		"http://10.0.0.1:5050?timeout=5secs":            "http://10.0.0.1:5050/metrics/snapshot?timeout=5secs",
		"http://10.0.0.1:5050/metrics/snapshot":         "http://10.0.0.1:5050/metrics/snapshot",
		"https://proxy/mesos/master/metrics/snapshot":   "https://proxy/mesos/master/metrics/snapshot",
		"http://[::1]:5051/metrics/snapshot?timeout=1s": "http://[::1]:5051/metrics/snapshot?timeout=1s",
	} {
		if got, err := WithDefaultPath(in); err != nil || got != want {
			t.Errorf("%s → %s %v, want %s", in, got, err, want)
		}
	}
}

func TestCheckMediaType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"": true, "application/json": true, "application/json; charset=utf-8": true, "text/plain": true,
		"application/vnd.mesos+json": true, "text/html": false, "application/x-protobuf": false, "application/json; =": false,
	} {
		if err := CheckMediaType(ct); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", ct, err, ok)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []struct{ name, options, want string }{
		{"no urls", "", "option:'urls'"},
		{"bad url", "urls = ftp://x\n", "option:'urls'"},
		{"bad elected-only", "urls = http://127.0.0.1:1\nelected-only = maybe\n", "option:'elected-only'"},
		{"bad function", "urls = http://127.0.0.1:1\naggregate.master.* = sum p100\n", "option:'aggregate.master.*'"},
		{"bad timeout", "urls = http://127.0.0.1:1\ntimeout = 0\n", "option:'timeout'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.conf")
			os.WriteFile(path, []byte("[source.m]\ntype = mesos\n"+c.options), 0o644)
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

// The operator's rules come before the kind's defaults.
func TestOperatorRuleWins(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "application/json", `{"a/t_ms/p99":1,"system/load_1min":2}`)
	u2 := serve(t, "application/json", `{"a/t_ms/p99":3,"system/load_1min":4}`)
	conf := baseConf(dir) + "[source.m]\ntype = mesos\nurls = a=" + u1 + " b=" + u2 + "\naggregate.*.p99 = min\naggregate = count\n"
	snap, _ := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), filepath.Join(snap, "m"))
	if err != nil {
		t.Fatal(err)
	}
	want := "loadbalancers.vm.m.a.t_ms.p99.min 1.0 1700000000\n" +
		"loadbalancers.vm.m.system.load_1min.avg 3.0 1700000000\nloadbalancers.vm.m.system.load_1min.max 4.0 1700000000\n"
	if out != want {
		t.Fatalf("lines\n%s\nwant\n%s", out, want)
	}
}

// sample.conf is a valid configuration for both programs.
func TestSampleConf(t *testing.T) {
	sample, err := os.ReadFile("sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, prog := range []config.Program{config.PullProgram, config.ProcessProgram} {
		cfg := loadConfig(t, baseConf(dir)+string(sample), prog)
		if len(cfg.Sources) != 2 || cfg.Sources[0].Kind != Kind {
			t.Fatalf("sources %+v", cfg.Sources)
		}
	}
}

// A key given twice, and two keys that meet in one name, keep the first value; workers'
// Formats have parsers of their own (run with -race).
func TestDuplicatesAndWorkers(t *testing.T) {
	dir := t.TempDir()
	u1 := serve(t, "application/json", `{"a/b.c":1,"a/b_c":2,"x":1,"x":5,"n":null}`)
	conf := baseConf(dir) + "[source.m]\ntype = mesos\nurls = a=" + u1 + "\n"
	snap, _ := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	part := filepath.Join(snap, "m")
	ctor, err := processHalf.NewFormat(loadConfig(t, conf, config.ProcessProgram), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	outs := make(chan string, 2)
	for _, f := range []process.Format{ctor(), ctor()} { // each worker's Format, with its own parser
		go func() {
			var out bytes.Buffer
			err := f.Process(part, 1700000000, func(b *metric.Batch) error { out.Write(b.Data); metric.Recycle(b); return nil })
			if err != nil {
				out.WriteString(err.Error())
			}
			outs <- out.String()
		}()
	}
	want := "loadbalancers.vm.m.a.b_c 1.0 1700000000\nloadbalancers.vm.m.x 1.0 1700000000\n"
	for range 2 {
		if got := <-outs; got != want {
			t.Errorf("lines\n%s\nwant\n%s", got, want)
		}
	}
}
