package aggregate

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
)

func TestParseFuncs(t *testing.T) {
	got, err := ParseFuncs(" sum\tmax p95 p1 p99 stddev  count avg min ")
	if err != nil {
		t.Fatal(err)
	}
	want := []Func{{Sum, 0}, {Max, 0}, {Percentile, 95}, {Percentile, 1}, {Percentile, 99}, {Stddev, 0}, {Count, 0}, {Avg, 0}, {Min, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	none, err := ParseFuncs("none")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("none: %v %v", none, err)
	}
	for _, bad := range []string{"", "  ", "sum sum", "p95 p95", "p0", "p100", "p05", "p", "pxx", "mean", "SUM", "none sum", "sum none", "p-1"} {
		_, err := ParseFuncs(bad)
		if err == nil {
			t.Errorf("%q: no error", bad)
			continue
		}
		if w := strings.Fields(bad); len(w) > 0 && !strings.Contains(err.Error(), "twice") && !strings.Contains(err.Error(), "valid: sum avg") {
			t.Errorf("%q: error does not list the valid functions: %v", bad, err)
		}
	}
	if _, err := ParseFuncs("sum mean"); err == nil || !strings.Contains(err.Error(), `"mean"`) {
		t.Errorf("error does not name the bad word: %v", err)
	}
	for _, f := range want {
		if g, _ := ParseFuncs(f.String()); len(g) != 1 || g[0] != f {
			t.Errorf("%v does not round-trip", f)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	p, err := ParsePolicies([][2]string{
		{"interval", "10"},
		{"aggregate.*_bytes", "sum max p95"},
		{"aggregate", "avg"},
		{"aggregate.go_*", "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Policies{
		Default: []Func{{Avg, 0}},
		Rules: []Rule{
			{"*_bytes", []Func{{Sum, 0}, {Max, 0}, {Percentile, 95}}},
			{"go_*", []Func{}},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v", p)
	}
	for _, bad := range [][][2]string{
		{{"aggregate.[", "sum"}},
		{{"aggregate.", "sum"}},
		{{"aggregate", "sum"}, {"aggregate", "max"}},
		{{"aggregate.x*", "sum"}, {"aggregate.x*", "max"}},
		{{"aggregate.x", "bogus"}},
		{{"aggregate", ""}},
	} {
		if _, err := ParsePolicies(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	p, err = ParsePolicies(nil)
	if err != nil || p.Default != nil || p.Rules != nil {
		t.Fatalf("empty: %+v %v", p, err)
	}
}

// The index table of haproxystats.md §5.2.1 (numpy "nearest", verified against numpy), which
// percentileIndex must reproduce: n, then the index of p25 p50 p75 p95 p99.
func TestPercentileIndex(t *testing.T) {
	table := [][6]int{
		{2, 0, 0, 1, 1, 1}, {3, 0, 1, 2, 2, 2}, {4, 1, 2, 2, 3, 3}, {5, 1, 2, 3, 4, 4},
		{6, 1, 2, 4, 5, 5}, {7, 2, 3, 4, 6, 6}, {8, 2, 4, 5, 7, 7}, {9, 2, 4, 6, 8, 8},
		{10, 2, 4, 7, 9, 9}, {11, 2, 5, 8, 10, 10}, {12, 3, 6, 8, 10, 11},
		{16, 4, 8, 11, 14, 15}, {100, 25, 50, 74, 94, 98},
	}
	for _, row := range table {
		for i, p := range []int{25, 50, 75, 95, 99} {
			if got := percentileIndex(p, row[0]); got != row[i+1] {
				t.Errorf("n=%d p%d: index %d, want %d", row[0], p, got, row[i+1])
			}
		}
	}
	// the float product, not the exact rational: 0.7·45 = 31.499999… rounds to 31
	if got := percentileIndex(70, 46); got != 31 {
		t.Errorf("n=46 p70: %d, want 31", got)
	}
	if got := percentileIndex(50, 1); got != 0 {
		t.Errorf("n=1: %d", got)
	}
}

func TestFunctions(t *testing.T) {
	funcs, err := ParseFuncs("sum avg min max count stddev p1 p17 p25 p50 p75 p99")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Prefix: "ns.src", Policies: Policies{Default: funcs}}
	g := func(name string, v float64) sample.Sample { return smp(sample.Gauge, name, v) }
	nan, inf := math.NaN(), math.Inf(1)
	got := values(t, run(t, o,
		inst{"a", []sample.Sample{g("four", 4), g("two", 5), g("one", 9), g("none", nan)}},
		inst{"b", []sample.Sample{g("four", nan), g("two", 7), g("none", inf)}},
		inst{"c", []sample.Sample{g("four", 1), g("one", math.Inf(-1))}},
		inst{"d", []sample.Sample{g("four", inf)}},
		inst{"e", []sample.Sample{g("four", 3)}},
		inst{"f", []sample.Sample{g("four", 2)}},
	))
	want := map[string]float64{
		// four: 4, NaN, 1, +Inf, 3, 2 → the finite 4 1 3 2, sorted 1 2 3 4, n = 4
		"ns.src.four": 10, "ns.src.four.avg": 2.5, "ns.src.four.min": 1, "ns.src.four.max": 4,
		"ns.src.four.count": 4,
		// mean 2.5; squared deviations 2.25+2.25+0.25+0.25 = 5; 5/3; √(5/3)
		"ns.src.four.stddev": math.Sqrt(5.0 / 3),
		// index round_half_even(3·q): p1 0.03→0, p17 0.51→1, p25 0.75→1, p50 1.5→2 (even),
		// p75 2.25→2, p99 2.97→3
		"ns.src.four.p1": 1, "ns.src.four.p17": 2, "ns.src.four.p25": 2, "ns.src.four.p50": 3,
		"ns.src.four.p75": 3, "ns.src.four.p99": 4,
		// two: 5 7, n = 2: p50 index round_half_even(0.5) = 0; stddev √2
		"ns.src.two": 12, "ns.src.two.avg": 6, "ns.src.two.min": 5, "ns.src.two.max": 7,
		"ns.src.two.count": 2, "ns.src.two.stddev": math.Sqrt2,
		"ns.src.two.p1": 5, "ns.src.two.p17": 5, "ns.src.two.p25": 5, "ns.src.two.p50": 5,
		"ns.src.two.p75": 7, "ns.src.two.p99": 7,
		// one: 9 (the -Inf skipped), n = 1: no stddev, every percentile 9
		"ns.src.one": 9, "ns.src.one.avg": 9, "ns.src.one.min": 9, "ns.src.one.max": 9,
		"ns.src.one.count": 1,
		"ns.src.one.p1":    9, "ns.src.one.p17": 9, "ns.src.one.p25": 9, "ns.src.one.p50": 9,
		"ns.src.one.p75": 9, "ns.src.one.p99": 9,
		// none: NaN and +Inf only: nothing at all
	}
	for p, w := range want {
		if v, ok := got[p]; !ok || !near(v, w) {
			t.Errorf("%s = %v (present %v), want %v", p, v, ok, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s", p)
		}
	}
}

// Welford's method keeps the deviation of values around a huge mean, where Σx² − n·mean²
// would lose every digit.
func TestStddevStable(t *testing.T) {
	o := Options{Prefix: "p", Policies: Policies{Default: []Func{{Op: Stddev}}}}
	var insts []inst
	for i, v := range []float64{1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16} {
		insts = append(insts, inst{string(rune('a' + i)), []sample.Sample{smp(sample.Gauge, "x", v)}})
	}
	got := values(t, run(t, o, insts...))
	// deviations from the mean 1e9+10: −6 −3 3 6 → 90/3 = 30
	if v := got["p.x.stddev"]; !near(v, math.Sqrt(30)) {
		t.Fatalf("stddev %v, want %v", v, math.Sqrt(30))
	}
}

// The INI reader lower-cases option names, so a glob arrives lower-cased: FoldCase matches it
// against the lower-cased metric name, and only then.
func TestFoldCaseGlobs(t *testing.T) {
	pol, err := ParsePolicies([][2]string{{"aggregate.go_memstats_*", "max"}})
	if err != nil {
		t.Fatal(err)
	}
	in := inst{"a", []sample.Sample{smp(sample.Gauge, "go_MemStats_alloc", 5)}}
	if got := values(t, run(t, Options{Prefix: "p", Policies: pol}, in)); got["p.go_MemStats_alloc"] != 5 {
		t.Fatalf("without FoldCase the default applies: %v", got)
	}
	pol.FoldCase = true
	if got := values(t, run(t, Options{Prefix: "p", Policies: pol}, in)); got["p.go_MemStats_alloc.max"] != 5 || len(got) != 1 {
		t.Fatalf("with FoldCase the rule applies: %v", got)
	}
}

// DottedNames: a name's dotted parts are components, each sanitised; labels stay whole.
func TestDottedNames(t *testing.T) {
	in := inst{"a", []sample.Sample{smp(sample.Gauge, "cluster.svc:a_b.upstream_rq", 5, "zone", "eu.west"), smp(sample.Gauge, "x..y", 1)}}
	got := values(t, run(t, Options{Prefix: "p", DottedNames: true}, in))
	if got["p.cluster.svc:a_b.upstream_rq.zone.eu_west"] != 5 || got["p.x._.y"] != 1 || len(got) != 2 {
		t.Fatalf("dotted: %v", got)
	}
	got = values(t, run(t, Options{Prefix: "p"}, in))
	if got["p.cluster_svc:a_b_upstream_rq.zone.eu_west"] != 5 {
		t.Fatalf("not dotted: %v", got)
	}
}
