// Package synthetic renders Prometheus text 0.0.4 bodies with the mix of a typical service, for
// the OpenMetrics benchmarks (tools/omserve, the Go benchmarks of package openmetrics): counters
// with three labels, gauges with two, two histograms of 10 buckets (+Inf, _sum, _count) and one
// summary. Every instance has the same series, with values of its own.
package synthetic

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// The mix, in sample lines of the body: histograms and the summary have a fixed number of
// label sets, gauges take a fifth of the rest, counters the remainder.
const (
	histBuckets     = 10
	histLines       = histBuckets + 3 // the buckets, +Inf, _sum, _count
	summaryServices = 8
	summaryLines    = 3 + 2 // quantiles 0.5 0.9 0.99, _sum, _count
)

var (
	methods   = []string{"GET", "POST", "PUT", "DELETE"}
	codes     = []string{"200", "201", "204", "301", "400", "404", "429", "500", "502", "503"}
	durBounds = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"}
	sizBounds = []string{"100", "300", "1000", "3000", "10000", "30000", "100000", "300000", "1e+06", "3e+06"}
)

// Exposition returns instance i's body: the same series for every instance, values of its own
// (drawn from a generator seeded by seed and i), about series sample lines in all.
func Exposition(i, series int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)+1))
	var buf bytes.Buffer
	buf.Grow(series * 80)
	left := series

	// Two histograms: request durations by handler, response sizes by handler (about a tenth
	// of the lines together, at least one label set each).
	histSets := max(1, series/10/histLines/2)
	if 2*histSets*histLines+summaryServices*summaryLines > series {
		histSets = 0
	}
	for hi, h := range []struct {
		name, help string
		bounds     []string
		scale      float64
	}{
		{"http_request_duration_seconds", "Time spent serving HTTP requests.", durBounds, 0.2},
		{"http_response_size_bytes", "Size of HTTP responses.", sizBounds, 20000},
	} {
		if histSets == 0 {
			break
		}
		fmt.Fprintf(&buf, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
		for s := range histSets {
			labels := fmt.Sprintf(`handler="/api/v1/resource%d",method="%s"`, s, methods[(s+hi)%len(methods)])
			count := 1000 + rng.IntN(100000)
			cum := 0
			for bi, le := range h.bounds {
				// Cumulative: each bucket takes a share of what is left.
				cum += (count - cum) * (20 + rng.IntN(40)) / 100
				if bi == len(h.bounds)-1 {
					cum += (count - cum) * 9 / 10
				}
				fmt.Fprintf(&buf, "%s_bucket{%s,le=\"%s\"} %d\n", h.name, labels, le, cum)
			}
			fmt.Fprintf(&buf, "%s_bucket{%s,le=\"+Inf\"} %d\n", h.name, labels, count)
			fmt.Fprintf(&buf, "%s_sum{%s} %g\n", h.name, labels, float64(count)*h.scale*(0.5+rng.Float64()))
			fmt.Fprintf(&buf, "%s_count{%s} %d\n", h.name, labels, count)
			left -= histLines
		}
	}

	// One summary: RPC latency by service.
	if left >= summaryServices*summaryLines {
		buf.WriteString("# HELP rpc_duration_seconds RPC latency distributions.\n# TYPE rpc_duration_seconds summary\n")
		for s := range summaryServices {
			l := fmt.Sprintf(`service="backend%d"`, s)
			base := 0.001 + rng.Float64()*0.01
			fmt.Fprintf(&buf, "rpc_duration_seconds{%s,quantile=\"0.5\"} %g\n", l, base)
			fmt.Fprintf(&buf, "rpc_duration_seconds{%s,quantile=\"0.9\"} %g\n", l, base*3)
			fmt.Fprintf(&buf, "rpc_duration_seconds{%s,quantile=\"0.99\"} %g\n", l, base*10)
			n := 10000 + rng.IntN(1000000)
			fmt.Fprintf(&buf, "rpc_duration_seconds_sum{%s} %g\n", l, float64(n)*base*1.5)
			fmt.Fprintf(&buf, "rpc_duration_seconds_count{%s} %d\n", l, n)
			left -= summaryLines
		}
	}

	// Gauges: a fifth of the rest, in families of up to 200 series with two labels.
	gauges := left / 5
	for f := 0; gauges > 0; f++ {
		n := min(gauges, 200)
		name := fmt.Sprintf("app_queue_depth_%d", f)
		fmt.Fprintf(&buf, "# HELP %s Items waiting in a work queue.\n# TYPE %s gauge\n", name, name)
		for s := range n {
			fmt.Fprintf(&buf, "%s{queue=\"q%d\",shard=\"%d\"} %d\n", name, s/8, s%8, rng.IntN(5000))
		}
		gauges -= n
		left -= n
	}

	// Counters: the remainder, in families of up to 400 series with three labels
	// (method × code × handler), the shape of http_requests_total.
	for f := 0; left > 0; f++ {
		n := min(left, 400)
		name := fmt.Sprintf("app_requests_%d_total", f)
		if f%4 == 3 {
			name = fmt.Sprintf("app_cpu_%d_seconds_total", f)
		}
		fmt.Fprintf(&buf, "# HELP %s Requests handled.\n# TYPE %s counter\n", name, name)
		for s := range n {
			per := len(methods) * len(codes)
			fmt.Fprintf(&buf, "%s{code=\"%s\",handler=\"/h%d\",method=\"%s\"} %d\n",
				name, codes[s%len(codes)], s/per, methods[(s/len(codes))%len(methods)], rng.Uint64N(1<<40))
		}
		left -= n
	}

	return buf.Bytes()
}

