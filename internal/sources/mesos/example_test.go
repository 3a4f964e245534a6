package mesos

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

// The worked example of README.md: two masters (m1 elected, m2 not) of one source, processed
// with testdata/example/source.conf. The lines must equal testdata/example/expected.txt, and
// README.md must show those lines and those inputs.
func TestWorkedExample(t *testing.T) {
	ex := filepath.Join("testdata", "example")
	srcConf, err := os.ReadFile(filepath.Join(ex, "source.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := loadConfig(t, baseConf(dir)+string(srcConf), config.ProcessProgram)

	part := filepath.Join(dir, "1700000000", "mesos")
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
	write(spool.SourceInfoFile, spool.NewSourceInfo(Kind, "mesos", sources.Recorded(&cfg.Sources[0])))
	for _, in := range []string{"m1", "m2"} {
		body, err := os.ReadFile(filepath.Join(ex, in+".json"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, in+spool.BodySuffix), body, 0o644)
		write(in+spool.MetaSuffix, spool.InstanceMeta{Instance: in, ContentType: "application/json", Status: 200, Bytes: int64(len(body))})
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
	for _, f := range []string{"m1.json", "m2.json", "source.conf", "expected.txt"} {
		b, _ := os.ReadFile(filepath.Join(ex, f))
		if !strings.Contains(string(readme), string(b)) {
			t.Errorf("README.md does not show testdata/example/%s as it is", f)
		}
	}
}
