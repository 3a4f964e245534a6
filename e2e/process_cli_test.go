package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/statspipe/statspipe/internal/testrig"
)

func runProcess(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "stats-process"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestProcessCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := writeConfig(t, dir, "[process]\nworkers = two\nsrc-dir = "+dir+"\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-v"}, 0, "statspipe "},
		{[]string{"-h"}, 0, "stats-process [-f <file>] [-d <dir>] [-p | -P] [--once]"},
		{[]string{"--bogus"}, 1, "Usage:"},
		{[]string{"-p"}, 0, "[graphite]\n"},
		{[]string{"-f", filepath.Join(dir, "missing.conf")}, 1, "missing.conf"},
		{[]string{"-f", bad}, 1, "option:'workers' value:'two'"},
		{[]string{"-f", bad, "-P"}, 0, "workers = two"}, // -P prints before validating, as haproxystats
	}
	for _, c := range cases {
		out, code := runProcess(t, nil, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("stats-process %v: exit %d, output %q; want exit %d containing %q", c.args, code, out, c.code, c.want)
		}
	}
	// A validation error is exactly one line.
	out, _ := runProcess(t, nil, "-f", bad)
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("validation error is not one line: %q", out)
	}
}

// --once exits 1 when a snapshot had to be quarantined, and leaves the good ones delivered.
func TestOnceQuarantineExitStatus(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	good := filepath.Join(src, "1700000000")
	junk := filepath.Join(src, "1700000010")
	for _, d := range []string{good, junk} {
		os.MkdirAll(d, 0o755)
	}
	golden := "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"
	files, err := os.ReadDir(golden)
	if err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(golden, f.Name()))
		os.WriteFile(filepath.Join(good, f.Name()), b, 0o644)
	}
	os.WriteFile(filepath.Join(junk, "admin1.sock_stat"), []byte("Unknown command. Please enter one of the following commands only :\n"), 0o644)
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 2
[graphite]
enabled = false
hostname = vm
[local-store]
dir = `+base+`/local-store
`)
	out, code := runProcess(t, nil, "-f", conf, "--once")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one snapshot quarantined):\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(base, "local-store", "1700000000", "stats")); err != nil {
		t.Fatalf("the good snapshot was not delivered: %v\n%s", err, out)
	}
	if _, err := os.Stat(good); !os.IsNotExist(err) {
		t.Fatalf("the delivered snapshot was not removed")
	}
	reason, err := os.ReadFile(filepath.Join(src+".quarantine", "1700000010", "REASON"))
	if err != nil {
		t.Fatalf("the unusable snapshot was not quarantined: %v\n%s", err, out)
	}
	if !strings.Contains(out, "admin1.sock_stat") {
		t.Errorf("the log does not name the bad file:\n%s", out)
	}
	t.Logf("REASON: %s", reason)
}

// Under systemd (Type=notify) stats-process reports READY, pings the watchdog and reports
// STOPPING, then exits 0 on SIGTERM.
func TestProcessSystemdNotify(t *testing.T) {
	notify := testrig.ListenNotify(t)
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "incoming"), 0o755)
	conf := writeConfig(t, base, "[process]\nsrc-dir = "+base+"/incoming\n[graphite]\nenabled = false\n[local-store]\ndir = "+base+"/ls\n")
	cmd := exec.Command(filepath.Join(binDir, "stats-process"), "-f", conf)
	cmd.Env = append(os.Environ(), notify.Env()...)
	out := &testrig.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	notify.ExpectLifecycle(t, func() { cmd.Process.Signal(syscall.SIGTERM) })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out)
	}
}
