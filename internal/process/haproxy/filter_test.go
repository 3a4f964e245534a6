package haproxy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// filterFiles returns the *_stat and *_info files of a four-process snapshot: golden A (real
// HAProxy 2.6) plus rows cloned from its rows to exercise the filters: frontends whose names
// sanitise alike ("x.y" and "x_y"), a backend to drop, servers in MAINT in every file or in
// some, servers whose names sanitise alike. mutate, if set, may edit each file's rows (index
// 0..3) before they are written.
func filterFiles(t *testing.T, mutate func(file int, rows [][]string) [][]string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for i := 1; i <= 4; i++ {
		name := "admin" + strconv.Itoa(i) + ".sock"
		rows := readStat(t, filepath.Join(goldenA, name+"_stat"))
		st := column(rows, "status")
		find := func(px, sv string) []string {
			for _, r := range rows[1:] {
				if r[0] == px && r[1] == sv {
					return r
				}
			}
			t.Fatalf("golden A has no row %s/%s", px, sv)
			return nil
		}
		fe, be, srv := find("fe_main", "FRONTEND"), find("be_app", "BACKEND"), find("be_app", "app1")
		clone := func(tmpl []string, px, sv, status string, bump int) []string {
			r := slices.Clone(tmpl)
			r[0], r[1] = px, sv
			if status != "" {
				r[st] = status
			}
			// distinct values per clone, so that a row counted in the wrong place shows
			for _, c := range []string{"stot", "bin", "bout", "scur"} {
				if k := column(rows, c); k >= 0 && r[k] != "" {
					v, _ := strconv.Atoi(r[k])
					r[k] = strconv.Itoa(v + bump*(i+1))
				}
			}
			return r
		}
		maintHere := "UP"
		if i == 2 {
			maintHere = "MAINT"
		}
		rows = append(rows,
			clone(fe, "fe_tmp1", "FRONTEND", "", 3),
			clone(fe, "x.y", "FRONTEND", "", 5),
			clone(fe, "x_y", "FRONTEND", "", 7),
			clone(srv, "be_old", "old1", "UP", 11),
			clone(srv, "be_old", "spare1", "MAINT (resolution)", 13),
			clone(be, "be_old", "BACKEND", "", 17),
			clone(srv, "be_pool", "w.1", "UP", 19),
			clone(srv, "be_pool", "w_1", "DRAIN", 23),
			clone(srv, "be_pool", "spare1", "MAINT", 29),
			clone(srv, "be_pool", "spare2", "MAINT (via be_pool/w.1)", 31),
			clone(srv, "be_pool", "flappy", maintHere, 37),
			clone(srv, "be_pool", "app1", "UP", 41),
			clone(be, "be_pool", "BACKEND", "", 43),
		)
		if mutate != nil {
			rows = mutate(i-1, rows)
		}
		files[name+"_stat"] = statCSV(rows)
		files[name+"_info"] = readFile(t, filepath.Join(goldenA, name+"_info"))
	}
	return files
}

// dropRows is the model of the filters: the rows they drop, by their raw names and status,
// written independently of filter.go.
func dropRows(files map[string]string, f Filters) map[string]string {
	match := func(inc, exc *regexp.Regexp, s string) bool {
		return (exc == nil || !exc.MatchString(s)) && (inc == nil || inc.MatchString(s))
	}
	out := map[string]string{}
	for name, text := range files {
		if !strings.HasSuffix(name, "_stat") {
			out[name] = text
			continue
		}
		var kept []string
		st := -1
		for n, line := range strings.Split(text, "\n") {
			cells := strings.Split(line, ",")
			if n == 0 {
				st = slices.Index(cells, "status")
				kept = append(kept, line)
				continue
			}
			if len(cells) < 2 || st < 0 || len(cells) <= st {
				kept = append(kept, line)
				continue
			}
			px, sv := cells[0], cells[1]
			switch sv {
			case "FRONTEND":
				if !match(f.FrontendInclude, f.FrontendExclude, px) {
					continue
				}
			case "BACKEND":
				if !match(f.BackendInclude, f.BackendExclude, px) {
					continue
				}
			default:
				if !match(f.BackendInclude, f.BackendExclude, px) ||
					!match(f.ServerInclude, f.ServerExclude, px+"/"+sv) ||
					f.SkipMaintServers && strings.HasPrefix(cells[st], "MAINT") {
					continue
				}
			}
			kept = append(kept, line)
		}
		out[name] = strings.Join(kept, "\n")
	}
	return out
}

