package promtext

import (
	"bytes"
	"slices"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/statspipe/statspipe/internal/sample"
)

// FuzzDifferentialExpfmt: on text bodies without histograms and summaries (whose merging by
// label signature expfmt does and we do not), whatever both parsers accept must give the same
// multiset of samples.
func FuzzDifferentialExpfmt(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Contains(data, []byte("histogram")) || bytes.Contains(data, []byte("summary")) {
			return
		}
		tp := expfmt.NewTextParser(model.UTF8Validation)
		if _, err := tp.TextToMetricFamilies(bytes.NewReader(data)); err != nil {
			return
		}
		if err := NewParser(0).Parse(bytes.NewReader(data), Text, func(*sample.Sample) error { return nil }); err != nil {
			return
		}
		a, _ := ours(t, data)
		b, _ := theirs(t, data)
		if !slices.Equal(a, b) {
			t.Fatalf("ours %q\nexpfmt %q", diff(a, b), diff(b, a))
		}
	})
}
