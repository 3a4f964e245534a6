package scope

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/spool"
)

// fakeProc points procDir at a directory holding <pid>/comm for names, for the test.
func fakeProc(t *testing.T, names map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for pid, comm := range names {
		os.MkdirAll(filepath.Join(dir, pid), 0o755)
		if err := os.WriteFile(filepath.Join(dir, pid, "comm"), []byte(comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := procDir
	procDir = dir
	t.Cleanup(func() { procDir = old })
}

// processReport is an http-statistics-like report of Process nodes "<node id>" → rate.
func processReport(id string, rates map[string]float64) string {
	var nodes []string
	for node, v := range rates {
		nodes = append(nodes, fmt.Sprintf(`%q:{"metrics":{"requests":{"samples":[{"date":"2026-12-01T18:36:53.171424Z","value":%v}]}}}`, node, v))
	}
	return `{"Process":{"nodes":{` + strings.Join(nodes, ",") + `}},"Plugins":[{"id":"` + id +
		`","label":"L","interfaces":["reporter"],"api_version":"1"}]}`
}

// Two plugins (one in Scope's <id>/<id>.sock layout, one directly in socket-dir), a late one,
// and sockets that are no plugins; the process names recorded, the lines per program.
func TestPullAndProcess(t *testing.T) {
	fakeProc(t, map[string]string{"100": "sleep", "101": "sleep", "102": "ba.sh"})
	root := socketDir(t)
	servePlugin(t, filepath.Join(root, "http-statistics", "http-statistics.sock"), reply(processReport("http-statistics", map[string]float64{
		"testhost;100": 1, "testhost;101": 3, "testhost;102": 5, "testhost;999": 7, "otherhost;1": 11})))
	servePlugin(t, filepath.Join(root, "iowait.sock"), reply(readTestdata(t, "iowait_report.json")))
	servePlugin(t, filepath.Join(root, "late", "late.sock"), late(processReport("late", map[string]float64{"testhost;100": 1})))
	// Not plugins: a bad ID, a symlink to a plugin's socket, a symlinked directory, a file.
	servePlugin(t, filepath.Join(root, "bad", "bad!.sock"), reply(processReport("bad!", nil)))
	other := socketDir(t)
	servePlugin(t, filepath.Join(other, "x", "x.sock"), reply(processReport("x", nil)))
	os.Symlink(filepath.Join(root, "iowait.sock"), filepath.Join(root, "link.sock"))
	os.Symlink(filepath.Join(other, "x"), filepath.Join(root, "x"))
	os.WriteFile(filepath.Join(root, "file.sock"), nil, 0o644)

	dir := t.TempDir()
	conf := baseConf(dir) + "[source.plug]\ntype = scope\nsocket-dir = " + root + "\nhost-id = testhost\nallow-partial = true\n" +
		"aggregate.*.requests = sum avg p50 stddev\nper-instance-metrics = true\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "plug")
	entries, _ := os.ReadDir(part)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "http-statistics.body http-statistics.meta.json iowait.body iowait.meta.json source.json" {
		t.Fatalf("files %s", got)
	}
	rec, err := spool.PartialRecord(snap)
	if err != nil || len(rec) != 1 || rec[0].Name != "plug/late" || !strings.Contains(rec[0].Err, "timeout") {
		t.Fatalf("partial record %+v %v", rec, err)
	}
	for _, w := range []string{"bad!.sock", "not a Scope plugin ID"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
	var meta spool.InstanceMeta
	if err := spool.ReadJSON(filepath.Join(part, "http-statistics"+spool.MetaSuffix), &meta); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"socket": filepath.Join(root, "http-statistics", "http-statistics.sock"), "host": "testhost",
		"pid:100": "sleep", "pid:101": "sleep", "pid:102": "ba.sh"}
	if fmt.Sprint(meta.Extra) != fmt.Sprint(want) || meta.Status != 200 {
		t.Fatalf("meta %+v, want extra %v", meta, want)
	}
	if err := spool.ReadJSON(filepath.Join(part, "iowait"+spool.MetaSuffix), &meta); err != nil || !strings.HasPrefix(meta.ContentType, "text/plain") {
		t.Fatalf("iowait meta %+v %v: want the sniffed text/plain accepted", meta, err)
	}
	if body, _ := os.ReadFile(filepath.Join(part, "iowait.body")); string(body) != readTestdata(t, "iowait_report.json") {
		t.Fatal("the body is not the report as received")
	}

	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	const p = "loadbalancers.vm.plug."
	wantLines := []string{
		p + "instance.http-statistics_100.http-statistics.sleep.requests 1.0 1700000000",
		p + "instance.http-statistics_101.http-statistics.sleep.requests 3.0 1700000000",
		p + "instance.http-statistics_102.http-statistics.ba_sh.requests 5.0 1700000000",
		p + "instance.http-statistics_999.http-statistics._unknown.requests 7.0 1700000000",
		p + "instance.http-statistics_otherhost_1.http-statistics._unknown.requests 11.0 1700000000",
		p + "instance.iowait_Host_vm__host_.iowait.Host.idle 52.12 1700000000",
		p + "http-statistics.sleep.requests 4.0 1700000000",
		p + "http-statistics.sleep.requests.avg 2.0 1700000000",
		p + "http-statistics.sleep.requests.p50 1.0 1700000000",
		p + "http-statistics.sleep.requests.stddev 1.4142135623730951 1700000000",
		p + "http-statistics.ba_sh.requests 5.0 1700000000",
		p + "http-statistics.ba_sh.requests.avg 5.0 1700000000",
		p + "http-statistics.ba_sh.requests.p50 5.0 1700000000",
		p + "http-statistics._unknown.requests 18.0 1700000000",
		p + "http-statistics._unknown.requests.avg 9.0 1700000000",
		p + "http-statistics._unknown.requests.p50 7.0 1700000000",
		p + "http-statistics._unknown.requests.stddev 2.8284271247461903 1700000000",
		p + "iowait.Host.idle 52.12 1700000000",
	}
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != len(wantLines) {
		t.Errorf("%d lines, want %d:\n%s", len(got), len(wantLines), out)
	}
	for _, w := range wantLines {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("missing %q in\n%s", w, out)
		}
	}
}

// Without allow-partial a late plugin leaves the whole source out (the framework's rule).
func TestLatePluginWithoutAllowPartial(t *testing.T) {
	root := socketDir(t)
	servePlugin(t, filepath.Join(root, "ok", "ok.sock"), reply(processReport("ok", map[string]float64{"h;1": 1})))
	servePlugin(t, filepath.Join(root, "slow", "slow.sock"), late(processReport("slow", nil)))
	servePlugin(t, filepath.Join(root, "other", "other.sock"), reply(processReport("other", map[string]float64{"h;1": 1})))
	dir := t.TempDir()
	// Two sources, so that the round is published with the one that answered.
	conf := baseConf(dir) + "[source.plug]\ntype = scope\nsocket-dir = " + root + "\nhost-id = h\n" +
		"[source.plug2]\ntype = scope\nsocket-dir = " + filepath.Join(root, "ok") + "\nhost-id = h\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(snap, "plug")); !os.IsNotExist(err) {
		t.Fatalf("source with a late plugin kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(snap, "plug2", "ok.body")); err != nil {
		t.Fatal(err)
	}
	rec, _ := spool.PartialRecord(snap)
	if len(rec) != 1 || rec[0].Name != "plug/slow" {
		t.Fatalf("record %+v", rec)
	}
}

// Replies Scope refuses fail their plugin at pull time.
func TestRefusedReplies(t *testing.T) {
	for _, c := range []struct {
		name string
		h    http.Handler
		opts string
		want string
	}{
		{"status 201", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			w.Write([]byte(processReport("p", nil)))
		}), "", "status 201"},
		{"status 500", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }), "", "500"},
		{"over max-body-size", reply(processReport("p", map[string]float64{"h;1": 1, "h;2": 2, "h;3": 3, "h;4": 4}) + strings.Repeat(" ", 5000)), "max-body-size = 4096\n", "max-body-size"},
		{"another plugin's id", reply(processReport("q", nil)), "", "must not change its id"},
		{"not JSON", reply("hello"), "", "does not parse"},
		{"a gzipped report is decoded", nil, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := socketDir(t)
			h := c.h
			if h == nil { // the httpfetch decoding path: the plugin answers gzip
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Encoding", "gzip")
					w.Write(gzipped(t, processReport("p", map[string]float64{"h;1": 1})))
				})
			}
			servePlugin(t, filepath.Join(root, "p", "p.sock"), h)
			servePlugin(t, filepath.Join(root, "good", "good.sock"), reply(processReport("good", map[string]float64{"h;1": 1})))
			dir := t.TempDir()
			conf := baseConf(dir) + "[source.plug]\ntype = scope\nallow-partial = true\nsocket-dir = " + root + "\nhost-id = h\n" + c.opts
			snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
			if snap == "" {
				t.Fatalf("nothing published:\n%s", logs)
			}
			rec, _ := spool.PartialRecord(snap)
			_, bodyErr := os.Stat(filepath.Join(snap, "plug", "p.body"))
			if c.want == "" {
				if len(rec) != 0 || bodyErr != nil {
					t.Fatalf("record %+v, body %v", rec, bodyErr)
				}
				return
			}
			if len(rec) != 1 || rec[0].Name != "plug/p" || !strings.Contains(rec[0].Err, c.want) {
				t.Fatalf("record %+v, want plug/p with %q\n%s", rec, c.want, logs)
			}
			if !os.IsNotExist(bodyErr) {
				t.Fatalf("the failed plugin left a body: %v", bodyErr)
			}
		})
	}
}

