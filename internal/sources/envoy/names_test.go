package envoy

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/sample"
)

// mapped renders a mapped sample as "name{l=v,…} kind family".
func mapped(s *sample.Sample) string {
	var b strings.Builder
	b.Write(s.Name)
	if len(s.Labels) > 0 {
		b.WriteByte('{')
		for i, l := range s.Labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%s", l.Name, l.Value)
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(&b, " %s %s", s.Kind, s.Family)
	return b.String()
}

func mapText(t *testing.T, body string) []string {
	t.Helper()
	var m mapper
	return mapWith(t, &m, body)
}

func mapWith(t *testing.T, m *mapper, body string) []string {
	t.Helper()
	var out []string
	err := promtext.NewParser(0).Parse(strings.NewReader(body), promtext.Text, func(s *sample.Sample) error {
		out = append(out, mapped(m.Map(s)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMapNames(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`envoy_cluster_upstream_rq_xx{envoy_cluster_name="svc.a",envoy_response_code_class="2"} 1`, "cluster.svc_a.upstream_rq_2xx untyped cluster.svc_a.upstream_rq_2xx"},
		{`envoy_cluster_upstream_rq{envoy_cluster_name="outbound|9080||reviews.default.svc.cluster.local",envoy_response_code="503"} 1`,
			"cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_503 untyped cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_503"},
		{`envoy_cluster_upstream_rq_total{envoy_cluster_name="a"} 1`, "cluster.a.upstream_rq_total untyped cluster.a.upstream_rq_total"},
		{`envoy_http_downstream_rq_xx{envoy_response_code_class="5",envoy_http_conn_manager_prefix="ingress_http"} 1`, "http.ingress_http.downstream_rq_5xx untyped http.ingress_http.downstream_rq_5xx"},
		{`envoy_listener_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="in",envoy_listener_address="10.0.0.1_80"} 1`, "listener.10_0_0_1_80.http.in.downstream_rq_2xx untyped listener.10_0_0_1_80.http.in.downstream_rq_2xx"},
		{`envoy_listener_admin_http_downstream_rq_xx{envoy_response_code_class="4",envoy_http_conn_manager_prefix="admin"} 1`, "listener.admin.http.admin.downstream_rq_4xx untyped listener.admin.http.admin.downstream_rq_4xx"},
		{`envoy_listener_worker_downstream_cx_total{envoy_worker_id="3",envoy_listener_address="[__1]_10000"} 1`, "listener.[__1]_10000.worker_3.downstream_cx_total untyped listener.[__1]_10000.worker_3.downstream_cx_total"},
		{`envoy_server_worker_watchdog_miss{envoy_worker_id="0"} 1`, "server.worker_0.watchdog_miss untyped server.worker_0.watchdog_miss"},
		{`envoy_server_uptime 1`, "server.uptime untyped server.uptime"},
		{`envoy_cluster_manager_active_clusters 1`, "cluster_manager.active_clusters untyped cluster_manager.active_clusters"},
		{`envoy_vhost_vcluster_upstream_rq_retry{envoy_virtual_host="www.example.com",envoy_virtual_cluster="api"} 1`, "vhost.www_example_com.vcluster.api.upstream_rq_retry untyped vhost.www_example_com.vcluster.api.upstream_rq_retry"},
		// an unknown tag stays a label; a name without a known root is one component
		{`envoy_listener_ssl_ciphers{envoy_listener_address="0.0.0.0_443",envoy_ssl_cipher="ECDHE-RSA"} 1`, "listener.0_0_0_0_443.ssl_ciphers{envoy_ssl_cipher=ECDHE-RSA} untyped listener.0_0_0_0_443.ssl_ciphers"},
		{`envoy_envoy_overload_actions_x 1`, "envoy_overload_actions_x untyped envoy_overload_actions_x"},
		{`other_metric{a="b"} 1`, "other_metric{a=b} untyped other_metric"},
		// a cluster label on a name that is not a cluster's stays a label
		{`envoy_server_x{envoy_cluster_name="a"} 1`, "server.x{envoy_cluster_name=a} untyped server.x"},
		{`envoy_cluster_{envoy_cluster_name="a"} 1`, "cluster_{envoy_cluster_name=a} untyped cluster_"},
		{`{"envoy_cluster_a.b"} 1`, "cluster.a_b untyped cluster.a_b"},
	} {
		got := mapText(t, c.in+"\n")
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestMapHistogram(t *testing.T) {
	got := mapText(t, "# TYPE envoy_cluster_upstream_cx_connect_ms histogram\n"+
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a.b",le="0.5"} 1`+"\n"+
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a.b",le="+Inf"} 2`+"\n"+
		`envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="a.b"} 3`+"\n"+
		`envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="a.b"} 2`+"\n")
	want := []string{
		"cluster.a_b.upstream_cx_connect_ms_bucket bucket cluster.a_b.upstream_cx_connect_ms",
		"cluster.a_b.upstream_cx_connect_ms_bucket bucket cluster.a_b.upstream_cx_connect_ms",
		"cluster.a_b.upstream_cx_connect_ms_sum histogram_sum cluster.a_b.upstream_cx_connect_ms",
		"cluster.a_b.upstream_cx_connect_ms_count histogram_count cluster.a_b.upstream_cx_connect_ms",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The real payload: every sample maps, no tag Envoy's default extractors set is left as a
// label (they are all path components now), and every name part is free of '.' but for the
// separators the mapper puts.
func TestMapRealPayload(t *testing.T) {
	b, err := os.ReadFile("testdata/netdata_envoy_stats_prometheus.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := mapText(t, string(b))
	// The cache gives what mapping anew gives, the second time round too.
	cachedMapper := mapper{}
	fresh := mapWith(t, &mapper{noCache: true}, string(b))
	for round := range 2 {
		if c := mapWith(t, &cachedMapper, string(b)); strings.Join(c, "\n") != strings.Join(fresh, "\n") {
			t.Fatalf("round %d: the cache changes the names", round)
		}
	}
	if len(got) != 630 {
		t.Fatalf("%d samples, want 630", len(got))
	}
	names := map[string]bool{}
	series := map[string]int{}
	for _, g := range got {
		series[strings.Fields(g)[0]]++
		if strings.Contains(g, "{envoy_") || strings.Contains(g, ",envoy_") || strings.HasPrefix(g, "envoy_") && !strings.HasPrefix(g, "envoy_overload") {
			t.Errorf("a tag or prefix is left: %s", g)
		}
		names[strings.Fields(g)[0]] = true
	}
	for _, want := range []string{
		"cluster.service_envoyproxy_io.upstream_cx_total",
		"cluster.service_envoyproxy_io.membership_healthy",
		"http.admin.downstream_rq_2xx",
		"http.ingress_http.downstream_rq_time_bucket",
		"listener.0_0_0_0_10000.worker_15.downstream_cx_active",
		"listener.0_0_0_0_10000.http.ingress_http.downstream_rq_5xx",
		"listener.admin.downstream_cx_total",
		"server.uptime",
		"server.worker_7.watchdog_mega_miss",
		"server.initialization_time_ms_count",
	} {
		if !names[want] {
			t.Errorf("no %s", want)
		}
	}
	var dup []string
	for n, k := range series {
		if k > 1 && !strings.HasSuffix(n, "_bucket") {
			dup = append(dup, fmt.Sprint(n, " ", k))
		}
	}
	sort.Strings(dup)
	if len(dup) > 0 {
		t.Errorf("two series mapped to one name: %s", strings.Join(dup, "\n"))
	}
}

func TestDottedName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"server.uptime", "server.uptime"},
		{"cluster.svc.upstream_rq_2xx", "cluster.svc.upstream_rq_2xx"},
		{"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_200", "cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_200"},
		{"cluster.a.b.circuit_breakers.default.cx_open", "cluster.a_b.circuit_breakers.default.cx_open"},
		{"cluster.a.b.default.total_match_count", "cluster.a_b.default.total_match_count"},
		{"cluster.a.ssl.versions.TLSv1.2", "cluster.a.ssl.versions.TLSv1_2"},
		{"cluster.a.b.ssl.versions.TLSv1.3", "cluster.a_b.ssl.versions.TLSv1_3"},
		{"cluster.10.0.0.1_80.upstream_rq_total", "cluster.10_0_0_1_80.upstream_rq_total"},
		{"listener.0.0.0.0_10000.downstream_cx_total", "listener.0_0_0_0_10000.downstream_cx_total"},
		{"listener.10.244.0.11_8081.http.in.downstream_rq_2xx", "listener.10_244_0_11_8081.http.in.downstream_rq_2xx"},
		{"http.127.0.0.1.borken_due_to_ip", "http.127_0_0_1.borken_due_to_ip"},
		{"listener.[__1]_80.downstream_cx_total", "listener.[__1]_80.downstream_cx_total"},
		{"cluster.a.ssl.x", "cluster.a.ssl.x"},
		{"cluster.ssl.x", "cluster.ssl.x"},
		{"a", "a"},
		{"1.2.3.4", "1_2_3_4"},
		{"v.1.2.3.4444.x", "v.1.2.3.4444.x"},
	} {
		var sc scratch
		if got := string(dottedName(nil, []byte(c.in), &sc)); got != c.want {
			t.Errorf("%s: %s, want %s", c.in, got, c.want)
		}
	}
}

func parseText(t *testing.T, body string) ([]string, error) {
	t.Helper()
	var out []string
	err := newTextParser().Parse(strings.NewReader(body), func(s *sample.Sample) error {
		line := fmt.Sprintf("%s %s %g", s.Name, s.Kind, s.Value)
		if s.Kind == sample.Quantile {
			line += fmt.Sprintf(" q=%g %s", s.Bound, s.Family)
		}
		out = append(out, line)
		return nil
	})
	return out, err
}

func TestTextRealPayload(t *testing.T) {
	b, err := os.ReadFile("testdata/beats_serverstats.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseText(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 41 || got[0] != "cluster_manager.active_clusters untyped 1" ||
		got[24] != "server.days_until_first_cert_expiring untyped 2.147483647e+09" ||
		got[40] != "http2.tx_reset untyped 0" {
		t.Fatalf("%d samples:\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestTextForms(t *testing.T) {
	body := "cluster.a.b.upstream_rq_total: 5\n" +
		"server.version_string: \"1.28.0: a: b\"\n" +
		"cluster.a.upstream_cx_length_ms: No recorded values\n" +
		"cluster.a.upstream_rq_time: P0(nan,1) P50(nan,2.5) P99.9(nan,9) P100(nan,10)\n" +
		"http.in.downstream_rq_time: P0(1,2) P100(3,4)\n" +
		"server.x: -3\n" +
		"\n" +
		"server.y: 1.5e3\n"
	got, err := parseText(t, body)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cluster.a_b.upstream_rq_total untyped 5",
		"cluster.a.upstream_rq_time.cumulative quantile 1 q=0 histogram/cluster.a.upstream_rq_time",
		"cluster.a.upstream_rq_time.cumulative quantile 2.5 q=0.5 histogram/cluster.a.upstream_rq_time",
		"cluster.a.upstream_rq_time.cumulative quantile 9 q=0.999 histogram/cluster.a.upstream_rq_time",
		"cluster.a.upstream_rq_time.cumulative quantile 10 q=1 histogram/cluster.a.upstream_rq_time",
		"http.in.downstream_rq_time.interval quantile 1 q=0 histogram/http.in.downstream_rq_time",
		"http.in.downstream_rq_time.cumulative quantile 2 q=0 histogram/http.in.downstream_rq_time",
		"http.in.downstream_rq_time.interval quantile 3 q=1 histogram/http.in.downstream_rq_time",
		"http.in.downstream_rq_time.cumulative quantile 4 q=1 histogram/http.in.downstream_rq_time",
		"server.x untyped -3",
		"server.y untyped 1500",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTextErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"a: 1\nb 2\n", "line 2: not a `name: value`"},
		{"a: 1\nb: x\n", "line 2: value \"x\" is not a number"},
		{"a: 1\nb: nan\n", "line 2"},
		{"a: 1\nb: 2", "line 2: the body ends inside a line"},
		{"a b: 1\n", "blank in the stat name"},
		{"a: \"x\n", "unterminated text readout"},
		{"h: P0(1,2) Q1(1,2)\n", "histogram quantile"},
		{"h: P0(1;2)\n", "histogram quantile"},
		{"h: P101(1,2)\n", "not a percentile"},
		{"h: P1(x,2)\n", "not a number"},
		{"a: \n", "no value"},
		{"a: 1\n" + strings.Repeat("x", maxTextLine+10) + ": 1\n", "line 2: longer than"},
	} {
		_, err := parseText(t, c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: error %v, want %q", c.body, err, c.want)
		}
	}
}

// Nothing is allocated per line once the buffers have grown.
func TestTextAllocations(t *testing.T) {
	b, err := os.ReadFile("testdata/beats_serverstats.txt")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "cluster.a.b.upstream_rq_time: P0(nan,1) P50(2,2.5) P100(nan,10)\n"...)
	p := newTextParser()
	r := bytes.NewReader(b)
	fn := func(*sample.Sample) error { return nil }
	p.Parse(r, fn)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(b)
		if err := p.Parse(r, fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per body", allocs)
	}
	pm, err := os.ReadFile("testdata/netdata_envoy_stats_prometheus.txt")
	if err != nil {
		t.Fatal(err)
	}
	pp := newParser()
	pp.parse(true, promtext.Text, bytes.NewReader(pm), fn)
	allocs = testing.AllocsPerRun(10, func() {
		if err := pp.parse(true, promtext.Text, bytes.NewReader(pm), fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 { // the bytes.Reader
		t.Fatalf("%v allocations per Prometheus body", allocs)
	}
}
