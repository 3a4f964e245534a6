package promtext

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/statspipe/statspipe/internal/sample"
)

// render writes a sample as "kind family name{l="v",…} [bound] value" for comparisons.
func render(s *sample.Sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s{", s.Kind, s.Family, s.Name)
	for i, l := range s.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteString("}")
	if s.Kind == sample.Bucket || s.Kind == sample.Quantile {
		b.WriteString(" " + strconv.FormatFloat(s.Bound, 'g', -1, 64))
	}
	b.WriteString(" " + strconv.FormatFloat(s.Value, 'g', -1, 64))
	return b.String()
}

func collect(t *testing.T, body string, f Format) ([]string, Stats, error) {
	t.Helper()
	p := NewParser(0)
	var out []string
	err := p.Parse(strings.NewReader(body), f, func(s *sample.Sample) error {
		out = append(out, render(s))
		return nil
	})
	return out, p.Stats(), err
}

func mustParse(t *testing.T, body string, f Format) ([]string, Stats) {
	t.Helper()
	out, st, err := collect(t, body, f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return out, st
}

func equalLines(t *testing.T, got []string, want string) {
	t.Helper()
	w := strings.Split(strings.TrimSpace(want), "\n")
	for i := range w {
		w[i] = strings.TrimSpace(w[i])
	}
	if strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
}

// The standard example of prometheus/docs exposition_formats.md (formats.md §5.1).
const standardExample = `# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
`

func TestStandardExample(t *testing.T) {
	got, st := mustParse(t, standardExample, Text)
	equalLines(t, got, `
counter http_requests_total http_requests_total{method="post",code="200"} 1027
counter http_requests_total http_requests_total{method="post",code="400"} 3
untyped msdos_file_access_time_seconds msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e+09
untyped metric_without_timestamp_and_labels metric_without_timestamp_and_labels{} 12.47
untyped something_weird something_weird{problem="division by zero"} +Inf
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} 0.05 24054
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} 0.1 33444
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} 0.2 100392
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} 0.5 129389
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} 1 133988
bucket http_request_duration_seconds http_request_duration_seconds_bucket{} +Inf 144320
histogram_sum http_request_duration_seconds http_request_duration_seconds_sum{} 53423
histogram_count http_request_duration_seconds http_request_duration_seconds_count{} 144320
quantile rpc_duration_seconds rpc_duration_seconds{} 0.01 3102
quantile rpc_duration_seconds rpc_duration_seconds{} 0.05 3272
quantile rpc_duration_seconds rpc_duration_seconds{} 0.5 4773
quantile rpc_duration_seconds rpc_duration_seconds{} 0.9 9001
quantile rpc_duration_seconds rpc_duration_seconds{} 0.99 76656
summary_sum rpc_duration_seconds rpc_duration_seconds_sum{} 1.7560473e+07
summary_count rpc_duration_seconds rpc_duration_seconds_count{} 2693
`)
	if st.Samples != 20 || st.Families != 3 || st.Lines != 36 {
		t.Errorf("stats %+v", st)
	}
}

// An OpenMetrics body like the Python client's (rigs.md §5.6), written from its documented
// shape.
const pythonOM = `# HELP app_jobs Jobs done
# TYPE app_jobs counter
app_jobs_total{result="ok"} 3.0
app_jobs_total{result="bad \"x\"\nline"} 1.0
app_jobs_created{result="ok"} 1.7961498550277e+09
app_jobs_created{result="bad \"x\"\nline"} 1.7961498550278e+09
# HELP app_room_temp_celsius Room temperature
# TYPE app_room_temp_celsius gauge
# UNIT app_room_temp_celsius celsius
app_room_temp_celsius 20.5
# HELP app_missing Never measured
# TYPE app_missing gauge
app_missing NaN
# HELP app_wait_seconds Wait
# TYPE app_wait_seconds histogram
app_wait_seconds_bucket{le="0.1"} 0.0
app_wait_seconds_bucket{le="1.0"} 1.0
app_wait_seconds_bucket{le="+Inf"} 1.0
app_wait_seconds_count 1.0
app_wait_seconds_sum 0.3
app_wait_seconds_created 1.796149855028e+09
# HELP app_version Version
# TYPE app_version info
app_version_info{v="1"} 1.0
# HELP app_mode Mode
# TYPE app_mode stateset
app_mode{app_mode="a"} 0.0
app_mode{app_mode="b"} 1.0
# EOF
`

func TestOpenMetricsPython(t *testing.T) {
	got, st := mustParse(t, pythonOM, OpenMetrics)
	equalLines(t, got, `
counter app_jobs_total app_jobs_total{result="ok"} 3
counter app_jobs_total app_jobs_total{result="bad \"x\"\nline"} 1
gauge app_room_temp_celsius app_room_temp_celsius{} 20.5
gauge app_missing app_missing{} NaN
bucket app_wait_seconds app_wait_seconds_bucket{} 0.1 0
bucket app_wait_seconds app_wait_seconds_bucket{} 1 1
bucket app_wait_seconds app_wait_seconds_bucket{} +Inf 1
histogram_count app_wait_seconds app_wait_seconds_count{} 1
histogram_sum app_wait_seconds app_wait_seconds_sum{} 0.3
gauge app_version_info app_version_info{v="1"} 1
gauge app_mode app_mode{app_mode="a"} 0
gauge app_mode app_mode{app_mode="b"} 1
`)
	if st.Samples != 12 || st.Skipped != 3 || st.Families != 6 {
		t.Errorf("stats %+v", st)
	}
}

// The counter of the Python client in text (# TYPE x_total counter) and in OpenMetrics
// (# TYPE x counter) gives the same Name and Family, so instances serving either form merge.
func TestCounterNameBothForms(t *testing.T) {
	text, _ := mustParse(t, "# TYPE app_jobs_total counter\napp_jobs_total{result=\"ok\"} 3.0\n", Text)
	om, _ := mustParse(t, "# TYPE app_jobs counter\napp_jobs_total{result=\"ok\"} 3.0\n# EOF\n", OpenMetrics)
	if len(text) != 1 || len(om) != 1 || text[0] != om[0] {
		t.Errorf("text %q, om %q", text, om)
	}
}

func TestGaugeHistogramAndSummaryCreated(t *testing.T) {
	got, st := mustParse(t, `# TYPE q gaugehistogram
q_bucket{le="1"} 2
q_bucket{le="+Inf"} 3
q_gsum 4
q_gcount 3
# TYPE s summary
s{quantile="0.5",a="b"} 1
s_sum 2
s_count 3
s_created 1.5e9
# EOF
`, OpenMetrics)
	equalLines(t, got, `
bucket q q_bucket{} 1 2
bucket q q_bucket{} +Inf 3
histogram_sum q q_gsum{} 4
histogram_count q q_gcount{} 3
quantile s s{a="b"} 0.5 1
summary_sum s s_sum{} 2
summary_count s s_count{} 3
`)
	if st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTextRules(t *testing.T) {
	got, st := mustParse(t, `  # a comment
#another comment
# TYPE g gauge
g{a="x",} 1
g{ a = "#not a comment" , b="" } 2 -5
g{"c.d"="e"} 3
{"my.dotted.metric", "error.message"="Not Found"} 4
{"quoted.only"} 5
untyped_no_type 6
g_sum 7
late 8
# TYPE late counter
late 9
crlf 10`+"\r\n"+`
nan NaN
ninf -Inf
pinf +Inf
exp 8.3949371392e+10
`, Text)
	equalLines(t, got, `
gauge g g{a="x"} 1
gauge g g{a="#not a comment",b=""} 2
gauge g g{c.d="e"} 3
untyped my.dotted.metric my.dotted.metric{error.message="Not Found"} 4
untyped quoted.only quoted.only{} 5
untyped untyped_no_type untyped_no_type{} 6
untyped g_sum g_sum{} 7
untyped late late{} 8
counter late late{} 9
untyped crlf crlf{} 10
untyped nan nan{} NaN
untyped ninf ninf{} -Inf
untyped pinf pinf{} +Inf
untyped exp exp{} 8.3949371392e+10
`)
	if st.Families != 2 {
		t.Errorf("stats %+v", st)
	}
}

// The families may come out of order in text: a sample finds its TYPE line wherever it was.
func TestTextFamiliesOutOfOrder(t *testing.T) {
	got, _ := mustParse(t, `# TYPE h histogram
# TYPE c counter
h_bucket{le="1"} 1
c 2
h_sum 3
`, Text)
	equalLines(t, got, `
bucket h h_bucket{} 1 1
counter c c{} 2
histogram_sum h h_sum{} 3
`)
}

func TestExemplarsAndTimestampsOM(t *testing.T) {
	got, _ := mustParse(t, `# TYPE c counter
c_total 1 # {trace_id="x"} 1 123
c_total{a="b"} 2 1.5e9 # {trace_id="y",span="z"} 0.5
c_total{a="c"} 3 1700000000.123
# TYPE h histogram
h_bucket{le="+Inf"} 1 # {} 0.3 1.2
# EOF`, OpenMetrics)
	equalLines(t, got, `
counter c_total c_total{} 1
counter c_total c_total{a="b"} 2
counter c_total c_total{a="c"} 3
bucket h h_bucket{} +Inf 1
`)
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, body string
		f          Format
		line       int
		reason     string
	}{
		{"bad value", "a 1x\n", Text, 1, "bad value"},
		{"hex value", "a 0x1p3\n", Text, 1, "bad value"},
		{"missing value", "a\n", Text, 1, "without a value"},
		{"missing value braces", "a{b=\"c\"}\n", Text, 1, "without a value"},
		{"unterminated label value", "a{b=\"c} 1\n", Text, 1, "unterminated"},
		{"truncated line", "ok 1\na{b=\"c", Text, 2, "unterminated"},
		{"bad escape", `a{b="\t"} 1` + "\n", Text, 1, "invalid escape"},
		{"bucket without le", "# TYPE h histogram\nh_bucket 1\n", Text, 2, "without le"},
		{"bucket le not numeric", "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", Text, 2, "not a number"},
		{"bucket le NaN", "# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n", Text, 2, "not a number"},
		{"histogram bare name", "# TYPE h histogram\nh 1\n", Text, 2, "needs a _bucket"},
		{"quantile missing", "# TYPE s summary\ns 1\n", Text, 2, "without quantile"},
		{"quantile out of range", "# TYPE s summary\ns{quantile=\"2\"} 1\n", Text, 2, "[0, 1]"},
		{"bad timestamp text", "a 1 1.5\n", Text, 1, "bad timestamp"},
		{"garbage after timestamp", "a 1 2 3\n", Text, 1, "after the timestamp"},
		{"garbage", "\x00\x01garbage\n", Text, 1, "expected a metric name"},
		{"unknown type", "# TYPE a foo\n", Text, 1, "unknown type"},
		{"type conflict", "# TYPE a gauge\n# TYPE a counter\n", Text, 2, "second # TYPE"},
		{"label name", "a{1=\"x\"} 1\n", Text, 1, "expected a label name"},
		{"bad utf8", "a{b=\"\xff\"} 1\n", Text, 1, "UTF-8"},
		{"duplicate label", "a{b=\"1\",c=\"2\",b=\"3\"} 1\n", Text, 1, "duplicate label"},
		{"duplicate quantile", "# TYPE s summary\ns{quantile=\"0.5\",quantile=\"\"} 1\n", Text, 2, "duplicate label"},
		{"two names", "a{\"b\"} 1\n", Text, 1, "two metric names"},
		{"om comment", "# a comment\n# EOF\n", OpenMetrics, 1, "unknown # line"},
		{"om cr", "a 1\r\n# EOF\n", OpenMetrics, 1, "carriage return"},
		{"om after eof", "# EOF\na 1\n", OpenMetrics, 2, "after # EOF"},
		{"om empty line", "a 1\n\n# EOF\n", OpenMetrics, 2, "empty line"},
		{"om trailing comma", "a{b=\"c\",} 1\n# EOF\n", OpenMetrics, 1, "trailing comma"},
		{"om two spaces", "a  1\n# EOF\n", OpenMetrics, 1, "without a value"},
		{"om trailing space", "a 1 \n# EOF\n", OpenMetrics, 1, "after the value"},
		{"om bad exemplar", "a_total 1 # trace\n# EOF\n", OpenMetrics, 1, "exemplar"},
		{"om bad timestamp", "a 1 x\n# EOF\n", OpenMetrics, 1, "bad timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := collect(t, c.body, c.f)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != c.line || !strings.Contains(pe.Reason, c.reason) {
				t.Errorf("err = %v, want line %d: …%s…", err, c.line, c.reason)
			}
			if want := "line " + strconv.Itoa(c.line) + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestLabelBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("a{")
	for i := 0; i <= MaxLabels; i++ {
		fmt.Fprintf(&b, "l%d=\"v\",", i)
	}
	b.WriteString("} 1\n")
	_, _, err := collect(t, b.String(), Text)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
	ok := strings.Replace(b.String(), fmt.Sprintf("l%d=\"v\",", MaxLabels), "", 1)
	if _, _, err := collect(t, ok, Text); err != nil {
		t.Fatalf("%d labels: %v", MaxLabels, err)
	}
}

func TestNoEOF(t *testing.T) {
	for _, body := range []string{"", "# TYPE a gauge\na 1\n", "a 1\n# EO"} {
		_, _, err := collect(t, body, OpenMetrics)
		if body == "a 1\n# EO" {
			if err == nil {
				t.Errorf("%q: no error", body)
			}
			continue
		}
		if !errors.Is(err, ErrNoEOF) {
			t.Errorf("%q: err = %v, want ErrNoEOF", body, err)
		}
	}
	// # EOF without its final newline is still the end.
	if _, _, err := collect(t, "a 1\n# EOF", OpenMetrics); err != nil {
		t.Errorf("# EOF without newline: %v", err)
	}
}

func TestLineBound(t *testing.T) {
	long := "a{b=\"" + strings.Repeat("x", 200<<10) + "\"} 1\n"
	p := NewParser(100 << 10)
	err := p.Parse(strings.NewReader("ok 1\n"+long), Text, func(*sample.Sample) error { return nil })
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(pe.Reason, "longer than") {
		t.Fatalf("err = %v", err)
	}
	// A line longer than the read buffer but within the bound parses.
	p = NewParser(300 << 10)
	n := 0
	err = p.Parse(strings.NewReader(long+"c 2\n"), Text, func(s *sample.Sample) error {
		n++
		if n == 1 && len(s.Labels[0].Value) != 200<<10 {
			t.Errorf("value of %d bytes", len(s.Labels[0].Value))
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("n = %d, err = %v", n, err)
	}
}

func TestCallbackError(t *testing.T) {
	stop := errors.New("stop")
	p := NewParser(0)
	n := 0
	err := p.Parse(strings.NewReader("a 1\nb 2\n"), Text, func(*sample.Sample) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err = %v, n = %d", err, n)
	}
}

// A Parser reused for another body forgets the previous body's TYPE lines.
func TestReuseForgetsFamilies(t *testing.T) {
	p := NewParser(0)
	var kinds []sample.Kind
	fn := func(s *sample.Sample) error { kinds = append(kinds, s.Kind); return nil }
	if err := p.Parse(strings.NewReader("# TYPE a gauge\na 1\n"), Text, fn); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(strings.NewReader("a 1\n"), Text, fn); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != sample.Gauge || kinds[1] != sample.Untyped {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestFormatOf(t *testing.T) {
	for ct, want := range map[string]Format{
		"":                                       Text,
		"text/plain; version=0.0.4":              Text,
		"TEXT/Plain;version=0.0.4;charset=utf-8": Text,
		"application/openmetrics-text; version=0.0.1; charset=utf-8": OpenMetrics,
		"application/openmetrics-text; version=1.0.0":                OpenMetrics,
	} {
		got, err := FormatOf(ct)
		if err != nil || got != want {
			t.Errorf("FormatOf(%q) = %v, %v", ct, got, err)
		}
	}
	for _, ct := range []string{"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily", "application/json", "garbage;;"} {
		if _, err := FormatOf(ct); err == nil {
			t.Errorf("FormatOf(%q): no error", ct)
		}
	}
	if _, err := FormatOf("application/json"); err == nil || !strings.Contains(err.Error(), "application/json") {
		t.Errorf("error does not name the type: %v", err)
	}
}

func TestNaNIsNaN(t *testing.T) {
	p := NewParser(0)
	err := p.Parse(strings.NewReader("a NaN\n"), Text, func(s *sample.Sample) error {
		if !math.IsNaN(s.Value) {
			t.Errorf("value %v", s.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseFloatForms(t *testing.T) {
	for in, ok := range map[string]bool{"1": true, "-1.5e3": true, "NaN": true, "+Inf": true, "-Inf": true,
		"Inf": true, "1e999": true, ".5": true, "0x1p3": false, "-0X10p0": false, "1_000": false, "0x_1p0": false,
		"": false, "1.2.3": false, "abc": false} {
		if _, got := parseFloat([]byte(in)); got != ok {
			t.Errorf("parseFloat(%q) ok = %v, want %v", in, got, ok)
		}
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a 1\nb 2\n"), iotest.ErrReader(boom))
	p := NewParser(0)
	n := 0
	err := p.Parse(r, Text, func(*sample.Sample) error { n++; return nil })
	if err != boom || n != 2 {
		t.Fatalf("err = %v, n = %d", err, n)
	}
}

// The family table is bounded within a body and emptied between bodies when it grew large.
func TestFamilyBounds(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= MaxFamilies; i++ {
		fmt.Fprintf(&b, "# TYPE f%d gauge\n", i)
	}
	p := NewParser(0)
	err := p.Parse(strings.NewReader(b.String()), Text, func(*sample.Sample) error { return nil })
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != MaxFamilies+1 || !strings.Contains(pe.Reason, "families") {
		t.Fatalf("err = %v", err)
	}
	long := strings.Repeat("n", 1<<20-100)
	b.Reset()
	for i := 0; i < 9; i++ {
		fmt.Fprintf(&b, "# TYPE %s%d gauge\n", long, i)
	}
	err = p.Parse(strings.NewReader(b.String()), Text, func(*sample.Sample) error { return nil })
	if !errors.As(err, &pe) || pe.Line != 9 || !strings.Contains(pe.Reason, "bytes in all") {
		t.Fatalf("err = %v", err)
	}
	if err := p.Parse(strings.NewReader("# TYPE a gauge\na 1\n"), Text, func(*sample.Sample) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(p.fams) != 1 {
		t.Errorf("family table of %d entries after a large body, want it emptied", len(p.fams))
	}
}

// A caller's *bufio.Reader is read through, never taken over.
func TestCallerBufioReader(t *testing.T) {
	p := NewParser(0)
	br := bufio.NewReaderSize(strings.NewReader("a 1\n"), 1<<20)
	if err := p.Parse(br, Text, func(*sample.Sample) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if p.br == br {
		t.Fatal("the parser took over the caller's bufio.Reader")
	}
}
