package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/aggregate"
)

func TestAllMetricsOptions(t *testing.T) {
	l, _ := loadText(t, "[process]\nall-metrics = true\n"+
		"all-metrics-aggregate.server.*time = p99 stddev\n"+
		"all-metrics-aggregate.daemon.* = max\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Process
	if !p.AllMetrics {
		t.Error("all-metrics = true not read")
	}
	want := []aggregate.Rule{
		{Glob: "server.*time", Funcs: []aggregate.Func{{Op: aggregate.Percentile, P: 99}, {Op: aggregate.Stddev}}},
		{Glob: "daemon.*", Funcs: []aggregate.Func{{Op: aggregate.Max}}},
	}
	if len(p.AllMetricsAggregate) != len(want) {
		t.Fatalf("rules %+v, want %+v", p.AllMetricsAggregate, want)
	}
	for i, r := range want {
		got := p.AllMetricsAggregate[i]
		if got.Glob != r.Glob || len(got.Funcs) != len(r.Funcs) {
			t.Fatalf("rule %d = %+v, want %+v", i, got, r)
		}
		for j := range r.Funcs {
			if got.Funcs[j] != r.Funcs[j] {
				t.Errorf("rule %d func %d = %v, want %v", i, j, got.Funcs[j], r.Funcs[j])
			}
		}
	}
	var out bytes.Buffer
	if err := l.Print(&out, ProcessProgram); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"all-metrics = true\n", "all-metrics-aggregate.daemon.* = max\n",
		"all-metrics-aggregate.server.*time = p99 stddev\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("-P output lacks %q:\n%s", line, out.String())
		}
	}
	if i, j := strings.Index(out.String(), "all-metrics-aggregate.daemon"), strings.Index(out.String(), "all-metrics-aggregate.server"); i > j {
		t.Error("-P does not print the options sorted")
	}

	l, _ = loadText(t, "[process]\n")
	cfg, err = l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Process.AllMetrics || cfg.Process.AllMetricsAggregate != nil {
		t.Errorf("defaults: all-metrics %v, rules %v", cfg.Process.AllMetrics, cfg.Process.AllMetricsAggregate)
	}
}

func TestAllMetricsOptionErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"bad function", "[process]\nall-metrics-aggregate.frontend.* = p101\n", "unknown aggregation function \"p101\""},
		{"bad glob", "[process]\nall-metrics-aggregate.[x = max\n", "bad metric-name glob"},
		{"empty glob", "[process]\nall-metrics-aggregate. = max\n", "empty metric-name glob"},
		{"bad bool", "[process]\nall-metrics = maybe\n", "all-metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			_, err := l.Config(ProcessProgram)
			if err == nil {
				t.Fatal("no error")
			}
			e := asConfigError(t, err)
			if !strings.Contains(e.Error(), tc.want) {
				t.Errorf("error %q lacks %q", e.Error(), tc.want)
			}
		})
	}
	// an unknown [process] option is still a warning, not taken for a rule
	l, _ := loadText(t, "[process]\nall-metrics-aggregat.x = max\n")
	if len(l.Warnings) == 0 {
		t.Error("misspelt option gives no warning")
	}
}

func TestAllMetricsAggregateWithoutAllMetricsWarns(t *testing.T) {
	l, _ := loadText(t, "[process]\nall-metrics-aggregate.server.* = max\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Process.AllMetricsAggregate) != 1 {
		t.Fatalf("rules %v", cfg.Process.AllMetricsAggregate)
	}
	found := false
	for _, w := range l.Warnings {
		found = found || strings.Contains(w, "all-metrics-aggregate.server.* (and 0 more) has no effect: all-metrics is false")
	}
	if !found {
		t.Errorf("no warning in %q", l.Warnings)
	}
}
