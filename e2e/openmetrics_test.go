package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/statspipe/statspipe/internal/testrig"
)

// The OpenMetrics source kind end to end: real producers (node_exporter, HAProxy's PROMEX,
// the Python client) → stats-pull --once → stats-process --once → the local store, checked
// against an independent computation from the very bodies the snapshot holds (parsed with
// prometheus/common/expfmt, not with our parser).

const (
	omPrefix = "loadbalancers.vm"
	// omRunLimit bounds one run of stats-pull or stats-process --once.
	omRunLimit = 30 * time.Second
)

// omConfig writes a configuration under base: [paths], [pull] (with pullExtra lines),
// [process], the local store at base/store, graphite off, then sections.
func omConfig(t *testing.T, base, pullExtra, sections string) string {
	t.Helper()
	return writeConfig(t, base, `
[paths]
base-dir = `+base+`
[pull]
dst-dir = ${paths:base-dir}/incoming
tmp-dst-dir = ${paths:base-dir}/incoming.tmp
pull-timeout = 3
`+pullExtra+`
[process]
src-dir = ${paths:base-dir}/incoming
[graphite]
enabled = false
hostname = vm
[local-store]
dir = ${paths:base-dir}/store
`+sections)
}

// omRun runs one of our programs to its end (bounded) and returns stdout, stderr and the exit
// status.
func omRun(t *testing.T, program string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), omRunLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, program), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not end within %v:\n%s%s", program, args, omRunLimit, stdout.String(), stderr.String())
	}
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// omPull runs stats-pull --once and returns the published snapshot's path and the log.
func omPull(t *testing.T, conf string) (string, string) {
	t.Helper()
	out, log, code := omRun(t, "stats-pull", "-f", conf, "--once")
	snap := strings.TrimSpace(out)
	if code != 0 || snap == "" {
		t.Fatalf("stats-pull --once exited %d, printed %q:\n%s", code, out, log)
	}
	if fi, err := os.Stat(snap); err != nil || !fi.IsDir() {
		t.Fatalf("stats-pull --once printed %q, not a snapshot directory (%v)", snap, err)
	}
	return snap, log
}

// omProcess runs stats-process --once with conf on what src-dir holds, wants exit 0, and
// returns the local store's lines of the snapshot epoch (path → value).
func omProcess(t *testing.T, conf, store, epoch string) map[string]float64 {
	t.Helper()
	out, log, code := omRun(t, "stats-process", "-f", conf, "--once")
	if code != 0 {
		t.Fatalf("stats-process --once exited %d:\n%s%s", code, out, log)
	}
	return omStore(t, filepath.Join(store, epoch, "stats"), epoch)
}

// omStore reads a local-store file: every line `path value epoch`, each path once.
func omStore(t *testing.T, file, epoch string) map[string]float64 {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]float64{}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		f := strings.Split(l, " ")
		if len(f) != 3 || f[2] != epoch {
			t.Fatalf("%s: malformed line %q (want `path value %s`)", file, l, epoch)
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("%s: value of %q: %v", file, l, err)
		}
		if _, dup := lines[f[0]]; dup {
			t.Errorf("%s: path %s written twice", file, f[0])
		}
		lines[f[0]] = v
	}
	return lines
}

// omInstanceMeta is the part of <instance>.meta.json the tests look at.
type omInstanceMeta struct {
	Instance        string `json:"instance"`
	URL             string `json:"url"`
	ContentType     string `json:"content_type"`
	ContentEncoding string `json:"content_encoding"`
	Status          int    `json:"status"`
	Bytes           int64  `json:"bytes"`
	WireBytes       int64  `json:"wire_bytes"`
}

func omReadMeta(t *testing.T, file string) omInstanceMeta {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m omInstanceMeta
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// hostPortInstance is the instance name the documentation gives for a URL without a name:
// its host:port.
func hostPortInstance(url string) string {
	return strings.SplitN(strings.TrimPrefix(url, "http://"), "/", 2)[0]
}

// omComponent sanitises one path component as aggregate/doc.go says: [A-Za-z0-9_:#-] kept,
// every other rune '_', empty → '_'. (Written anew here from the documentation; names longer
// than 255 do not occur in these bodies and are checked not to.)
func omComponent(t *testing.T, s string) string {
	t.Helper()
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == ':', r == '#', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() > 255 {
		t.Fatalf("component %q longer than 255: the test does not model the hashed form", s)
	}
	return b.String()
}

// omPyFloat formats a bound like Python's repr(float) for the values the bodies use
// (0.25 → "0.25", 1 → "1.0").
func omPyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// omSeriesPath is <prefix>.<name>[.<label>.<value>]… with the labels sorted by name and the
// empty ones dropped.
func omSeriesPath(t *testing.T, prefix, name string, labels []*dto.LabelPair) string {
	t.Helper()
	ls := slices.Clone(labels)
	slices.SortFunc(ls, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	p := prefix + "." + omComponent(t, name)
	for _, l := range ls {
		if l.GetValue() == "" {
			continue
		}
		p += "." + omComponent(t, l.GetName()) + "." + omComponent(t, l.GetValue())
	}
	return p
}

// omParse parses a Prometheus text body with expfmt.
func omParse(t *testing.T, file string) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("expfmt cannot parse %s: %v", file, err)
	}
	return mfs
}

