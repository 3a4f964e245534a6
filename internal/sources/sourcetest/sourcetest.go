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
	ctor, err := newFormat(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = ctor().Process(dir, Timestamp, func(b *metric.Batch) error {
		out.Write(b.Data)
		metric.Recycle(b)
		return nil
	})
	return out.String(), err
}
