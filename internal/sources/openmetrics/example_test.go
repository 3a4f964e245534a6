package openmetrics

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md: three instances (two serving text 0.0.4, one OpenMetrics)
// of one source, processed with testdata/example/source.conf. The lines must equal
// testdata/example/expected.txt, and README.md must show those lines and those inputs (the
// main README mirrors it: tools/readmemirror's test).
func TestWorkedExample(t *testing.T) {
	cfg, part := sourcetest.ExamplePart(t, Kind)
	for _, in := range []struct{ name, file, ct string }{
		{"web1", "web1.prom", "text/plain; version=0.0.4"},
		{"web2", "web2.prom", "text/plain; version=0.0.4"},
		{"web3", "web3.om", "application/openmetrics-text; version=1.0.0"},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", "example", in.file))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, in.name+spool.BodySuffix), body, 0o644)
		sourcetest.WriteJSON(t, filepath.Join(part, in.name+spool.MetaSuffix),
			spool.InstanceMeta{Instance: in.name, ContentType: in.ct, Status: 200, Bytes: int64(len(body))})
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update, "web1.prom", "web2.prom", "web3.om")
}
