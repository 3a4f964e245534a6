package haproxy

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
)

const (
	goldenA  = "testdata/golden/A-real-default/input/1795312594"
	tsA      = 1795312594
	prefixVM = "loadbalancers.vm.haproxy"
)

func optsA() Options { return Options{Prefix: prefixVM} }

func TestPercentileIndexTable(t *testing.T) {
	// haproxystats.md §5.2.1, verified against numpy 1.24 "nearest"
	table := map[int][5]int{
		2:   {0, 0, 1, 1, 1},
		3:   {0, 1, 2, 2, 2},
		4:   {1, 2, 2, 3, 3},
		5:   {1, 2, 3, 4, 4},
		6:   {1, 2, 4, 5, 5},
		7:   {2, 3, 4, 6, 6},
		8:   {2, 4, 5, 7, 7},
		9:   {2, 4, 6, 8, 8},
		10:  {2, 4, 7, 9, 9},
		11:  {2, 5, 8, 10, 10},
		12:  {3, 6, 8, 10, 11},
		16:  {4, 8, 11, 14, 15},
		100: {25, 50, 74, 94, 98},
	}
	for n, want := range table {
		for i, pc := range percentiles {
			if got := percentileIndex(pc.q, n); got != want[i] {
				t.Errorf("n=%d %s: index %d, want %d", n, pc.name, got, want[i])
			}
		}
	}
}

func TestStdDev(t *testing.T) {
	cases := []struct {
		x    []int64
		want string
	}{
		{[]int64{3, 12, 25, 0}, "11.224972160321824"}, // golden C
		{[]int64{35, 24}, "7.7781745930520225"},       // golden S
		{[]int64{0, 0, 0, 0}, "0.0"},                  // golden A
	}
	for _, c := range cases {
		if got := string(metric.AppendFloat(nil, sampleStdDev(c.x))); got != c.want {
			t.Errorf("std %v = %s, want %s", c.x, got, c.want)
		}
	}
}

func TestPercentage(t *testing.T) {
	cases := []struct{ v, l, want int64 }{
		{29, 100, 29}, // multiply first: 29/100·100 would be 28.999… → 28
		{39, 1200, 3}, // golden C aggregate
		{13, 300, 4}, {15, 300, 5}, {11, 300, 3}, {0, 300, 0},
		{5, 0, 0}, // limit 0
		{1, 3, 33}, {2, 3, 66},
	}
	for _, c := range cases {
		if got := percentage(c.v, c.l); got != c.want {
			t.Errorf("percentage(%d, %d) = %d, want %d", c.v, c.l, got, c.want)
		}
	}
}