// omSeries is one series' values across the instances that have it (finite ones only), with
// the functions to apply.
type omSeries struct {
	funcs  []string
	values []float64
}

// omExpect is the independent model of stats-process's output for one source.
type omExpect struct {
	t        *testing.T
	prefix   string // <namespace>.<host>.<source>
	policy   omPolicy
	series   map[string]*omSeries // by aggregate path
	order    []string
	instance map[string]float64 // per-instance lines
}

func newOMExpect(t *testing.T, source string, policy omPolicy) *omExpect {
	return &omExpect{t: t, prefix: omPrefix + "." + source, policy: policy,
		series: map[string]*omSeries{}, instance: map[string]float64{}}
}

func (e *omExpect) add(path string, funcs []string, v float64) {
	s := e.series[path]
	if s == nil {
		s = &omSeries{funcs: funcs}
		e.series[path] = s
		e.order = append(e.order, path)
	}
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		s.values = append(s.values, v)
	}
}

func (e *omExpect) addInstance(path string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if _, dup := e.instance[path]; dup {
		e.t.Fatalf("per-instance path %s twice in one body: the model does not handle colliding paths", path)
	}
	e.instance[path] = v
}

// feed adds one instance's families (counters, gauges, untyped, summaries; a histogram fails
// the test: these bodies have none; TestOpenMetricsPythonApp and the synthetic tests check
// histograms by hand).
func (e *omExpect) feed(instance string, mfs map[string]*dto.MetricFamily, perInstance bool) {
	t := e.t
	seen := map[string]bool{}
	ip := e.prefix + ".instance." + omComponent(t, instance)
	one := func(name string, labels []*dto.LabelPair, suffix string, funcs []string, v float64) {
		rel := strings.TrimPrefix(omSeriesPath(t, "", name, labels), ".") + suffix
		if seen[rel] {
			t.Fatalf("instance %s: path %s twice: the model does not handle colliding paths", instance, rel)
		}
		seen[rel] = true
		e.add(e.prefix+"."+rel, funcs, v)
		if perInstance {
			e.addInstance(ip+"."+rel, v)
		}
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				one(name, m.GetLabel(), "", e.policy.funcs(name), m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				one(name, m.GetLabel(), "", e.policy.funcs(name), m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				one(name, m.GetLabel(), "", e.policy.funcs(name), m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				// Quantiles: max unless a rule matches the family; the default does not apply.
				qf, ok := e.policy.rule(name)
				if !ok {
					qf = []string{"max"}
				}
				for _, q := range s.GetQuantile() {
					one(name, m.GetLabel(), ".quantile."+omComponent(t, omPyFloat(q.GetQuantile())), qf, q.GetValue())
				}
				one(name+"_sum", m.GetLabel(), "", []string{"sum"}, s.GetSampleSum())
				one(name+"_count", m.GetLabel(), "", []string{"sum"}, float64(s.GetSampleCount()))
			default:
				t.Fatalf("family %s of type %v: the model does not cover it", name, mf.GetType())
			}
		}
	}
}

// lines returns the expected lines: aggregates (path → value) and per-instance ones.
func (e *omExpect) lines() map[string]float64 {
	out := map[string]float64{}
	for _, path := range e.order {
		s := e.series[path]
		if len(s.values) == 0 {
			continue
		}
		for _, fn := range s.funcs {
			v, ok := omFunc(fn, s.values)
			if !ok {
				continue
			}
			p := path
			if fn != "sum" {
				p += "." + fn
			}
			out[p] = v
		}
	}
	for p, v := range e.instance {
		out[p] = v
	}
	return out
}

// omFunc computes one function over values as aggregate/doc.go defines it, written
// independently: two-pass sample standard deviation, nearest-rank percentiles.
func omFunc(fn string, values []float64) (float64, bool) {
	n := len(values)
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	switch fn {
	case "sum":
		return sum, true
	case "count":
		return float64(n), true
	case "avg":
		return sum / float64(n), true
	case "min":
		return slices.Min(values), true
	case "max":
		return slices.Max(values), true
	case "stddev":
		if n < 2 {
			return 0, false
		}
		mean := sum / float64(n)
		ss := 0.0
		for _, v := range values {
			ss += (v - mean) * (v - mean)
		}
		return math.Sqrt(ss / float64(n-1)), true
	}
	if nn, err := strconv.Atoi(strings.TrimPrefix(fn, "p")); err == nil && strings.HasPrefix(fn, "p") {
		sorted := slices.Clone(values)
		slices.Sort(sorted)
		return sorted[int(math.RoundToEven(float64(n-1)*(float64(nn)/100)))], true
	}
	panic("unknown function " + fn)
}

// omClose says whether got equals want within a relative 1e-9; scale (the largest magnitude
// among the inputs) bounds the rounding error of a mean or deviation of nearly equal large
// values, whose result may be small.
func omClose(got, want, scale float64) bool {
	tol := 1e-9 * math.Max(math.Abs(want), scale)
	return math.Abs(got-want) <= tol
}

// omCompare checks that every expected line of the source is in got with its value and that
// got has no other line under the source's prefix. It returns the number of lines compared.
func omCompare(t *testing.T, e *omExpect, got map[string]float64) int {
	t.Helper()
	want := e.lines()
	scale := map[string]float64{}
	for path, s := range e.series {
		m := 0.0
		for _, v := range s.values {
			m = math.Max(m, math.Abs(v))
		}
		for _, fn := range s.funcs {
			scale[path+"."+fn] = m
		}
	}
	errs := 0
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("missing line %s (want %v)", p, w)
			errs++
		case !omClose(g, w, scale[p]):
			t.Errorf("%s = %v, want %v", p, g, w)
			errs++
		}
		if errs > 20 {
			t.Fatal("too many differences")
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && strings.HasPrefix(p, e.prefix+".") {
			t.Errorf("unexpected line %s %v", p, g)
			errs++
		}
		if errs > 20 {
			t.Fatal("too many differences")
		}
	}
	return len(want)
}

