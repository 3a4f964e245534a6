package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const goldenDir = "../internal/process/haproxy/testdata/golden"

// copyTree copies the snapshot directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// onceWithGoldenConfig runs `stats-process --once` on one golden snapshot with the set's own
// configuration file (placeholders filled) plus a -d override that pins the host name to the
// reference's "vm" and sends the lines to the local store only. It returns the local-store file
// and the program's log.
func onceWithGoldenConfig(t *testing.T, confUsed, snapshot string) (string, string, int) {
	t.Helper()
	base := t.TempDir()
	raw, err := os.ReadFile(confUsed)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(base, "haproxystats.conf")
	os.WriteFile(conf, []byte(strings.ReplaceAll(string(raw), "@BASE_DIR@", base)), 0o644)
	confd := filepath.Join(base, "conf.d")
	os.MkdirAll(confd, 0o755)
	os.WriteFile(filepath.Join(confd, "99-test.conf"), []byte(
		"[graphite]\nhostname = vm\nenabled = false\n[local-store]\ndir = "+base+"/local-store\n"), 0o644)
	ts := filepath.Base(snapshot)
	copyTree(t, snapshot, filepath.Join(base, "incoming", ts))
	out, code := runProcess(t, nil, "-f", conf, "-d", confd, "--once")
	stats, _ := os.ReadFile(filepath.Join(base, "local-store", ts, "stats"))
	return string(stats), out, code
}

type point struct {
	path  string
	value string
}

func parseLines(t *testing.T, text string) []point {
	t.Helper()
	var ps []point
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.Split(l, " ")
		if len(f) != 3 {
			t.Fatalf("malformed line %q", l)
		}
		ps = append(ps, point{f[0], f[1]})
	}
	return ps
}

// multiset keys a point by path and numeric value (so 60 equals 60.0); timing values are masked.
func multiset(t *testing.T, ps []point) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, p := range ps {
		v := p.value
		if strings.Contains(p.path, ".haproxystats.") && strings.Contains(p.path, "WallClockTime") {
			v = "timing"
		} else {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: value %q is not a number", p.path, v)
			}
			v = strconv.FormatFloat(f, 'g', -1, 64)
		}
		m[p.path+" "+v]++
	}
	return m
}

// sameMultiset reports every (path, value) whose count differs between got and want.
func sameMultiset(t *testing.T, got, want []point) {
	t.Helper()
	gotSet, wantSet := multiset(t, got), multiset(t, want)
	for k, n := range wantSet {
		if gotSet[k] != n {
			t.Errorf("expected %q ×%d, got ×%d", k, n, gotSet[k])
		}
	}
	for k, n := range gotSet {
		if wantSet[k] == 0 {
			t.Errorf("unexpected line %q ×%d", k, n)
		}
	}
}

// Every golden set processed by the real program with its real configuration file gives the same
// (path, value) set as haproxystats, apart from our documented differences, applied here
// explicitly: no `nan` lines, and (set D) `act`/`ctime` once under the plain name with the
// averaged meaning instead of `_x` (a sum, dropped) and `_y` (the mean, renamed), which takes the
// dropped cells off MetricsBackend/MetricsServer.
func TestGoldenThroughStatsProcessOnce(t *testing.T) {
	for _, set := range []string{"A-real-default", "C-nbproc-like-zlib", "D-custom-metric-lists", "S-synthetic-small"} {
		t.Run(set, func(t *testing.T) {
			dir := filepath.Join(goldenDir, set)
			inputs, err := filepath.Glob(filepath.Join(dir, "input", "*"))
			if err != nil || len(inputs) != 1 {
				t.Fatalf("want one input snapshot in %s, got %v (%v)", dir, inputs, err)
			}
			got, log, code := onceWithGoldenConfig(t, filepath.Join(dir, "haproxystats.conf.used"), inputs[0])
			if code != 0 {
				t.Fatalf("stats-process --once exited %d:\n%s", code, log)
			}
			ref, err := os.ReadFile(filepath.Join(dir, "graphite.out"))
			if err != nil {
				t.Fatal(err)
			}
			var want []point
			dropped := map[string]int{}
			for _, p := range parseLines(t, string(ref)) {
				switch {
				case p.value == "nan":
					continue
				case strings.HasSuffix(p.path, ".act_x") || strings.HasSuffix(p.path, ".ctime_x"):
					if strings.Contains(p.path, ".server.") {
						dropped["MetricsServer"]++
					} else {
						dropped["MetricsBackend"]++
					}
					continue
				case strings.HasSuffix(p.path, ".act_y") || strings.HasSuffix(p.path, ".ctime_y"):
					p.path = strings.TrimSuffix(p.path, "_y")
				}
				want = append(want, p)
			}
			for i, p := range want {
				for name, n := range dropped {
					if strings.HasSuffix(p.path, ".haproxystats."+name) {
						v, _ := strconv.Atoi(p.value)
						want[i].value = strconv.Itoa(v - n)
					}
				}
			}
			sameMultiset(t, parseLines(t, got), want)
			t.Logf("%d lines compared (%d nan lines of the reference left out)", len(want), strings.Count(string(ref), " nan "))
		})
	}
}