// writeSnapshot creates <tmp>/<ts>/ with the given files.
func writeSnapshot(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editInfo returns a `show info` reply of golden A with the given keys set ("" deletes).
func editInfo(t *testing.T, file string, set map[string]string) string {
	var out []string
	for _, line := range strings.Split(readFile(t, filepath.Join(goldenA, file)), "\n") {
		key, _, _ := strings.Cut(line, ": ")
		if v, ok := set[key]; ok {
			if v == "" {
				continue
			}
			line = key + ": " + v
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func paths(lines []gline) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		m[l.path] = l.value
	}
	return m
}

func TestDaemonPartialKeys(t *testing.T) {
	dir := writeSnapshot(t, map[string]string{
		"a.sock_info": editInfo(t, "admin1.sock_info", map[string]string{"Process_num": "1", "Idle_pct": "90", "CurrConns": "30", "Maxconn": "100"}),
		"b.sock_info": editInfo(t, "admin2.sock_info", map[string]string{"Process_num": "2", "Idle_pct": "", "CurrConns": "", "Maxconn": "100"}),
		"c.sock_info": editInfo(t, "admin3.sock_info", map[string]string{"Process_num": "3", "Idle_pct": "70", "CurrConns": "20", "Maxconn": "100"}),
	})
	opts := Options{Prefix: "p", PerProcessMetrics: true, CalculatePercentages: true}
	got := run(t, dir, 1700000000, opts)
	if got.err != nil {
		t.Fatal(got.err)
	}
	m := paths(got.lines)
	want := map[string]string{
		"p.daemon.CurrConns":                "50.0", // over a and c
		"p.daemon.Idle_pct":                 "80.0", // mean over a and c
		"p.daemon.Maxconn":                  "300.0",
		"p.daemon.ConnPercentage":           "16", // 100·50/300
		"p.daemon.25PercentileCpuUsagePct":  "10", // CpuUsagePct of a and c: 10, 30
		"p.daemon.50PercentileCpuUsagePct":  "10",
		"p.daemon.99PercentileCpuUsagePct":  "30",
		"p.daemon.StdCpuUsagePct":           "14.142135623730951",
		"p.daemon.process.1.CurrConns":      "30",
		"p.daemon.process.1.CpuUsagePct":    "10",
		"p.daemon.process.3.ConnPercentage": "20",
		"p.daemon.process.1.ConnPercentage": "30",
		"p.daemon.process.2.Maxconn":        "100",
		// 1 + 35 sums + 2 means + 6 + 4 + 3 × (35 + 1 + 2) + 4 × 3: keys missing in some
		// replies are counted like upstream counted cells
		"p.haproxystats.MetricsHAProxy": "174",
	}
	for path, v := range want {
		if m[path] != v {
			t.Errorf("%s = %q, want %q", path, m[path], v)
		}
	}
	for _, absent := range []string{"p.daemon.process.2.CurrConns", "p.daemon.process.2.CpuUsagePct",
		"p.daemon.process.2.Idle_pct", "p.daemon.process.2.ConnPercentage"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s emitted for a reply without the key", absent)
		}
	}
	for _, key := range []string{"metric=CurrConns", "metric=Idle_pct"} {
		if !strings.Contains(got.log, key) || !strings.Contains(got.log, "missing_from=b.sock_info") {
			t.Errorf("no log line for %s missing from b.sock_info:\n%s", key, got.log)
		}
	}
}

func TestProcessNumCollision(t *testing.T) {
	// HAProxy ≥ 2.5: every reply says Process_num 1 (golden A); per-process paths use the
	// socket name instead, so they stay distinct and stable.
	opts := optsA()
	opts.PerProcessMetrics = true
	got := run(t, goldenA, tsA, opts)
	if got.err != nil {
		t.Fatal(got.err)
	}
	m := paths(got.lines)
	for i := 1; i <= 4; i++ {
		path := fmt.Sprintf("%s.daemon.process.admin%d_sock.Tasks", prefixVM, i)
		if _, ok := m[path]; !ok {
			t.Errorf("missing %s", path)
		}
	}
	if _, ok := m[prefixVM+".daemon.process.1.Tasks"]; ok {
		t.Error("colliding Process_num used in a path")
	}
	seen := map[string]int{}
	for _, l := range got.lines {
		seen[l.path]++
		if seen[l.path] > 1 {
			t.Fatalf("path %s emitted twice", l.path)
		}
	}
	// A reply without Process_num also falls back to names.
	dir := writeSnapshot(t, map[string]string{
		"x.sock_info": editInfo(t, "admin1.sock_info", map[string]string{"Process_num": "1"}),
		"y.sock_info": editInfo(t, "admin2.sock_info", map[string]string{"Process_num": ""}),
	})
	m = paths(run(t, dir, 1, Options{Prefix: "p", PerProcessMetrics: true}).lines)
	if _, ok := m["p.daemon.process.y_sock.CumConns"]; !ok {
		t.Errorf("want socket-name paths when a Process_num is missing: %v", mapsKeys(m))
	}
}

func mapsKeys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

// statCSV renders rows as `show stat` CSV: every field followed by a comma, quoted only when
// needed, as HAProxy does.
func statCSV(rows [][]string) string {
	var sb strings.Builder
	for _, r := range rows {
		for _, f := range r {
			if strings.ContainsAny(f, "\",\n\r") {
				f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
			}
			sb.WriteString(f)
			sb.WriteByte(',')
		}
		sb.WriteByte('\n')
	}
	sb.WriteByte('\n')
	return sb.String()
}

// readStat parses a golden stat file into rows (header first, "# " kept), without the
// trailing empty field.
func readStat(t *testing.T, path string) [][]string {
	t.Helper()
	r := csv.NewReader(strings.NewReader(readFile(t, path)))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i] = rows[i][:len(rows[i])-1]
	}
	return rows
}

// transformA copies golden A with every *_stat file rewritten by fn (rows include the header).
func transformA(t *testing.T, fn func(rows [][]string) string) string {
	files := map[string]string{}
	entries, err := os.ReadDir(goldenA)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		path := filepath.Join(goldenA, e.Name())
		if strings.HasSuffix(e.Name(), "_stat") {
			files[e.Name()] = fn(readStat(t, path))
		} else {
			files[e.Name()] = readFile(t, path)
		}
	}
	return writeSnapshot(t, files)
}