// omPolicy is the model of a source's aggregate options: rules (glob, functions) tried in
// order on the family, first match wins, else def. Option names, globs included, are
// lower-cased by the INI reader and matched without regard to case.
type omPolicy struct {
	def   []string
	rules [][2]string // glob, functions
}

func (p omPolicy) rule(family string) ([]string, bool) {
	for _, r := range p.rules {
		if ok, _ := path.Match(strings.ToLower(r[0]), strings.ToLower(family)); ok {
			if r[1] == "none" {
				return []string{}, true
			}
			return strings.Fields(r[1]), true
		}
	}
	return nil, false
}

func (p omPolicy) funcs(family string) []string {
	if f, ok := p.rule(family); ok {
		return f
	}
	if p.def == nil {
		return []string{"sum"}
	}
	return p.def
}

// options writes the policy as the lines of a source section.
func (p omPolicy) options() string {
	var b strings.Builder
	if p.def != nil {
		b.WriteString("aggregate = " + strings.Join(p.def, " ") + "\n")
	}
	for _, r := range p.rules {
		b.WriteString("aggregate." + r[0] + " = " + r[1] + "\n")
	}
	return b.String()
}

// omProcessOnly writes a configuration for stats-process alone under a base of its own, with
// sections appended, and copies the snapshot into its src-dir. It returns the configuration
// and its local-store directory.
func omProcessOnly(t *testing.T, snap, sections string) (string, string) {
	t.Helper()
	b := t.TempDir()
	copyTree(t, snap, filepath.Join(b, "incoming", filepath.Base(snap)))
	return writeConfig(t, b, `
[paths]
base-dir = `+b+`
[process]
src-dir = ${paths:base-dir}/incoming
[graphite]
enabled = false
hostname = vm
[local-store]
dir = ${paths:base-dir}/store
`+sections), filepath.Join(b, "store")
}

