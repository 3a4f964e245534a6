package scope

import (
	"bytes"
	"compress/gzip"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
)

// The in-process harness shared by every kind's tests (package sourcetest).
var (
	loadConfig = sourcetest.LoadConfig
	baseConf   = sourcetest.BaseConf
	pullOnce   = sourcetest.PullOnce
)

// processPart runs this kind's Format on a snapshot's source directory and returns its lines.
func processPart(t testing.TB, cfg *config.Config, dir string) (string, error) {
	t.Helper()
	return sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, dir)
}

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