// outputA is statspipe's output for golden A (checked against the reference by TestGolden),
// with the snapshot timestamp replaced.
func outputA(t *testing.T, opts Options, ts string) []gline {
	got := run(t, goldenA, tsA, opts)
	if got.err != nil {
		t.Fatal(got.err)
	}
	for i := range got.lines {
		got.lines[i].ts = ts
	}
	return got.lines
}

func column(rows [][]string, name string) int {
	for i, h := range rows[0] {
		if strings.TrimPrefix(h, "# ") == name {
			return i
		}
	}
	return -1
}

func TestHeaderVariants(t *testing.T) {
	ref := outputA(t, optsA(), "1700000000")
	t.Run("1.6-style", func(t *testing.T) {
		// HAProxy 1.6 has no `-` column, no module counters and fewer static columns: cut
		// every row after `intercepted`. dcon and dses do not exist there, so they are not
		// emitted (and not counted).
		dir := transformA(t, func(rows [][]string) string {
			n := column(rows, "intercepted") + 1
			for i := range rows {
				rows[i] = rows[i][:n]
			}
			return statCSV(rows)
		})
		got := run(t, dir, 1700000000, optsA())
		want := slices.DeleteFunc(slices.Clone(ref), func(l gline) bool {
			return strings.HasSuffix(l.path, ".dcon") || strings.HasSuffix(l.path, ".dses")
		})
		setValue(t, want, prefixVM+".haproxystats.MetricsFrontend", strconv.Itoa(1+2*29))
		compareMultiset(t, want, got.lines)
		compareOrdered(t, want, got.lines)
	})
	t.Run("3.x-style", func(t *testing.T) {
		// HAProxy 3.x adds static columns before `-` (proto, priv_idle_cur, reqbin, …) and
		// other module counters after it; columns are found by name.
		dir := transformA(t, func(rows [][]string) string {
			dash := column(rows, "-")
			extra := []string{"srid", "sess_other", "h1sess", "h2sess", "h3sess", "req_other", "h1req",
				"h2req", "h3req", "proto", "priv_idle_cur", "reqbin", "reqbout", "resbin", "resbout", "cache_hint_hits"}
			mods := []string{"quic_rxbuf_full", "quic_dropped_pkt", "h3_data", "h3_headers"}
			for i := range rows {
				vals, mv := make([]string, len(extra)), make([]string, len(mods))
				for j := range vals {
					vals[j] = strconv.Itoa(1000 + j)
				}
				for j := range mv {
					mv[j] = strconv.Itoa(7 + j)
				}
				if i == 0 {
					vals, mv = extra, mods
				}
				rows[i] = slices.Concat(rows[i][:dash], vals, rows[i][dash:], mv)
			}
			return statCSV(rows)
		})
		got := run(t, dir, 1700000000, optsA())
		compareMultiset(t, ref, got.lines)
		compareOrdered(t, ref, got.lines)
	})
	t.Run("shuffled-columns", func(t *testing.T) {
		// The same columns in another order (reversed, "# pxname" first): parsing is by
		// header name, never by position.
		dir := transformA(t, func(rows [][]string) string {
			for i := range rows {
				r := slices.Clone(rows[i][1:])
				slices.Reverse(r)
				rows[i] = append([]string{rows[i][0]}, r...)
			}
			return statCSV(rows)
		})
		got := run(t, dir, 1700000000, optsA())
		compareMultiset(t, ref, got.lines)
	})
	t.Run("quoted-fields", func(t *testing.T) {
		// RFC 4180: every field quoted, a field with a comma and doubled quotes, CRLF line
		// ends, a quoted field spanning lines.
		dir := transformA(t, func(rows [][]string) string {
			desc := column(rows, "check_desc")
			var sb strings.Builder
			for i, r := range rows {
				for j, f := range r {
					if i > 0 && j == desc && f != "" {
						f = "Layer7 \"check\", passed\nsecond line"
					}
					sb.WriteString(`"` + strings.ReplaceAll(f, `"`, `""`) + `",`)
				}
				sb.WriteString("\r\n")
			}
			return sb.String()
		})
		got := run(t, dir, 1700000000, optsA())
		if got.stats.FilesSkipped != 0 || len(got.stats.Problems) != 0 {
			t.Fatalf("problems: %v", got.stats.Problems)
		}
		compareMultiset(t, ref, got.lines)
		compareOrdered(t, ref, got.lines)
	})
	t.Run("tiny-read-buffer", func(t *testing.T) {
		// Records straddling buffer refills and buffer growth give the same result.
		log, lb := newTestLogger()
		p := NewProcessor(optsA(), log)
		p.rd.buf = make([]byte, 7)
		got := runWith(t, p, goldenA, tsA, lb)
		compareMultiset(t, outputA(t, optsA(), strconv.Itoa(tsA)), got.lines)
	})
}