// Envoy returns instance i's /stats/prometheus body made from template, a real Envoy
// exposition: each family of it in turn, a family of per-cluster series (those with the label
// envoy_cluster_name) repeated for as many clusters as bring the body to about series sample
// lines (cluster names like "svc007.<original>", a dot inside, as real cluster names have),
// every value drawn anew (histogram buckets stay cumulative). Every instance has the same
// series, as the sidecars of one fleet do.
func Envoy(template []byte, i, series int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)+1))
	type family struct {
		lines      [][]byte
		perCluster bool
		samples    int
	}
	var fams []*family
	var cur *family
	for _, line := range bytes.Split(template, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if cur == nil || bytes.HasPrefix(line, []byte("# TYPE ")) {
			cur = &family{}
			fams = append(fams, cur)
		}
		cur.lines = append(cur.lines, line)
		if line[0] != '#' {
			cur.samples++
			cur.perCluster = cur.perCluster || bytes.Contains(line, []byte(`envoy_cluster_name="`))
		}
	}
	shared, perCluster := 0, 0
	for _, f := range fams {
		if f.perCluster {
			perCluster += f.samples
		} else {
			shared += f.samples
		}
	}
	clusters := 1
	if perCluster > 0 {
		clusters = max(1, (series-shared+perCluster-1)/perCluster)
	}
	var buf bytes.Buffer
	buf.Grow(series * 120)
	cum := 0 // a histogram's running bucket count
	write := func(line []byte, cluster string) {
		sp := bytes.LastIndexByte(line, ' ')
		if sp < 0 {
			return
		}
		name := line[:sp]
		if cluster != "" {
			name = bytes.Replace(name, []byte(`envoy_cluster_name="`), []byte(`envoy_cluster_name="`+cluster+`.`), 1)
		}
		buf.Write(name)
		switch {
		case bytes.Contains(name, []byte("_bucket{")):
			if bytes.Contains(name, []byte(`le="0.5"`)) {
				cum = 0
			}
			cum += rng.IntN(50)
			fmt.Fprintf(&buf, " %d\n", cum)
		case bytes.Contains(name, []byte("_count{")) || bytes.HasSuffix(name, []byte("_count")):
			fmt.Fprintf(&buf, " %d\n", cum)
		default:
			fmt.Fprintf(&buf, " %d\n", rng.IntN(100000))
		}
	}
	for _, f := range fams {
		n := 1
		if f.perCluster {
			n = clusters
		}
		for _, l := range f.lines {
			if l[0] == '#' {
				buf.Write(l)
				buf.WriteByte('\n')
			}
		}
		for c := range n {
			cluster := ""
			if f.perCluster {
				cluster = fmt.Sprintf("svc%03d", c)
			}
			for _, l := range f.lines {
				if l[0] != '#' {
					write(l, cluster)
				}
			}
		}
	}
	return buf.Bytes()
}