var filterBase = Options{Prefix: "p", AggrServerMetrics: true, ServerStates: true, PerProcessMetrics: true, CalculatePercentages: true}

// TestFiltersDropRowsBeforeAggregation: for each option and combinations, the output equals
// the unfiltered output of the snapshot without the rows the filters drop (values compared
// as numbers: a dropped row with an empty cell may still make a column print as float),
// Metrics* counts, TotalServers, state counts and server.* aggregates included; and the
// second snapshot of the same Processor (row cache hits) gives the same lines.
func TestFiltersDropRowsBeforeAggregation(t *testing.T) {
	re := regexp.MustCompile
	files := filterFiles(t, nil)
	cases := []filterCase{
		{"none", Filters{}, nil, []string{"frontend.x_y.stot", "backend.be_pool.server.spare1.stot", "server.spare1.stot"}},
		{"frontend-include", Filters{FrontendInclude: re(`^fe`)},
			[]string{"frontend.x_y.stot"}, []string{"frontend.fe_main.stot", "frontend.fe_tmp1.stot", "frontend.fe_dotted_name.stot"}},
		{"frontend-exclude", Filters{FrontendExclude: re(`tmp|dotted`)},
			[]string{"frontend.fe_tmp1.stot", "frontend.fe_dotted_name.stot"}, []string{"frontend.fe_main.stot", "frontend.x_y.stot"}},
		// raw names: "x.y" is dropped, "x_y" (the same sanitised name) is kept alone
		{"frontend-exclude-raw", Filters{FrontendExclude: re(`^x\.y$`)}, nil, []string{"frontend.x_y.stot"}},
		{"frontend-both-exclude-wins", Filters{FrontendInclude: re(`^fe_`), FrontendExclude: re(`^fe_tmp`)},
			[]string{"frontend.fe_tmp1.stot", "frontend.x_y.stot"}, []string{"frontend.fe_main.stot"}},
		{"backend-include", Filters{BackendInclude: re(`app|pool`)},
			[]string{"backend.be_old.stot", "backend.be_old.server.old1.stot", "server.old1.stot", "backend.be_noservers.stot"},
			[]string{"backend.be_app.stot", "backend.be_pool.TotalServers", "server.app1.stot"}},
		{"backend-exclude", Filters{BackendExclude: re(`^be_old$`)},
			[]string{"backend.be_old.stot", "backend.be_old.TotalServers", "server.old1.stot"},
			[]string{"backend.be_app.stot", "server.spare1.stot"}},
		{"server-include", Filters{ServerInclude: re(`^be_pool/`)},
			[]string{"backend.be_app.server.app1.stot", "backend.be_app.TotalServers", "backend.be_old.server.old1.stot"},
			[]string{"backend.be_app.stot", "backend.be_pool.server.w_1.stot", "server.app1.stot"}},
		{"server-exclude", Filters{ServerExclude: re(`/spare`)},
			[]string{"backend.be_pool.server.spare1.stot", "backend.be_old.server.spare1.stot", "server.spare1.stot", "server.spare2.stot"},
			[]string{"backend.be_pool.server.flappy.stot", "backend.be_pool.TotalServers"}},
		{"server-exclude-raw", Filters{ServerExclude: re(`^be_pool/w\.1$`)}, nil, []string{"backend.be_pool.server.w_1.stot"}},
		{"server-both", Filters{ServerInclude: re(`^be_(app|pool)/`), ServerExclude: re(`/app`)},
			[]string{"backend.be_app.server.app1.stot", "backend.be_pool.server.app1.stot", "server.app1.stot", "backend.be_app.TotalServers"},
			[]string{"backend.be_pool.server.w_1.stot", "backend.be_app.stot"}},
		{"skip-maint", Filters{SkipMaintServers: true},
			[]string{"backend.be_pool.server.spare1.stot", "backend.be_pool.server.spare2.stot", "backend.be_old.server.spare1.stot",
				"server.spare1.stot", "server.spare2.stot"},
			[]string{"backend.be_pool.server.flappy.stot", "server.flappy.stot", "backend.be_pool.server.w_1.stot"}},
		{"everything", Filters{FrontendInclude: re(`.`), FrontendExclude: re(`^x`), BackendInclude: re(`^be_`),
			BackendExclude: re(`old`), ServerInclude: re(`/`), ServerExclude: re(`/w\.`), SkipMaintServers: true},
			[]string{"frontend.x_y.stot", "backend.be_old.stot", "server.spare1.stot"}, []string{"backend.be_pool.server.w_1.stot"}},
		{"drop-all", Filters{FrontendExclude: re(``), BackendExclude: re(``)},
			[]string{"frontend.fe_main.stot", "backend.be_app.stot", "server.app1.stot"}, []string{"daemon.CurrConns"}},
	}
	// with server-states and the other options, and without (skip-maint-servers then reads
	// the status column alone)
	// and with all-metrics, whose second pass over the files must drop the same rows
	bases := map[string]Options{"all-options": filterBase, "plain": {Prefix: "p", AggrServerMetrics: true},
		"all-metrics": {Prefix: "p", AggrServerMetrics: true, ServerStates: true, AllMetrics: true}}
	for baseName, base := range bases {
		for _, c := range cases {
			t.Run(baseName+"/"+c.name, func(t *testing.T) { filterCaseRun(t, files, base, c) })
		}
	}
}