// Three node_exporters as one source: the store holds exactly the sums, means, maxima,
// medians and deviations computed independently from the three bodies of the snapshot; the
// same snapshot processed with a richer policy (a default, first-match rules, a capitalised
// glob, none, a rule on a summary) matches the model too.
func TestOpenMetricsNodeExporters(t *testing.T) {
	urls := testrig.StartNodeExporters(t, 3)
	base := t.TempDir()
	policy := omPolicy{rules: [][2]string{{"node_load*", "sum avg max p50 stddev"}}}
	conf := omConfig(t, base, "", `
[source.node]
type = openmetrics
urls = `+strings.Join(urls, "\n       ")+`
`+policy.options()+`per-instance-metrics = true
`)
	snap, _ := omPull(t, conf)
	epoch := filepath.Base(snap)
	// stats-process removes the snapshot: keep the bodies it is given.
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)

	bodies := map[string]map[string]*dto.MetricFamily{}
	for _, u := range urls {
		inst := hostPortInstance(u)
		meta := omReadMeta(t, filepath.Join(kept, "node", inst+".meta.json"))
		if meta.ContentEncoding != "gzip" || meta.WireBytes <= 0 || meta.WireBytes >= meta.Bytes || meta.Status != 200 {
			t.Errorf("%s.meta.json: %+v; want content_encoding gzip, status 200 and 0 < wire_bytes < bytes", inst, meta)
		}
		if !strings.HasPrefix(meta.ContentType, "text/plain") {
			t.Errorf("%s.meta.json: content_type %q, want node_exporter's text/plain", inst, meta.ContentType)
		}
		if fi, err := os.Stat(filepath.Join(kept, "node", inst+".body")); err != nil || fi.Size() != meta.Bytes {
			t.Errorf("%s.body: %v (%v), want the %d bytes meta.json records", inst, fi, err, meta.Bytes)
		}
		bodies[inst] = omParse(t, filepath.Join(kept, "node", inst+".body"))
	}
	// Fed in instance-name order, as stats-process does (the order does not change values).
	insts := slices.Sorted(maps.Keys(bodies))
	model := func(p omPolicy, perInstance bool) *omExpect {
		e := newOMExpect(t, "node", p)
		for _, inst := range insts {
			e.feed(inst, bodies[inst], perInstance)
		}
		return e
	}
	e := model(policy, true)
	n := omCompare(t, e, got)
	nLoad := 0
	for p := range e.lines() {
		if strings.Contains(p, ".node_load") && !strings.Contains(p, ".instance.") {
			nLoad++
		}
	}
	t.Logf("%d series, %d lines compared (%d of node_load*), %d lines in the store", len(e.series), n, nLoad, len(got))
	if nLoad != 3*5 {
		t.Errorf("%d node_load* aggregate lines, want 15 (3 gauges × sum avg max p50 stddev)", nLoad)
	}

	// A few families straight from each body, without the model: per-instance values and
	// the summary's quantiles at .max.
	for _, inst := range insts {
		ip := omPrefix + ".node.instance." + strings.ReplaceAll(inst, ".", "_")
		for _, fam := range []string{"node_load1", "node_memory_MemTotal_bytes", "go_goroutines"} {
			m := bodies[inst][fam].GetMetric()[0]
			if g, w := got[ip+"."+fam], m.GetGauge().GetValue(); g != w {
				t.Errorf("%s.%s = %v, want the body's %v", ip, fam, g, w)
			}
		}
	}
	gc := omPrefix + ".node.go_gc_duration_seconds.quantile.0_5.max"
	want := math.Inf(-1)
	for _, inst := range insts {
		for _, q := range bodies[inst]["go_gc_duration_seconds"].GetMetric()[0].GetSummary().GetQuantile() {
			if q.GetQuantile() == 0.5 {
				want = math.Max(want, q.GetValue())
			}
		}
	}
	if g, ok := got[gc]; !ok || g != want {
		t.Errorf("%s = %v (present %v), want the largest median %v", gc, g, ok, want)
	}

	// The same bodies with a richer policy, given by a stats-process configuration of its
	// own (it wins over the options the snapshot recorded).
	rich := omPolicy{def: []string{"sum", "max"}, rules: [][2]string{
		{"node_load*", "p50 p90 min"},
		{"node_cpu_seconds_total", "avg min max count stddev p50 p90"},
		{"node_memory_Mem*", "max avg"}, // capitals: the INI reader lower-cases the glob
		{"node_network_*", "none"},
		{"go_gc_duration_seconds", "avg p50"}, // a rule on a summary: its quantiles follow it
		{"go_*", "count"},                     // …but its _sum and _count are still summed
		{"node_*", "sum stddev"},
	}}
	richConf, richStore := omProcessOnly(t, kept, `
[source.node]
type = openmetrics
`+rich.options())
	gotRich := omProcess(t, richConf, richStore, epoch)
	er := model(rich, false)
	nr := omCompare(t, er, gotRich)
	spread := 0
	for p, v := range er.lines() {
		if strings.HasSuffix(p, ".stddev") && v != 0 {
			spread++
		}
	}
	t.Logf("rich policy: %d lines compared (%d deviations not 0), %d in the store", nr, spread, len(gotRich))
}

// omHAProxy sends one command to a stats socket and returns the reply.
func omHAProxy(t *testing.T, sock, command string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// omShowStat returns `show stat` as "pxname/svname" → column → value.
func omShowStat(t *testing.T, sock string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(omHAProxy(t, sock, "show stat")), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		t.Fatalf("show stat on %s answered %.200q", sock, lines)
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	out := map[string]map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(f) {
				row[c] = f[i]
			}
		}
		out[row["pxname"]+"/"+row["svname"]] = row
	}
	return out
}

// omFrontendAddr finds where frontend fe_main of the haproxy behind sock listens: the rig does
// not return it, so it is read from that process's own configuration file (show info's Pid →
// its command line's -f).
func omFrontendAddr(t *testing.T, sock string) string {
	t.Helper()
	pid := ""
	for _, l := range strings.Split(omHAProxy(t, sock, "show info"), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid: "); ok {
			pid = strings.TrimSpace(v)
		}
	}
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		t.Fatalf("haproxy behind %s (pid %q): %v", sock, pid, err)
	}
	args := strings.Split(string(cmdline), "\x00")
	i := slices.Index(args, "-f")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("haproxy pid %s: no -f in %q", pid, args)
	}
	cfg, err := os.ReadFile(args[i+1])
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(cfg), "frontend fe_main\n")
	if !ok {
		t.Fatalf("%s has no frontend fe_main", args[i+1])
	}
	for _, l := range strings.Split(rest, "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(l), "bind "); ok {
			return strings.Fields(a)[0]
		}
	}
	t.Fatalf("%s: frontend fe_main has no bind line", args[i+1])
	return ""
}

