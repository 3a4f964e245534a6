package haproxy

import (
	"bufio"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

// captureSnapshot copies the *_stat and *_info files of the 2.6 capture into a snapshot dir.
func captureSnapshot(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"admin1.sock_stat", "admin1.sock_info", "admin2.sock_stat", "admin2.sock_info"} {
		b, err := os.ReadFile(filepath.Join(captureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// typedNatures reads the natures of a `show stat typed` / `show info typed` capture:
// "<obj>.<field>" → nature (obj I for show info).
func typedNatures(t testing.TB, path string, info bool) FieldNatures {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := FieldNatures{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 4)
		if len(parts) != 4 || len(parts[1]) < 3 {
			t.Fatalf("%s: bad typed line %q", path, line)
		}
		name := parts[0]
		var key string
		if info { // <pos>.<name>.<proc>
			name = name[strings.IndexByte(name, '.')+1 : strings.LastIndexByte(name, '.')]
			key = "I." + name
		} else { // <obj>.<px_id>.<id>.<fpos>.<fname>.<proc>
			f := strings.Split(name, ".")
			key = f[0] + "." + strings.Join(f[4:len(f)-1], ".")
		}
		n := Nature(parts[1][1])
		if prev, ok := out[key]; ok && prev != n {
			t.Fatalf("%s: %s is %c and %c", path, key, prev, n)
		}
		out[key] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBuiltinNaturesMatchCapture checks the built-in table against the real 2.6 capture: every
// captured field has its captured nature in capturedNatures, the table has nothing the capture
// lacks, the documented entries never contradict it, and the module counters of the capture
// follow the naming convention moduleNature applies to unknown ones.
func TestBuiltinNaturesMatchCapture(t *testing.T) {
	captured := FieldNatures{}
	for _, inst := range []string{"admin1", "admin2"} {
		for k, v := range typedNatures(t, filepath.Join(captureDir, inst+".sock_stat_typed"), false) {
			captured[k] = v
		}
		for k, v := range typedNatures(t, filepath.Join(captureDir, inst+".sock_info_typed"), true) {
			captured[k] = v
		}
	}
	if len(captured) < 300 {
		t.Fatalf("only %d fields in the capture", len(captured))
	}
	for key, want := range captured {
		obj, field := key[0], key[2:]
		if obj == 'I' {
			if got := capturedInfoNatures[field]; got != want {
				t.Errorf("capturedInfoNatures[%q] = %q, capture says %q", field, got, want)
			}
		} else if got := capturedNatures[field][objKind(obj)]; got != want {
			t.Errorf("capturedNatures[%q][%c] = %q, capture says %q", field, obj, got, want)
		}
		if got := builtinNature(obj, field); got != want {
			t.Errorf("builtinNature(%c, %q) = %q, capture says %q", obj, field, got, want)
		}
	}
	for field, ns := range capturedNatures {
		for k, n := range ns {
			if _, ok := captured[string(kindObj[k])+"."+field]; n != NatureUnknown && !ok {
				t.Errorf("capturedNatures[%q][%c] = %q is not in the capture", field, kindObj[k], n)
			}
		}
	}
	for field := range capturedInfoNatures {
		if _, ok := captured["I."+field]; !ok {
			t.Errorf("capturedInfoNatures[%q] is not in the capture", field)
		}
	}
	for field, ns := range documentedNatures {
		for k, n := range ns {
			if _, ok := captured[string(kindObj[k])+"."+field]; n != NatureUnknown && ok {
				t.Errorf("documentedNatures[%q][%c] duplicates a captured field", field, kindObj[k])
			}
		}
	}
	for field := range documentedInfoNatures {
		if _, ok := captured["I."+field]; ok {
			t.Errorf("documentedInfoNatures[%q] duplicates a captured key", field)
		}
	}
	// module counters: the columns after "-" of the captured header
	header := firstLineOf(t, filepath.Join(captureDir, "admin1.sock_stat"))
	cols := strings.Split(strings.TrimPrefix(header, "# "), ",")
	dash := -1
	for i, c := range cols {
		if c == "-" {
			dash = i
		}
	}
	if dash < 0 || dash+5 > len(cols) {
		t.Fatalf("no module counters after - in %q", header)
	}
	modules := 0
	for _, c := range cols[dash+1:] {
		if c == "" {
			continue
		}
		for k := range 4 {
			if n, ok := captured[string(kindObj[k])+"."+c]; ok {
				modules++
				if got := moduleNature(c); got != n {
					t.Errorf("module counter %s (%c): convention says %q, capture %q", c, kindObj[k], got, n)
				}
			}
		}
	}
	if modules < 20 {
		t.Errorf("only %d module counter cells checked", modules)
	}
}

func firstLineOf(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// TestAllMetricsKeepsHaproxystats: with all-metrics the lines of haproxystats are all there,
// byte for byte (timings aside), and the new lines are new paths.
func TestAllMetricsKeepsHaproxystats(t *testing.T) {
	dir := captureSnapshot(t)
	for _, base := range []Options{
		{Prefix: prefixVM},
		{Prefix: prefixVM, AggrServerMetrics: true, PerProcessMetrics: true, CalculatePercentages: true, ServerStates: true},
		{Prefix: prefixVM, FrontendMetrics: []string{"bin"}, ServerMetrics: []string{"qcur", "smax"}},
	} {
		off := run(t, dir, 1700000000, base)
		on := base
		on.AllMetrics = true
		all := run(t, dir, 1700000000, on)
		if off.err != nil || all.err != nil {
			t.Fatal(off.err, all.err)
		}
		got := map[string]string{}
		for _, l := range all.lines {
			if _, dup := got[l.path]; dup {
				t.Errorf("path written twice: %s", l.path)
			}
			got[l.path] = l.value
		}
		for _, l := range off.lines {
			if isTiming(l.path) {
				continue
			}
			if v, ok := got[l.path]; !ok || v != l.value {
				t.Errorf("haproxystats line %s %s: all-metrics has %q (present %v)", l.path, l.value, v, ok)
			}
		}
		if len(all.lines) < len(off.lines)*3/2 {
			t.Errorf("all-metrics wrote %d lines, haproxystats %d", len(all.lines), len(off.lines))
		}
		t.Logf("off %d lines, on %d", len(off.lines), len(all.lines))
	}
}

// amExpect computes, independently of the processor (encoding/csv, the nature table), the
// all-metrics lines of the raw `show stat` and `show info` replies: path → value. hs holds
// the paths haproxystats writes (the output without all-metrics): where it writes <field> for
// some entity of a kind, a sum is not written again for that kind, and a max, min or duration
// goes to <field>_max / <field>_min instead.
func amExpect(t testing.TB, prefix string, stats, infos []string, hs map[string]string) map[string]float64 {
	t.Helper()
	type key struct{ path, comp string }
	vals := map[key][]float64{}
	nats := map[key]Nature{}
	var order []key
	add := func(path, field string, nat Nature, cell string) {
		v, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
		if err != nil || !amEmitted(nat) {
			return
		}
		k := key{path, metric.Component(field)}
		if _, ok := nats[k]; !ok {
			order = append(order, k)
		}
		nats[k] = nat
		vals[k] = append(vals[k], v)
	}
	for _, reply := range stats {
		r := csv.NewReader(strings.NewReader(reply))
		r.FieldsPerRecord = -1
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		header := recs[0]
		header[0] = strings.TrimPrefix(header[0], "# ")
		dash := slices.Index(header, "-")
		typeCol, svCol := slices.Index(header, "type"), slices.Index(header, "svname")
		for _, row := range recs[1:] {
			kind, err := strconv.Atoi(row[typeCol])
			if err != nil || kind > 3 {
				t.Fatalf("row %v: type %q", row[:2], row[typeCol])
			}
			px, sv := metric.Component(row[0]), metric.Component(row[svCol])
			path := map[int]string{
				kindFrontend: "frontend." + px, kindBackend: "backend." + px,
				kindServer: "backend." + px + ".server." + sv, kindListener: "frontend." + px + ".listener." + sv,
			}[kind]
			for i, col := range header {
				if i == 0 || i >= len(row) || textColumns[col] || identityFields[col] || col == "svname" || col == "" {
					continue
				}
				nat := builtinNature(kindObj[kind], col)
				if nat == NatureUnknown && dash >= 0 && i > dash {
					nat = moduleNature(col)
				}
				add(path, col, nat, row[i])
			}
		}
	}
	for _, reply := range infos {
		for _, line := range strings.Split(reply, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok || identityFields[k] {
				continue
			}
			add("daemon", k, builtinNature('I', k), v)
		}
	}
	hsKind := map[string]bool{} // "<kind>:<comp>"
	for p := range hs {
		f := strings.Split(strings.TrimPrefix(p, prefix+"."), ".")
		switch {
		case len(f) == 2 && f[0] == "daemon":
			hsKind["daemon:"+f[1]] = true
		case len(f) == 3 && (f[0] == "frontend" || f[0] == "backend"):
			hsKind[f[0]+":"+f[2]] = true
		case len(f) == 5 && f[0] == "backend" && f[2] == "server":
			hsKind["server:"+f[4]] = true
		}
	}
	kindOf := func(path string) string {
		f := strings.Split(path, ".")
		switch {
		case len(f) == 4 && f[2] == "listener":
			return "listener"
		case len(f) == 4:
			return "server"
		}
		return f[0]
	}
	out := map[string]float64{}
	for _, k := range order {
		vs := vals[k]
		sum, mx, mn := 0.0, math.Inf(-1), math.Inf(1)
		for _, v := range vs {
			sum += v
			mx, mn = max(mx, v), min(mn, v)
		}
		base := prefix + "." + k.path + "." + k.comp
		inHS := hsKind[kindOf(k.path)+":"+k.comp]
		switch nats[k] {
		case NatureCounter, NatureGauge, NatureRate, NatureLimit:
			if !inHS {
				out[base] = sum
			}
		case NatureAvg:
			if !inHS {
				out[base] = sum / float64(len(vs))
			}
		case NatureMax:
			if inHS {
				out[base+"_max"] = mx
			} else {
				out[base], out[base+"_sum"] = mx, sum
			}
		case NatureDuration:
			if inHS {
				out[base+"_max"] = mx
			} else {
				out[base] = mx
			}
		case NatureAge, NatureMin:
			if inHS {
				out[base+"_min"] = mn
			} else {
				out[base] = mn
			}
		}
	}
	return out
}

// checkAllMetrics compares the output of all-metrics (on) with the expected lines and with
// haproxystats' own (off): every haproxystats line is kept, every expected line is there with
// its value, and nothing else is written.
func checkAllMetrics(t testing.TB, off, on []gline, want map[string]float64) {
	t.Helper()
	offPaths := map[string]string{}
	for _, l := range off {
		offPaths[l.path] = l.value
	}
	got := map[string]string{}
	for _, l := range on {
		if _, dup := got[l.path]; dup {
			t.Errorf("path written twice: %s", l.path)
		}
		got[l.path] = l.value
	}
	for _, l := range off {
		if isTiming(l.path) {
			continue
		}
		if v, ok := got[l.path]; !ok || v != l.value {
			t.Errorf("haproxystats line %s %s: with all-metrics %q (present %v)", l.path, l.value, v, ok)
		}
	}
	matched := 0
	for path, w := range want {
		v, ok := got[path]
		if !ok {
			t.Errorf("missing %s (want %v)", path, w)
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.Abs(f-w) > 1e-9*max(1, math.Abs(w)) {
			t.Errorf("%s = %s, want %v", path, v, w)
		}
		matched++
	}
	for _, l := range on {
		if _, ok := offPaths[l.path]; ok || isTiming(l.path) {
			continue
		}
		if _, ok := want[l.path]; !ok {
			t.Errorf("unexpected line %s %s", l.path, l.value)
		}
	}
	if matched < 100 {
		t.Errorf("only %d all-metrics lines compared", matched)
	}
}

func readAll(t testing.TB, paths ...string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// TestAllMetricsCaptureValues checks every all-metrics line of the real 2.6 capture against
// values computed from the raw replies.
func TestAllMetricsCaptureValues(t *testing.T) {
	dir := captureSnapshot(t)
	for _, base := range []Options{
		{Prefix: prefixVM},
		{Prefix: prefixVM, ServerStates: true, CalculatePercentages: true},
		{Prefix: prefixVM, FrontendMetrics: []string{"bin"}, BackendMetrics: []string{"smax"}, ServerMetrics: []string{"qcur", "lastchg"}},
	} {
		off := run(t, dir, 1700000000, base)
		on := base
		on.AllMetrics = true
		all := run(t, dir, 1700000000, on)
		if off.err != nil || all.err != nil {
			t.Fatal(off.err, all.err)
		}
		hs := map[string]string{}
		for _, l := range off.lines {
			hs[l.path] = l.value
		}
		want := amExpect(t, prefixVM,
			readAll(t, filepath.Join(dir, "admin1.sock_stat"), filepath.Join(dir, "admin2.sock_stat")),
			readAll(t, filepath.Join(dir, "admin1.sock_info"), filepath.Join(dir, "admin2.sock_info")), hs)
		checkAllMetrics(t, off.lines, all.lines, want)
	}
}

// TestAllMetricsNoAllocs: once the names are interned, all-metrics adds a few allocations per
// stat file (reopening it) and per snapshot, none per row or line: on the capture (2 stat
// files, 500-odd new lines) and on a synthetic snapshot (4 files, 40 000-odd new lines) alike.
func TestAllMetricsNoAllocs(t *testing.T) {
	synth := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(synth, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := synthetic.Write(synth, synthetic.Config{Procs: 4, Backends: 100, Servers: 10, Frontends: 20, Idle: 0.2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir   string
		files int
	}{{captureSnapshot(t), 2}, {synth, 4}} {
		allocs := func(opts Options) (float64, int, int) {
			p := NewProcessor(opts, nil)
			size := 0
			st, err := p.Process(tc.dir, 1700000000, func(b *metric.Batch) error {
				size += len(b.Data)
				metric.Recycle(b)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			flush := func(b *metric.Batch) error { metric.Recycle(b); return nil }
			return testing.AllocsPerRun(10, func() {
				if _, err := p.Process(tc.dir, 1700000000, flush); err != nil {
					t.Fatal(err)
				}
			}), st.Lines, size
		}
		off, offLines, offSize := allocs(Options{Prefix: prefixVM})
		on, onLines, onSize := allocs(Options{Prefix: prefixVM, AllMetrics: true,
			AllMetricsAggregate: aggregate.MustRules([][2]string{{"server.*", "p99 stddev"}, {"daemon.*", "max"}})})
		t.Logf("%s: allocations per snapshot: %v without all-metrics (%d lines), %v with (%d lines)",
			filepath.Base(filepath.Dir(tc.dir)), off, offLines, on, onLines)
		if onLines < offLines+500 {
			t.Errorf("all-metrics added only %d lines", onLines-offLines)
		}
		// a Batch per chunk of output
		chunks := (onSize-offSize)/metric.DefaultChunkSize + 1
		if on > off+float64(8*tc.files+12+chunks) {
			t.Errorf("all-metrics allocates %v per snapshot, without %v", on, off)
		}
	}
}

// TestAllMetricsAggregateRules: all-metrics-aggregate adds <field>.<fn> lines over the
// per-process values, first matching glob on <kind>.<field> lower-cased.
func TestAllMetricsAggregateRules(t *testing.T) {
	stat := func(scur, qtime, rtimeMax string) string {
		return "# pxname,svname,qcur,scur,smax,qtime,rtime_max,type,status,-,h9_open_x,h9_rcvd,\n" +
			"be,BACKEND,0," + scur + ",5," + qtime + "," + rtimeMax + ",1,UP,-,1,2,\n" +
			"be,s1,0," + scur + ",5," + qtime + "," + rtimeMax + ",2,UP,-,1,2,\n"
	}
	dir := writeSnapshot(t, map[string]string{
		"a_stat": stat("1", "10", "100"), "b_stat": stat("2", "20", "300"),
		"c_stat": stat("4", "31", "200"), "d_stat": stat("8", "40", "50"),
		"a_info": "Name: HAProxy\nCurrConns: 3\nUptime: 0d 0h00m22s\nNbthread: 2\n",
		"b_info": "Name: HAProxy\nCurrConns: 5\nNbthread: 1\n",
	})
	rules := aggregate.MustRules([][2]string{
		{"backend.scur", "p50 stddev count"},
		{"server.*time*", "avg p99 min"},
		{"*.scur", "max"},
		{"daemon.nbthread", "sum max"},
		{"backend.h9_*", "none"},
	})
	r := run(t, dir, 1700000000, Options{Prefix: "p", AllMetrics: true, AllMetricsAggregate: rules,
		BackendMetrics: []string{"bin"}, ServerMetrics: []string{"bin"}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := paths(r.lines)
	for path, want := range map[string]string{
		"p.backend.be.scur":                    "15",
		"p.backend.be.scur.p50":                "4",
		"p.backend.be.scur.count":              "4",
		"p.backend.be.server.s1.scur":          "15",
		"p.backend.be.server.s1.scur.max":      "8",
		"p.backend.be.server.s1.qtime.avg":     "25.25",
		"p.backend.be.server.s1.qtime.p99":     "40",
		"p.backend.be.server.s1.qtime.min":     "10",
		"p.backend.be.server.s1.rtime_max":     "300",
		"p.backend.be.server.s1.rtime_max.min": "50",
		"p.backend.be.smax":                    "5",
		"p.backend.be.smax_sum":                "20",
		"p.backend.be.h9_open_x":               "4",
		"p.backend.be.h9_rcvd":                 "8",
		"p.daemon.Nbthread":                    "3",
		"p.daemon.Nbthread.sum":                "3",
		"p.daemon.Nbthread.max":                "2",
	} {
		if got[path] != want {
			t.Errorf("%s = %q, want %q", path, got[path], want)
		}
	}
	if v := got["p.backend.be.scur.stddev"]; !strings.HasPrefix(v, "3.0956") {
		t.Errorf("stddev of 1 2 4 8 = %q, want 3.0956…", v)
	}
	for _, p := range []string{"p.backend.be.h9_rcvd.sum", "p.backend.be.server.s1.qtime", "p.backend.be.scur.max", "p.daemon.Uptime", "p.daemon.Name"} {
		if v, ok := got[p]; ok {
			t.Errorf("%s written (%s)", p, v)
		}
	}
}

// TestAllMetricsOddInput: unknown columns (static ones are left out, module counters after
// `-` natured by name), text in numeric cells, quoted cells, short rows, duplicate column
// names, a type no row type has, excluded frontends and backends: nothing crashes, and the
// rest is aggregated.
func TestAllMetricsOddInput(t *testing.T) {
	stat := "# pxname,svname,scur,smax,future_col,status,type,stot,scur,-,x1_open_conns,x1_total,\n" +
		"fe,FRONTEND,1,4,77,OPEN,0,10,99,-,2,5,\n" +
		"fe,FRONTEND,1,n/a,77,OPEN,0,1e2,,-,1,\n" + // a second row of one frontend, short
		"\"fe,q\",FRONTEND,\"3\",2,,OPEN,0,5,,-,0,0,\n" +
		"fe,sock-1,1,2,,OPEN,3,4,,-,,,\n" +
		"ex,FRONTEND,1,1,,OPEN,0,1,,-,1,1,\n" +
		"exb,BACKEND,1,1,,UP,1,1,,-,1,1,\n" +
		"be,BACKEND,2,2,,UP,1,2,,-,,,\n" +
		"be,s.1,2,2,,UP,2,2,,-,,,\n" +
		"zz,odd,2,2,,UP,7,2,,-,,,\n"
	exclFe := filepath.Join(t.TempDir(), "fe.txt")
	exclBe := filepath.Join(t.TempDir(), "be.txt")
	os.WriteFile(exclFe, []byte("ex\n"), 0o644)
	os.WriteFile(exclBe, []byte("exb\n"), 0o644)
	dir := writeSnapshot(t, map[string]string{"a_stat": stat, "b_stat": stat,
		"a_info": "Name: HAProxy\nCurrConns: x\nJobs: 2.5\nPid: 7\nProcess_num: 1\nSomeNewKey: 3\nCumConns: 4\n"})
	r := run(t, dir, 1700000000, Options{Prefix: "p", AllMetrics: true, ExcludeFrontends: exclFe, ExcludeBackends: exclBe,
		FrontendMetrics: []string{"bin"}, BackendMetrics: []string{"bin"}, ServerMetrics: []string{"bin"}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := paths(r.lines)
	for path, want := range map[string]string{
		"p.frontend.fe.scur":                 "4", // the first scur column, 2 rows × 2 files
		"p.frontend.fe.smax":                 "4", // n/a is no number
		"p.frontend.fe.smax_sum":             "8",
		"p.frontend.fe.stot":                 "220.0",
		"p.frontend.fe.x1_open_conns":        "6",
		"p.frontend.fe.x1_total":             "10",
		"p.frontend.fe,q.scur":               "6",
		"p.frontend.fe.listener.sock-1.stot": "8",
		"p.backend.be.scur":                  "4",
		"p.backend.be.server.s_1.smax":       "2",
		"p.backend.be.server.s_1.smax_sum":   "4",
		"p.daemon.Jobs":                      "2.5",
	} {
		if got[path] != want {
			t.Errorf("%s = %q, want %q", path, got[path], want)
		}
	}
	for path := range got {
		for _, bad := range []string{"future_col", ".status", ".type", ".ex.", ".exb.", "zz", "CurrConns", "Pid", "Process_num", "SomeNewKey", "Name", "CumConns_"} {
			if strings.Contains(path, bad) && !strings.Contains(path, ".haproxystats.") {
				t.Errorf("written: %s %s", path, got[path])
			}
		}
	}
}

// TestAllMetricsLongLines: an all-metrics line longer than max-line-length is left out and
// counted like any other (the module counter names here are long), never written.
func TestAllMetricsLongLines(t *testing.T) {
	long := strings.Repeat("m", 200)
	stat := "# pxname,svname,scur,type,-,x_" + long + ",\n" +
		"fe,FRONTEND,1,0,-,5,\n" +
		strings.Repeat("b", 250) + ",BACKEND,1,1,-,5,\n"
	dir := writeSnapshot(t, map[string]string{"a_stat": stat})
	r := run(t, dir, 1700000000, Options{Prefix: "p", AllMetrics: true, MaxLineLength: 300})
	var tooLong *LinesTooLongError
	if !errors.As(r.err, &tooLong) {
		t.Fatalf("err = %v, want *LinesTooLongError", r.err)
	}
	for _, l := range r.lines {
		if n := len(l.String()); n > 300 {
			t.Errorf("line of %d bytes written: %.80s…", n, l)
		}
	}
	got := paths(r.lines)
	if got["p.frontend.fe.scur"] != "1" || got["p.frontend.fe.x_"+long] != "5" {
		t.Errorf("short lines missing: %v", got)
	}
	if r.stats.LongLines != 1 {
		t.Errorf("LongLines = %d, want 1 (the backend's module counter)", r.stats.LongLines)
	}
}

// TestAllMetricsReusedProcessor: a Processor that has seen other snapshots (its row caches,
// interned entities and fields) writes what a fresh one writes, when rows move, names change,
// a file goes and exclusions change between snapshots.
func TestAllMetricsReusedProcessor(t *testing.T) {
	first := captureSnapshot(t)
	stat1 := readFile(t, filepath.Join(first, "admin1.sock_stat"))
	stat2 := readFile(t, filepath.Join(first, "admin2.sock_stat"))
	info := readFile(t, filepath.Join(first, "admin1.sock_info"))
	lines := strings.Split(strings.TrimRight(stat1, "\n"), "\n")
	swapped := append([]string{lines[0]}, lines[1:]...)
	swapped[2], swapped[5] = swapped[5], swapped[2]
	renamed := strings.ReplaceAll(stat2, "be_app,app2,", "be_app,app2b,")
	excl := filepath.Join(t.TempDir(), "excl")
	os.WriteFile(excl, nil, 0o644)
	snapshots := []map[string]string{
		{"admin1.sock_stat": strings.Join(swapped, "\n") + "\n", "admin2.sock_stat": renamed, "admin1.sock_info": info},
		{"admin2.sock_stat": stat1, "admin1.sock_info": info},
		{"admin1.sock_stat": stat1, "admin2.sock_stat": stat2},
	}
	opts := Options{Prefix: prefixVM, AllMetrics: true, ExcludeBackends: excl,
		AllMetricsAggregate: aggregate.MustRules([][2]string{{"*", "max"}})}
	reused := NewProcessor(opts, nil)
	for round := range 2 {
		for i, files := range snapshots {
			if round == 1 && i == 2 {
				os.WriteFile(excl, []byte("be_app\n"), 0o644)
			}
			dir := writeSnapshot(t, files)
			want := run(t, dir, 1700000000, opts)
			got := runWith(t, reused, dir, 1700000000, nil)
			if want.err != nil || got.err != nil {
				t.Fatal(want.err, got.err)
			}
			w, g := paths(want.lines), paths(got.lines)
			for path, v := range w {
				if !isTiming(path) && g[path] != v {
					t.Errorf("round %d snapshot %d: %s = %q, fresh processor %q", round, i, path, g[path], v)
				}
			}
			if len(w) != len(g) {
				t.Errorf("round %d snapshot %d: %d lines, fresh processor %d", round, i, len(g), len(w))
			}
		}
	}
}

// TestAllMetricsMetricFilters: metric-include/-exclude apply to the all-metrics lines by
// their last component as written (scur_sum, scur_max, qtime.p99): the lines dropped are
// exactly those matching, every other line is unchanged.
func TestAllMetricsMetricFilters(t *testing.T) {
	dir := captureSnapshot(t)
	base := Options{Prefix: prefixVM, AllMetrics: true,
		AllMetricsAggregate: aggregate.MustRules([][2]string{{"server.*time", "p99"}})}
	all := run(t, dir, 1700000000, base)
	filtered := base
	exclude := regexp.MustCompile(`(_sum|_max|\.p99)$`)
	filtered.Filters = Filters{MetricExclude: exclude}
	got := run(t, dir, 1700000000, filtered)
	if all.err != nil || got.err != nil {
		t.Fatal(all.err, got.err)
	}
	var want []gline
	dropped := 0
	for _, l := range all.lines {
		last := l.path[strings.LastIndexByte(l.path, '.')+1:]
		if strings.HasSuffix(l.path, ".p99") {
			last = "x.p99" // the function's line: <field>.<fn>
		}
		if exclude.MatchString(last) {
			dropped++
			continue
		}
		want = append(want, l)
	}
	if dropped < 50 {
		t.Fatalf("only %d lines matched the exclude: the test proves nothing", dropped)
	}
	// the Metrics* self-metrics count the lines written
	strip := func(ls []gline) []gline {
		var out []gline
		for _, l := range ls {
			if !strings.Contains(l.path, ".haproxystats.Metrics") {
				out = append(out, l)
			}
		}
		return out
	}
	compareMultiset(t, strip(want), strip(got.lines))
}
