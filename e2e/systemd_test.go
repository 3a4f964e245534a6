package e2e

import (
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

var units = []struct{ name, program string }{
	{"stats-pull.service", "stats-pull"},
	{"stats-process.service", "stats-process"},
}

func readUnit(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../contrib/systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The shipped units pass `systemd-analyze verify` without a single warning (it exits 0 on bad
// values, so any output fails). ExecStart must name an existing binary: the copies point at
// the freshly built programs.
func TestSystemdUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	for _, u := range units {
		text := readUnit(t, u.name)
		shipped := "ExecStart=/usr/bin/" + u.program + " "
		if !strings.Contains(text, shipped) {
			t.Fatalf("%s: no %q line", u.name, shipped)
		}
		text = strings.Replace(text, shipped, "ExecStart="+filepath.Join(binDir, u.program)+" ", 1)
		text = strings.Replace(text, "ExecReload=/usr/bin/"+u.program+" ", "ExecReload="+filepath.Join(binDir, u.program)+" ", 1)
		path := filepath.Join(dir, u.name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--recursive-errors=no", path).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u.name, err, out)
		}
	}
}

// The shipped units run under a real systemd (a user manager): a Type=notify start returns
// once the program is ready, the watchdog keeps a healthy program alive and kills a stopped
// one (which Restart= then restarts), snapshots flow from HAProxy to the local store, and a
// stop ends both programs cleanly.
func TestSystemdRunsTheUnits(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 1})
	sd := testrig.StartUserSystemd(t)
	base := t.TempDir()
	store := filepath.Join(base, "local-store")
	conf := pipelineConfig(t, base, h.SocketDir, 1, `
[graphite]
enabled = false
[local-store]
dir = `+store+`
`)
	for _, u := range units {
		// Only what a test machine needs differs from the shipped unit: no haproxystats user,
		// the freshly built binary, a spool under the test's directory (the shipped units
		// write to /var/lib/haproxystats only), output to a file (there is no journald), and
		// a short watchdog; and PrivateTmp=no, since the binary and the spool are under /tmp,
		// which the shipped PrivateTmp=yes would hide (203/EXEC).
		log := filepath.Join(base, u.program+".log")
		sd.InstallUnit(t, u.name, readUnit(t, u.name), `[Service]
User=
Group=
ExecStart=
ExecStart=`+filepath.Join(binDir, u.program)+` -f `+conf+`
ExecReload=
ExecReload=`+filepath.Join(binDir, u.program)+` -f `+conf+` --check
ExecReload=/bin/kill -HUP $MAINPID
ReadWritePaths=
ReadWritePaths=`+base+`
PrivateTmp=no
StandardOutput=append:`+log+`
StandardError=append:`+log+`
Environment="GORACE=atexit_sleep_ms=0 exitcode=66"
WatchdogSec=2s
RestartSec=200ms
`)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := os.ReadFile(log)
				t.Logf("%s output:\n%s", u.program, out)
			}
		})
	}

	started := time.Now()
	sd.MustSystemctl(t, "start", "stats-pull.service", "stats-process.service")
	for _, u := range units {
		p := sd.Show(t, u.name, "ActiveState", "SubState", "StatusText", "Type", "WatchdogUSec", "NRestarts")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["Type"] != "notify" || p["WatchdogUSec"] != "2s" {
			t.Fatalf("%s right after start: %v", u.name, p)
		}
		if p["StatusText"] == "" {
			t.Errorf("%s: no STATUS= text: %v", u.name, p)
		}
	}
	t.Logf("both units ready %v after systemctl start", time.Since(started))

	// Three watchdog periods: a program that stopped pinging would have been killed by now.
	time.Sleep(6 * time.Second)
	for _, u := range units {
		p := sd.Show(t, u.name, "ActiveState", "NRestarts", "Result")
		if p["ActiveState"] != "active" || p["NRestarts"] != "0" || p["Result"] != "success" {
			t.Fatalf("%s after 3 watchdog periods: %v", u.name, p)
		}
	}
	waitUntil(t, 20*time.Second, "snapshots in the local store", func() bool {
		return len(snapshotsIn(t, store)) >= 3
	})

	// systemctl reload: ExecReload checks the file, then SIGHUP; the programs report
	// RELOADING=1 and READY=1, and keep their PIDs. systemd 252 (Debian 12) has no
	// Type=notify-reload: `systemctl reload` returns once `kill -HUP` has, and the program's
	// RELOADING=1 may arrive just after, putting the unit into "reloading" until its READY=1.
	// So the state is polled (bounded) until the reload is over.
	for _, u := range units {
		before := sd.Show(t, u.name, "MainPID")["MainPID"]
		sd.MustSystemctl(t, "reload", u.name)
		var p map[string]string
		waitUntil(t, 10*time.Second, u.name+" active and running after systemctl reload", func() bool {
			p = sd.Show(t, u.name, "ActiveState", "SubState", "MainPID", "NRestarts")
			return p["ActiveState"] == "active" && p["SubState"] == "running" || p["MainPID"] != before || p["NRestarts"] != "0"
		})
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] != before || p["NRestarts"] != "0" {
			t.Fatalf("%s after systemctl reload: %v (MainPID was %s)", u.name, p, before)
		}
		waitUntil(t, 10*time.Second, u.program+" to log the reload", func() bool {
			out, _ := os.ReadFile(filepath.Join(base, u.program+".log"))
			return strings.Contains(string(out), "msg=reloaded")
		})
	}
	n := len(snapshotsIn(t, store))
	waitUntil(t, 20*time.Second, "snapshots in the local store after the reload", func() bool {
		return len(snapshotsIn(t, store)) >= n+2
	})

	// A frozen program stops pinging: systemd kills it (Result=watchdog) and restarts it.
	pid := sd.Show(t, "stats-process.service", "MainPID")["MainPID"]
	frozen, err := strconv.Atoi(pid)
	if err != nil || frozen <= 0 {
		t.Fatalf("MainPID %q", pid)
	}
	if err := syscall.Kill(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitUntil(t, 20*time.Second, "the watchdog to restart the frozen stats-process", func() bool {
		p := sd.Show(t, "stats-process.service", "ActiveState", "NRestarts", "MainPID")
		return p["NRestarts"] == "1" && p["ActiveState"] == "active" && p["MainPID"] != pid
	})
	// Only the watchdog kills a stopped process on its own: WatchdogSec after the last ping,
	// and the pings come every second (half of it), so at the earliest 1 s after SIGSTOP.
	if waited := time.Since(stopped); waited < 900*time.Millisecond {
		t.Errorf("stats-process was replaced %v after SIGSTOP, before the 2 s watchdog could fire", waited)
	} else {
		t.Logf("the watchdog replaced the frozen stats-process %v after SIGSTOP", waited.Round(100*time.Millisecond))
	}

	sd.MustSystemctl(t, "stop", "stats-pull.service", "stats-process.service")
	for _, u := range units {
		p := sd.Show(t, u.name, "ActiveState", "Result", "ExecMainStatus")
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
			t.Errorf("%s after stop: %v", u.name, p)
		}
	}
}