// omRequests sends n GET requests through addr, each on its own connection, reading every
// reply to its end.
func omRequests(t *testing.T, addr string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	for range n {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET via fe_main %s: %s", addr, resp.Status)
		}
	}
}

// PROMEX of two haproxys as one source and the HAProxy socket source of the same two, in the
// same round: the frontend and backend counters summed over the instances are the same
// numbers, and equal the sums of the raw PROMEX bodies.
func TestOpenMetricsPromexMatchesSocket(t *testing.T) {
	hs := testrig.StartPromexHAProxy(t, 2)
	sockDir := filepath.Dir(hs[0].StatsSocket)
	if filepath.Dir(hs[1].StatsSocket) != sockDir {
		t.Fatalf("the rig put the sockets in different directories: %v", hs)
	}
	// be_app balances over app1 and app.dead (127.0.0.1:1): requests go out only once the
	// health checks have marked app.dead DOWN (fall 3 × inter 1 s), so every one succeeds.
	for _, h := range hs {
		waitUntil(t, 8*time.Second, "app.dead DOWN and app1 UP behind "+h.StatsSocket, func() bool {
			st := omShowStat(t, h.StatsSocket)
			return st["be_app/app.dead"]["status"] == "DOWN" && st["be_app/app1"]["status"] == "UP"
		})
	}
	sent := []int{5, 7}
	for i, h := range hs {
		omRequests(t, omFrontendAddr(t, h.StatsSocket), sent[i])
	}
	// Settled: every request counted, no session left open, on both instances.
	for i, h := range hs {
		waitUntil(t, 5*time.Second, "the traffic to settle on "+h.StatsSocket, func() bool {
			st := omShowStat(t, h.StatsSocket)
			fe, be := st["fe_main/FRONTEND"], st["be_app/BACKEND"]
			return fe["req_tot"] == strconv.Itoa(sent[i]) && fe["scur"] == "0" && be["scur"] == "0" &&
				be["stot"] == strconv.Itoa(sent[i])
		})
	}
	base := t.TempDir()
	conf := omConfig(t, base, "socket-dir = "+sockDir, `
[source.promex]
type = openmetrics
urls = `+hs[0].MetricsURL+` `+hs[1].MetricsURL+`
`)
	snap, _ := omPull(t, conf)
	epoch := filepath.Base(snap)
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)

	var bodies []map[string]*dto.MetricFamily
	for _, h := range hs {
		bodies = append(bodies, omParse(t, filepath.Join(kept, "promex", hostPortInstance(h.MetricsURL)+".body")))
	}
	// rawSum is the independent sum over the bodies of family{proxy=…} (no other label).
	rawSum := func(family, proxy string) float64 {
		sum, found := 0.0, 0
		for _, mfs := range bodies {
			for _, m := range mfs[family].GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetName() == "proxy" && m.GetLabel()[0].GetValue() == proxy {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
					found++
				}
			}
		}
		if found != len(bodies) {
			t.Fatalf("%s{proxy=%q} in %d of %d bodies", family, proxy, found, len(bodies))
		}
		return sum
	}
	pairs := []struct{ promex, proxy, socket string }{
		{"haproxy_frontend_http_requests_total", "fe_main", "frontend.fe_main.req_tot"},
		{"haproxy_frontend_sessions_total", "fe_main", "frontend.fe_main.stot"},
		{"haproxy_frontend_bytes_in_total", "fe_main", "frontend.fe_main.bin"},
		{"haproxy_frontend_bytes_out_total", "fe_main", "frontend.fe_main.bout"},
		{"haproxy_backend_sessions_total", "be_app", "backend.be_app.stot"},
		{"haproxy_backend_bytes_in_total", "be_app", "backend.be_app.bin"},
		{"haproxy_backend_bytes_out_total", "be_app", "backend.be_app.bout"},
		{"haproxy_backend_http_requests_total", "be_app", "backend.be_app.req_tot"},
	}
	for _, p := range pairs {
		pp := omPrefix + ".promex." + p.promex + ".proxy." + p.proxy
		sp := omPrefix + ".haproxy." + p.socket
		pv, pok := got[pp]
		sv, sok := got[sp]
		raw := rawSum(p.promex, p.proxy)
		if !pok || !sok || pv != sv || pv != raw {
			t.Errorf("%s = %v (present %v), %s = %v (present %v), raw PROMEX bodies sum %v: want all equal",
				pp, pv, pok, sp, sv, sok, raw)
		}
	}
	total := float64(sent[0] + sent[1])
	if got[omPrefix+".promex.haproxy_frontend_http_requests_total.proxy.fe_main"] != total {
		t.Errorf("fe_main requests: %v, want the %v sent", got[omPrefix+".promex.haproxy_frontend_http_requests_total.proxy.fe_main"], total)
	}
	// And every PROMEX series: the sum over the two bodies, nothing else under promex.
	e := newOMExpect(t, "promex", omPolicy{})
	for i, h := range hs {
		e.feed(hostPortInstance(h.MetricsURL), bodies[i], false)
	}
	n := omCompare(t, e, got)
	t.Logf("%d counter pairs compared; %d PROMEX lines against the bodies; %d lines in the store", len(pairs), n, len(got))
}

