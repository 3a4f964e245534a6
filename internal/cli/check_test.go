package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	_ "github.com/statspipe/statspipe/internal/sources/all" // the kinds' options and checks
)

// runCheck loads text as the -f file (in a new directory, B in the output) and runs --check.
func runCheck(t *testing.T, prog config.Program, text func(base string) string) (stdout, stderr string, code int) {
	t.Helper()
	base := t.TempDir()
	file := filepath.Join(base, "c.conf")
	if err := os.WriteFile(file, []byte(text(base)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cfg, _, code := LoadConfig(ConfigRequest{Program: prog, File: file, Check: true}, &out, &errOut)
	if cfg != nil {
		t.Fatal("--check returned a configuration to run")
	}
	return strings.ReplaceAll(out.String(), base, "B"), strings.ReplaceAll(errOut.String(), base, "B"), code
}

func TestCheckSpoolDirectories(t *testing.T) {
	for _, c := range []struct {
		name   string
		setup  func(base string)
		text   string
		stderr string
	}{
		{"missing, created at start", nil, "dst-dir = ${paths:base-dir}/a/in\ntmp-dst-dir = ${paths:base-dir}/a/in.tmp\n", ""},
		{"the same directory", nil, "dst-dir = ${paths:base-dir}/in\ntmp-dst-dir = ${paths:base-dir}/in/\n",
			"invalid configuration, file:'B/c.conf' line:6 section:'pull' option:'tmp-dst-dir' value:'B/in/' raw:'${paths:base-dir}/in/' " +
				"error: tmp-dst-dir and dst-dir are the same directory: snapshots must be built outside the queue (use a sibling directory such as 'B/in.tmp')\n"},
		{"tmp-dst-dir inside dst-dir", nil, "dst-dir = ${paths:base-dir}/in\ntmp-dst-dir = ${paths:base-dir}/in/tmp\n",
			"invalid configuration, file:'B/c.conf' line:6 section:'pull' option:'tmp-dst-dir' value:'B/in/tmp' raw:'${paths:base-dir}/in/tmp' " +
				"error: tmp-dst-dir is inside dst-dir and would be taken for a snapshot; use a sibling directory or a dot name\n"},
		{"a file", func(base string) { os.WriteFile(base+"/in", nil, 0o644) }, "dst-dir = ${paths:base-dir}/in\ntmp-dst-dir = ${paths:base-dir}/tmp\n",
			"invalid configuration, file:'B/c.conf' line:5 section:'pull' option:'dst-dir' value:'B/in' raw:'${paths:base-dir}/in' " +
				"error: 'B/in' is not a directory\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runCheck(t, config.PullProgram, func(base string) string {
				if c.setup != nil {
					c.setup(base)
				}
				return "[paths]\nbase-dir = " + base + "\n[pull]\nservers = tcp://127.0.0.1:1\n" + c.text
			})
			if c.stderr == "" {
				if code != 0 || stdout != "configuration OK: B/c.conf\n" || stderr != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
				}
				return
			}
			if want := c.stderr + "configuration invalid: B/c.conf (1 problem)\n"; code != 1 || stderr != want {
				t.Fatalf("exit %d, stderr\n%s\nwant\n%s", code, stderr, want)
			}
		})
	}
	t.Run("different filesystems", func(t *testing.T) {
		shm, err := os.MkdirTemp("/dev/shm", "ck")
		if err != nil {
			t.Skipf("no /dev/shm: %v", err)
		}
		defer os.RemoveAll(shm)
		var a, b syscall.Stat_t
		disk := t.TempDir()
		if syscall.Stat(shm, &a) != nil || syscall.Stat(disk, &b) != nil || a.Dev == b.Dev {
			t.Skip("/dev/shm is on the same filesystem as the temp dir")
		}
		_, stderr, code := runCheck(t, config.PullProgram, func(string) string {
			return "[pull]\nservers = tcp://127.0.0.1:1\ndst-dir = " + disk + "/in\ntmp-dst-dir = " + shm + "/tmp\n"
		})
		if code != 1 || !strings.Contains(stderr, "option:'tmp-dst-dir' value:'"+shm+"/tmp' error: tmp-dst-dir and dst-dir '"+disk+"/in' are on different filesystems") {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
	})
}

