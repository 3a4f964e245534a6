package mesos

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md: two masters (m1 elected, m2 not) of one source, processed
// with testdata/example/source.conf. The lines must equal testdata/example/expected.txt, and
// README.md must show those lines and those inputs.
func TestWorkedExample(t *testing.T) {
	cfg, part := sourcetest.ExamplePart(t, Kind)
	for _, in := range []string{"m1", "m2"} {
		body, err := os.ReadFile(filepath.Join("testdata", "example", in+".json"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, in+spool.BodySuffix), body, 0o644)
		sourcetest.WriteJSON(t, filepath.Join(part, in+spool.MetaSuffix),
			spool.InstanceMeta{Instance: in, ContentType: "application/json", Status: 200, Bytes: int64(len(body))})
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update, "m1.json", "m2.json")
}