type filterCase struct {
	name string
	f    Filters
	gone []string // paths (below p.) that must be absent
	kept []string // and present
}

func filterCaseRun(t *testing.T, files map[string]string, base Options, c filterCase) {
	dir := writeSnapshot(t, files)
	opts := base
	opts.Filters = c.f
	log, lb := newTestLogger()
	p := NewProcessor(opts, log)
	got := runWith(t, p, dir, 1700000000, lb)
	if got.err != nil || len(got.stats.Problems) != 0 {
		t.Fatalf("err %v problems %v", got.err, got.stats.Problems)
	}
	want := run(t, writeSnapshot(t, dropRows(files, c.f)), 1700000000, base)
	if want.err != nil {
		t.Fatal(want.err)
	}
	first := got.lines
	if c.name == "drop-all" {
		// the model's *_stat files are left without rows, so they are rejected; the
		// filtered ones are used, with empty sections
		var rest []gline
		for _, l := range got.lines {
			if m := regexp.MustCompile(`\.haproxystats\.(Metrics|WallClockTime)(Frontend|Backend|Server)s?$`).FindStringSubmatch(l.path); m != nil {
				if m[1] == "Metrics" && l.value != "1" {
					t.Errorf("%s = %s, want 1", l.path, l.value)
				}
				continue
			}
			rest = append(rest, l)
		}
		got.lines = rest
	}
	compareMultiset(t, want.lines, got.lines)
	have := paths(got.lines)
	for _, path := range c.gone {
		if _, ok := have["p."+path]; ok {
			t.Errorf("%s written", path)
		}
	}
	for _, path := range c.kept {
		if _, ok := have["p."+path]; !ok {
			t.Errorf("%s missing", path)
		}
	}
	// again: every row now comes from the row cache, no name is matched again
	matched := p.filt.matched
	again := runWith(t, p, dir, 1700000000, nil)
	compareOrdered(t, first, again.lines)
	if p.filt.matched != matched {
		t.Errorf("the second snapshot matched %d names again", p.filt.matched-matched)
	}
}