func TestCheckSockets(t *testing.T) {
	stdout, stderr, code := runCheck(t, config.PullProgram, func(base string) string {
		os.Mkdir(base+"/sockets", 0o755)
		os.WriteFile(base+"/file", nil, 0o644)
		os.Mkdir(base+"/dir", 0o755)
		return "[pull]\ndst-dir = " + base + "/in\ntmp-dst-dir = " + base + "/tmp\nsocket-dir = " + base + "/sockets\n" +
			"servers = unix://" + base + "/missing.sock, unix://" + base + "/file\n"
	})
	want := "warning: [pull] socket-dir 'B/sockets' has no UNIX socket now (is HAProxy running?)\n" +
		"warning: [pull] servers: UNIX socket 'B/missing.sock' does not exist now (is HAProxy running?)\n" +
		"invalid configuration, file:'B/c.conf' line:5 section:'pull' option:'servers' value:'unix://B/missing.sock, unix://B/file' " +
		"error: 'B/file' is not a UNIX socket\n" +
		"configuration invalid: B/c.conf (1 problem)\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr\n%s\nwant\n%s", code, stdout, stderr, want)
	}

	// master-socket is checked like a unix:// item of servers.
	stdout, stderr, code = runCheck(t, config.PullProgram, func(base string) string {
		os.WriteFile(base+"/file", nil, 0o644)
		return "[pull]\ndst-dir = " + base + "/in\ntmp-dst-dir = " + base + "/tmp\n" +
			"master-socket = " + base + "/missing.sock " + base + "/file\n"
	})
	want = "warning: [pull] master-socket: UNIX socket 'B/missing.sock' does not exist now (is HAProxy running?)\n" +
		"invalid configuration, file:'B/c.conf' line:4 section:'pull' option:'master-socket' value:'B/missing.sock B/file' " +
		"error: 'B/file' is not a UNIX socket\n" +
		"configuration invalid: B/c.conf (1 problem)\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr\n%s\nwant\n%s", code, stdout, stderr, want)
	}

	// A socket-dir with a socket and a socket in servers: no warning.
	dir, err := os.MkdirTemp("", "ck") // short: a socket path is at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", dir+"/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stdout, stderr, code = runCheck(t, config.PullProgram, func(base string) string {
		return "[pull]\ndst-dir = " + base + "/in\ntmp-dst-dir = " + base + "/tmp\nsocket-dir = " + dir + "\nservers = unix://" + dir + "/admin.sock\n"
	})
	if code != 0 || stdout != "configuration OK: B/c.conf\n" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A source's pull half checks more than its options at start (here its secret file): so does --check.
func TestCheckSourcePullHalf(t *testing.T) {
	_, stderr, code := runCheck(t, config.PullProgram, func(base string) string {
		return "[pull]\ndst-dir = " + base + "/in\ntmp-dst-dir = " + base + "/tmp\n" +
			"[source.apps]\ntype = openmetrics\nurls = http://127.0.0.1:1/metrics\nbearer-token-file = " + base + "/token\n"
	})
	want := "invalid configuration, file:'B/c.conf' line:7 section:'source.apps' option:'bearer-token-file' value:'B/token' " +
		"error: bearer-token-file B/token: no such file or directory\n" +
		"configuration invalid: B/c.conf (1 problem)\n"
	if code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr\n%s\nwant\n%s", code, stderr, want)
	}
}

// The default file missing is a notice, and the built-in defaults are what is checked.
func TestCheckDefaultFileMissing(t *testing.T) {
	var out, errOut bytes.Buffer
	loaded, err := config.Load(filepath.Join(t.TempDir(), "missing.conf"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	code := check(loaded, config.ProcessProgram).report(loaded, &out, &errOut, false)
	if _, err := os.Stat("/var/lib/haproxystats/incoming"); err == nil {
		// The default src-dir exists on this machine (a package installed by another test):
		// then the defaults are fine.
		if code != 0 || !strings.Contains(out.String(), "configuration OK: built-in defaults") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
		}
		return
	}
	if code != 1 || !strings.HasPrefix(errOut.String(), "notice: configuration file ") ||
		!strings.HasSuffix(errOut.String(), "configuration invalid: built-in defaults (1 problem)\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
