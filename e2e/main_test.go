// Package e2e runs the real programs end to end: real HAProxy → stats-pull → stats-process →
// real carbon-cache or a TCP sink, and checks what arrives against HAProxy's own CSV.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "statspipe-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-race", "-o", dir+"/", "github.com/statspipe/statspipe/cmd/stats-pull",
		"github.com/statspipe/statspipe/cmd/stats-process", "github.com/statspipe/statspipe/cmd/check_statspipe_queue_size",
		"github.com/statspipe/statspipe/internal/sources/httpebpf/cmd/stats-http-ebpf",
		"github.com/statspipe/statspipe/cmd/check_statspipe_freshness")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the programs:", err)
		os.Exit(1)
	}
	binDir = dir
	// The programs are built with -race: a data race makes them exit 66, which every test
	// notices; and the race runtime's default 1 s sleep at exit is not needed.
	os.Setenv("GORACE", "atexit_sleep_ms=0 exitcode=66")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is one of our programs running in the background.
type daemon struct {
	name string
	cmd  *exec.Cmd
	out  *testrig.Buffer
	done chan struct{}
}

func start(t *testing.T, program string, args ...string) *daemon {
	t.Helper()
	return startFrom(t, binDir, program, args...)
}

// startFrom is start for a program built into dir.
func startFrom(t *testing.T, dir, program string, args ...string) *daemon {
	t.Helper()
	return startIn(t, dir, nil, program, args...)
}

// startWithEnv is start with env added to the environment.
func startWithEnv(t *testing.T, env []string, program string, args ...string) *daemon {
	t.Helper()
	return startIn(t, binDir, env, program, args...)
}

func startIn(t *testing.T, dir string, env []string, program string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: program, out: &testrig.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(dir, program), args...)
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("%s output:\n%s", program, d.out.String())
		}
	})
	return d
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30 s of SIGTERM", d.name)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d:\n%s", d.name, code, d.out.String())
	}
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "statspipe.conf")
	if err := os.WriteFile(p, []byte(strings.TrimLeft(text, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pipelineConfig is a configuration for stats-pull and stats-process sharing a spool under
// base, pulling every HAProxy socket in socketDir each second, followed by the test's own
// sections (graphite, local-store).
func pipelineConfig(t *testing.T, base, socketDir string, workers int, sections string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(base, "incoming"), 0o755)
	return writeConfig(t, base, `
[paths]
base-dir = `+base+`
[pull]
socket-dir = `+socketDir+`
dst-dir = ${paths:base-dir}/incoming
tmp-dst-dir = ${paths:base-dir}/incoming.tmp
pull-interval = 1
pull-timeout = 0.5
[process]
src-dir = ${paths:base-dir}/incoming
workers = `+strconv.Itoa(workers)+`
`+sections)
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func snapshotsIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}
