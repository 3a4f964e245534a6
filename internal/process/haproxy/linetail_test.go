package haproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
)

// The configuration check of max-line-length leaves config.LineTailRoom bytes after a path for
// ".<metric> <value> <timestamp>"; every metric name this package writes must fit in it.
func TestLongestLineTailFitsTheConfigEstimate(t *testing.T) {
	p := NewProcessor(Options{Prefix: "ns", AggrServerMetrics: true, PerProcessMetrics: true, CalculatePercentages: true}, nil)
	if tail := 1 + p.lineSlack; tail > config.LineTailRoom {
		t.Fatalf("the longest line tail is %d bytes, more than config.LineTailRoom (%d)", tail, config.LineTailRoom)
	}
}

// The start-up estimate of the longest line holds for the paths this package really writes,
// with every kind of path on (groups in every section, per-process metrics, percentages,
// server.* aggregates) and a 19-digit timestamp: at the smallest max-line-length the
// configuration accepts, lines with 32-byte names all fit; at the smallest one it accepts
// without a warning, lines with names shortened to max-component-length all fit. And the
// estimate is not much longer than the real longest line.
func TestConfigLineEstimateHoldsForTheRealPaths(t *testing.T) {
	src := t.TempDir()
	group := func(c string) string { return strings.Repeat(c, 100) }
	conf := func(maxComponent, maxLine int) string {
		return fmt.Sprintf(`[process]
src-dir = %s
max-component-length = %d
max-line-length = %d
per-process-metrics = true
calculate-percentages = true
aggr-server-metrics = true
[graphite]
namespace = statspipe.test
hostname = lb1.example.com
group-namespace = grouped
group-namespace-double-writes = true
[frontend-groups]
%s = .
[backend-groups]
%s = .
[server-groups]
%s = .
`, src, maxComponent, maxLine, group("f"), group("b"), group("s"))
	}
	load := func(maxComponent, maxLine int) (*config.Config, []string, error) {
		path := filepath.Join(t.TempDir(), "haproxystats.conf")
		if err := os.WriteFile(path, []byte(conf(maxComponent, maxLine)), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := config.Load(path, true, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := l.Config(config.ProcessProgram)
		return cfg, l.Warnings, err
	}
	// smallest max-line-length in [256, 1 MiB] for which ok holds
	smallest := func(ok func(maxLine int) bool) int {
		return 256 + sort.Search(1<<20-256+1, func(i int) bool { return ok(256 + i) })
	}
	const ts = 1 << 62 // 19 digits
	for _, c := range []struct {
		name                  string
		maxComponent, nameLen int
		noWarning             bool
	}{
		{"32-byte names at the smallest accepted max-line-length", 255, 32, false},
		{"shortened names at the smallest max-line-length without a warning", 64, 100, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// the check is monotonic in max-line-length, so a binary search finds the bound
			limit := smallest(func(maxLine int) bool {
				_, warnings, err := load(c.maxComponent, maxLine)
				return err == nil && (!c.noWarning || len(warnings) == 0)
			})
			cfg, _, err := load(c.maxComponent, limit)
			if err != nil {
				t.Fatal(err)
			}
			if _, warnings, err := load(c.maxComponent, limit-1); err == nil && (!c.noWarning || len(warnings) == 0) {
				t.Fatalf("max-line-length %d accepted too (warnings %q): the search is wrong", limit-1, warnings)
			}
			got := run(t, namesOf(t, c.nameLen), ts, optionsOf(cfg))
			if got.err != nil || got.stats.LongLines != 0 {
				t.Fatalf("max-line-length %d: %d lines too long: %v", limit, got.stats.LongLines, got.err)
			}
			longest := 0
			for _, l := range strings.Split(strings.TrimSuffix(string(got.raw), "\n"), "\n") {
				longest = max(longest, len(l))
			}
			t.Logf("estimate %d bytes, longest real line %d bytes (%d lines)", limit, longest, len(got.lines))
			if limit-longest > config.LineTailRoom {
				t.Errorf("the estimate (%d) is more than %d bytes over the real longest line (%d)", limit, config.LineTailRoom, longest)
			}
		})
	}
}

// namesOf is golden A with every proxy and server name padded to n bytes.
func namesOf(t *testing.T, n int) string {
	pad := func(s string) string { return s + strings.Repeat("_", max(n-len(s), 0)) }
	files := map[string]string{}
	for i := 1; i <= 4; i++ {
		info, stat := fmt.Sprintf("admin%d.sock_info", i), fmt.Sprintf("admin%d.sock_stat", i)
		files[info] = readFile(t, filepath.Join(goldenA, info))
		rows := readStat(t, filepath.Join(goldenA, stat))
		for _, r := range rows[1:] {
			r[0] = pad(r[0])
			if r[1] != "FRONTEND" && r[1] != "BACKEND" {
				r[1] = pad(r[1])
			}
		}
		files[stat] = statCSV(rows)
	}
	return writeSnapshot(t, files)
}

// optionsOf builds Options from a configuration as stats-process does.
func optionsOf(cfg *config.Config) Options {
	g := cfg.Graphite
	groups := func(in []config.Group) []Group {
		var out []Group
		for _, gr := range in {
			out = append(out, Group{Name: gr.Name, Pattern: gr.Pattern})
		}
		return out
	}
	return Options{
		Prefix:               metric.Prefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN),
		PerProcessMetrics:    cfg.Process.PerProcessMetrics,
		CalculatePercentages: cfg.Process.CalculatePercentages,
		AggrServerMetrics:    cfg.Process.AggrServerMetrics,
		GroupNamespace:       g.GroupNamespace,
		DoubleWrites:         g.GroupNamespaceDoubleWrites,
		FrontendGroups:       groups(cfg.FrontendGroups),
		BackendGroups:        groups(cfg.BackendGroups),
		ServerGroups:         groups(cfg.ServerGroups),
		MaxComponentLength:   cfg.Process.MaxComponentLength,
		MaxLineLength:        cfg.Process.MaxLineLength,
	}
}
