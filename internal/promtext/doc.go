// Package promtext is a streaming parser for the Prometheus text format 0.0.4 and OpenMetrics
// 1.0 (text) that hands every sample to a callback as a sample.Sample (formats.md §5).
//
// A scraper sends Accept, maps the reply's Content-Type to a Format with FormatOf (the media
// type only, case-insensitively: Python's client labels OpenMetrics 1.0 bodies version=0.0.1),
// and calls Parser.Parse with the body. Parse reads through a bufio.Reader, one line at a
// time, and never holds the whole body. The Sample and its byte slices are reused: they are
// valid only during the callback. Parse stops at the first error: the callback's error as is,
// a *ParseError ("line N: reason"), ErrNoEOF, or the reader's error. Samples handed out
// before an error were valid lines; whether to keep them is the caller's choice (an
// OpenMetrics body without # EOF is a truncated reply).
//
// # Lines
//
// A sample line is `name{labels} value [timestamp]`.
//   - Names: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, `[a-zA-Z_][a-zA-Z0-9_]*` for labels, or
//     a quoted UTF-8 string (escapes as in label values): a quoted label name before `=`, and
//     a quoted metric name as the first item inside the braces, not followed by `=`
//     (`{"my.dotted.metric", "error.message"="Not Found"}`). A quoted name outside the braces,
//     a second metric name, or an empty quoted name is an error.
//   - Label values are quoted, UTF-8 (invalid UTF-8 is an error), and unescape `\\`, `\"`
//     and `\n`; any other escape is an error, as is an unterminated value. Empty values are
//     kept. A `#` inside a value is part of it. Labels are kept in the order of the line; a
//     duplicate label name is an error. At most MaxLabels (256) labels per line.
//   - Values are Go ParseFloat syntax (`NaN`, `+Inf`, `-Inf`, `Inf`, exponents, and the
//     case-insensitive spellings Go accepts), without Go's hexadecimal floats and digit
//     underscores, which expfmt also rejects. An out-of-range number (`1e999`) is ±Inf.
//   - The timestamp is checked and ignored: an int64 (milliseconds) in text, a non-NaN float
//     (seconds) in OpenMetrics.
//   - Text is lenient about blanks as Prometheus is: leading blanks and tabs, one or more
//     blanks/tabs between the name or label set, the value and the timestamp, blanks around
//     label names, `=`, values and commas, trailing blanks, blank lines, a trailing comma in a
//     label set, and one trailing `\r` (a CRLF body).
//     A last line without `\n` is parsed.
//   - OpenMetrics is strict: exactly one space between parts, no trailing space, no blank
//     line, no trailing comma in a label set, no `\r` anywhere. After the value (and optional
//     timestamp) an exemplar ` # {labels} value [timestamp]` is checked and ignored.
//   - Lines longer than the Parser's bound (NewParser's maxLineBytes, 1 MiB by default) are an
//     error; a body read from an http.Response should still be wrapped in an io.LimitReader.
//
// # Comment lines
//
//   - `# HELP name text`: the name is checked, the text ignored.
//   - `# TYPE name type`: counter, gauge, histogram, summary, untyped in both formats, plus
//     OpenMetrics' gaugehistogram, info, stateset and unknown (= untyped), accepted in text
//     too. Another type is an error. A second TYPE line for the same family is accepted if it
//     repeats the type, else an error. A TYPE line after samples of its family applies from
//     that line on (text producers are not always ordered).
//   - `# UNIT name unit` (OpenMetrics) is checked and ignored; in text it is a comment.
//   - `# EOF` ends an OpenMetrics body: a body without it is ErrNoEOF, a line after it is an
//     error. In text it is a comment.
//   - Any other `#` line is a comment in text and an error in OpenMetrics.
//
// # Families and kinds
//
// A sample's family is the TYPE line naming the sample itself, else the TYPE line naming it
// minus a suffix its type owns. Families may appear in any order and interleave (lenient for
// both formats); a sample with no TYPE line is Untyped with Family = Name.
//   - counter: the sample named as the family (text: Go and Python write `# TYPE x_total
//     counter`), or `x_total` of `# TYPE x counter` (OpenMetrics) → Counter. Name is the
//     sample's name, so `x_total` either way and instances serving either format merge;
//     Family = Name. `x_created` → skipped.
//   - gauge, stateset → Gauge; info: `x_info` (or `x`) → Gauge; untyped/unknown → Untyped.
//     Family = Name.
//   - histogram: `x_bucket` → Bucket with Bound = the `le` label as a number (`le="1.0"` and
//     `le="1"` are both 1; `+Inf` included; a missing or non-numeric or NaN `le` is an
//     error) and `le` removed from Labels; `x_sum` → HistogramSum; `x_count` →
//     HistogramCount; `x_created` → skipped; a sample named `x` itself is an error.
//     Family = `x`. gaugehistogram: the same with `x_gsum`, `x_gcount`.
//   - summary: `x{quantile=…}` → Quantile with Bound = quantile (a number in [0, 1], else an
//     error; missing is an error) and `quantile` removed; `x_sum` → SummarySum; `x_count` →
//     SummaryCount; `x_created` → skipped. Family = `x`.
//
// Skipped samples are counted in Stats.Skipped. The Python client's text form writes
// `_created` as separate gauge families, which are then plain gauges, as the exposition says.
// A `_sum` or `_bucket` whose base family has another type (or none) is a sample of its own.
// Histogram buckets are not checked for order, `+Inf` presence or monotonicity; the engine
// deals with series, not with whole histograms.
//
// # Memory
//
// Per line, nothing is allocated after warm-up: the line is a slice of the bufio buffer (or
// of one reused buffer for lines longer than 64 KiB), unescaped names and values go to one
// reused buffer sized to the longest line, and the label slice is reused. Family names are
// interned in a map that the Parser keeps across Parse calls (a second scrape of the same
// target allocates nothing); it is bounded by MaxFamilies.
//
// # Performance
//
// Measured on the 2-vCPU test VM (go test -bench . -benchtime 3s -count 3; the VM was shared
// with other jobs, load average 5, so take ±20%), expfmt v0.73.1's TextParser for comparison:
//
//	                         body       ns/op      MB/s   ns/sample  allocs/op
//	Parse   node_exporter     35,552 B   48,000    740      166          0
//	Expfmt  node_exporter     35,552 B  610,000     58        -      7,347
//	Parse   synthetic10k     502,231 B  1.29 ms    390      129          0
//	Expfmt  synthetic10k     502,231 B  14–20 ms  25–36       -    243,792
//
// synthetic10k is one gauge family of 10,000 series with two labels. allocs/op stays 0 from
// 286 to 10,000 samples: nothing is allocated per line. The profile is spread over label
// scanning, strconv.ParseFloat and UTF-8 validation, with no single hot spot left.
package promtext
