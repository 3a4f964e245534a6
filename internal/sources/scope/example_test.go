package scope

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md: the two reports of testdata/ (scope-iowait's real one, and
// the http-statistics one with its two nginx PIDs) as one snapshot's source, with the metadata
// files of testdata/example/ and its source.conf. The lines must equal
// testdata/example/expected.txt, and README.md must show those lines and those inputs.
func TestWorkedExample(t *testing.T) {
	ex := filepath.Join("testdata", "example")
	srcConf, err := os.ReadFile(filepath.Join(ex, "source.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := loadConfig(t, baseConf(dir)+string(srcConf), config.ProcessProgram)

	part := filepath.Join(dir, "1700000000", "scope")
	os.MkdirAll(part, 0o755)
	info, err := os.Create(filepath.Join(part, spool.SourceInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := spool.WriteJSON(info, spool.NewSourceInfo(Kind, "scope", sources.Recorded(&cfg.Sources[0]))); err != nil {
		t.Fatal(err)
	}
	info.Close()
	inputs := []string{"source.conf", "expected.txt"}
	for _, in := range []struct{ plugin, report string }{
		{"http-statistics", "http_statistics_report.example.json"},
		{"iowait", "iowait_report.json"},
	} {
		copyFile(t, filepath.Join("testdata", in.report), filepath.Join(part, in.plugin+spool.BodySuffix))
		copyFile(t, filepath.Join(ex, in.plugin+spool.MetaSuffix), filepath.Join(part, in.plugin+spool.MetaSuffix))
		inputs = append(inputs, filepath.Join("..", in.report), in.plugin+spool.MetaSuffix)
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	expPath := filepath.Join(ex, "expected.txt")
	if *update {
		os.WriteFile(expPath, []byte(got), 0o644)
	}
	want, err := os.ReadFile(expPath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("lines\n%s\nwant (testdata/example/expected.txt)\n%s", got, want)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inputs {
		b, _ := os.ReadFile(filepath.Join(ex, f))
		if len(b) == 0 || !strings.Contains(string(readme), string(b)) {
			t.Errorf("README.md does not show testdata/example/%s as it is", f)
		}
	}
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
