package selfmetrics

import (
	"math"
	"strconv"
	"strings"

	"github.com/statspipe/statspipe/internal/metric"
)

// OpenMetricsType is the content type of AppendOpenMetrics' output.
const OpenMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// PrometheusTextType is the content type of AppendPrometheusText's output.
const PrometheusTextType = "text/plain; version=0.0.4; charset=utf-8"

// metricName is the exposition name of a family: statspipe_<program>_[<label>_]<name>.
func (f *Family) metricName() string {
	n := "statspipe_" + f.reg.program + "_"
	if f.label != "" {
		n += f.label + "_"
	}
	return n + f.name
}

// AppendOpenMetrics appends the OpenMetrics text exposition of samples: per family `# TYPE`,
// `# HELP`, then its samples (counters with the `_total` suffix), and `# EOF`.
func AppendOpenMetrics(dst []byte, samples []Sample) []byte {
	return appendText(dst, samples, true)
}

// AppendPrometheusText appends the Prometheus text format 0.0.4 of samples, for clients that
// ask for it (promtool check metrics lints this format): a counter's family is named with its
// `_total` suffix, and there is no `# EOF`.
func AppendPrometheusText(dst []byte, samples []Sample) []byte {
	return appendText(dst, samples, false)
}

func appendText(dst []byte, samples []Sample, om bool) []byte {
	var last *Family
	for _, s := range samples {
		f := s.Family
		name := f.metricName()
		sample := name
		if f.kind == Counter {
			sample += "_total"
			if !om {
				name = sample
			}
		}
		if f != last {
			last = f
			typ := "gauge"
			if f.kind == Counter {
				typ = "counter"
			}
			dst = append(dst, "# TYPE "...)
			dst = append(dst, name...)
			dst = append(dst, ' ')
			dst = append(dst, typ...)
			dst = append(dst, '\n')
			dst = append(dst, "# HELP "...)
			dst = append(dst, name...)
			dst = append(dst, ' ')
			dst = appendHelp(dst, f.help)
			dst = append(dst, '\n')
		}
		dst = append(dst, sample...)
		if f.label != "" {
			dst = append(dst, '{')
			dst = append(dst, f.label...)
			dst = append(dst, `="`...)
			dst = appendLabelValue(dst, s.Label)
			dst = append(dst, `"}`...)
		}
		dst = append(dst, ' ')
		dst = appendNumber(dst, s.Value)
		dst = append(dst, '\n')
	}
	if om {
		dst = append(dst, "# EOF\n"...)
	}
	return dst
}

func appendNumber(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

func appendHelp(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func appendLabelValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '"':
			dst = append(dst, `\"`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// AppendLines appends one line per sample: prefix, the Graphite path below statspipe
// (`<program>.<name>` or `<program>.<label>.<value>.<name>`, the value made a safe path
// component), a space, the value, then suffix (" <timestamp>\n" for Graphite lines, "\n" for the
// body of the statspipe source kind).
func AppendLines(dst []byte, prefix, suffix string, samples []Sample) []byte {
	for _, s := range samples {
		f := s.Family
		dst = append(dst, prefix...)
		dst = append(dst, f.reg.program...)
		dst = append(dst, '.')
		if f.label != "" {
			dst = append(dst, f.label...)
			dst = append(dst, '.')
			dst = metric.AppendComponent(dst, []byte(s.Label))
			dst = append(dst, '.')
		}
		dst = append(dst, f.name...)
		dst = append(dst, ' ')
		dst = metric.AppendFloat(dst, s.Value)
		dst = append(dst, suffix...)
	}
	return dst
}

// acceptsOpenMetrics decides the format of a /metrics reply from the Accept header: OpenMetrics
// unless the client asks for text/plain without naming OpenMetrics (promtool's lint, old
// scrapers).
func acceptsOpenMetrics(accept string) bool {
	return strings.Contains(accept, "application/openmetrics-text") || !strings.Contains(accept, "text/plain")
}