// The corrupt-input set: no crash, one clear log line naming each bad file, and the good files
// still processed and delivered.
func TestCorruptInputsThroughStatsProcessOnce(t *testing.T) {
	bad := map[string]string{
		"badrow":      "admin1.sock_stat",
		"empty":       "admin3.sock_stat",
		"extracol":    "admin1.sock_stat",
		"extrafields": "admin4.sock_stat",
		"headeronly":  "admin3.sock_stat",
		"missingkey":  "admin1.sock_info",
		"unknowncmd":  "admin2.sock_stat",
		"truncated":   "",
		"noinfo":      "",
		"nostat":      "",
	}
	conf := filepath.Join(goldenDir, "A-real-default", "haproxystats.conf.used")
	for name, file := range bad {
		t.Run(name, func(t *testing.T) {
			snap := filepath.Join(goldenDir, "X-corrupt-inputs", name, "1795312594")
			got, log, code := onceWithGoldenConfig(t, conf, snap)
			if code != 0 {
				t.Fatalf("exit %d (a damaged file must not fail the snapshot):\n%s", code, log)
			}
			if file != "" && !strings.Contains(log, file) {
				t.Errorf("no log line names the bad file %s:\n%s", file, log)
			}
			lines := parseLines(t, got)
			var sections int
			for _, p := range lines {
				if strings.HasSuffix(p.path, ".haproxystats.TotalWallClockTime") {
					sections++
				}
			}
			if sections != 1 {
				t.Fatalf("local-store output lacks TotalWallClockTime (%d lines):\n%s", len(lines), log)
			}
			t.Logf("%d lines delivered", len(lines))
		})
	}
}

// Set A's local-store file: the reference's lines (nan left out), plus TotalWallClockTime, which
// haproxystats wrote at the top of the next snapshot's file (§7.2, a bug) and we write into the
// snapshot's own file; at the same path <dir>/<ts>/stats.
func TestGoldenLocalStoreFile(t *testing.T) {
	dir := filepath.Join(goldenDir, "A-real-default")
	refs, err := filepath.Glob(filepath.Join(dir, "local-store", "*", "stats"))
	if err != nil || len(refs) != 1 {
		t.Fatalf("want one reference local-store file, got %v (%v)", refs, err)
	}
	ts := filepath.Base(filepath.Dir(refs[0]))
	got, log, code := onceWithGoldenConfig(t, filepath.Join(dir, "haproxystats.conf.used"), filepath.Join(dir, "input", ts))
	if code != 0 || got == "" {
		t.Fatalf("stats-process --once exited %d, local-store file %d bytes:\n%s", code, len(got), log)
	}
	ref, err := os.ReadFile(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	var want []point
	for _, p := range parseLines(t, string(ref)) {
		if p.value != "nan" {
			want = append(want, p)
		}
	}
	want = append(want, point{"loadbalancers.vm.haproxy.haproxystats.TotalWallClockTime", "0"})
	sameMultiset(t, parseLines(t, got), want)
	t.Logf("%d lines compared", len(want))
}
