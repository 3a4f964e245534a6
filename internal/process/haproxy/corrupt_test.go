package haproxy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const corruptDir = "testdata/golden/X-corrupt-inputs"

// copySnapshot copies a snapshot directory to a temporary one, leaving out the named files.
func copySnapshot(t *testing.T, src string, leaveOut ...string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if slices.Contains(leaveOut, e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func isDaemonSection(l gline) bool {
	return strings.Contains(l.path, ".daemon.") || strings.HasSuffix(l.path, ".MetricsHAProxy") ||
		strings.HasSuffix(l.path, ".WallClockTimeHAProxy")
}

// referenceA is golden A's output without `nan` lines: the expectation for cases whose damage
// statspipe tolerates without losing data.
func referenceA(t *testing.T) []gline {
	return dropNaN(readLines(t, filepath.Join(goldenDir, "A-real-default", "graphite.out")))
}

func TestCorruptInputs(t *testing.T) {
	const ts = 1795312594
	opts := optionsFromConf(t, filepath.Join(goldenDir, "A-real-default", "haproxystats.conf.used"))
	// Each case: which files must be named in the log, with which words, and the expected
	// lines (with every deviation from the reference's .out explicit).
	cases := []struct {
		name     string
		badFiles map[string]string // file → text the log line must contain
		skipped  int               // files rejected whole
		want     func(t *testing.T, dir string) []gline
	}{
		{
			name:     "badrow",
			badFiles: map[string]string{"admin1.sock_stat": `line=3 column=scur value="\"x\""`},
			want: func(t *testing.T, dir string) []gline {
				// Upstream dropped the scur column everywhere (427 lines). We treat the one
				// bad cell as empty: fe_dotted_name.scur is summed without admin1's cell,
				// which was 0 in the undamaged snapshot, so the output equals A's.
				want := referenceA(t)
				setValue(t, want, "loadbalancers.vm.haproxy.frontend.fe_dotted_name.scur", "0.0")
				return want
			},
		},
		{
			name:     "empty",
			badFiles: map[string]string{"admin3.sock_stat": "empty file"},
			skipped:  1,
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "empty.out")))
			},
		},
		{
			name:     "extracol",
			badFiles: map[string]string{"admin1.sock_stat": "line 3: row has 131 fields, the header has 129"},
			skipped:  1,
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "extracol.out")))
			},
		},
		{
			name:     "extrafields",
			badFiles: map[string]string{"admin4.sock_stat": "no `# pxname,…` header"},
			skipped:  1,
			want: func(t *testing.T, dir string) []gline {
				// Upstream crashed after the daemon part (its .out has only those 45
				// lines). We skip admin4's stat file and use the other three: the daemon
				// part is the reference's, the site part is what the same snapshot gives
				// without that file.
				daemon := readLines(t, filepath.Join(corruptDir, "extrafields.out"))
				if len(daemon) != 45 || !isDaemonSection(daemon[44]) {
					t.Fatalf("extrafields.out: want 45 daemon lines, got %d", len(daemon))
				}
				without := run(t, copySnapshot(t, dir, "admin4.sock_stat"), ts, opts)
				sites := slices.DeleteFunc(without.lines, isDaemonSection)
				// admin4 did contribute: fe_main.bin is A's 4990 minus admin4's 1996.
				if v := valueOf(t, sites, "loadbalancers.vm.haproxy.frontend.fe_main.bin"); v != "2994.0" {
					t.Fatalf("fe_main.bin without admin4 = %s, want 2994.0", v)
				}
				return append(dropNaN(daemon), sites...)
			},
		},
		{
			name:     "headeronly",
			badFiles: map[string]string{"admin3.sock_stat": "header line only"},
			skipped:  1,
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "headeronly.out")))
			},
		},
		{
			name:     "missingkey",
			badFiles: map[string]string{},
			want: func(t *testing.T, dir string) []gline {
				// Upstream emitted no daemon metric at all (394 lines). We aggregate Tasks
				// over the three replies that have it: A's 84 minus admin1's 22.
				want := referenceA(t)
				setValue(t, want, "loadbalancers.vm.haproxy.daemon.Tasks", "62.0")
				return want
			},
		},
		{
			name:     "noinfo",
			badFiles: map[string]string{},
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "noinfo.out")))
			},
		},
		{
			name:     "nostat",
			badFiles: map[string]string{},
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "nostat.out")))
			},
		},
		{
			name:     "truncated",
			badFiles: map[string]string{},
			want: func(t *testing.T, dir string) []gline {
				return dropNaN(readLines(t, filepath.Join(corruptDir, "truncated.out")))
			},
		},
		{
			name:     "unknowncmd",
			badFiles: map[string]string{"admin2.sock_stat": "Unknown command"},
			skipped:  1,
			want: func(t *testing.T, dir string) []gline {
				// Upstream crashed after the daemon part; as extrafields, we use the other
				// three stat files.
				daemon := readLines(t, filepath.Join(corruptDir, "unknowncmd.out"))
				if len(daemon) != 45 || !isDaemonSection(daemon[44]) {
					t.Fatalf("unknowncmd.out: want 45 daemon lines, got %d", len(daemon))
				}
				without := run(t, copySnapshot(t, dir, "admin2.sock_stat"), ts, opts)
				sites := slices.DeleteFunc(without.lines, isDaemonSection)
				// admin2 did contribute: fe_main.bin is A's 4990 minus admin2's 998.
				if v := valueOf(t, sites, "loadbalancers.vm.haproxy.frontend.fe_main.bin"); v != "3992.0" {
					t.Fatalf("fe_main.bin without admin2 = %s, want 3992.0", v)
				}
				return append(dropNaN(daemon), sites...)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(corruptDir, c.name, "1795312594")
			got := run(t, dir, ts, opts)
			if got.err != nil {
				t.Fatalf("Process: %v", got.err)
			}
			want := c.want(t, dir)
			compareMultiset(t, want, got.lines)
			compareOrdered(t, want, got.lines)
			if got.stats.FilesSkipped != c.skipped {
				t.Errorf("FilesSkipped = %d, want %d (%v)", got.stats.FilesSkipped, c.skipped, got.stats.Problems)
			}
			for file, text := range c.badFiles {
				found := false
				for _, line := range strings.Split(got.log, "\n") {
					if strings.Contains(line, filepath.Join(dir, file)) && strings.Contains(line, text) {
						found = true
					}
				}
				if !found {
					t.Errorf("no log line names %s with %q; log:\n%s", file, text, got.log)
				}
			}
			if len(c.badFiles) == 0 && strings.Contains(got.log, "level=ERROR") {
				t.Errorf("unexpected error log:\n%s", got.log)
			}
		})
	}
}

