package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The Envoy source kind end to end: fixture admin servers replaying real Envoy payloads
// (values rewritten per instance) → stats-pull --once → stats-process --once → the local
// store, checked against sums, default policies and merged-histogram quantiles computed here,
// independently (expfmt for the Prometheus form, plain string handling for the text form),
// from the raw bodies the snapshot holds.

const envoyPayloads = "../internal/sources/envoy/testdata/"

// envoyVary rewrites every sample value of a body for instance k (1, 2, 3…): v → v·(k+1) +
// k·(f mod 5), f the index of the sample's family (or, in the text form, of the line), so that
// the instances differ and a histogram's buckets stay cumulative.
func envoyVary(t *testing.T, body []byte, k int, prom bool) []byte {
	t.Helper()
	var out bytes.Buffer
	fam := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case prom && strings.HasPrefix(line, "#"):
			fam++
			out.WriteString(line + "\n")
			continue
		case !prom:
			fam++
		}
		var name, val string
		if prom {
			i := strings.LastIndexByte(line, ' ')
			name, val = line[:i+1], line[i+1:]
		} else {
			i := strings.Index(line, ": ")
			name, val = line[:i+2], line[i+2:]
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			out.WriteString(line + "\n") // a text readout, a histogram line
			continue
		}
		fmt.Fprintf(&out, "%s%s\n", name, strconv.FormatFloat(v*float64(k+1)+float64(k*(fam%5)), 'f', -1, 64))
	}
	return out.Bytes()
}

// envoyFixture starts one fake admin endpoint: path → body, served gzipped when asked for.
func envoyFixture(t *testing.T, bodies map[string][]byte, gz bool) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if gz && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(b)
			zw.Close()
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// envoyFaults starts the failing instances: a 500, one slower than the timeout (it answers
// when the client gives up, or after 10 s), one whose body is cut inside a line, one larger
// than max-body-size.
func envoyFaults(t *testing.T, path string, body []byte) map[string]string {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	return map[string]string{
		"e500": srv(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }),
		"slow": srv(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w.Write(body)
		}),
		"truncated": srv(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path {
				http.NotFound(w, r)
				return
			}
			w.Write(body[:len(body)/2+7]) // complete for HTTP, cut inside a line for Envoy
		}),
		"oversized": srv(func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat(body, 4))
		}),
	}
}

// envoyName maps an exposition family name and its labels to the Graphite name the README
// documents (written anew here for the shapes of the payload) and the labels left.
func envoyName(name string, labels map[string]string) (string, map[string]string) {
	left := map[string]string{}
	for k, v := range labels {
		left[k] = v
	}
	one := func(v string) string { return strings.ReplaceAll(v, ".", "_") }
	take := func(k string) (string, bool) {
		v, ok := left[k]
		if ok {
			delete(left, k)
		}
		return one(v), ok
	}
	n := strings.TrimPrefix(name, "envoy_")
	if strings.HasSuffix(n, "_rq_xx") {
		if c, ok := take("envoy_response_code_class"); ok {
			n = strings.TrimSuffix(n, "xx") + c + "xx"
		}
	}
	has := func(ks ...string) bool {
		for _, k := range ks {
			if _, ok := left[k]; !ok {
				return false
			}
		}
		return true
	}
	cut := func(p string) (string, bool) {
		r, ok := strings.CutPrefix(n, p)
		return r, ok && r != ""
	}
	if r, ok := cut("listener_admin_http_"); ok && has("envoy_http_conn_manager_prefix") {
		p, _ := take("envoy_http_conn_manager_prefix")
		return "listener.admin.http." + p + "." + r, left
	}
	if r, ok := cut("listener_http_"); ok && has("envoy_listener_address", "envoy_http_conn_manager_prefix") {
		a, _ := take("envoy_listener_address")
		p, _ := take("envoy_http_conn_manager_prefix")
		return "listener." + a + ".http." + p + "." + r, left
	}
	if r, ok := cut("listener_worker_"); ok && has("envoy_listener_address", "envoy_worker_id") {
		a, _ := take("envoy_listener_address")
		w, _ := take("envoy_worker_id")
		return "listener." + a + ".worker_" + w + "." + r, left
	}
	if r, ok := cut("listener_"); ok && has("envoy_listener_address") {
		a, _ := take("envoy_listener_address")
		return "listener." + a + "." + r, left
	}
	if r, ok := cut("http_"); ok && has("envoy_http_conn_manager_prefix") {
		p, _ := take("envoy_http_conn_manager_prefix")
		return "http." + p + "." + r, left
	}
	if r, ok := cut("cluster_"); ok && has("envoy_cluster_name") {
		c, _ := take("envoy_cluster_name")
		return "cluster." + c + "." + r, left
	}
	if r, ok := cut("server_worker_"); ok && has("envoy_worker_id") {
		w, _ := take("envoy_worker_id")
		return "server.worker_" + w + "." + r, left
	}
	for _, root := range []string{"cluster_manager", "listener_manager", "main_thread", "listener_admin", "filesystem", "runtime", "workers", "server", "http1", "dns"} {
		if r, ok := cut(root + "_"); ok {
			if root == "listener_admin" {
				root = "listener.admin"
			}
			return root + "." + r, left
		}
	}
	return n, left
}

