package scope

import (
	"bytes"
	"compress/gzip"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// socketDir makes a plugins root whose socket paths stay under the 108 bytes of sun_path
// (t.TempDir's names are long).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// servePlugin serves h on the UNIX socket path (its directory made), until the test ends.
func servePlugin(t *testing.T, path string, h http.Handler) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// reply answers every request with body as Go's net/http does without a Content-Type
// (scope-iowait): sniffed as text/plain.
func reply(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/report" || r.URL.Query().Get("api_version") != "1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	})
}

// late answers after 600 ms, or never if the client gives up first.
func late(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(600 * time.Millisecond):
			w.Write([]byte(body))
		case <-r.Context().Done():
		}
	})
}

func loadConfig(t *testing.T, text string, prog config.Program) *config.Config {
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

func baseConf(dir string) string {
	return "[pull]\ndst-dir = " + dir + "/incoming\ntmp-dst-dir = " + dir + "/incoming.tmp\n" +
		"[process]\nsrc-dir = " + dir + "/incoming\n[graphite]\nenabled = false\nhostname = vm\n[local-store]\ndir = " + dir + "/store\n"
}

// pullOnce runs one round of the configured sources and returns the snapshot ("" if none).
func pullOnce(t *testing.T, cfg *config.Config) (string, *testrig.Buffer) {
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

// processPart runs this kind's Format on a snapshot's source directory and returns its lines.
func processPart(t *testing.T, cfg *config.Config, dir string) (string, error) {
	t.Helper()
	ctor, err := processHalf.NewFormat(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = ctor().Process(dir, 1700000000, func(b *metric.Batch) error {
		out.Write(b.Data)
		metric.Recycle(b)
		return nil
	})
	return out.String(), err
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