func TestSanitisedNames(t *testing.T) {
	header := []string{"# pxname", "svname", "scur", "bin", "type", "lbtot", "weight"}
	rows := [][]string{header,
		{"fe with space", "FRONTEND", "1", "10", "0", "", ""},
		{"fe\nnew line", "FRONTEND", "2", "20", "0", "", ""},
		{"fe\ttab\x01ctl", "FRONTEND", "3", "30", "0", "", ""},
		{"fe\xffbad", "FRONTEND", "4", "40", "0", "", ""},
		{"be 1", "srv\n2 3", "5", "50", "2", "1", "1"},
		{"be 1", "BACKEND", "6", "60", "1", "1", "1"},
		{"fe.dot", "FRONTEND", "7", "70", "0", "", ""},
		{"fe_dot", "FRONTEND", "8", "80", "0", "", ""}, // sanitises to the same name: one entity
	}
	dir := writeSnapshot(t, map[string]string{"a.sock_stat": statCSV(rows)})
	got := run(t, dir, 1700000000, Options{Prefix: "ns with space\n.x"})
	if got.err != nil {
		t.Fatal(got.err)
	}
	// parseLines already failed the test if any line had other than 3 fields
	m := paths(got.lines)
	for path, v := range map[string]string{
		"ns_with_space_.x.frontend.fe_with_space.bin":      "10",
		"ns_with_space_.x.frontend.fe_new_line.bin":        "20",
		"ns_with_space_.x.frontend.fe_tab_ctl.bin":         "30",
		"ns_with_space_.x.frontend.fe_bad.bin":             "40",
		"ns_with_space_.x.frontend.fe_dot.bin":             "150",
		"ns_with_space_.x.backend.be_1.bin":                "60",
		"ns_with_space_.x.backend.be_1.TotalServers":       "1",
		"ns_with_space_.x.backend.be_1.server.srv_2_3.bin": "50",
		// only scur and bin of the frontend list exist in this header: 1 + 5 × 2
		"ns_with_space_.x.haproxystats.MetricsFrontend": "11",
	} {
		if m[path] != v {
			t.Errorf("%s = %q, want %q", path, m[path], v)
		}
	}
	if n := strings.Count(string(got.raw), "\n"); n != len(got.lines) {
		t.Errorf("%d newlines for %d lines", n, len(got.lines))
	}
}

func TestGroups(t *testing.T) {
	groups := func(kv ...string) []Group {
		var g []Group
		for i := 0; i < len(kv); i += 2 {
			g = append(g, Group{Name: kv[i], Pattern: regexp.MustCompile(kv[i+1])})
		}
		return g
	}
	base := Options{
		Prefix:            prefixVM,
		AggrServerMetrics: true,
		GroupNamespace:    "flavor",
		FrontendGroups:    groups("main", "main"),
		BackendGroups:     groups("app", "^be_app$", "dotted", "dotted", "never", "app"),
		ServerGroups:      groups("apps", "^app"),
	}
	ref := outputA(t, Options{Prefix: prefixVM, AggrServerMetrics: true}, strconv.Itoa(tsA))
	groupOf := func(path string) string {
		rest := strings.TrimPrefix(path, prefixVM+".")
		switch {
		case strings.HasPrefix(rest, "frontend.fe_main."):
			return "main"
		case strings.HasPrefix(rest, "backend.be_app."):
			return "app" // first match wins: "never" also matches be_app
		case strings.HasPrefix(rest, "backend.be_dotted_name."):
			return "dotted"
		case strings.HasPrefix(rest, "server.app"):
			return "apps"
		}
		return ""
	}
	grouped := func(l gline) gline {
		l.path = prefixVM + ".flavor." + groupOf(l.path) + "." + strings.TrimPrefix(l.path, prefixVM+".")
		return l
	}
	t.Run("double-writes", func(t *testing.T) {
		opts := base
		opts.DoubleWrites = true
		var want []gline
		for _, l := range ref {
			if groupOf(l.path) != "" {
				want = append(want, grouped(l)) // the group path comes first
			}
			want = append(want, l)
		}
		got := run(t, goldenA, tsA, opts)
		compareMultiset(t, want, got.lines)
		compareOrdered(t, want, got.lines)
	})
	t.Run("single-writes", func(t *testing.T) {
		opts := base
		var want []gline
		for _, l := range ref {
			if groupOf(l.path) != "" {
				l = grouped(l)
			}
			want = append(want, l)
		}
		got := run(t, goldenA, tsA, opts)
		compareMultiset(t, want, got.lines)
		compareOrdered(t, want, got.lines)
		for _, l := range got.lines {
			if strings.Contains(l.path, ".daemon.") || strings.Contains(l.path, ".haproxystats.") {
				if strings.Contains(l.path, ".flavor.") {
					t.Errorf("daemon and self-metrics are never grouped: %s", l.path)
				}
			}
		}
	})
}