// envoyPath renders a dotted name and labels as the engine writes them.
func envoyPath(t *testing.T, prefix, dotted string, labels map[string]string, suffix string) string {
	p := prefix
	for _, part := range strings.Split(dotted, ".") {
		p += "." + omComponent(t, part)
	}
	p += suffix
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if labels[k] != "" {
			p += "." + omComponent(t, k) + "." + omComponent(t, labels[k])
		}
	}
	return p
}

// envoyDefaults is the README's default-policy table (the globs on dotted names).
var envoyDefaults = [][2]string{
	{"histogram/*", "none"},
	{"server.uptime", "min"},
	{"server.version", "max"},
	{"server.days_until_first_cert_expiring", "min"},
	{"server.seconds_until_first_ocsp_response_expiring", "min"},
	{"server.hot_restart_epoch", "max"},
	{"server.hot_restart_generation", "max"},
	{"server.state", "max"},
	{"server.live", "sum min"},
	{"server.concurrency", "sum max"},
	{"cluster.*.membership_healthy", "min max"},
	{"cluster.*.membership_degraded", "min max"},
	{"cluster.*.membership_excluded", "min max"},
	{"cluster.*.membership_total", "min max"},
	{"cluster.*.max_host_weight", "max"},
	{"cluster.*.version", "none"},
	{"cluster_manager.active_clusters", "min max"},
	{"cluster_manager.warming_clusters", "sum max"},
	{"listener_manager.total_listeners_active", "min max"},
	{"listener_manager.total_listeners_warming", "sum max"},
	{"listener_manager.total_listeners_draining", "sum max"},
	{"runtime.num_keys", "min max"},
	{"runtime.num_layers", "min max"},
}

// envoyHist is one histogram's cumulative counts by bound, summed over instances.
type envoyHist struct {
	counts     map[float64]float64
	sum, count float64
}

// envoyQuantile is histogram_quantile as aggregate/doc.go states it, written anew: sorted
// bounds, counts made monotonic, rank q·total, linear interpolation, +Inf → highest finite
// bound.
func envoyQuantile(h *envoyHist, q float64) (float64, bool) {
	bounds := make([]float64, 0, len(h.counts))
	for b := range h.counts {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) < 2 || !math.IsInf(bounds[len(bounds)-1], 1) {
		return 0, false
	}
	counts := make([]float64, len(bounds))
	for i, b := range bounds {
		counts[i] = h.counts[b]
		if i > 0 && counts[i] < counts[i-1] {
			counts[i] = counts[i-1]
		}
	}
	total := counts[len(counts)-1]
	if total == 0 {
		return 0, false
	}
	rank := q * total
	i := sort.SearchFloat64s(counts, rank)
	if i == len(bounds)-1 {
		return bounds[len(bounds)-2], true
	}
	lower, prev := 0.0, 0.0
	if i > 0 {
		lower, prev = bounds[i-1], counts[i-1]
	} else if bounds[0] <= 0 {
		return bounds[0], true
	}
	return lower + (bounds[i]-lower)*(rank-prev)/(counts[i]-prev), true
}

