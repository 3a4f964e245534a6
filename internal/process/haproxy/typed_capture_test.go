package haproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// TestCaptureTyped rewrites testdata/typed/ from real HAProxy processes (testrig, Debian's
// HAProxy 2.6): each instance's `show info`, `show stat`, `show info typed` and `show stat
// typed`, taken one after the other with no traffic in between. It runs only with
// STATSPIPE_CAPTURE_TYPED=1; testdata/typed/README.md says how the files were made.
func TestCaptureTyped(t *testing.T) {
	if os.Getenv("STATSPIPE_CAPTURE_TYPED") != "1" {
		t.Skip("set STATSPIPE_CAPTURE_TYPED=1 to capture testdata/typed from real HAProxy")
	}
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	h.SendTraffic(t, 10)
	// app.dead's health check fails within a second: wait for it (bounded) so that the
	// capture has a DOWN server with its check fields
	for _, inst := range h.Instances {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(inst.Command(t, "show stat"), "be_app,app.dead,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN") {
			if time.Now().After(deadline) {
				t.Fatalf("haproxy %d: app.dead not DOWN after 10 s", inst.Index)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	dir := filepath.Join("testdata", "typed")
	for _, inst := range h.Instances {
		base := filepath.Join(dir, filepath.Base(inst.Socket))
		for _, c := range []struct{ cmd, file string }{
			{"show info", base + "_info"},
			{"show stat", base + "_stat"},
			{"show info typed", base + "_info.typed"},
			{"show stat typed", base + "_stat.typed"},
		} {
			if err := os.WriteFile(c.file, []byte(inst.Command(t, c.cmd)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