// The Python client's OpenMetrics exposition (two instances of the app): counters of the
// OpenMetrics form, an escaped label value, info and stateset families, a histogram turned
// into quantiles from its merged buckets, no _created series and nothing for a NaN gauge.
func TestOpenMetricsPythonApp(t *testing.T) {
	urls := []string{testrig.StartPythonOpenMetricsApp(t), testrig.StartPythonOpenMetricsApp(t)}
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.py]
type = openmetrics
urls = a=`+urls[0]+`
       web.2=`+urls[1]+`
per-instance-metrics = true
`)
	snap, _ := omPull(t, conf)
	epoch := filepath.Base(snap)
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)
	for _, inst := range []string{"a", "web.2"} {
		meta := omReadMeta(t, filepath.Join(snap, "py", inst+".meta.json"))
		if !strings.HasPrefix(meta.ContentType, "application/openmetrics-text") {
			t.Errorf("%s.meta.json: content_type %q, want application/openmetrics-text", inst, meta.ContentType)
		}
		body, err := os.ReadFile(filepath.Join(snap, "py", inst+".body"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(body, []byte("# EOF\n")) || !bytes.Contains(body, []byte("app_jobs_created{")) {
			t.Errorf("%s.body is not the OpenMetrics form (# EOF, _created):\n%s", inst, body)
		}
	}
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)
	p := omPrefix + ".py."
	// The app observed 0.3 once in buckets le=0.1 (0), le=1.0 (1), +Inf (1), on both
	// instances: merged, the cumulative counts are 0, 2, 2 and count(+Inf) = 2. The rank of
	// quantile q is q × 2; it first reaches a count in the bucket (0.1, 1.0], whose lower count
	// is 0 and upper count 2, so the value is 0.1 + (1.0 − 0.1) × (q×2 − 0) / (2 − 0):
	// p50 → 0.1 + 0.9 × 0.5 = 0.55, p90 → 0.1 + 0.9 × 0.9 = 0.91, p99 → 0.1 + 0.9 × 0.99 = 0.991.
	// Each instance alone (count 1, rank q) gives the same values.
	want := map[string]float64{
		p + "app_jobs_total.result.ok":           6,
		p + "app_jobs_total.result.bad__x__line": 2, // `bad "x"\nline`: space, quote, quote, newline → _
		p + "app_room_temp_celsius":              41,
		p + "app_version_info.v.1":               2,
		p + "app_mode.app_mode.a":                0,
		p + "app_mode.app_mode.b":                2,
		p + "app_wait_seconds_count":             2,
		p + "app_wait_seconds_sum":               0.6,
		p + "app_wait_seconds.p50":               0.55,
		p + "app_wait_seconds.p90":               0.91,
		p + "app_wait_seconds.p99":               0.991,
	}
	// The instance named web.2 in urls: a dot cannot make a path component.
	for _, inst := range []string{"a", "web_2"} {
		ip := p + "instance." + inst + "."
		for k, v := range map[string]float64{
			"app_jobs_total.result.ok": 3, "app_jobs_total.result.bad__x__line": 1,
			"app_room_temp_celsius": 20.5, "app_version_info.v.1": 1, "app_mode.app_mode.a": 0, "app_mode.app_mode.b": 1,
			"app_wait_seconds_count": 1, "app_wait_seconds_sum": 0.3, "app_wait_seconds.p50": 0.55,
			"app_wait_seconds.p90": 0.91, "app_wait_seconds.p99": 0.991,
		} {
			want[ip+k] = v
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !omClose(g, w, 0) {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	for k, v := range got {
		if strings.Contains(k, "_created") || strings.Contains(k, "app_missing") ||
			strings.Contains(k, "app_wait_seconds_bucket") || math.IsNaN(v) {
			t.Errorf("unexpected line %s %v (no _created, NaN or bucket line is written)", k, v)
		}
	}
	if t.Failed() {
		var ls []string
		for k, v := range got {
			if strings.Contains(k, ".app_") {
				ls = append(ls, fmt.Sprintf("%s %v", k, v))
			}
		}
		slices.Sort(ls)
		t.Logf("app_ lines in the store:\n%s", strings.Join(ls, "\n"))
	}
	t.Logf("%d lines checked; %d lines in the store", len(want), len(got))

	// The same snapshot with bucket lines, other quantiles and Graphite tags. Ranks q × 2 in
	// (0.1, 1.0]: p25 → 0.1 + 0.9 × 0.5/2 = 0.325, p75 → 0.1 + 0.9 × 1.5/2 = 0.775. Tag values
	// keep '"' (printable) but map white space to '_'.
	tagConf, tagStore := omProcessOnly(t, kept, `