func TestEnvoyPrometheusFleet(t *testing.T) {
	raw, err := os.ReadFile(envoyPayloads + "netdata_envoy_stats_prometheus.txt")
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{}
	for k := 1; k <= 3; k++ {
		body := envoyVary(t, raw, k, true)
		urls = append(urls, fmt.Sprintf("e%d=%s", k, envoyFixture(t, map[string][]byte{"/stats/prometheus": body}, k == 1)))
	}
	faults := envoyFaults(t, "/stats/prometheus", raw)
	for _, n := range []string{"e500", "slow", "truncated", "oversized"} {
		urls = append(urls, n+"="+faults[n])
	}
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.mesh]
type = envoy
urls = `+strings.Join(urls, "\n       ")+`
allow-partial = true
timeout = 1
max-body-size = 200000
`)
	snap, log := omPull(t, conf)
	epoch := filepath.Base(snap)
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)

	record, err := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
	if err != nil {
		t.Fatalf("no statspipe-partial: %v\n%s", err, log)
	}
	for n, want := range map[string]string{"e500": "500", "slow": "", "truncated": "does not parse", "oversized": "200000"} {
		line := ""
		for _, l := range strings.Split(string(record), "\n") {
			if strings.HasPrefix(l, "mesh/"+n+"\t") {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, want) {
			t.Errorf("statspipe-partial has no line for %s with %q:\n%s", n, want, record)
		}
		if _, err := os.Stat(filepath.Join(snap, "mesh", n+".body")); err == nil {
			t.Errorf("the failed instance %s left a body", n)
		}
	}
	meta := omReadMeta(t, filepath.Join(kept, "mesh", "e1.meta.json"))
	if meta.ContentEncoding != "gzip" || meta.WireBytes >= meta.Bytes || !strings.HasSuffix(meta.URL, "/stats/prometheus") {
		t.Errorf("e1.meta.json %+v: want gzip, wire < bytes, the /stats/prometheus URL", meta)
	}

	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)

	// The model, from the three bodies the snapshot holds.
	prefix := omPrefix + ".mesh"
	policy := omPolicy{rules: envoyDefaults}
	plain := newOMExpect(t, "mesh", policy)
	hists := map[string]*envoyHist{}
	var histOrder []string
	for _, inst := range []string{"e1", "e2", "e3"} {
		mfs := omParse(t, filepath.Join(kept, "mesh", inst+".body"))
		for name, mf := range mfs {
			for _, m := range mf.GetMetric() {
				ls := map[string]string{}
				for _, l := range m.GetLabel() {
					ls[l.GetName()] = l.GetValue()
				}
				dotted, left := envoyName(name, ls)
				switch mf.GetType() {
				case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
					v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
					plain.add(envoyPath(t, prefix, dotted, left, ""), policy.funcs(dotted), v)
				case dto.MetricType_HISTOGRAM:
					key := envoyPath(t, prefix, dotted, left, "")
					h := hists[key]
					if h == nil {
						h = &envoyHist{counts: map[float64]float64{}}
						hists[key] = h
						histOrder = append(histOrder, key)
					}
					inf := false
					for _, b := range m.GetHistogram().GetBucket() {
						h.counts[b.GetUpperBound()] += float64(b.GetCumulativeCount())
						inf = inf || math.IsInf(b.GetUpperBound(), 1)
					}
					if !inf { // expfmt may keep the +Inf bucket as the sample count only
						h.counts[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
					}
					h.sum += m.GetHistogram().GetSampleSum()
					h.count += float64(m.GetHistogram().GetSampleCount())
					plain.add(envoyPath(t, prefix, dotted+"_sum", left, ""), []string{"sum"}, m.GetHistogram().GetSampleSum())
					plain.add(envoyPath(t, prefix, dotted+"_count", left, ""), []string{"sum"}, float64(m.GetHistogram().GetSampleCount()))
				default:
					t.Fatalf("family %s of type %v", name, mf.GetType())
				}
			}
		}
	}
	want := plain.lines()
	nq := 0
	for _, key := range histOrder {
		for _, q := range []int{50, 90, 99} {
			if v, ok := envoyQuantile(hists[key], float64(q)/100); ok {
				want[fmt.Sprintf("%s.p%d", key, q)] = v
				nq++
			}
		}
	}
	errs := 0
	for p, w := range want {
		g, ok := got[p]
		if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v (present %v), want %v", p, g, ok, w)
			if errs++; errs > 20 {
				t.Fatal("too many differences")
			}
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && strings.HasPrefix(p, prefix+".") {
			t.Errorf("unexpected line %s %v", p, g)
			if errs++; errs > 20 {
				t.Fatal("too many differences")
			}
		}
	}
	// A few by hand: the defaults and the layout.
	for _, p := range []string{
		prefix + ".server.uptime.min",
		prefix + ".cluster.service_envoyproxy_io.membership_healthy.min",
		prefix + ".http.ingress_http.downstream_rq_2xx",
		prefix + ".listener.0_0_0_0_10000.worker_3.downstream_cx_total",
		prefix + ".cluster.service_envoyproxy_io.upstream_cx_connect_ms_count",
	} {
		if _, ok := got[p]; !ok {
			t.Errorf("no line %s", p)
		}
	}
	if _, ok := got[prefix+".server.uptime"]; ok {
		t.Errorf("server.uptime was summed")
	}
	if nq == 0 {
		t.Errorf("no histogram quantile in the model: the payload's histograms are all empty?")
	}
	t.Logf("%d lines compared (%d histogram quantiles of %d histograms), %d in the store", len(want), nq, len(histOrder), len(got))
}

// The text form: Metricbeat's /stats payload with synthetic histogram lines, three instances.
// Counters and gauges are summed (server.uptime: min), dotted IPs stay one component,
// histogram quantiles are only per instance, text readouts and `No recorded values` are
// skipped.
func TestEnvoyTextFleet(t *testing.T) {
	raw, err := os.ReadFile(envoyPayloads + "beats_serverstats.txt")
	if err != nil {
		t.Fatal(err)
	}
	raw = append(raw, []byte("listener.10.0.0.7_8080.downstream_cx_total: 11\n"+
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_200: 5\n"+
		"server.version_label: \"1.28.0/Clean/RELEASE\"\n"+
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_time: P0(nan,1) P50(nan,4.5) P99.9(nan,30) P100(nan,31)\n"+
		"http.ingress.downstream_cx_length_ms: No recorded values\n")...)
	urls := []string{}
	var bodies [][]byte
	for k := 1; k <= 3; k++ {
		body := envoyVary(t, raw, k, false)
		bodies = append(bodies, body)
		urls = append(urls, fmt.Sprintf("e%d=%s", k, envoyFixture(t, map[string][]byte{"/stats": body}, k == 2)))
	}
	faults := envoyFaults(t, "/stats", raw)
	urls = append(urls, "truncated="+faults["truncated"], "e500="+faults["e500"])
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.mesh]
type = envoy
format = text
urls = `+strings.Join(urls, "\n       ")+`
allow-partial = true
per-instance-metrics = true
`)
	snap, log := omPull(t, conf)
	epoch := filepath.Base(snap)
	record, _ := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
	if !strings.Contains(string(record), "mesh/truncated\t") || !strings.Contains(string(record), "mesh/e500\t") {
		t.Errorf("statspipe-partial:\n%s\n%s", record, log)
	}
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)

	prefix := omPrefix + ".mesh"
	// The model: each `name: number` line, its name with the documented joins.
	names := map[string]string{
		"listener.10.0.0.7_8080.downstream_cx_total":                               "listener.10_0_0_7_8080.downstream_cx_total",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_200": "cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_200",
	}
	e := newOMExpect(t, "mesh", omPolicy{rules: envoyDefaults})
	for i, inst := range []string{"e1", "e2", "e3"} {
		body, err := os.ReadFile(filepath.Join(kept, "mesh", inst+".body"))
		if err != nil || !bytes.Equal(body, bodies[i]) {
			t.Fatalf("%s.body is not what was served (%v)", inst, err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
			name, val, _ := strings.Cut(line, ": ")
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				continue
			}
			dotted := name
			if n, ok := names[name]; ok {
				dotted = n
			}
			path := envoyPath(t, prefix, dotted, nil, "")
			e.add(path, omPolicy{rules: envoyDefaults}.funcs(dotted), v)
			e.addInstance(envoyPath(t, prefix+".instance."+inst, dotted, nil, ""), v)
		}
		hp := envoyPath(t, prefix+".instance."+inst, "cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_time.cumulative", nil, "")
		for q, v := range map[string]float64{"0_0": 1, "0_5": 4.5, "0_999": 30, "1_0": 31} {
			e.addInstance(hp+".quantile."+q, v)
		}
	}
	n := omCompare(t, e, got)
	if _, ok := got[prefix+".server.uptime.min"]; !ok {
		t.Errorf("server.uptime.min missing")
	}
	t.Logf("%d lines compared, %d in the store", n, len(got))
}
