package haproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
)

// gline is one Graphite line split into its fields.
type gline struct {
	path, value, ts string
}

func (l gline) String() string { return l.path + " " + l.value + " " + l.ts }

var timingPath = regexp.MustCompile(`\.haproxystats\.(WallClockTime\w*|TotalWallClockTime)$`)

func isTiming(path string) bool { return timingPath.MatchString(path) }

// parseLines splits Graphite plaintext into lines, failing on any line that is not exactly
// three space-separated fields: that is the property that keeps names from injecting lines.
func parseLines(t testing.TB, data []byte) []gline {
	t.Helper()
	var out []gline
	for i, raw := range bytes.Split(data, []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		f := strings.Split(string(raw), " ")
		if len(f) != 3 {
			t.Fatalf("line %d is not `path value ts`: %q", i+1, raw)
		}
		out = append(out, gline{f[0], f[1], f[2]})
	}
	return out
}

func readLines(t testing.TB, path string) []gline {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseLines(t, data)
}

// dropNaN removes the reference's `nan` lines: statspipe does not emit them (documented
// difference; carbon drops NaN anyway).
func dropNaN(lines []gline) []gline {
	return slices.DeleteFunc(slices.Clone(lines), func(l gline) bool { return l.value == "nan" })
}

// logBuffer collects slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// result is what one Process call produced.
type result struct {
	lines   []gline
	raw     []byte
	batches []*metric.Batch
	stats   Stats
	err     error
	log     string
}

// run processes dir with opts, collecting every flushed chunk and checking the chunk protocol
// (Seq 0.., Last only on the final chunk, whole lines, Lines matching).
func run(t testing.TB, dir string, ts int64, opts Options) result {
	t.Helper()
	log, lb := newTestLogger()
	p := NewProcessor(opts, log)
	return runWith(t, p, dir, ts, lb)
}

func runWith(t testing.TB, p *Processor, dir string, ts int64, lb *logBuffer) result {
	t.Helper()
	var r result
	r.stats, r.err = p.Process(dir, ts, func(b *metric.Batch) error {
		r.batches = append(r.batches, b)
		return nil
	})
	if lb != nil {
		r.log = lb.String()
	}
	lines := 0
	for i, b := range r.batches {
		if b.Seq != i {
			t.Fatalf("chunk %d has Seq %d", i, b.Seq)
		}
		if b.Last != (i == len(r.batches)-1) {
			t.Fatalf("chunk %d of %d has Last=%v", i, len(r.batches), b.Last)
		}
		if b.Timestamp != ts || b.Source != dir {
			t.Fatalf("chunk %d: Timestamp %d Source %q, want %d %q", i, b.Timestamp, b.Source, ts, dir)
		}
		if len(b.Data) > 0 && b.Data[len(b.Data)-1] != '\n' {
			t.Fatalf("chunk %d does not end with a whole line", i)
		}
		if n := bytes.Count(b.Data, []byte("\n")); n != b.Lines {
			t.Fatalf("chunk %d: Lines=%d but holds %d lines", i, b.Lines, n)
		}
		lines += b.Lines
		r.raw = append(r.raw, b.Data...)
	}
	if r.err == nil && r.stats.Lines != lines {
		t.Fatalf("Stats.Lines=%d, chunks hold %d lines", r.stats.Lines, lines)
	}
	r.lines = parseLines(t, r.raw)
	return r
}

// readConf reads the few INI keys of a haproxystats.conf.used that shape the output.
func readConf(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conf := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: bad line %q", path, line)
			}
			conf[section+"."+strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return conf
}