// TestFiltersValuesRecomputed checks a few aggregates by hand against the rows: what the
// model test compares as a whole, written out.
func TestFiltersValuesRecomputed(t *testing.T) {
	files := filterFiles(t, nil)
	sum := func(px, sv, col string, skip func(status string) bool) float64 {
		total := 0.0
		for name, text := range files {
			if !strings.HasSuffix(name, "_stat") {
				continue
			}
			var rows [][]string
			for _, line := range strings.Split(text, "\n") {
				rows = append(rows, strings.Split(line, ","))
			}
			c, st := column(rows, col), column(rows, "status")
			for _, r := range rows[1:] {
				if len(r) > c && r[0] == px && r[1] == sv && (skip == nil || !skip(r[st])) {
					v, _ := strconv.ParseFloat(r[c], 64)
					total += v
				}
			}
		}
		return total
	}
	maint := func(s string) bool { return strings.HasPrefix(s, "MAINT") }
	opts := filterBase
	opts.Filters = Filters{SkipMaintServers: true, ServerExclude: regexp.MustCompile(`^be_pool/app1$`)}
	got := paths(run(t, writeSnapshot(t, files), 1700000000, opts).lines)
	num := func(path string) float64 {
		v, err := strconv.ParseFloat(got["p."+path], 64)
		if err != nil {
			t.Fatalf("%s = %q", path, got["p."+path])
		}
		return v
	}
	// flappy is MAINT in one of the four files: the other three count
	if g, w := num("backend.be_pool.server.flappy.stot"), sum("be_pool", "flappy", "stot", maint); g != w || w == sum("be_pool", "flappy", "stot", nil) {
		t.Errorf("flappy stot = %v, want %v (its non-MAINT rows)", g, w)
	}
	// server.app1 aggregates be_app/app1 only (be_pool/app1 is excluded)
	if g, w := num("server.app1.stot"), sum("be_app", "app1", "stot", nil); g != w {
		t.Errorf("server.app1.stot = %v, want %v", g, w)
	}
	// be_pool: w.1, w_1 (one server, "w_1"), flappy; spare1 and spare2 are MAINT, app1 excluded
	for path, want := range map[string]float64{
		"backend.be_pool.TotalServers": 2, "backend.be_pool.ServersUp": 1, "backend.be_pool.ServersDrain": 1,
		"backend.be_pool.ServersMaint": 0, "backend.be_old.TotalServers": 1, "backend.be_app.TotalServers": 3,
	} {
		if g := num(path); g != want {
			t.Errorf("%s = %v, want %v", path, g, want)
		}
	}
	// the BACKEND row's values are HAProxy's own, not recomputed from the servers kept
	if g, w := num("backend.be_pool.stot"), sum("be_pool", "BACKEND", "stot", nil); g != w {
		t.Errorf("be_pool stot = %v, want %v", g, w)
	}
}

