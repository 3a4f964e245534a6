package httpebpf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

// part makes a snapshot's source directory at ts for the section text, with the example's
// maps (or the bodies given).
func part(t *testing.T, dir, section string, ts string, bodies map[string][]byte) (*config.Config, string) {
	t.Helper()
	cfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+section, config.ProcessProgram)
	src := &cfg.Sources[0]
	p := filepath.Join(dir, ts, src.Name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	sourcetest.WriteJSON(t, filepath.Join(p, spool.SourceInfoFile), spool.NewSourceInfo(Kind, src.Name, sources.Recorded(src)))
	for m, b := range bodies {
		os.WriteFile(filepath.Join(p, m+spool.BodySuffix), b, 0o644)
		sourcetest.WriteJSON(t, filepath.Join(p, m+spool.MetaSuffix), exampleMeta(m, strings.Count(string(b), "\n")))
	}
	return cfg, p
}

func lines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// Rates: from the previous snapshot of the source, per PID then summed; none for the first
// snapshot, none for a counter that went down, none against a newer snapshot.
func TestRates(t *testing.T) {
	savedBook := book // the book is the process's: -count runs this again in the same process
	book = &rateBook{m: map[string]*rateState{}}
	defer func() { book = savedBook }()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	section := "[source.ratetest]\ntype = http-ebpf\nrate = true\n"
	first := exampleEntries(t)
	cfg, p1 := part(t, dir, section, "1700000000", first)
	out1, err := sourcetest.ProcessPartAt(t, processHalf.NewFormat, cfg, p1, 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out1, ".rate ") {
		t.Fatalf("rates in the first snapshot:\n%s", out1)
	}
	// Ten seconds later: nginx 1001 +20 GETs, 1002 +10 GETs; python3's GETs went down (its
	// entries pruned and made again): no rate for it; a new PID 4004 of nginx with 5.
	saved := exampleRequests
	defer func() { exampleRequests = saved }()
	exampleRequests = append(exampleRequests[:0:0], saved...)
	exampleRequests[0].n += 20 // 1001 GET 50
	exampleRequests[2].n += 10 // 1002 GET 20
	exampleRequests[3].n = 1   // 2001 GET 1
	exampleRequests = append(exampleRequests, struct {
		pid    uint32
		method string
		n      uint64
	}{4004, "GET", 5})
	exampleComm["pid:4004"] = "nginx"
	defer delete(exampleComm, "pid:4004")
	second := exampleEntries(t)
	_, p2 := part(t, dir, section, "1700000010", second)
	// A format per worker: the rates are shared across workers.
	out2, err := sourcetest.ProcessPartAt(t, processHalf.NewFormat, cfg, p2, 1700000010)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(out2)
	want := map[string]string{
		"loadbalancers.vm.ratetest.nginx.requests.method.GET.rate":    "3.5", // (20+10+5)/10
		"loadbalancers.vm.ratetest.nginx.requests.rate":               "3.5",
		"loadbalancers.vm.ratetest.nginx.requests.rate.max":           "2.0",
		"loadbalancers.vm.ratetest.nginx.requests.rate.min":           "0.5",
		"loadbalancers.vm.ratetest.nginx.requests.method.POST.rate":   "0.0",
		"loadbalancers.vm.ratetest.python3.requests.method.HEAD.rate": "0.0",
		"loadbalancers.vm.ratetest.nginx.responses.rate":              "0.0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %s", k, got[k], v)
		}
	}
	for _, k := range []string{"loadbalancers.vm.ratetest.python3.requests.method.GET.rate", "loadbalancers.vm.ratetest.python3.requests.rate"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %s: a counter that went down has no rate", k, v)
		}
	}
	// The first snapshot again (a replay, older than the newest): no rates.
	out3, err := sourcetest.ProcessPartAt(t, processHalf.NewFormat, cfg, p1, 1700000000)
	if err != nil || strings.Contains(out3, ".rate ") {
		t.Errorf("an older snapshot after a newer one: %v\n%s", err, out3)
	}
}

// Bodies that are not the program's: each fails its map (reported), the others are written.
func TestSpoiledAndForeignBodies(t *testing.T) {
	cases := map[string]struct {
		body, want string
	}{
		"not JSON":   {"{\"key\":\n", "line 1"},
		"no pid":     {`{"key":[{"name":"","kind":"uint","num":1}],"value":[{"name":"","kind":"uint","num":5}],"raw_key":"01000000"}` + "\n", "no decoded pid"},
		"bad method": {`{"key":[{"name":"pid","kind":"uint","num":1},{"name":"method","kind":"string","str":"G.T"}],"value":[{"name":"","kind":"uint","num":5}],"raw_key":"00"}` + "\n", "not one the program counts"},
		"hex value":  {`{"key":[{"name":"pid","kind":"uint","num":1},{"name":"method","kind":"string","str":"GET"}],"value":[{"name":"","kind":"hex","str":"00"}],"raw_key":"00"}` + "\n", "not a decoded counter"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
			bodies := exampleEntries(t)
			bodies[bpf.RequestsMap] = []byte(c.body)
			cfg, p := part(t, dir, "[source.http]\ntype = http-ebpf\n", "1700000000", bodies)
			out, err := sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, p)
			if err == nil || !strings.Contains(err.Error(), "http_requests.body") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one naming http_requests.body and %q", err, c.want)
			}
			if got := lines(out); got["loadbalancers.vm.http.nginx.responses"] != "42.0" || len(got) == 0 {
				t.Errorf("the other maps' lines are missing:\n%s", out)
			}
			if strings.Contains(out, ".requests ") {
				t.Errorf("lines of the spoiled map:\n%s", out)
			}
		})
	}
	// A map of another program in the source directory, and entries not decoded.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	bodies := exampleEntries(t)
	bodies["other_map"] = bodies[bpf.RequestsMap]
	cfg, p := part(t, dir, "[source.http]\ntype = http-ebpf\n", "1700000000", bodies)
	meta := exampleMeta(bpf.ResponsesMap, 8)
	meta.Extra["types"] = "default"
	sourcetest.WriteJSON(t, filepath.Join(p, bpf.ResponsesMap+spool.MetaSuffix), meta)
	_, err := sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, p)
	if err == nil || !strings.Contains(err.Error(), `instance "other_map" is not a map of the HTTP statistics program`) ||
		!strings.Contains(err.Error(), "were not decoded") {
		t.Errorf("error %v", err)
	}
}

func TestSampleConf(t *testing.T) {
	b, err := os.ReadFile("sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, prog := range []config.Program{config.PullProgram, config.ProcessProgram} {
		cfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+string(b), prog)
		if len(cfg.Sources) != 1 || cfg.Sources[0].Kind != Kind {
			t.Fatalf("sources %+v", cfg.Sources)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, c := range []struct{ opt, want string }{
		{"pin-dir = relative/dir", "absolute path"},
		{"max-entries = 0", "max-entries"},
		{"rate = often", "rate"},
	} {
		path := filepath.Join(t.TempDir(), "test.conf")
		os.WriteFile(path, []byte(sourcetest.BaseConf(t.TempDir())+"[source.http]\ntype = http-ebpf\n"+c.opt+"\n"), 0o644)
		l, err := config.Load(path, true, "")
		if err == nil {
			_, err = l.Config(config.PullProgram)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.conf") {
			t.Errorf("%s: error %v, want one naming the file and %q", c.opt, err, c.want)
		}
	}
}
