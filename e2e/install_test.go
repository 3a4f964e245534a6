package e2e

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs a command in the repository root and returns its trimmed stdout, failing the test
// with its output on error.
func runInRepo(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// scripts/build stamps every program with `git describe --tags --always --dirty` (what -v
// prints), and with "dev" where there is no git history; the programs are static.
func TestBuildStampsTheVersion(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	want := "dev"
	if out, err := exec.Command("git", "-C", "..", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		want = strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		name, want string
		env        []string
	}{
		{"git describe", want, nil},
		{"no git history", "dev", []string{"GIT_DIR=" + filepath.Join(t.TempDir(), "none")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			env := append([]string{"VERSION="}, c.env...)
			if got := runInRepo(t, env, "scripts/build", dir); got != c.want {
				t.Fatalf("scripts/build says version %q, want %q", got, c.want)
			}
			for _, p := range []string{"stats-pull", "stats-process", "check_statspipe_queue_size"} {
				out, err := exec.Command(filepath.Join(dir, p), "-v").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "statspipe "+c.want {
					t.Errorf("%s -v: %q (%v), want %q", p, out, err, "statspipe "+c.want)
				}
				// Static: no dynamic loader, so the package runs on any release.
				f, err := elf.Open(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				for _, prog := range f.Progs {
					if prog.Type == elf.PT_INTERP {
						t.Errorf("%s is dynamically linked", p)
					}
				}
				f.Close()
			}
		})
	}
}

// scripts/install into a DESTDIR puts every file where the README says, points the units at
// $PREFIX/bin, and leaves an existing configuration alone.
func TestInstallStagesEverything(t *testing.T) {
	dest := t.TempDir()
	env := []string{"DESTDIR=" + dest, "PREFIX=/usr/local", "BUILT=" + binDir}
	runInRepo(t, env, "scripts/install")
	files := map[string]os.FileMode{
		"usr/local/bin/stats-pull":                                 0o755,
		"usr/local/bin/stats-process":                              0o755,
		"usr/local/lib/nagios/plugins/check_statspipe_queue_size":  0o755,
		"usr/local/lib/nagios/plugins/check_statspipe_procs":       0o755,
		"usr/local/lib/systemd/system/stats-pull.service":          0o644,
		"usr/local/lib/systemd/system/stats-process.service":       0o644,
		"usr/local/lib/sysusers.d/statspipe.conf":                  0o644,
		"usr/local/lib/tmpfiles.d/statspipe.conf":                  0o644,
		"usr/local/share/man/man1/stats-pull.1.gz":                 0o644,
		"usr/local/share/man/man1/stats-process.1.gz":              0o644,
		"usr/local/share/man/man8/check_statspipe_queue_size.8.gz": 0o644,
		"usr/local/share/man/man8/check_statspipe_procs.8.gz":      0o644,
		"usr/local/share/doc/statspipe/README.md":                  0o644,
		"usr/local/share/doc/statspipe/LICENSE":                    0o644,
		"usr/local/share/doc/statspipe/haproxystats.conf":          0o644,
		"etc/haproxystats.conf":                                    0o644,
	}
	if _, err := os.Stat("../internal/sources/httpebpf/cmd/stats-http-ebpf"); err == nil {
		files["usr/local/bin/stats-http-ebpf"] = 0o755
	}
	for f, mode := range files {
		fi, err := os.Stat(filepath.Join(dest, f))
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), mode)
		}
	}
	for _, u := range units {
		text, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system", u.name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), "\nExecStart=/usr/local/bin/"+u.program+" ") {
			t.Errorf("%s: ExecStart not under PREFIX:\n%s", u.name, text)
		}
	}

	conf := filepath.Join(dest, "etc/haproxystats.conf")
	if err := os.WriteFile(conf, []byte("[pull]\nsocket-dir = /run/mine\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	out := runInRepo(t, env, "scripts/install")
	if !strings.Contains(out, "exists: left as it is") {
		t.Errorf("second install did not say it kept the configuration: %s", out)
	}
	if text, _ := os.ReadFile(conf); string(text) != "[pull]\nsocket-dir = /run/mine\n" {
		t.Errorf("an existing configuration was replaced: %q", text)
	}
}

// The shipped units stay sandboxed: `systemd-analyze security --offline=true` rates each well
// below 5 (at most 2.0), and README's table shows the scores as they are.
func TestSystemdUnitsSandboxed(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		score := exposure(t, filepath.Join("../contrib/systemd", u.name))
		if score > 2.0 {
			t.Errorf("%s: exposure %.1f, more than 2.0", u.name, score)
		}
		row := fmt.Sprintf("| %s | 8.7 EXPOSED | **%.1f OK** |", u.name, score)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row %q", row)
		}
	}
}
