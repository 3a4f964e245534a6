// Package sourcetest is what the tests of every source kind need to run a kind's two halves in
// process: a configuration from text, one pull round of the configured sources into a spool,
// and the kind's Format on one source directory of a snapshot.
package sourcetest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// Timestamp is the snapshot timestamp ProcessPart writes every line with.
const Timestamp = 1700000000

// LoadConfig validates text for prog, the way the programs do.
func LoadConfig(t testing.TB, text string, prog config.Program) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(path, true, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := l.Config(prog)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// BaseConf is the configuration of a spool under dir (incoming, incoming.tmp), Graphite off and
// the local store at dir/store, host name vm; a test appends its [source.*] sections.
func BaseConf(dir string) string {
	return "[pull]\ndst-dir = " + dir + "/incoming\ntmp-dst-dir = " + dir + "/incoming.tmp\n" +
		"[process]\nsrc-dir = " + dir + "/incoming\n[graphite]\nenabled = false\nhostname = vm\n[local-store]\ndir = " + dir + "/store\n"
}

// PullOnce runs one round of the configured sources and returns the snapshot ("" if none was
// published) and the log.
func PullOnce(t testing.TB, cfg *config.Config) (string, *testrig.Buffer) {
	t.Helper()
	log, logs := testrig.Logger()
	ps, err := sources.Providers(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.NewWriter(cfg.Pull.DstDir, cfg.Pull.TmpDstDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	loop, err := pull.NewLoop(w, ps, pull.Options{Interval: time.Hour, Timeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	return loop.Once(context.Background()), logs
}

// NewFormat is a kind's sources.Kind.NewFormat.
type NewFormat func(*config.Config, *slog.Logger) (func() process.Format, error)

// ProcessPart runs a kind's Format on a snapshot's source directory and returns its lines.
func ProcessPart(t testing.TB, newFormat NewFormat, cfg *config.Config, dir string) (string, error) {
	t.Helper()
	return ProcessPartAt(t, newFormat, cfg, dir, Timestamp)
}

// ProcessPartAt is ProcessPart for a snapshot of timestamp ts.
func ProcessPartAt(t testing.TB, newFormat NewFormat, cfg *config.Config, dir string, ts int64) (string, error) {
	t.Helper()
	ctor, err := newFormat(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = ctor().Process(dir, ts, func(b *metric.Batch) error {
		out.Write(b.Data)
		metric.Recycle(b)
		return nil
	})
	return out.String(), err
}

// The worked example of a kind's README.md is a test: testdata/example/ holds its source.conf
// (one [source.*] section), its inputs and expected.txt, the lines the kind must write.

// exampleDir is where a kind's worked example lives, relative to its package.
var exampleDir = filepath.Join("testdata", "example")

// ExamplePart validates testdata/example/source.conf for stats-process under a temporary
// spool, and makes the snapshot's directory of that (first) source with its source.json. It
// returns the configuration and the directory, for the test to put the instances' files in.
func ExamplePart(t testing.TB, kind string) (*config.Config, string) {
	t.Helper()
	srcConf, err := os.ReadFile(filepath.Join(exampleDir, "source.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "incoming"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := LoadConfig(t, BaseConf(dir)+string(srcConf), config.ProcessProgram)
	if len(cfg.Sources) == 0 {
		t.Fatal("testdata/example/source.conf has no [source.*] section")
	}
	src := &cfg.Sources[0]
	part := filepath.Join(dir, "1700000000", src.Name)
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	WriteJSON(t, filepath.Join(part, spool.SourceInfoFile), spool.NewSourceInfo(kind, src.Name, sources.Recorded(src)))
	return cfg, part
}

// WriteJSON writes v as a JSON line to path.
func WriteJSON(t testing.TB, path string, v any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := spool.WriteJSON(f, v); err != nil {
		t.Fatal(err)
	}
}

// CheckExample compares got with testdata/example/expected.txt (rewriting it first when
// update), and checks that README.md shows source.conf, expected.txt and every file of shown
// (relative to testdata/example) as they are.
func CheckExample(t testing.TB, got string, update bool, shown ...string) {
	t.Helper()
	expPath := filepath.Join(exampleDir, "expected.txt")
	if update {
		if err := os.WriteFile(expPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
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
	for _, f := range append([]string{"source.conf", "expected.txt"}, shown...) {
		b, _ := os.ReadFile(filepath.Join(exampleDir, f))
		if len(b) == 0 || !bytes.Contains(readme, b) {
			t.Errorf("README.md does not show testdata/example/%s as it is", f)
		}
	}
}