func TestExcludes(t *testing.T) {
	tmp := t.TempDir()
	feFile, beFile := filepath.Join(tmp, "fe"), filepath.Join(tmp, "be")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(feFile, "# frontends we do not graph\n\n   fe.dotted.name  \n  # fe_main\n")
	write(beFile, "be_app\n")
	opts := Options{Prefix: prefixVM, AggrServerMetrics: true, ExcludeFrontends: feFile, ExcludeBackends: beFile}
	log, lb := newTestLogger()
	p := NewProcessor(opts, log)
	ref := outputA(t, Options{Prefix: prefixVM, AggrServerMetrics: true}, strconv.Itoa(tsA))

	got := runWith(t, p, goldenA, tsA, lb)
	want := slices.DeleteFunc(slices.Clone(ref), func(l gline) bool {
		return strings.Contains(l.path, ".frontend.fe_dotted_name.") || strings.Contains(l.path, ".backend.be_app.")
	})
	// exclude-backends drops be_app's backend lines, its TotalServers and its servers, but
	// not the server.* aggregates (upstream behaviour). Counts follow.
	setValue(t, want, prefixVM+".haproxystats.MetricsFrontend", strconv.Itoa(1+31))
	setValue(t, want, prefixVM+".haproxystats.MetricsBackend", strconv.Itoa(1+3*40))
	setValue(t, want, prefixVM+".haproxystats.MetricsServer", strconv.Itoa(1+2*32+2+5*32))
	compareMultiset(t, want, got.lines)
	if _, ok := paths(got.lines)[prefixVM+".server.app1.lbtot"]; !ok {
		t.Error("aggregated server.app1 must ignore exclude-backends")
	}

	// The files are re-read for every snapshot.
	write(feFile, "")
	write(beFile, "be.dotted.name\n")
	got = runWith(t, p, goldenA, tsA, lb)
	want = slices.DeleteFunc(slices.Clone(ref), func(l gline) bool {
		return strings.Contains(l.path, ".backend.be_dotted_name.")
	})
	setValue(t, want, prefixVM+".haproxystats.MetricsBackend", strconv.Itoa(1+3*40))
	setValue(t, want, prefixVM+".haproxystats.MetricsServer", strconv.Itoa(1+4*32+2+5*32))
	compareMultiset(t, want, got.lines)

	// An unreadable file is logged and excludes nothing.
	write(beFile, "")
	if err := os.Remove(feFile); err != nil {
		t.Fatal(err)
	}
	got = runWith(t, p, goldenA, tsA, lb)
	compareMultiset(t, ref, got.lines)
	if !strings.Contains(got.log, "cannot read exclude file") || !strings.Contains(got.log, feFile) {
		t.Errorf("missing exclude file not logged:\n%s", got.log)
	}
}

