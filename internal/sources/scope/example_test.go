package scope

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md: the two reports of testdata/ (scope-iowait's real one, and
// the http-statistics one with its two nginx PIDs) as one snapshot's source, with the metadata
// files of testdata/example/ and its source.conf. The lines must equal
// testdata/example/expected.txt, and README.md must show those lines and those inputs.
func TestWorkedExample(t *testing.T) {
	cfg, part := sourcetest.ExamplePart(t, Kind)
	var shown []string
	for _, in := range []struct{ plugin, report string }{
		{"http-statistics", "http_statistics_report.example.json"},
		{"iowait", "iowait_report.json"},
	} {
		copyFile(t, filepath.Join("testdata", in.report), filepath.Join(part, in.plugin+spool.BodySuffix))
		copyFile(t, filepath.Join("testdata", "example", in.plugin+spool.MetaSuffix), filepath.Join(part, in.plugin+spool.MetaSuffix))
		shown = append(shown, filepath.Join("..", in.report), in.plugin+spool.MetaSuffix)
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update, shown...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