// TestFiltersMetricNames: with metric-include/-exclude the output is the unfiltered output
// minus the lines of the metrics dropped, values unchanged (even how they print), apart from
// the Metrics* counts, which count the metrics kept; the self-metrics stay.
func TestFiltersMetricNames(t *testing.T) {
	re := regexp.MustCompile
	dir := writeSnapshot(t, filterFiles(t, nil))
	for _, c := range []struct {
		name             string
		include, exclude *regexp.Regexp
	}{
		{"include", re(`^(scur|bin|TotalServers|ServersUp|status_code|CurrConns|ConnPercentage|50PercentileCpuUsagePct|rtime)$`), nil},
		{"exclude", nil, re(`^(stot|bout|Servers(Down|Nolb)|check_status_code|Uptime_sec|CpuUsagePct|ttime|act)$`)},
		{"exclude-wins", re(`^s`), re(`^st`)},
		{"nothing-kept", re(`^$`), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			keep := func(metric string) bool {
				return (c.exclude == nil || !c.exclude.MatchString(metric)) && (c.include == nil || c.include.MatchString(metric))
			}
			opts := filterBase
			off := run(t, dir, 1700000000, opts)
			opts.Filters = Filters{MetricInclude: c.include, MetricExclude: c.exclude}
			on := run(t, dir, 1700000000, opts)
			if off.err != nil || on.err != nil {
				t.Fatal(off.err, on.err)
			}
			// Metrics* count 1 + entities × metrics, the response-time means an entity
			// without traffic does not write included: those are counted per entity
			timeMetrics := []string{"qtime", "ctime", "rtime", "ttime"}
			droppedTimes := 0
			for _, m := range timeMetrics {
				if !keep(m) {
					droppedTimes++
				}
			}
			section := func(path string) string {
				parts := strings.Split(path, ".")
				switch {
				case parts[1] == "daemon":
					return "MetricsHAProxy"
				case parts[1] == "frontend":
					return "MetricsFrontend"
				case parts[1] == "server", parts[1] == "backend" && (parts[3] == "server" || parts[3] == "TotalServers" ||
					strings.HasPrefix(parts[3], "Servers")):
					return "MetricsServer"
				}
				return "MetricsBackend"
			}
			var want []gline
			less := map[string]int{}
			hasTime := map[string]bool{} // entity path → writes a response-time mean
			entities := map[string]string{}
			for _, l := range off.lines {
				if strings.HasPrefix(l.path, "p.haproxystats.") {
					want = append(want, l)
					continue
				}
				dot := strings.LastIndexByte(l.path, '.')
				entity, metric := l.path[:dot], l.path[dot+1:]
				if keep(metric) {
					want = append(want, l)
				} else {
					less[section(l.path)]++
				}
				if metric != "TotalServers" && !strings.HasPrefix(metric, "Servers") && !strings.HasSuffix(metric, "_code") {
					entities[entity] = section(l.path)
				}
				hasTime[entity] = hasTime[entity] || slices.Contains(timeMetrics, metric)
			}
			for entity, sect := range entities {
				if !hasTime[entity] && sect != "MetricsFrontend" && sect != "MetricsHAProxy" {
					less[sect] += droppedTimes
				}
			}
			if len(less) == 0 {
				t.Fatal("the test drops nothing")
			}
			for _, metrics := range []string{"MetricsHAProxy", "MetricsFrontend", "MetricsBackend", "MetricsServer"} {
				n, _ := strconv.Atoi(valueOf(t, off.lines, "p.haproxystats."+metrics))
				setValue(t, want, "p.haproxystats."+metrics, strconv.Itoa(n-less[metrics]))
			}
			compareOrdered(t, want, on.lines)
		})
	}
}

// TestFiltersSkipMaintFollowsSnapshots: skip-maint-servers is decided per row and per
// snapshot (a status changes without the names changing, so the row cache must not keep it).
func TestFiltersSkipMaintFollowsSnapshots(t *testing.T) {
	setStatus := func(status string) func(int, [][]string) [][]string {
		return func(_ int, rows [][]string) [][]string {
			st := column(rows, "status")
			for _, r := range rows {
				if r[0] == "be_app" && r[1] == "app2" {
					r[st] = status
				}
			}
			return rows
		}
	}
	opts := filterBase
	opts.Filters = Filters{SkipMaintServers: true}
	p := NewProcessor(opts, nil)
	for i, status := range []string{"UP", "MAINT", "DRAIN", "MAINT (via be_app/app1)", "UP"} {
		dir := writeSnapshot(t, filterFiles(t, setStatus(status)))
		got := paths(runWith(t, p, dir, 1700000000, nil).lines)
		_, has := got["p.backend.be_app.server.app2.stot"]
		_, hasAggr := got["p.server.app2.stot"]
		maint := strings.HasPrefix(status, "MAINT")
		total := map[bool]string{true: "2", false: "3"}[maint]
		if has == maint || hasAggr == maint || got["p.backend.be_app.TotalServers"] != total {
			t.Errorf("snapshot %d (%s): app2 written %v, server.app2 %v, TotalServers %s", i, status, has, hasAggr,
				got["p.backend.be_app.TotalServers"])
		}
	}
}