[source.py]
type = openmetrics
histogram-buckets = true
histogram-quantiles = p25 p75
graphite-tags = true
per-instance-metrics = true
`) // a tag value keeps the dot of web.2
	gotTags := omProcess(t, tagConf, tagStore, epoch)
	pt := omPrefix + ".py."
	wantTags := map[string]float64{
		pt + "app_jobs_total;result=ok":             6,
		pt + `app_jobs_total;result=bad_"x"_line`:   2,
		pt + "app_jobs_total;instance=a;result=ok":  3,
		pt + "app_mode;app_mode=b":                  2,
		pt + "app_version_info;v=1":                 2,
		pt + "app_wait_seconds.p25":                 0.325,
		pt + "app_wait_seconds.p75":                 0.775,
		pt + "app_wait_seconds.p75;instance=web.2":  0.775, // the function comes before the tags
		pt + "app_wait_seconds_count":               2,
		pt + "app_wait_seconds_bucket;le=0.1":       0,
		pt + "app_wait_seconds_bucket;le=1.0":       2,
		pt + "app_wait_seconds_bucket;le=inf":       2,
		pt + "app_room_temp_celsius;instance=web.2": 20.5,
		pt + "app_wait_seconds_sum":                 0.6,
	}
	for k, w := range wantTags {
		if g, ok := gotTags[k]; !ok || !omClose(g, w, 0) {
			t.Errorf("tags: %s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	for k, v := range gotTags {
		// An instance's histogram gives its quantiles, never bucket lines.
		if strings.Contains(k, "_bucket;instance=") {
			t.Errorf("tags: per-instance bucket line %s %v", k, v)
		}
		if strings.Contains(k, ".app_") && (strings.Contains(k, ".p50") || strings.Contains(k, ".result.") ||
			strings.Contains(k, ".instance.") || strings.Contains(k, "_created")) {
			t.Errorf("tags: unexpected line %s %v", k, v)
		}
	}
	if t.Failed() {
		var ls []string
		for k, v := range gotTags {
			if strings.Contains(k, ".app_") {
				ls = append(ls, fmt.Sprintf("%s %v", k, v))
			}
		}
		slices.Sort(ls)
		t.Logf("app_ lines with tags:\n%s", strings.Join(ls, "\n"))
	}
}

// One instance of source A refuses connections: without allow-partial A is left out of the
// round (recorded in statspipe-partial as A/<instance>) while source B and the HAProxy socket
// source are delivered; with allow-partial A's answering instance is delivered too.
func TestOpenMetricsFailingInstanceKeepsOtherSource(t *testing.T) {
	nodes := testrig.StartNodeExporters(t, 2)
	hs := testrig.StartPromexHAProxy(t, 1)
	dead := "http://" + closedPort(t) + "/metrics"
	deadInst := hostPortInstance(dead)
	for _, allowPartial := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow-partial=%v", allowPartial), func(t *testing.T) {
			base := t.TempDir()
			conf := omConfig(t, base, "socket-dir = "+filepath.Dir(hs[0].StatsSocket), `