// optionsFromConf maps a reference configuration onto Options, with the host fixed to "vm"
// (the host the reference ran on).
func optionsFromConf(t testing.TB, path string) Options {
	t.Helper()
	conf := readConf(t, path)
	boolOpt := func(key string, def bool) bool {
		v, ok := conf[key]
		if !ok {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			t.Fatalf("%s: %s = %q", path, key, v)
		}
		return b
	}
	list := func(key string) []string {
		v, ok := conf[key]
		if !ok {
			return nil
		}
		return strings.Split(v, " ")
	}
	ns := "loadbalancers"
	if v, ok := conf["graphite.namespace"]; ok {
		ns = v
	}
	return Options{
		Prefix:               metric.Prefix(ns, "vm", boolOpt("graphite.prefix-hostname", true), boolOpt("graphite.fqdn", true)),
		PerProcessMetrics:    boolOpt("process.per-process-metrics", false),
		CalculatePercentages: boolOpt("process.calculate-percentages", false),
		AggrServerMetrics:    boolOpt("process.aggr-server-metrics", false),
		FrontendMetrics:      list("process.frontend-metrics"),
		BackendMetrics:       list("process.backend-metrics"),
		ServerMetrics:        list("process.server-metrics"),
	}
}

// snapshotDir returns the single <ts> directory under dir and its timestamp.
func snapshotDir(t testing.TB, dir string) (string, int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if ts, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && e.IsDir() {
			return filepath.Join(dir, e.Name()), ts
		}
	}
	t.Fatalf("no snapshot directory in %s", dir)
	return "", 0
}

// normValue makes values comparable: timings masked, numbers compared as float64 (so 60 ==
// 60.0, as Graphite reads them).
func normValue(l gline) string {
	if isTiming(l.path) {
		return "*"
	}
	f, err := strconv.ParseFloat(l.value, 64)
	if err != nil {
		return l.value
	}
	if math.IsNaN(f) {
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func normalize(lines []gline) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.path + " " + normValue(l) + " " + l.ts
	}
	return out
}

// compareMultiset compares lines as multisets of (path, numeric value, ts).
func compareMultiset(t testing.TB, want, got []gline) {
	t.Helper()
	w, g := map[string]int{}, map[string]int{}
	for _, s := range normalize(want) {
		w[s]++
	}
	for _, s := range normalize(got) {
		g[s]++
	}
	var missing, extra []string
	for s, n := range w {
		for i := g[s]; i < n; i++ {
			missing = append(missing, s)
		}
	}
	for s, n := range g {
		for i := w[s]; i < n; i++ {
			extra = append(extra, s)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d lines missing, %d unexpected (want %d lines, got %d)\n", len(missing), len(extra), len(want), len(got))
		for i, s := range missing {
			if i == 25 {
				break
			}
			sb.WriteString("- " + s + "\n")
		}
		for i, s := range extra {
			if i == 25 {
				break
			}
			sb.WriteString("+ " + s + "\n")
		}
		t.Error(sb.String())
	}
}

// compareOrdered compares the non-timing lines in order.
func compareOrdered(t testing.TB, want, got []gline) {
	t.Helper()
	keep := func(ls []gline) []string {
		var out []string
		for _, s := range normalize(ls) {
			if !strings.Contains(s, " * ") {
				out = append(out, s)
			}
		}
		return out
	}
	w, g := keep(want), keep(got)
	for i := 0; i < len(w) && i < len(g); i++ {
		if w[i] != g[i] {
			t.Errorf("order differs at non-timing line %d:\n  want %s\n  got  %s", i+1, w[i], g[i])
			return
		}
	}
	if len(w) != len(g) {
		t.Errorf("ordered comparison: want %d non-timing lines, got %d", len(w), len(g))
	}
}

// timingPaths returns the timing self-metric paths in order (their values are not compared).
func timingPaths(lines []gline) []string {
	var out []string
	for _, l := range lines {
		if isTiming(l.path) {
			out = append(out, l.path)
		}
	}
	return out
}

// setValue replaces the value of the line with the given path (which must exist once).
func setValue(t testing.TB, lines []gline, path, value string) {
	t.Helper()
	n := 0
	for i := range lines {
		if lines[i].path == path {
			lines[i].value = value
			n++
		}
	}
	if n != 1 {
		t.Fatalf("expected line %s found %d times", path, n)
	}
}

func valueOf(t testing.TB, lines []gline, path string) string {
	t.Helper()
	for _, l := range lines {
		if l.path == path {
			return l.value
		}
	}
	t.Fatalf("no line %s", path)
	return ""
}
