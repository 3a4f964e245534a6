package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// masterStatRow reads one row ("pxname/svname") of a `show stat` file as column → value.
func masterStatRow(t *testing.T, file, key string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		t.Fatalf("%s is not show stat: %.200q", file, data)
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) < 2 || f[0]+"/"+f[1] != key {
			continue
		}
		row := map[string]string{}
		for i, c := range cols {
			if i < len(f) {
				row[c] = f[i]
			}
		}
		return row
	}
	t.Fatalf("%s has no row %s", file, key)
	return nil
}

func masterNum(t *testing.T, s string) float64 {
	t.Helper()
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// TestMasterSocketOldWorkers pulls a real `haproxy -W -S` through [pull] master-socket across
// a reload. A request held open through the frontend keeps the old worker; the round after the
// reload has its files (generation 1, its own pid and counters) beside the new worker's
// (generation 0), and stats-process sums both, so the backend's stot, bin and bout do not drop.
// Once the held request ends and the old worker leaves, the next round has generation 0 only.
func TestMasterSocketOldWorkers(t *testing.T) {
	h := testrig.StartHAProxyMaster(t)
	h.SendTraffic(t, 20)
	release := h.HoldConnection(t)
	first := h.CurrentPid(t)

	dir := t.TempDir()
	confText := `
[pull]
master-socket = ` + h.MasterSocket + `
dst-dir = ` + dir + `/incoming
tmp-dst-dir = ` + dir + `/incoming.tmp
pull-timeout = 3
[process]
src-dir = ` + dir + `/incoming
per-process-metrics = true
[graphite]
enabled = false
namespace = lb
hostname = h1
fqdn = false
[local-store]
dir = ` + dir + `/store
`
	conf := writeConfig(t, dir, confText)
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	store := filepath.Join(dir, "store")
	var lastEpoch string
	var pullWith func(conf string, want ...string) (func(string) string, map[string]float64)
	// pull runs one round (in a later second than the previous one: the epoch names the
	// snapshot) and returns the snapshot's files, the path of a file in it, and its lines.
	pull := func(want ...string) (func(string) string, map[string]float64) {
		t.Helper()
		return pullWith(conf, want...)
	}
	pullWith = func(conf string, want ...string) (func(string) string, map[string]float64) {
		t.Helper()
		waitUntil(t, 2*time.Second, "a new second for the next snapshot", func() bool {
			return strconv.FormatInt(time.Now().Unix(), 10) != lastEpoch
		})
		snap, log := omPull(t, conf)
		lastEpoch = filepath.Base(snap)
		var files []string
		des, _ := os.ReadDir(snap)
		for _, de := range des {
			files = append(files, de.Name())
		}
		if !slices.Equal(files, want) {
			t.Fatalf("snapshot files %v, want %v\n%s", files, want, log)
		}
		// copy what the checks read: stats-process removes the snapshot
		keep := filepath.Join(t.TempDir(), lastEpoch)
		copyTree(t, snap, keep)
		return func(f string) string { return filepath.Join(keep, f) }, omProcess(t, conf, store, lastEpoch)
	}
	pid := func(file string) int {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(data), "\nPid: ")
		line, _, _ := strings.Cut(rest, "\n")
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("%s: no Pid line", file)
		}
		return n
	}
	const be = "lb.h1.haproxy.backend.be_app."
	sums := []string{"stot", "bin", "bout"}

	// 1. before the reload: one worker, generation 0
	file1, lines1 := pull("master.sock@0_info", "master.sock@0_stat", "master.sock_proc")
	if p := pid(file1("master.sock@0_info")); p != first {
		t.Fatalf("generation 0 is pid %d, want %d", p, first)
	}
	row1 := masterStatRow(t, file1("master.sock@0_stat"), "be_app/BACKEND")
	for _, m := range sums {
		if lines1[be+m] != masterNum(t, row1[m]) || lines1[be+m] <= 0 {
			t.Fatalf("%s%s = %v, want the worker's %s", be, m, lines1[be+m], row1[m])
		}
	}
	if proc, _ := os.ReadFile(file1("master.sock_proc")); !strings.Contains(string(proc), "\n# workers\n"+strconv.Itoa(first)+" ") {
		t.Errorf("_proc is not show proc: %q", proc)
	}

	// 2. reload; the held request keeps the old worker, traffic goes to the new one
	second := h.Reload(t)
	h.SendTraffic(t, 10)
	file2, lines2 := pull("master.sock@0_info", "master.sock@0_stat", "master.sock@1_info", "master.sock@1_stat", "master.sock_proc")
	if p0, p1 := pid(file2("master.sock@0_info")), pid(file2("master.sock@1_info")); p0 != second || p1 != first {
		t.Fatalf("generations 0 and 1 are pids %d and %d, want %d (new) and %d (old)", p0, p1, second, first)
	}
	oldRow := masterStatRow(t, file2("master.sock@1_stat"), "be_app/BACKEND")
	newRow := masterStatRow(t, file2("master.sock@0_stat"), "be_app/BACKEND")
	for _, m := range sums {
		if masterNum(t, oldRow[m]) < masterNum(t, row1[m]) {
			t.Errorf("old worker's %s went down: %s → %s", m, row1[m], oldRow[m])
		}
		if want := masterNum(t, oldRow[m]) + masterNum(t, newRow[m]); lines2[be+m] != want {
			t.Errorf("%s%s = %v, want old + new worker = %v", be, m, lines2[be+m], want)
		}
		if lines2[be+m] < lines1[be+m] {
			t.Errorf("%s%s dropped across the reload: %v → %v", be, m, lines1[be+m], lines2[be+m])
		}
	}
	if got := lines2[be+"stot"] - lines1[be+"stot"]; got < 10 {
		t.Errorf("stot grew by %v across the reload, want at least the 10 requests sent after it", got)
	}
	for _, gen := range []string{"0", "1"} {
		if _, ok := lines2["lb.h1.haproxy.daemon.process.master_sock@"+gen+".Uptime_sec"]; !ok {
			t.Errorf("no per-process lines for generation %s", gen)
		}
	}

	// 2b. the same workers pulled typed (no traffic in between): the typed files of both
	// generations, and the same backend sums
	typedDir := filepath.Join(dir, "typed")
	os.MkdirAll(typedDir, 0o755)
	typedConf := writeConfig(t, typedDir, strings.Replace(confText, "[pull]\n", "[pull]\ntyped = true\n", 1))
	_, linesTyped := pullWith(typedConf, "master.sock@0_info.typed", "master.sock@0_stat.typed",
		"master.sock@1_info.typed", "master.sock@1_stat.typed", "master.sock_proc")
	for _, m := range sums {
		if linesTyped[be+m] != lines2[be+m] {
			t.Errorf("typed %s%s = %v, CSV %v", be, m, linesTyped[be+m], lines2[be+m])
		}
	}

	// 3. the held request ends, the old worker leaves: generation 0 only
	release()
	h.WaitOldWorkers(t, 0, 15*time.Second)
	file3, lines3 := pull("master.sock@0_info", "master.sock@0_stat", "master.sock_proc")
	if p := pid(file3("master.sock@0_info")); p != second {
		t.Fatalf("generation 0 is pid %d, want %d", p, second)
	}
	if _, ok := lines3["lb.h1.haproxy.daemon.process.master_sock@1.Uptime_sec"]; ok {
		t.Error("per-process lines of a worker that left")
	}
}
