package promtext

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/statspipe/statspipe/internal/sample"
)

// payloads are the real bodies of testdata/ with the counts of payloads/README.md: lines,
// samples (non-comment lines), families (# TYPE lines).
var payloads = []struct {
	file                    string
	lines, samples, familes int
}{
	{"node_exporter.metrics", 654, 286, 184},
	{"node_exporter_1.5_all_default_collectors.metrics", 1073, 507, 283},
	{"prometheus_2.42_self.metrics", 610, 298, 156},
	{"prometheus_federate_with_ms_timestamps.txt", 61, 57, 4},
	{"pushgateway_1.5.1.metrics", 141, 59, 42},
	{"haproxy_2.6_promex.metrics", 727, 353, 187},
	{"haproxy_exporter_0.14.metrics", 419, 191, 114},
	{"blackbox_0.23_probe.metrics", 43, 17, 13},
	{"python_prometheus_client_0.16.prom", 75, 35, 20},
	{"netdata_envoy_stats_prometheus.txt", 929, 630, 299},
}

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seriesKey is the identity the differential test compares: name, sorted labels (le and
// quantile put back as numbers) and value (NaN printed as NaN, so NaN equals NaN).
func seriesKey(name string, labels [][2]string, value float64) string {
	sort.Slice(labels, func(i, j int) bool { return labels[i][0] < labels[j][0] })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l[0] + "=" + strconv.Quote(l[1]))
	}
	b.WriteString("} ")
	b.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	return b.String()
}

func fnum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func ours(t *testing.T, body []byte) (keys []string, kinds map[string]sample.Kind) {
	t.Helper()
	kinds = map[string]sample.Kind{}
	p := NewParser(0)
	err := p.Parse(bytes.NewReader(body), Text, func(s *sample.Sample) error {
		var ls [][2]string
		for _, l := range s.Labels {
			ls = append(ls, [2]string{string(l.Name), string(l.Value)})
		}
		switch s.Kind {
		case sample.Bucket:
			ls = append(ls, [2]string{"le", fnum(s.Bound)})
		case sample.Quantile:
			ls = append(ls, [2]string{"quantile", fnum(s.Bound)})
		}
		k := seriesKey(string(s.Name), ls, s.Value)
		keys = append(keys, k)
		kinds[k] = s.Kind
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys, kinds
}

// theirs flattens expfmt's MetricFamilies back into samples, with the kind they map to.
func theirs(t *testing.T, body []byte) (keys []string, kinds map[string]sample.Kind) {
	t.Helper()
	kinds = map[string]sample.Kind{}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt: %v", err)
	}
	add := func(name string, m *dto.Metric, extra [][2]string, v float64, k sample.Kind) {
		var ls [][2]string
		for _, l := range m.GetLabel() {
			ls = append(ls, [2]string{l.GetName(), l.GetValue()})
		}
		ls = append(ls, extra...)
		key := seriesKey(name, ls, v)
		keys = append(keys, key)
		kinds[key] = k
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m, nil, m.GetCounter().GetValue(), sample.Counter)
			case dto.MetricType_GAUGE:
				add(name, m, nil, m.GetGauge().GetValue(), sample.Gauge)
			case dto.MetricType_UNTYPED:
				add(name, m, nil, m.GetUntyped().GetValue(), sample.Untyped)
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					c := float64(b.GetCumulativeCount())
					if b.CumulativeCountFloat != nil {
						c = b.GetCumulativeCountFloat()
					}
					add(name+"_bucket", m, [][2]string{{"le", fnum(b.GetUpperBound())}}, c, sample.Bucket)
				}
				if h.SampleSum != nil {
					add(name+"_sum", m, nil, h.GetSampleSum(), sample.HistogramSum)
				}
				if h.SampleCount != nil || h.SampleCountFloat != nil {
					c := float64(h.GetSampleCount())
					if h.SampleCountFloat != nil {
						c = h.GetSampleCountFloat()
					}
					add(name+"_count", m, nil, c, sample.HistogramCount)
				}
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m, [][2]string{{"quantile", fnum(q.GetQuantile())}}, q.GetValue(), sample.Quantile)
				}
				if s.SampleSum != nil {
					add(name+"_sum", m, nil, s.GetSampleSum(), sample.SummarySum)
				}
				if s.SampleCount != nil {
					add(name+"_count", m, nil, float64(s.GetSampleCount()), sample.SummaryCount)
				}
			default:
				t.Fatalf("expfmt type %v of %s not mapped", mf.GetType(), name)
			}
		}
	}
	slices.Sort(keys)
	return keys, kinds
}