func TestAggrServerMetrics(t *testing.T) {
	// A's server names are unique across backends, so each server.<srv> aggregate equals the
	// backend.<be>.server.<srv> lines; server-metrics is ignored for the aggregates.
	full := paths(outputA(t, optsA(), "1"))
	opts := Options{Prefix: prefixVM, AggrServerMetrics: true, ServerMetrics: []string{"lbtot"}}
	got := run(t, goldenA, tsA, opts)
	m := paths(got.lines)
	servers := map[string]string{"app1": "be_app", "app2": "be_app", "app_dead": "be_app", "web_1": "be_dotted_name", "s1": "be_onlyodd"}
	n := 0
	for srv, be := range servers {
		for _, name := range slices.Concat(ServerMetrics, ServerAvgMetrics, ServerAvgTimeMetrics) {
			want, ok := full[prefixVM+".backend."+be+".server."+srv+"."+name]
			got, gok := m[prefixVM+".server."+srv+"."+name]
			if ok != gok || want != got {
				t.Errorf("server.%s.%s = %q (%v), want %q (%v)", srv, name, got, gok, want, ok)
			}
			n++
		}
		if _, ok := m[prefixVM+".backend."+be+".server."+srv+".bin"]; ok {
			t.Errorf("server-metrics = lbtot still emitted bin for %s", srv)
		}
	}
	// 1 + 5 entities × (1 + 2 + 4) + 3 TotalServers + 5 aggregates × 32
	if v := m[prefixVM+".haproxystats.MetricsServer"]; v != "199" {
		t.Errorf("MetricsServer = %s, want 199", v)
	}

	// The same server name in several backends is one aggregate (golden S: srv00.example in
	// three backends).
	sdir, sts := snapshotDir(t, "testdata/golden/S-synthetic-small/input")
	sm := paths(run(t, sdir, sts, Options{Prefix: "p", AggrServerMetrics: true}).lines)
	var sum float64
	for _, be := range []string{"be_0000_example_com", "be_0001_example_com", "be_0002_example_com"} {
		v, err := strconv.ParseFloat(sm["p.backend."+be+".server.srv00_example.bin"], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if got := sm["p.server.srv00_example.bin"]; got != strconv.FormatFloat(sum, 'f', -1, 64) {
		t.Errorf("server.srv00_example.bin = %s, want %v", got, sum)
	}
}

func TestUserListsWithAveragedNames(t *testing.T) {
	opts := Options{Prefix: "p", BackendMetrics: []string{"bin", "act", "bin"}, ServerMetrics: []string{"weight", "lbtot"}}
	got := run(t, goldenA, tsA, opts)
	var be []string
	for _, l := range got.lines {
		if strings.HasPrefix(l.path, "p.backend.be_app.") && !strings.Contains(l.path, ".server.") && !strings.HasSuffix(l.path, "TotalServers") {
			be = append(be, strings.TrimPrefix(l.path, "p.backend.be_app."))
		}
	}
	if want := []string{"bin", "act", "bck", "weight", "rtime", "ctime", "qtime", "ttime"}; !slices.Equal(be, want) {
		t.Errorf("backend columns %v, want %v", be, want)
	}
	m := paths(got.lines)
	if m["p.backend.be_app.act"] != "2.0" || m["p.backend.be_app.server.app1.weight"] != "100.0" {
		t.Errorf("averaged names must keep their averaged meaning: act %s weight %s",
			m["p.backend.be_app.act"], m["p.backend.be_app.server.app1.weight"])
	}
}

func TestBadCellsAreCapped(t *testing.T) {
	header := []string{"# pxname", "svname", "scur", "bin", "type"}
	rows := [][]string{header}
	for i := 0; i < 12; i++ {
		rows = append(rows, []string{"fe", "FRONTEND", "x" + strconv.Itoa(i), "1", "0"})
	}
	rows = append(rows, []string{"fe", "FRONTEND", "1.5", "2", "0"})
	dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(rows)})
	got := run(t, dir, 1, Options{Prefix: "p"})
	if n := strings.Count(got.log, "non-numeric cell treated as empty"); n != cellsLoggedPerFile {
		t.Errorf("%d cell problems logged, want %d", n, cellsLoggedPerFile)
	}
	if !strings.Contains(got.log, "more non-numeric cells treated as empty") || !strings.Contains(got.log, "count=7") {
		t.Errorf("no summary of the other bad cells:\n%s", got.log)
	}
	if !strings.Contains(got.log, "line=2 column=scur") {
		t.Errorf("the first bad cell is not located:\n%s", got.log)
	}
	m := paths(got.lines)
	if m["p.frontend.fe.scur"] != "1.5" || m["p.frontend.fe.bin"] != "14.0" {
		t.Errorf("scur %s bin %s", m["p.frontend.fe.scur"], m["p.frontend.fe.bin"])
	}
}

