package localstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// Lines and bytes count once a stats file is in place; a write failure counts one error.
func TestSelfMetricsCounters(t *testing.T) {
	reg := selfmetrics.New("process")
	m := selfmetrics.NewProcess(reg)
	dir := t.TempDir()
	d := New(config.LocalStore{Dir: dir}, nil)
	d.SetMetrics(m.Dispatcher("local-store"))
	snap := snapshot(100, "s100", 3, 10, "a")
	size := len(concat(snap))
	for _, b := range snap[:len(snap)-1] {
		submit(t, d, b)
	}
	if v, _ := reg.Get("dispatcher.local-store.lines"); v != 0 {
		t.Errorf("lines counted before the file is in place: %v", v)
	}
	submit(t, d, snap[len(snap)-1])
	get := func(name string) float64 {
		v, _ := reg.Get("dispatcher.local-store." + name)
		return v
	}
	if get("lines") != 31 || get("bytes") != float64(size) || get("errors") != 0 {
		t.Errorf("lines %v bytes %v (want %d) errors %v", get("lines"), get("bytes"), size, get("errors"))
	}
	// <dir>/200 is a file: the snapshot cannot be written.
	if err := os.WriteFile(filepath.Join(dir, "200"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range snapshot(200, "s200", 2, 5, "b") {
		submit(t, d, b)
	}
	if get("errors") != 1 || get("lines") != 31 {
		t.Errorf("after a failed snapshot: errors %v lines %v", get("errors"), get("lines"))
	}
}