func TestPayloads(t *testing.T) {
	for _, pl := range payloads {
		t.Run(pl.file, func(t *testing.T) {
			body := readPayload(t, pl.file)
			p := NewParser(0)
			var nan, buckets int
			err := p.Parse(bytes.NewReader(body), Text, func(s *sample.Sample) error {
				checkInvariants(t, s)
				if math.IsNaN(s.Value) {
					nan++
				}
				if s.Kind == sample.Bucket {
					buckets++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			if st.Lines != pl.lines || st.Samples != pl.samples || st.Families != pl.familes || st.Skipped != 0 {
				t.Errorf("stats %+v, want lines %d samples %d families %d", st, pl.lines, pl.samples, pl.familes)
			}
			t.Logf("%+v, %d NaN, %d buckets", st, nan, buckets)
		})
	}
}

// Constants of the payloads that payloads/README.md names.
func TestPayloadEdgeCases(t *testing.T) {
	find := func(file, name string, match func(*sample.Sample) bool) (found []string) {
		p := NewParser(0)
		err := p.Parse(bytes.NewReader(readPayload(t, file)), Text, func(s *sample.Sample) error {
			if string(s.Name) == name && (match == nil || match(s)) {
				found = append(found, render(s))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	label := func(s *sample.Sample, n string) string {
		for _, l := range s.Labels {
			if string(l.Name) == n {
				return string(l.Value)
			}
		}
		return "<none>"
	}
	if got := find("node_exporter.metrics", "node_uname_info", func(s *sample.Sample) bool {
		return label(s, "version") == "#1 SMP PREEMPT_DYNAMIC @0"
	}); len(got) != 1 {
		t.Errorf("node_uname_info with # in version: %q", got)
	}
	if got := find("python_prometheus_client_0.16.prom", "rig_requests_total", func(s *sample.Sample) bool {
		return label(s, "code") == "5\"xx\n" && s.Kind == sample.Counter && string(s.Family) == "rig_requests_total"
	}); len(got) != 1 {
		t.Errorf("escaped label value: %q", got)
	}
	if got := find("python_prometheus_client_0.16.prom", "rig_latency_seconds_bucket", func(s *sample.Sample) bool {
		return s.Bound == 1 && string(s.Family) == "rig_latency_seconds" && label(s, "le") == "<none>"
	}); len(got) != 1 {
		t.Errorf("le=\"1.0\" as bound 1: %q", got)
	}
	if got := find("blackbox_0.23_probe.metrics", "probe_http_content_length", func(s *sample.Sample) bool {
		return s.Value == -1 && s.Kind == sample.Gauge
	}); len(got) != 1 {
		t.Errorf("negative gauge: %q", got)
	}
	if got := find("prometheus_2.42_self.metrics", "prometheus_engine_query_duration_seconds", func(s *sample.Sample) bool {
		return s.Kind == sample.Quantile && math.IsNaN(s.Value)
	}); len(got) == 0 {
		t.Errorf("NaN quantiles of prometheus' summaries not found")
	}
	if got := find("netdata_envoy_stats_prometheus.txt", "envoy_cluster_upstream_cx_connect_ms_bucket", func(s *sample.Sample) bool {
		return s.Bound == 3600000
	}); len(got) == 0 {
		t.Errorf("envoy le=3600000 bucket not found")
	}
}

// TestDifferentialExpfmt compares, on every payload, the multiset of (name, sorted labels,
// value) we emit with what expfmt's TextParser yields, and the kinds the two agree on.
func TestDifferentialExpfmt(t *testing.T) {
	bodies := map[string][]byte{"standard example": []byte(standardExample)}
	for _, pl := range payloads {
		bodies[pl.file] = readPayload(t, pl.file)
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			a, ak := ours(t, body)
			b, bk := theirs(t, body)
			if !slices.Equal(a, b) {
				for _, x := range diff(a, b) {
					t.Error("only ours:  ", x)
				}
				for _, x := range diff(b, a) {
					t.Error("only expfmt:", x)
				}
			}
			for k, kind := range ak {
				if bk[k] != kind {
					t.Errorf("%s: kind %v, expfmt says %v", k, kind, bk[k])
				}
			}
		})
	}
}

// diff returns the elements of sorted a not in sorted b, as a multiset.
func diff(a, b []string) (out []string) {
	i, j := 0, 0
	for i < len(a) {
		switch {
		case j >= len(b) || a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// checkInvariants are what every accepted sample obeys.
func checkInvariants(t testing.TB, s *sample.Sample) {
	t.Helper()
	if len(s.Name) == 0 || len(s.Family) == 0 {
		t.Fatalf("empty name or family: %q %q", s.Name, s.Family)
	}
	if len(s.Labels) > MaxLabels {
		t.Fatalf("%d labels", len(s.Labels))
	}
	switch s.Kind {
	case sample.Bucket:
		if math.IsNaN(s.Bound) {
			t.Fatalf("bucket with NaN bound")
		}
	case sample.Quantile:
		if !(s.Bound >= 0 && s.Bound <= 1) {
			t.Fatalf("quantile bound %v", s.Bound)
		}
	case sample.Counter, sample.Gauge, sample.Untyped:
		if !bytes.Equal(s.Family, s.Name) {
			t.Fatalf("family %q != name %q", s.Family, s.Name)
		}
	}
	switch s.Kind {
	case sample.Bucket, sample.HistogramSum, sample.HistogramCount, sample.SummarySum, sample.SummaryCount:
		if !bytes.HasPrefix(s.Name, s.Family) || len(s.Name) == len(s.Family) {
			t.Fatalf("name %q not a suffixed family %q", s.Name, s.Family)
		}
	case sample.Quantile:
		if !bytes.Equal(s.Family, s.Name) {
			t.Fatalf("quantile family %q != name %q", s.Family, s.Name)
		}
	}
	for _, l := range s.Labels {
		if len(l.Name) == 0 {
			t.Fatalf("empty label name")
		}
		if s.Kind == sample.Bucket && string(l.Name) == "le" || s.Kind == sample.Quantile && string(l.Name) == "quantile" {
			t.Fatalf("%s label left in", l.Name)
		}
	}
}