// A key missing from some replies is logged once, naming the key.
func TestCorruptMissingKeyLogged(t *testing.T) {
	opts := optionsFromConf(t, filepath.Join(goldenDir, "A-real-default", "haproxystats.conf.used"))
	got := run(t, filepath.Join(corruptDir, "missingkey", "1795312594"), 1795312594, opts)
	if n := strings.Count(got.log, "metric=Tasks"); n != 1 {
		t.Errorf("want one log line about Tasks, got %d:\n%s", n, got.log)
	}
}

func TestUnusable(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := filepath.Join(t.TempDir(), "1700000000")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	unknown := "Unknown command. Please enter one of the following commands only :\n  help : this message\n"
	cases := map[string]map[string]string{
		"no files":            {},
		"only other files":    {"README": "x", "admin1.sock_infox": "Pid: 1\n"},
		"every file rejected": {"a.sock_info": unknown, "a.sock_stat": unknown, "b.sock_stat": "", "c.sock_stat": "# pxname,svname,type,\n"},
		"bad rows only":       {"a.sock_stat": "# pxname,svname,type,\nfe,FRONTEND,0,,x,y\n"},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			dir := write(t, files)
			got := run(t, dir, 1700000000, Options{Prefix: "ns.haproxy"})
			var ue *UnusableError
			if !errors.As(got.err, &ue) {
				t.Fatalf("want *UnusableError, got %v", got.err)
			}
			if ue.Dir != dir || ue.Reason == "" || strings.Contains(ue.Error(), "\n") {
				t.Errorf("bad error %#v", ue)
			}
			if len(got.batches) != 0 {
				t.Errorf("%d chunks flushed before UnusableError", len(got.batches))
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		got := run(t, filepath.Join(t.TempDir(), "nope"), 1, Options{Prefix: "ns.haproxy"})
		var ue *UnusableError
		if got.err == nil || errors.As(got.err, &ue) || len(got.batches) != 0 {
			t.Fatalf("want a plain error and no chunk, got %v, %d chunks", got.err, len(got.batches))
		}
	})
}