func TestChunksAndFlushErrors(t *testing.T) {
	opts := optsA()
	opts.ChunkSize = 1000
	got := run(t, goldenA, tsA, opts)
	if len(got.batches) < 8 {
		t.Fatalf("only %d chunks of ~1000 bytes", len(got.batches))
	}
	for _, b := range got.batches {
		// a chunk is cut after the entity (≤ 40 lines here) that fills it
		if len(b.Data) > opts.ChunkSize+40*100 {
			t.Errorf("chunk %d holds %d bytes", b.Seq, len(b.Data))
		}
	}
	compareOrdered(t, outputA(t, optsA(), strconv.Itoa(tsA)), got.lines)
	last := got.lines[len(got.lines)-1]
	if !strings.HasSuffix(last.path, ".haproxystats.TotalWallClockTime") {
		t.Errorf("last line is %s, want TotalWallClockTime", last.path)
	}
	if got.stats.FilesUsed != 8 || got.stats.FilesSkipped != 0 || got.stats.Lines != len(got.lines) {
		t.Errorf("stats %+v", got.stats)
	}

	stop := errors.New("dispatcher closed")
	calls := 0
	p := NewProcessor(opts, nil)
	_, err := p.Process(goldenA, tsA, func(*metric.Batch) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("err %v after %d flushes, want the flush error itself after 3", err, calls)
	}
	// The Processor is usable again afterwards.
	again := runWith(t, p, goldenA, tsA, nil)
	compareOrdered(t, outputA(t, optsA(), strconv.Itoa(tsA)), again.lines)
}

// Reusing one Processor across different snapshots gives the same output as a fresh one: the
// interned names and the per-file row caches must follow servers that appear, disappear or
// move between snapshots.
func TestProcessorReuse(t *testing.T) {
	opts := optsA()
	opts.AggrServerMetrics = true
	p := NewProcessor(opts, nil)
	sdir, sts := snapshotDir(t, "testdata/golden/S-synthetic-small/input")
	reversed := transformA(t, func(rows [][]string) string {
		body := slices.Clone(rows[1:])
		slices.Reverse(body)
		return statCSV(append([][]string{rows[0]}, body...))
	})
	dropped := transformA(t, func(rows [][]string) string {
		return statCSV(slices.DeleteFunc(rows, func(r []string) bool { return r[1] == "app2" }))
	})
	for i := 0; i < 3; i++ {
		for _, dir := range []string{goldenA, sdir, reversed, dropped, goldenA} {
			ts := int64(tsA)
			if dir == sdir {
				ts = sts
			}
			got := runWith(t, p, dir, ts, nil)
			compareOrdered(t, run(t, dir, ts, opts).lines, got.lines)
		}
	}
}

// Output order depends on names only, not on the order of rows or files: reversing every
// stat file's rows (backends then appear in reverse name order) changes nothing.
func TestOrderIndependentOfInput(t *testing.T) {
	opts := optsA()
	opts.AggrServerMetrics = true
	dir := transformA(t, func(rows [][]string) string {
		body := slices.Clone(rows[1:])
		slices.Reverse(body)
		return statCSV(append([][]string{rows[0]}, body...))
	})
	got := run(t, dir, 1700000000, opts)
	want := outputA(t, opts, "1700000000")
	compareMultiset(t, want, got.lines)
	compareOrdered(t, want, got.lines)
}