// TestFiltersWithExcludeFiles: the haproxystats exclude files keep their behaviour beside the
// filters (exclude-backends keeps the backend's servers in server.*), and the row cache
// follows an exclude file edited between snapshots.
func TestFiltersWithExcludeFiles(t *testing.T) {
	files := filterFiles(t, nil)
	dir := writeSnapshot(t, files)
	excl := filepath.Join(t.TempDir(), "exclude-backends")
	if err := os.WriteFile(excl, []byte("be_pool\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := filterBase
	opts.ExcludeBackends = excl
	opts.Filters = Filters{ServerExclude: regexp.MustCompile(`/spare1$`), SkipMaintServers: true}
	p := NewProcessor(opts, nil)
	for round := range 3 {
		got := paths(runWith(t, p, dir, 1700000000, nil).lines)
		excluded := round != 1
		_, hasBe := got["p.backend.be_pool.stot"]
		_, hasSrv := got["p.backend.be_pool.server.w_1.stot"]
		if hasBe == excluded || hasSrv == excluded {
			t.Errorf("round %d: be_pool written %v, its servers %v; excluded by file: %v", round, hasBe, hasSrv, excluded)
		}
		// server.* keeps the servers of a backend excluded by file, not those the filters drop
		for path, want := range map[string]bool{"p.server.w_1.stot": true, "p.server.flappy.stot": true,
			"p.server.spare1.stot": false, "p.server.spare2.stot": false} {
			if _, ok := got[path]; ok != want {
				t.Errorf("round %d: %s written %v, want %v", round, path, ok, want)
			}
		}
		next := "be_pool\n"
		if round == 0 {
			next = "# nothing\n"
		}
		if err := os.WriteFile(excl, []byte(next), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFiltersNoAllocations: with every filter set, a snapshot whose rows repeat allocates no
// more than with none (the decisions come from the row cache, the metric names were matched
// once).
func TestFiltersNoAllocations(t *testing.T) {
	dir := writeSnapshot(t, filterFiles(t, nil))
	allocs := func(f Filters) float64 {
		opts := filterBase
		opts.Filters = f
		p := NewProcessor(opts, nil)
		if _, err := p.Process(dir, 1700000000, discardRecycling); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(20, func() {
			if _, err := p.Process(dir, 1700000000, discardRecycling); err != nil {
				t.Fatal(err)
			}
		})
	}
	re := regexp.MustCompile
	off := allocs(Filters{})
	on := allocs(Filters{FrontendInclude: re(`.`), FrontendExclude: re(`^x`), BackendInclude: re(`^be`),
		BackendExclude: re(`old`), ServerInclude: re(`/`), ServerExclude: re(`/w\.`), MetricInclude: re(`.`),
		MetricExclude: re(`^stot$`), SkipMaintServers: true})
	if on > off {
		t.Errorf("allocations per snapshot: %v with filters, %v without", on, off)
	}
	t.Logf("allocations per snapshot: %v with filters, %v without", on, off)
}

// FuzzStatFilters feeds arbitrary `show stat` replies to Processors with every filter set:
// besides the invariants of processForFuzz, a 5-byte read buffer gives the same lines, and a
// second snapshot of the same input (its rows from the row cache) gives the same lines again.
func FuzzStatFilters(f *testing.F) {
	fuzzSeeds(f, "_stat")
	f.Add([]byte("# pxname,svname,status,type,stot,lbtot\na,FRONTEND,OPEN,0,1,\nb,s1,MAINT,2,3,1\nb,s2,UP,2,4,0\nb,BACKEND,UP,1,5,1\n"))
	f.Add([]byte("# pxname,svname,type,status\nx.y,FRONTEND,2,\"MAINT (via b/s)\"\nb,FRONTEND,2,UP\n"))
	dir := fuzzDir(f)
	re := regexp.MustCompile
	opts := Options{Prefix: "p", AggrServerMetrics: true, ServerStates: true, Filters: Filters{
		FrontendExclude: re(`[xz]`), BackendInclude: re(`[a-m]`), BackendExclude: re(`_old`),
		ServerExclude: re(`/s?2`), MetricExclude: re(`^(bin|ServersUp)$`), SkipMaintServers: true,
	}}
	normal := NewProcessor(opts, nil)
	small := NewProcessor(opts, nil)
	f.Fuzz(func(t *testing.T, stat []byte) {
		writeOnly(t, dir, "a.sock_stat", stat)
		small.rd.buf = make([]byte, 5)
		a, errA := processForFuzz(t, normal, dir)
		b, errB := processForFuzz(t, small, dir)
		if (errA == nil) != (errB == nil) || !slices.Equal(a, b) {
			t.Fatalf("read buffer size changes the result:\n%v %v\n%q\n%q", errA, errB, a, b)
		}
		c, errC := processForFuzz(t, normal, dir)
		if (errA == nil) != (errC == nil) || !slices.Equal(a, c) {
			t.Fatalf("the second snapshot differs:\n%v %v\n%q\n%q", errA, errC, a, c)
		}
	})
}

// TestFiltersSkipMaintEveryPath: skip-maint-servers without server-states reads the status
// cell on every scan path (fast, quoted, generic) and through a tiny read buffer.
func TestFiltersSkipMaintEveryPath(t *testing.T) {
	rows := statesFile(t, []stateRow{
		{"be", "up", "UP", "L7OK", ""},
		{"be", "maint", "MAINT", "", ""},
		{"be", "via", "MAINT (via be/maint)", "", ""},
		{"be", "res", "MAINT (resolution)", "", ""},
		{"be", "drain", "DRAIN", "", ""},
		{"be", "almost", "MAIN", "", ""},
	})
	quoted := func(rows [][]string) string {
		var sb strings.Builder
		for _, r := range rows {
			for _, f := range r {
				sb.WriteString(`"` + f + `",`)
			}
			sb.WriteString("\n")
		}
		return sb.String()
	}
	reversed := func(rows [][]string) string {
		rev := make([][]string, len(rows))
		for i := range rows {
			r := slices.Clone(rows[i][1:])
			slices.Reverse(r)
			rev[i] = append([]string{rows[i][0]}, r...)
		}
		return statCSV(rev)
	}
	for name, text := range map[string]string{"fast-path": statCSV(rows), "quoted": quoted(rows), "generic-path": reversed(rows)} {
		t.Run(name, func(t *testing.T) {
			dir := writeSnapshot(t, map[string]string{"a_stat": text})
			opts := Options{Prefix: "p", AggrServerMetrics: true, Filters: Filters{SkipMaintServers: true}}
			for _, bufSize := range []int{readBufferSize, 7} {
				p := NewProcessor(opts, nil)
				p.rd.buf = make([]byte, bufSize)
				r := runWith(t, p, dir, 1700000000, nil)
				if r.err != nil || len(r.stats.Problems) > 0 {
					t.Fatal(r.err, r.stats.Problems)
				}
				got := paths(r.lines)
				for srv, want := range map[string]bool{"up": true, "maint": false, "via": false, "res": false, "drain": true, "almost": true} {
					_, ok := got["p.backend.be.server."+srv+".stot"]
					_, aggr := got["p.server."+srv+".stot"]
					if ok != want || aggr != want {
						t.Errorf("buffer %d: %s written %v, server.%s %v; want %v", bufSize, srv, ok, srv, aggr, want)
					}
				}
				if got["p.backend.be.TotalServers"] != "3" {
					t.Errorf("buffer %d: TotalServers = %s, want 3", bufSize, got["p.backend.be.TotalServers"])
				}
				if strings.Contains(string(r.raw), "_code ") || strings.Contains(string(r.raw), ".Servers") {
					t.Errorf("state lines without server-states")
				}
			}
		})
	}
}
