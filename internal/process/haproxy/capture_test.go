package haproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/testrig"
)

// captureDir holds the real HAProxy 2.6 capture the built-in nature table is checked against
// (TestBuiltinNaturesMatchCapture). TestCaptureHAProxy26 writes it when STATSPIPE_CAPTURE=1.
const captureDir = "testdata/versions/capture-2.6"

// TestCaptureHAProxy26 records `show stat`, `show stat typed`, `show info` and `show info
// typed` of two real HAProxy instances (testrig, with listener rows) after some traffic.
// It only runs with STATSPIPE_CAPTURE=1: the files are committed, provenance in their README.
func TestCaptureHAProxy26(t *testing.T) {
	if os.Getenv("STATSPIPE_CAPTURE") != "1" {
		t.Skip("set STATSPIPE_CAPTURE=1 to re-capture " + captureDir)
	}
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2, SocketStats: true})
	h.SendTraffic(t, 10)
	if err := os.MkdirAll(captureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"_stat": "show stat", "_stat_typed": "show stat typed",
		"_info": "show info", "_info_typed": "show info typed",
	}
	for _, inst := range h.Instances {
		base := strings.TrimSuffix(filepath.Base(inst.Socket), ".sock") + ".sock"
		for suffix, cmd := range files {
			out := inst.Command(t, cmd)
			if len(out) == 0 {
				t.Fatalf("%s: empty reply to %q", inst.Socket, cmd)
			}
			if err := os.WriteFile(filepath.Join(captureDir, base+suffix), []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Log(h.Instances[0].Command(t, "show info")[:200])
}