// Every way a number cell can be written converts as strconv would (the fast paths handle 1 to
// 16 digits eight at a time, also at the end of a line); anything else is reported and 0.
func TestCellNumbers(t *testing.T) {
	cells := []string{"0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678",
		"123456789", "1234567890", "12345678901", "123456789012", "1234567890123",
		"12345678901234", "123456789012345", "1234567890123456", "12345678901234567",
		"123456789012345678", "1234567890123456789", "00000042", "0000000000000042",
		"-5", "-123456789012", "+9", "1.5", "2e3", " 8", "99999999", "100000000", "9999999999999999"}
	var sb strings.Builder
	sb.WriteString("# pxname,svname,type,scur,bin,\n")
	for i, c := range cells {
		// bin ends the line in every other row (no trailing comma): the 8-byte loads must
		// not read past the line
		fmt.Fprintf(&sb, "fe%02d,FRONTEND,0,1,%s", i, c)
		if i%2 == 0 {
			sb.WriteString(",")
		}
		sb.WriteString("\n")
	}
	sb.WriteString("bad,FRONTEND,0,1,12a4,\nbad2,FRONTEND,0,1,1234567a9012,\n")
	dir := writeSnapshot(t, map[string]string{"a_stat": sb.String()})
	for _, bufSize := range []int{7, readBufferSize} {
		log, lb := newTestLogger()
		p := NewProcessor(Options{Prefix: "p", FrontendMetrics: []string{"bin"}}, log)
		p.rd.buf = make([]byte, bufSize)
		m := paths(runWith(t, p, dir, 1, lb).lines)
		for i, c := range cells {
			want, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
			if err != nil {
				t.Fatal(err)
			}
			got, err := strconv.ParseFloat(m[fmt.Sprintf("p.frontend.fe%02d.bin", i)], 64)
			if err != nil || got != want {
				t.Errorf("cell %q: got %v (%v), want %v", c, got, err, want)
			}
		}
		if m["p.frontend.bad.bin"] != "0.0" || m["p.frontend.bad2.bin"] != "0.0" {
			t.Errorf("bad cells: %q %q", m["p.frontend.bad.bin"], m["p.frontend.bad2.bin"])
		}
		if !strings.Contains(lb.String(), `value="\"12a4\""`) {
			t.Errorf("bad cell not reported:\n%s", lb.String())
		}
	}
}

// A snapshot of a master-socket (stats-pull): each worker's <name>@<generation>_stat is one
// process like any *_stat file, <name>_proc is not data (no line, no warning), and per-process
// paths use the sanitised file name (Process_num is 1 in every worker).
func TestMasterSocketFiles(t *testing.T) {
	proc := "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
		"5784            master          1 [failed: 0]   0d00h12m29s     2.6.12-1+deb12u4\n# workers\n" +
		"20262           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n# old workers\n" +
		"5787            worker          1               0d00h12m29s     2.6.12-1+deb12u4\n# programs\n\n"
	master := writeSnapshot(t, map[string]string{
		"master.sock@0_info": readFile(t, filepath.Join(goldenA, "admin1.sock_info")),
		"master.sock@0_stat": readFile(t, filepath.Join(goldenA, "admin1.sock_stat")),
		"master.sock@1_info": readFile(t, filepath.Join(goldenA, "admin2.sock_info")),
		"master.sock@1_stat": readFile(t, filepath.Join(goldenA, "admin2.sock_stat")),
		"master.sock_proc":   proc,
	})
	plain := writeSnapshot(t, map[string]string{
		"admin1.sock_info": readFile(t, filepath.Join(goldenA, "admin1.sock_info")),
		"admin1.sock_stat": readFile(t, filepath.Join(goldenA, "admin1.sock_stat")),
		"admin2.sock_info": readFile(t, filepath.Join(goldenA, "admin2.sock_info")),
		"admin2.sock_stat": readFile(t, filepath.Join(goldenA, "admin2.sock_stat")),
	})
	opts := Options{Prefix: "p", PerProcessMetrics: true}
	got, want := run(t, master, 1700000000, opts), run(t, plain, 1700000000, opts)
	if got.err != nil || want.err != nil {
		t.Fatal(got.err, want.err)
	}
	if strings.Contains(got.log, "level=WARN") || strings.Contains(got.log, "level=ERROR") || strings.Contains(got.log, "_proc") {
		t.Errorf("log:\n%s", got.log)
	}
	rename := strings.NewReplacer(".process.admin1_sock.", ".process.master_sock@0.", ".process.admin2_sock.", ".process.master_sock@1.")
	m, w := paths(got.lines), map[string]string{}
	for _, l := range want.lines {
		if !isTiming(l.path) {
			w[rename.Replace(l.path)] = l.value
		}
	}
	for path, v := range w {
		if m[path] != v {
			t.Errorf("%s = %q, want %q (the same workers through plain sockets)", path, m[path], v)
		}
	}
	for path := range m {
		if _, ok := w[path]; !ok && !isTiming(path) {
			t.Errorf("unexpected %s", path)
		}
	}
	for _, path := range []string{"p.daemon.process.master_sock@0.Tasks", "p.daemon.process.master_sock@1.Tasks", "p.backend.be_app.stot"} {
		if _, ok := m[path]; !ok {
			t.Errorf("missing %s", path)
		}
	}
}
