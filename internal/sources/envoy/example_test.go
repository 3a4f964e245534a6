package envoy

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md: three sidecars' /stats/prometheus, processed with
// testdata/example/source.conf. The lines must equal testdata/example/expected.txt, and
// README.md must show those lines and those inputs as they are.
func TestWorkedExample(t *testing.T) {
	cfg, part := sourcetest.ExamplePart(t, Kind)
	for i, name := range []string{"e1", "e2", "e3"} {
		body, err := os.ReadFile(filepath.Join("testdata", "example", name+".prom"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, name+spool.BodySuffix), body, 0o644)
		sourcetest.WriteJSON(t, filepath.Join(part, name+spool.MetaSuffix), spool.InstanceMeta{Instance: name,
			URL:         "http://10.0.0." + string(rune('1'+i)) + ":9901" + PrometheusPath,
			ContentType: "text/plain; version=0.0.4", Status: 200, Bytes: int64(len(body))})
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update, "e1.prom", "e2.prom", "e3.prom")
}