func TestDiscoveryBounds(t *testing.T) {
	root := socketDir(t)
	for _, id := range []string{"a", "b", "c"} {
		servePlugin(t, filepath.Join(root, id, id+".sock"), reply(processReport(id, nil)))
	}
	// The same ID twice: the first in listing order (names sorted, a directory's sockets at its
	// name's place) is the plugin: a/a.sock, not a.sock.
	l, err := net.Listen("unix", filepath.Join(root, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := loadConfig(t, baseConf(t.TempDir())+"[source.plug]\ntype = scope\nsocket-dir = "+root+"\nmax-plugins = 2\n", config.PullProgram)
	p, err := newProvider(cfg, &cfg.Sources[0], discardLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sources(t.Context()); err == nil || !strings.Contains(err.Error(), "more than max-plugins 2") {
		t.Fatalf("error %v", err)
	}
	cfg = loadConfig(t, baseConf(t.TempDir())+"[source.plug]\ntype = scope\nsocket-dir = "+root+"\n", config.PullProgram)
	p, _ = newProvider(cfg, &cfg.Sources[0], discardLog())
	ss, err := p.Sources(t.Context())
	if err != nil || len(ss) != 3 || ss[0].(*instance).plugin.socket != filepath.Join(root, "a", "a.sock") {
		t.Fatalf("sources %v %v", ss, err)
	}
	// A plugin gone: its client is dropped; a missing socket-dir is no plugin at all.
	os.RemoveAll(filepath.Join(root, "c"))
	if ss, _ = p.Sources(t.Context()); len(ss) != 2 || len(p.(*provider).clients) != 2 {
		t.Fatalf("after removing c: %d sources, %d clients", len(ss), len(p.(*provider).clients))
	}
	cfg = loadConfig(t, baseConf(t.TempDir())+"[source.plug]\ntype = scope\nsocket-dir = "+root+"/nonexistent\n", config.PullProgram)
	p, _ = newProvider(cfg, &cfg.Sources[0], discardLog())
	if ss, err := p.Sources(t.Context()); err != nil || len(ss) != 0 {
		t.Fatalf("missing dir: %v %v", ss, err)
	}
}

// A body spoiled in the spool: the nodes before the damage stay, the error is reported.
func TestSpoiledBody(t *testing.T) {
	fakeProc(t, nil)
	root := socketDir(t)
	servePlugin(t, filepath.Join(root, "p", "p.sock"), reply(processReport("p", map[string]float64{"h;1": 1})))
	servePlugin(t, filepath.Join(root, "q", "q.sock"), reply(processReport("q", map[string]float64{"h;1": 2})))
	dir := t.TempDir()
	conf := baseConf(dir) + "[source.plug]\ntype = scope\nsocket-dir = " + root + "\nhost-id = h\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "plug")
	os.WriteFile(filepath.Join(part, "q.body"), []byte(`{"Process":`), 0o644)
	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	var rej dispatch.Rejected
	if !errors.As(err, &rej) || !strings.Contains(rej.Rejected(), "instance q:") {
		t.Fatalf("error %v", err)
	}
	if out != "loadbalancers.vm.plug.p._unknown.requests 1.0 1700000000\n" {
		t.Fatalf("lines %q", out)
	}
}

func TestConfigChecks(t *testing.T) {
	for _, c := range []struct{ name, options, want string }{
		{"empty socket-dir", "socket-dir =\n", "option:'socket-dir'"},
		{"bad timeout", "timeout = 0\n", "option:'timeout'"},
		{"bad max-plugins", "max-plugins = 0\n", "option:'max-plugins'"},
		{"bad function", "aggregate = sum p100\n", "option:'aggregate'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.conf")
			os.WriteFile(path, []byte("[source.plug]\ntype = scope\n"+c.options), 0o644)
			l, err := config.Load(path, true, "")
			if err != nil {
				if strings.Contains(err.Error(), c.want) {
					return
				}
				t.Fatal(err)
			}
			_, err = l.Config(config.PullProgram)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, c.want)
			}
		})
	}
}

// sample.conf is a valid section for both programs, and says what the README recommends.
func TestSampleConf(t *testing.T) {
	b, err := os.ReadFile("sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, prog := range []config.Program{config.PullProgram, config.ProcessProgram} {
		cfg := loadConfig(t, baseConf(dir)+string(b), prog)
		if len(cfg.Sources) != 1 || cfg.Sources[0].Kind != Kind || !cfg.Sources[0].AllowPartial {
			t.Fatalf("%v: sources %+v", prog, cfg.Sources)
		}
	}
}
