package e2e

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// dpkgLockWait bounds the wait for another package manager (apt in a parallel CI step) that
// holds dpkg's lock; dpkg itself fails at once.
const dpkgLockWait = 10 * time.Minute

// dpkg runs dpkg with args, retrying while another process holds its lock.
func dpkg(t *testing.T, args ...string) (string, error) {
	t.Helper()
	deadline := time.Now().Add(dpkgLockWait)
	for {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			return string(out), err
		}
		time.Sleep(time.Second)
	}
}

// The Debian package from scripts/package installs with dpkg -i on this machine: files,
// version stamp, conffile, the haproxystats user in HAProxy's socket group, the spool, man
// pages, sandbox scores. Its units, as installed and unchanged but for the log file (there is
// no journald), then run under a real systemd as the haproxystats user with every sandboxing
// directive in force, and turn real HAProxy statistics into local-store snapshots; installing
// the package again keeps the edited configuration. Purging the package (and removing the
// user and group the test made) leaves the machine as it was.
func TestPackageInstallsAndRunsTheUnits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	// HAProxy's sockets: a directory of the test's own, not Debian's /run/haproxy, that only
	// root and the haproxy group may enter.
	const sockets = "/run/statspipe-test-haproxy"
	for _, bin := range []string{"dpkg", "dpkg-query", "systemd-analyze", "systemd-sysusers", "runuser"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	if _, err := os.Stat(testrig.HAProxyBinary); err != nil {
		t.Skip("haproxy is not installed")
	}
	// Never touch a real installation.
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "statspipe").Output(); strings.Contains(string(out), "installed") {
		t.Skip("the statspipe package is installed here: not replacing it")
	}
	for _, p := range []string{"/etc/haproxystats.conf", "/usr/bin/stats-pull", "/usr/bin/stats-process", "/var/lib/haproxystats", sockets} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists: a real installation? not touching it", p)
		}
	}
	_, userErr := user.Lookup("haproxystats")
	hadUser := userErr == nil
	_, groupErr := user.LookupGroup("haproxy")
	hadHAProxyGroup := groupErr == nil

	const version = "v9.8.7-test"
	dist := t.TempDir()
	deb := runInRepo(t, []string{"VERSION=" + version}, "scripts/package", dist)
	if filepath.Base(deb) != "statspipe_9.8.7+test_"+runtimeArch(t)+".deb" {
		t.Errorf("package file %s", deb)
	}

	// Cleanup, registered before anything is installed: purge, then what dpkg leaves (the
	// user, as Debian does, and the groups sysusers made), then check that nothing is left.
	t.Cleanup(func() {
		if out, err := dpkg(t, "--purge", "statspipe"); err != nil {
			t.Errorf("dpkg --purge statspipe: %v\n%s", err, out)
		}
		if !hadUser {
			if out, err := exec.Command("userdel", "haproxystats").CombinedOutput(); err != nil {
				t.Errorf("userdel haproxystats: %v %s", err, out)
			}
			exec.Command("groupdel", "haproxystats").Run() // gone with the user on Debian
		}
		if !hadHAProxyGroup {
			exec.Command("groupdel", "haproxy").Run()
		}
		for _, p := range []string{"/etc/haproxystats.conf", "/usr/bin/stats-pull", "/usr/lib/systemd/system/stats-pull.service",
			"/usr/lib/nagios/plugins/check_statspipe_queue_size", "/var/lib/haproxystats"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s is left after the purge", p)
			}
		}
		if _, err := user.Lookup("haproxystats"); err == nil && !hadUser {
			t.Error("the haproxystats user is left")
		}
	})
	if out, err := dpkg(t, "-i", deb); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", deb, err, out)
	}

	// What dpkg installed.
	query := func(format string) string {
		out, err := exec.Command("dpkg-query", "-W", "-f="+format, "statspipe").Output()
		if err != nil {
			t.Fatalf("dpkg-query %s: %v", format, err)
		}
		return strings.TrimSpace(string(out))
	}
	if v := query("${Version}"); v != "9.8.7+test" {
		t.Errorf("package version %q", v)
	}
	if c := query("${Conffiles}"); !strings.Contains(c, "/etc/haproxystats.conf ") {
		t.Errorf("/etc/haproxystats.conf is not a conffile: %q", c)
	}
	listed := query("${db:Status-Abbrev}")
	if !strings.HasPrefix(listed, "ii") {
		t.Errorf("package status %q", listed)
	}
	executables := []string{"/usr/bin/stats-pull", "/usr/bin/stats-process",
		"/usr/lib/nagios/plugins/check_statspipe_queue_size", "/usr/lib/nagios/plugins/check_statspipe_procs"}
	if _, err := os.Stat("../internal/sources/httpebpf/cmd/stats-http-ebpf"); err == nil {
		executables = append(executables, "/usr/bin/stats-http-ebpf")
	}
	for _, p := range executables {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	for _, p := range executables[:3] {
		out, err := exec.Command(p, "-v").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "statspipe "+version {
			t.Errorf("%s -v: %q %v, want %q", p, out, err, "statspipe "+version)
		}
	}

	// The user: a system account without a login, in HAProxy's socket group.
	u, err := user.Lookup("haproxystats")
	if err != nil {
		t.Fatalf("no haproxystats user after the install: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid >= 1000 || uid == 0 {
		t.Errorf("haproxystats has uid %s, not a system one", u.Uid)
	}
	if u.HomeDir != "/var/lib/haproxystats" {
		t.Errorf("haproxystats' home is %s", u.HomeDir)
	}
	haproxyGroup, err := user.LookupGroup("haproxy")
	if err != nil {
		t.Fatalf("no haproxy group: %v", err)
	}
	if gids, _ := u.GroupIds(); !slices.Contains(gids, haproxyGroup.Gid) {
		t.Errorf("haproxystats is not in the haproxy group: %v", gids)
	}
	// The spool, from tmpfiles.d.
	for dir, mode := range map[string]os.FileMode{"/var/lib/haproxystats": 0o755, "/var/lib/haproxystats/incoming": 0o775,
		"/var/lib/haproxystats/incoming.tmp": 0o770, "/var/lib/haproxystats/incoming.quarantine": 0o775,
		"/var/lib/haproxystats/local-store": 0o770, "/var/lib/haproxystats/central": 0o770} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Errorf("spool: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Uid)) != u.Uid || fi.Mode().Perm() != mode || !fi.IsDir() {
			t.Errorf("%s: %v uid %d, want %v owned by haproxystats", dir, fi.Mode(), st.Uid, mode)
		}
	}
	// The man pages render, without a warning.
	if _, err := exec.LookPath("man"); err == nil {
		for _, page := range []string{"/usr/share/man/man1/stats-pull.1.gz", "/usr/share/man/man1/stats-process.1.gz",
			"/usr/share/man/man8/check_statspipe_queue_size.8.gz", "/usr/share/man/man8/check_statspipe_procs.8.gz"} {
			cmd := exec.Command("man", "--warnings", "-l", page)
			cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=100")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			// The pages of the Go programs carry their version; check_statspipe_procs has none.
			versioned := strings.Contains(page, "/stats-") || strings.Contains(page, "queue_size")
			if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "SYNOPSIS") ||
				versioned && !strings.Contains(string(out), "statspipe "+version) {
				t.Errorf("man -l %s: %v %s\n%s", page, err, stderr.String(), out)
			}
		}
	}
	// The installed units: no verify warning, and sandboxed.
	for _, un := range units {
		path := "/usr/lib/systemd/system/" + un.name
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--recursive-errors=no", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
		}
		if score := exposure(t, path); score > 2.0 {
			t.Errorf("%s: exposure %.1f, more than 2.0", un.name, score)
		} else {
			t.Logf("systemd-analyze security: %s %.1f", un.name, score)
		}
	}

	// The units at work: real HAProxy with its socket as Debian's (mode 660, group haproxy),
	// in a directory only that group may enter; the installed configuration file edited to
	// pull it every second and write the local store instead of Graphite.
	if err := os.Mkdir(sockets, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) }) // runs after HAProxy stopped
	gid, _ := strconv.Atoi(haproxyGroup.Gid)
	if err := os.Chown(sockets, 0, gid); err != nil {
		t.Fatal(err)
	}
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 1, SocketDir: sockets})
	for _, inst := range h.Instances {
		if err := os.Chown(inst.Socket, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(inst.Socket, 0o660); err != nil {
			t.Fatal(err)
		}
	}
	const conf = `[pull]
socket-dir = ` + sockets + `
dst-dir = /var/lib/haproxystats/incoming
tmp-dst-dir = /var/lib/haproxystats/incoming.tmp
pull-interval = 1
pull-timeout = 0.5
[process]
src-dir = /var/lib/haproxystats/incoming
workers = 2
[graphite]
enabled = false
[local-store]
dir = /var/lib/haproxystats/local-store
`
	if err := os.WriteFile("/etc/haproxystats.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	sd := testrig.StartUserSystemd(t)
	sd.LetOtherUsersNotify(t)
	logs := t.TempDir()
	for _, un := range units {
		text, err := os.ReadFile("/usr/lib/systemd/system/" + un.name)
		if err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(logs, un.program+".log")
		sd.InstallUnit(t, un.name, string(text), "[Service]\nStandardOutput=append:"+log+"\nStandardError=append:"+log+"\n")
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := os.ReadFile(log)
				t.Logf("%s output:\n%s", un.program, out)
			}
		})
	}
	sd.MustSystemctl(t, "start", "stats-pull.service", "stats-process.service")
	for _, un := range units {
		p := sd.Show(t, un.name, "ActiveState", "SubState", "MainPID", "User")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["User"] != "haproxystats" {
			t.Fatalf("%s after start: %v", un.name, p)
		}
		if pid, _ := strconv.Atoi(p["MainPID"]); pid > 0 {
			if uid := processUID(t, pid); uid != u.Uid {
				t.Errorf("%s runs as uid %s, not haproxystats (%s)", un.program, uid, u.Uid)
			}
		}
	}
	store := "/var/lib/haproxystats/local-store"
	waitUntil(t, 30*time.Second, "snapshots in the installed local store", func() bool {
		return len(snapshotsIn(t, store)) >= 2
	})
	snap := snapshotsIn(t, store)[0]
	stats, err := os.ReadFile(filepath.Join(store, snap, "stats"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stats), ".frontend.fe_main.") {
		t.Errorf("local-store snapshot %s has no fe_main line:\n%.2000s", snap, stats)
	}
	if fi, err := os.Stat(filepath.Join(store, snap)); err == nil {
		if st := fi.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Uid)) != u.Uid || fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("snapshot %s: uid %d mode %v, want haproxystats' and nothing for others (UMask=0007)", snap, st.Uid, fi.Mode().Perm())
		}
	}
	// The Nagios queue check, as another user (nobody), counts the installed spool.
	out, err := exec.Command("runuser", "-u", "nobody", "--", "/usr/lib/nagios/plugins/check_statspipe_queue_size", "-q").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "OK: queue size ") {
		t.Errorf("check_statspipe_queue_size as nobody: %v\n%s", err, out)
	}

	sd.MustSystemctl(t, "stop", "stats-pull.service", "stats-process.service")
	for _, un := range units {
		p := sd.Show(t, un.name, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" || p["NRestarts"] != "0" {
			t.Errorf("%s after stop: %v", un.name, p)
		}
	}

	// Installing the package again (an upgrade's path through postinst) keeps the edited
	// configuration and the spool.
	if out, err := dpkg(t, "--force-confold", "-i", deb); err != nil {
		t.Fatalf("dpkg -i again: %v\n%s", err, out)
	}
	if text, err := os.ReadFile("/etc/haproxystats.conf"); err != nil || string(text) != conf {
		t.Errorf("the edited /etc/haproxystats.conf after a reinstall: %v\n%s", err, text)
	}
	if n := len(snapshotsIn(t, store)); n < 2 {
		t.Errorf("%d snapshots left in the local store after a reinstall", n)
	}
}

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) `)

// exposure is `systemd-analyze security --offline=true`'s overall score of a unit file.
func exposure(t *testing.T, path string) float64 {
	t.Helper()
	out, _ := exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	m := exposureLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no score in\n%s", path, out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return score
}

// processUID is the real uid of a process, from /proc.
func processUID(t *testing.T, pid int) string {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no Uid: line for pid %d", pid)
	return ""
}

func runtimeArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
