package haproxy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

// The generator writes what the line-count formula of haproxystats.md §9 predicts (minus the
// response-time means of idle backends and servers, which are not emitted).
func TestSyntheticSnapshot(t *testing.T) {
	cfg := synthetic.Config{Procs: 3, Backends: 7, Servers: 4, Frontends: 5, Idle: 0.3, Seed: 9}
	dir := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := synthetic.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	got := run(t, dir, 1700000000, Options{Prefix: "p"})
	if got.err != nil || got.stats.FilesUsed != 6 || len(got.stats.Problems) != 0 {
		t.Fatalf("err %v stats %+v", got.err, got.stats)
	}
	m := paths(got.lines)
	idleBackends := 0
	for b := 0; b < cfg.Backends; b++ {
		be := strings.ReplaceAll(synthetic.BackendName(b), ".", "_")
		if _, ok := m["p.backend."+be+".rtime"]; !ok {
			idleBackends++
		}
		if m["p.backend."+be+".TotalServers"] != strconv.Itoa(cfg.Servers) {
			t.Errorf("%s TotalServers = %q", be, m["p.backend."+be+".TotalServers"])
		}
	}
	if idleBackends == 0 || idleBackends == cfg.Backends {
		t.Fatalf("%d idle backends of %d: the idle share is not applied", idleBackends, cfg.Backends)
	}
	lines := (37 + 10) + (31*cfg.Frontends + 2) + (40*cfg.Backends - 4*idleBackends + 2) +
		(cfg.Backends + 32*cfg.Backends*cfg.Servers - 4*idleBackends*cfg.Servers + 2) + 2
	if len(got.lines) != lines {
		t.Errorf("%d lines, want %d", len(got.lines), lines)
	}
	for name, want := range map[string]int{
		"MetricsFrontend": 1 + 31*cfg.Frontends,
		"MetricsBackend":  1 + 40*cfg.Backends,
		"MetricsServer":   1 + 32*cfg.Backends*cfg.Servers + cfg.Backends,
		"MetricsHAProxy":  1 + 37 + 2 + 6,
	} {
		if v := m["p.haproxystats."+name]; v != strconv.Itoa(want) {
			t.Errorf("%s = %s, want %d", name, v, want)
		}
	}
	srv := "p.backend." + strings.ReplaceAll(synthetic.BackendName(0), ".", "_") + ".server." +
		strings.ReplaceAll(synthetic.ServerName(0), ".", "_") + ".bin"
	if _, ok := m[srv]; !ok {
		t.Errorf("no %s", srv)
	}
}
