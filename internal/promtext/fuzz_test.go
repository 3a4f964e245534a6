package promtext

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
)

var syntheticSeeds = []string{
	standardExample,
	pythonOM,
	"a 1\n",
	"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n",
	"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
	"{\"my.dotted.metric\", \"error.message\"=\"Not Found\"} 4\n",
	"a{b=\"c\\\\d\\\"e\\nf\",} 1 123\n",
	"# TYPE c counter\nc_total 1 # {trace_id=\"x\"} 1 123\nc_created 1.5e9\n# EOF\n",
	"# TYPE q gaugehistogram\nq_bucket{le=\"1\"} 2\nq_gsum 4\nq_gcount 3\n# EOF\n",
	"# TYPE i info\ni_info{v=\"1\"} 1\n# TYPE m stateset\nm{m=\"a\"} 1\n# UNIT x seconds\n# EOF\n",
}

// fuzzParse parses data and checks that whatever it accepts obeys the invariants, and that
// the error is of a documented kind.
func fuzzParse(t *testing.T, data []byte, f Format) {
	p := NewParser(4 << 10) // a small bound, so that the line limit is exercised too
	n := 0
	err := p.Parse(bytes.NewReader(data), f, func(s *sample.Sample) error {
		n++
		checkInvariants(t, s)
		if s.Kind == sample.Bucket && math.IsNaN(s.Bound) {
			t.Fatal("NaN bound")
		}
		return nil
	})
	var pe *ParseError
	switch {
	case err == nil, errors.Is(err, ErrNoEOF):
	case errors.As(err, &pe):
		if pe.Line < 1 || pe.Line > bytes.Count(data, []byte{'\n'})+1 {
			t.Fatalf("error line %d out of range: %v", pe.Line, err)
		}
	default:
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	if st := p.Stats(); st.Samples != n {
		t.Fatalf("Stats.Samples %d, callback saw %d", st.Samples, n)
	}
	// The same body parses the same way again on the reused parser.
	m := 0
	err2 := p.Parse(bytes.NewReader(data), f, func(*sample.Sample) error { m++; return nil })
	if (err == nil) != (err2 == nil) || m != n {
		t.Fatalf("second parse differs: %v/%d vs %v/%d", err, n, err2, m)
	}
}

func addSeeds(f *testing.F) {
	for _, s := range syntheticSeeds {
		f.Add([]byte(s))
	}
	for _, pl := range payloads {
		f.Add(readPayload(f, pl.file))
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, data, Text) })
}

func FuzzParseOpenMetrics(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, data, OpenMetrics) })
}
