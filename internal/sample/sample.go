// Package sample is the generic sample type that every source kind but HAProxy produces from
// its snapshot files and the aggregation engine (package aggregate) consumes: one value of one
// series of one instance. A parser fills one Sample and hands it to a callback; the byte slices
// are only valid during that call, so that parsing allocates nothing per line.
package sample

// Kind says how a sample combines with the same series of other instances.
type Kind uint8

const (
	// Untyped is a value of unknown nature (Prometheus untyped / OpenMetrics unknown).
	Untyped Kind = iota
	// Counter is a monotonic total (Prometheus counter; a counter's `_total` sample).
	Counter
	// Gauge is a value that goes up and down (also OpenMetrics info and stateset samples).
	Gauge
	// Bucket is a cumulative histogram bucket: Bound is its upper bound (`le`, +Inf included).
	Bucket
	// HistogramSum and HistogramCount are a histogram's `_sum` and `_count` (`_gsum`/`_gcount`
	// of a gauge histogram).
	HistogramSum
	HistogramCount
	// Quantile is a summary's quantile sample: Bound is the quantile (0 ≤ q ≤ 1).
	Quantile
	// SummarySum and SummaryCount are a summary's `_sum` and `_count`.
	SummarySum
	SummaryCount
)

var kindNames = [...]string{"untyped", "counter", "gauge", "bucket", "histogram_sum",
	"histogram_count", "quantile", "summary_sum", "summary_count"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Label is one label of a series, its value unescaped.
type Label struct {
	Name, Value []byte
}

// Sample is one value of one series.
//
// Name is the sample's own metric name, the one a Graphite path is made of: `x_total` for a
// counter, `x_bucket`/`x_sum`/`x_count` for a histogram's parts, the family name for a
// summary's quantiles. Family is the name policies match: the histogram's or summary's family
// name (`x` for `x_bucket`), else Name.
//
// Labels are in the order of the exposition, without `le` (a Bucket's Bound) and `quantile` (a
// Quantile's Bound). Value may be NaN or ±Inf; the engine skips those.
type Sample struct {
	Family []byte
	Name   []byte
	Kind   Kind
	Labels []Label
	Bound  float64
	Value  float64
}

// Func is the callback a parser hands each sample to. Returning an error stops the parse with
// that error.
type Func func(*Sample) error

// AppendPart appends s to a dotted name as one part: its dots made '_', so that a process or
// program name stays one path component.
func AppendPart(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