[source.A]
type = openmetrics
urls = `+nodes[0]+` `+dead+`
allow-partial = `+strconv.FormatBool(allowPartial)+`
[source.B]
type = openmetrics
urls = `+nodes[1]+`
`)
			snap, log := omPull(t, conf)
			epoch := filepath.Base(snap)
			// The log names the source and the instance that failed.
			failedLine := ""
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "A/"+deadInst) {
					failedLine = l
				}
			}
			if !strings.Contains(failedLine, "source=A/"+deadInst+" ") || !strings.Contains(failedLine, "connection refused") {
				t.Errorf("no stats-pull log line names source A, instance %s and the refusal:\n%s", deadInst, log)
			}
			leftOut := strings.Contains(log, `msg="source left out of this round: not every instance answered" program=stats-pull source=A `)
			if leftOut == allowPartial {
				t.Errorf("log says A was left out: %v, want %v:\n%s", leftOut, !allowPartial, log)
			}
			record, err := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
			if err != nil {
				t.Fatalf("no statspipe-partial in the snapshot: %v", err)
			}
			recLines := strings.Split(strings.TrimSuffix(string(record), "\n"), "\n")
			if len(recLines) != 1 || !strings.HasPrefix(recLines[0], "A/"+deadInst+"\t") {
				t.Errorf("statspipe-partial = %q, want one line `A/%s\\t<error>`", record, deadInst)
			}
			_, errA := os.Stat(filepath.Join(snap, "A"))
			if allowPartial {
				if _, err := os.Stat(filepath.Join(snap, "A", hostPortInstance(nodes[0])+".body")); err != nil {
					t.Errorf("allow-partial: A's answering instance is not in the snapshot: %v", err)
				}
				if _, err := os.Stat(filepath.Join(snap, "A", deadInst+".meta.json")); err == nil {
					t.Errorf("the failed instance has files in the snapshot")
				}
			} else if !os.IsNotExist(errA) {
				t.Errorf("source A is in the snapshot (%v), want it left out", errA)
			}
			got := omProcess(t, conf, filepath.Join(base, "store"), epoch)
			count := func(prefix string) int {
				n := 0
				for k := range got {
					if strings.HasPrefix(k, prefix) {
						n++
					}
				}
				return n
			}
			nA, nB, nH := count(omPrefix+".A."), count(omPrefix+".B."), count(omPrefix+".haproxy.")
			if nB < 100 || nH < 50 {
				t.Errorf("source B gave %d lines, HAProxy %d: want both delivered", nB, nH)
			}
			if _, ok := got[omPrefix+".B.node_memory_MemTotal_bytes"]; !ok {
				t.Errorf("source B has no node_memory_MemTotal_bytes line")
			}
			if allowPartial {
				// A is then the one answering node_exporter: as many series as B's.
				if nA != nB {
					t.Errorf("allow-partial: A gave %d lines, want as many as B (%d)", nA, nB)
				}
				inst := omPrefix + ".A.instance."
				if count(inst) != 0 {
					t.Errorf("per-instance lines without per-instance-metrics")
				}
			} else if nA != 0 {
				t.Errorf("A gave %d lines, want none", nA)
			}
			t.Logf("lines: A %d, B %d, haproxy %d; log: %s", nA, nB, nH, failedLine)
		})
	}
}

// A snapshot carries its source's processing options (source.json): stats-process with a
// configuration that has no [source.*] at all writes exactly what it writes with the pulling
// configuration; a [source.node] of its own, with other options, wins over the recorded ones.
func TestOpenMetricsSnapshotWithoutSourceConfig(t *testing.T) {
	urls := testrig.StartNodeExporters(t, 2)
	base := t.TempDir()
	full := omConfig(t, base, "", `
[source.node]
type = openmetrics
urls = `+urls[0]+` `+urls[1]+`
aggregate.node_load* = max p95
per-instance-metrics = true
`)
	snap, _ := omPull(t, full)
	epoch := filepath.Base(snap)
	info, err := os.ReadFile(filepath.Join(snap, "node", "source.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(info, []byte("node_load*")) || bytes.Contains(info, []byte("127.0.0.1")) {
		t.Errorf("source.json records %s: want the aggregate rule, never the URLs", info)
	}
	bare, bareStore := omProcessOnly(t, snap, "")
	other, otherStore := omProcessOnly(t, snap, `
[source.node]
type = openmetrics
aggregate.node_load* = min
`)
	withFull := omProcess(t, full, filepath.Join(base, "store"), epoch)
	withBare := omProcess(t, bare, bareStore, epoch)
	withOther := omProcess(t, other, otherStore, epoch)

	if !maps.Equal(withFull, withBare) {
		for k, v := range withFull {
			if w, ok := withBare[k]; !ok || w != v {
				t.Errorf("pulling configuration: %s %v; without [source.*]: %v (present %v)", k, v, w, ok)
			}
		}
		for k, v := range withBare {
			if _, ok := withFull[k]; !ok {
				t.Errorf("without [source.*] only: %s %v", k, v)
			}
		}
	}
	fullFile, _ := os.ReadFile(filepath.Join(base, "store", epoch, "stats"))
	bareFile, _ := os.ReadFile(filepath.Join(bareStore, epoch, "stats"))
	if !bytes.Equal(fullFile, bareFile) {
		t.Errorf("the local-store files differ (%d and %d bytes)", len(fullFile), len(bareFile))
	}
	// The recorded options were the pulling ones, not the defaults.
	n := omPrefix + ".node.node_load1"
	inst := omPrefix + ".node.instance." + omComponent(t, hostPortInstance(urls[0])) + ".node_load1"
	for _, c := range []struct {
		name  string
		lines map[string]float64
		has   []string
		not   []string
	}{
		{"without [source.*]", withBare, []string{n + ".max", n + ".p95", inst}, []string{n, n + ".min"}},
		{"with its own [source.node]", withOther, []string{n + ".min"}, []string{n, n + ".max", n + ".p95", inst}},
	} {
		for _, p := range c.has {
			if _, ok := c.lines[p]; !ok {
				t.Errorf("%s: no line %s", c.name, p)
			}
		}
		for _, p := range c.not {
			if v, ok := c.lines[p]; ok {
				t.Errorf("%s: unexpected line %s %v", c.name, p, v)
			}
		}
	}
	for k := range withOther {
		if strings.Contains(k, ".instance.") {
			t.Errorf("with its own [source.node] (per-instance-metrics false): per-instance line %s", k)
			break
		}
	}
	t.Logf("%d lines equal with and without [source.*]; %d with the overriding section", len(withBare), len(withOther))
}
