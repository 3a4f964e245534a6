package envoy

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/sample"
)

// FuzzText: the text parser never panics, and every sample it gives has a name and a finite
// value (a quantile also a bound in [0, 1]).
func FuzzText(f *testing.F) {
	if b, err := os.ReadFile("testdata/beats_serverstats.txt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("cluster.a.b.upstream_rq_time: P0(nan,1) P50(2,2.5) P99.9(3,9) P100(nan,10)\n"))
	f.Add([]byte("cluster.outbound|80||a.b.svc.ssl.versions.TLSv1.2: 3\nlistener.0.0.0.0_80.x: 1\nserver.v: \"a: b\"\nh: No recorded values\n"))
	p := newTextParser()
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = p.Parse(bytes.NewReader(body), func(s *sample.Sample) error {
			if len(s.Name) == 0 || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				t.Fatalf("sample %q %v", s.Name, s.Value)
			}
			if s.Kind == sample.Quantile && (s.Bound < 0 || s.Bound > 1 || !bytes.HasPrefix(s.Family, []byte(HistogramFamilyPrefix))) {
				t.Fatalf("quantile %q %v %q", s.Name, s.Bound, s.Family)
			}
			return nil
		})
	})
}

// FuzzDottedName: the name keeps its length, and only dots turn into '_'.
func FuzzDottedName(f *testing.F) {
	for _, s := range []string{"cluster.a.b.circuit_breakers.default.cx_open", "listener.0.0.0.0_10000.x", "cluster.a.ssl.versions.TLSv1.2", "..", "cluster...."} {
		f.Add(s)
	}
	var sc scratch
	f.Fuzz(func(t *testing.T, name string) {
		got := dottedName(nil, []byte(name), &sc)
		if len(got) != len(name) {
			t.Fatalf("%q → %q", name, got)
		}
		for i := range got {
			if got[i] != name[i] && !(name[i] == '.' && got[i] == '_') {
				t.Fatalf("%q → %q", name, got)
			}
		}
	})
}

// FuzzPrometheusNames: every sample promtext gives maps without panicking to a non-empty
// dotted name without empty parts, whose family starts its name.
func FuzzPrometheusNames(f *testing.F) {
	if b, err := os.ReadFile("testdata/netdata_envoy_stats_prometheus.txt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`envoy_cluster_upstream_rq_xx{envoy_cluster_name="a.b",envoy_response_code_class="2"} 1` + "\n"))
	f.Add([]byte(`envoy_listener_worker_x{envoy_worker_id="",envoy_listener_address="..."} 1` + "\n"))
	f.Add([]byte(`{"envoy_http_.x",envoy_http_conn_manager_prefix="."} 1` + "\n"))
	p := promtext.NewParser(0)
	var m mapper
	fresh := mapper{noCache: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = p.Parse(bytes.NewReader(body), promtext.Text, func(s *sample.Sample) error {
			in := len(s.Labels)
			want := mapped(fresh.Map(s))
			o := m.Map(s)
			if got := mapped(o); got != want {
				t.Fatalf("cached %q, mapped anew %q", got, want)
			}
			if len(o.Name) == 0 || !bytes.HasPrefix(o.Name, o.Family) || len(o.Labels) > in {
				t.Fatalf("%q → %q (family %q)", s.Name, o.Name, o.Family)
			}
			if strings.Contains(string(o.Name), "..") || o.Name[0] == '.' || o.Name[len(o.Name)-1] == '.' {
				t.Fatalf("%q → %q: an empty part", s.Name, o.Name)
			}
			return nil
		})
	})
}
