package openmetrics

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

// The worked example of README.md: three instances (two serving text 0.0.4, one OpenMetrics)
// of one source, processed with testdata/example/source.conf. The lines must equal
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

	part := filepath.Join(dir, "1700000000", "web")
	os.MkdirAll(part, 0o755)
	write := func(name string, v any) {
		f, err := os.Create(filepath.Join(part, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := spool.WriteJSON(f, v); err != nil {
			t.Fatal(err)
		}
	}
	write(spool.SourceInfoFile, spool.NewSourceInfo(Kind, "web", sources.Recorded(&cfg.Sources[0])))
	for _, in := range []struct{ name, file, ct string }{
		{"web1", "web1.prom", "text/plain; version=0.0.4"},
		{"web2", "web2.prom", "text/plain; version=0.0.4"},
		{"web3", "web3.om", "application/openmetrics-text; version=1.0.0"},
	} {
		body, err := os.ReadFile(filepath.Join(ex, in.file))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, in.name+spool.BodySuffix), body, 0o644)
		write(in.name+spool.MetaSuffix, spool.InstanceMeta{Instance: in.name, ContentType: in.ct, Status: 200, Bytes: int64(len(body))})
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
	for _, doc := range []string{"README.md", filepath.Join("..", "..", "..", "README.md")} {
		readme, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"web1.prom", "web2.prom", "web3.om", "source.conf", "expected.txt"} {
			b, _ := os.ReadFile(filepath.Join(ex, f))
			if !strings.Contains(string(readme), string(b)) {
				t.Errorf("%s does not show testdata/example/%s as it is", doc, f)
			}
		}
	}
}
