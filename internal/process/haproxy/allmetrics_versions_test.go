package haproxy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// STATSPIPE_UPDATE_VERSIONS=1 rewrites the expected files of testdata/versions/<ver>/.
var updateVersions = os.Getenv("STATSPIPE_UPDATE_VERSIONS") == "1"

// TestAllMetricsVersions runs the snapshots shaped after HAProxy 2.0, 2.4, 2.8 and 3.3
// (testdata/versions/gen_versions.py: formats.md's column lists, cells from the 2.6 capture)
// with all-metrics off and on, and compares the output value for value with the expected
// files (timings aside); the all-metrics lines are also checked against the raw CSV, and
// haproxystats' lines must be the same with all-metrics on.
func TestAllMetricsVersions(t *testing.T) {
	for _, ver := range []string{"2.0", "2.4", "2.8", "3.3"} {
		t.Run(ver, func(t *testing.T) {
			base := filepath.Join("testdata", "versions", ver)
			in := filepath.Join(base, "input")
			dir := filepath.Join(t.TempDir(), "1700000000")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"admin1.sock_stat", "admin1.sock_info", "admin2.sock_stat", "admin2.sock_info"} {
				b, err := os.ReadFile(filepath.Join(in, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			off := run(t, dir, 1700000000, Options{Prefix: prefixVM})
			on := run(t, dir, 1700000000, Options{Prefix: prefixVM, AllMetrics: true})
			if off.err != nil || on.err != nil {
				t.Fatal(off.err, on.err)
			}
			if len(off.stats.Problems) > 0 || len(on.stats.Problems) > 0 {
				t.Errorf("problems: %v / %v", off.stats.Problems, on.stats.Problems)
			}
			compareExpected(t, filepath.Join(base, "expected-off.txt"), off.lines)
			compareExpected(t, filepath.Join(base, "expected-on.txt"), on.lines)
			hs := map[string]string{}
			for _, l := range off.lines {
				hs[l.path] = l.value
			}
			want := amExpect(t, prefixVM,
				readAll(t, filepath.Join(in, "admin1.sock_stat"), filepath.Join(in, "admin2.sock_stat")),
				readAll(t, filepath.Join(in, "admin1.sock_info"), filepath.Join(in, "admin2.sock_info")), hs)
			checkAllMetrics(t, off.lines, on.lines, want)
			t.Logf("%s: %d lines off, %d on", ver, len(off.lines), len(on.lines))
		})
	}
}

// compareExpected compares lines with the expected file value for value (the timing
// self-metrics' values vary and are written as "-").
func compareExpected(t *testing.T, path string, lines []gline) {
	t.Helper()
	var text strings.Builder
	for _, l := range lines {
		v := l.value
		if isTiming(l.path) {
			v = "-"
		}
		text.WriteString(l.path + " " + v + " " + l.ts + "\n")
	}
	if updateVersions {
		if err := os.WriteFile(path, []byte(text.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readLines(t, path)
	got := parseLines(t, []byte(text.String()))
	if len(want) != len(got) {
		t.Errorf("%s: %d lines, expected %d", path, len(got), len(want))
	}
	wantMap := map[string]string{}
	for _, l := range want {
		wantMap[l.path] = l.value
	}
	gotPaths := map[string]bool{}
	for _, l := range got {
		gotPaths[l.path] = true
		if v, ok := wantMap[l.path]; !ok {
			t.Errorf("%s: unexpected line %s", path, l)
		} else if v != l.value {
			t.Errorf("%s: %s = %s, expected %s", path, l.path, l.value, v)
		}
	}
	for _, l := range want {
		if !gotPaths[l.path] {
			t.Errorf("%s: missing line %s", path, l)
		}
	}
	if !t.Failed() && !slices.EqualFunc(want, got, func(a, b gline) bool { return a.path == b.path }) {
		t.Errorf("%s: same lines in another order", path)
	}
}
