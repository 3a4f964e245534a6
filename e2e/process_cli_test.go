package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
		{[]string{"-h"}, 0, "stats-process [-f <file>] [-d <dir>] [-p | -P] [--once [--once-timeout <seconds>]]"},
		{[]string{"-h"}, 0, "give up when no dispatcher delivered anything for this\n                       long, e.g. while Graphite is unreachable [default: 60]"},
		{[]string{"-f", bad, "--once", "--once-timeout", "0"}, 1, `--once-timeout "0": want a number of seconds`},
		{[]string{"--bogus"}, 2, "stats-process: unknown option --bogus\nUsage:\n"},
		{[]string{"--once", "--once-timout", "5"}, 2, "stats-process: unknown option --once-timout (did you mean --once-timeout?)\nUsage:\n"},
		{[]string{"-h"}, 0, "    stats-process [-f <file>] [-d <dir>] --check\n"},
		{[]string{"-p"}, 0, "[graphite]\n"},
		{[]string{"-f", filepath.Join(dir, "missing.conf")}, 1, "missing.conf"},
		{[]string{"-f", bad}, 1, "option:'workers' value:'two'"},
		// -P prints even an invalid configuration, as haproxystats did, but says what is wrong
		// (on stderr) and exits 1.
		{[]string{"-f", bad, "-P"}, 1, "workers = two"},
		{[]string{"-f", bad, "-P"}, 1, "option:'workers' value:'two'"},
		{[]string{"-f", bad, "--check"}, 1, "option:'workers' value:'two'"},
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

// copySnapshot makes snapshot <src>/<name> from the files of the golden input dir.
func copySnapshot(t *testing.T, golden, src, name string) {
	t.Helper()
	copyTree(t, golden, filepath.Join(src, name))
}

// blackHole accepts connections and never reads from them: carbon frozen, or a peer whose
// application is stuck. Its receive buffer is made small so that its kernel acknowledges only a
// few kB, far less than one snapshot.
func blackHole(t *testing.T) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for len(conns) < 1000 { // bounded: the test ends long before
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
		t.Logf("black hole: %d connections accepted", len(conns))
	})
	return ln.Addr().String()
}

// closedPort is a loopback address nothing listens on: connecting is refused at once.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// --once with Graphite unreachable (refused, or accepting and never reading) gives up within its
// documented bound (--once-timeout seconds without any delivery, plus closing), keeps every
// snapshot in the spool, says which were left and exits 1.
func TestOnceGivesUpWhenGraphiteIsUnreachable(t *testing.T) {
	golden := "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"
	if _, err := os.Stat(golden); err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	const onceTimeout = 2 * time.Second
	// The bound to assert, generously: the timeout, closing the dispatchers, starting a
	// -race binary on a loaded machine.
	const bound = onceTimeout + 20*time.Second
	for _, peer := range []struct {
		name string
		addr func(*testing.T) string
	}{
		{"refused", closedPort},
		{"black-hole", blackHole},
	} {
		t.Run(peer.name, func(t *testing.T) {
			base := t.TempDir()
			src := filepath.Join(base, "incoming")
			names := []string{"1700000001", "1700000011", "1700000021"}
			for _, n := range names {
				copySnapshot(t, golden, src, n)
			}
			host, port, _ := net.SplitHostPort(peer.addr(t))
			conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 2
[graphite]
server = `+host+`
port = `+port+`
hostname = e2e
retries = 1
interval = 0.1
backoff = 2
delay = 0.3
connect-timeout = 0.5
`)
			ctx, cancel := context.WithTimeout(context.Background(), bound+30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "stats-process"), "-f", conf, "--once",
				"--once-timeout", fmt.Sprint(onceTimeout.Seconds()))
			start := time.Now()
			outb, err := cmd.CombinedOutput()
			took := time.Since(start)
			out := string(outb)
			if err != nil {
				if _, ok := err.(*exec.ExitError); !ok {
					t.Fatal(err)
				}
			}
			t.Logf("stats-process --once --once-timeout %v against a %s peer: exit %d after %v",
				onceTimeout.Seconds(), peer.name, cmd.ProcessState.ExitCode(), took.Round(time.Millisecond))
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			if took > bound {
				t.Errorf("took %v, more than the bound %v", took, bound)
			}
			if left := snapshotsIn(t, src); strings.Join(left, " ") != strings.Join(names, " ") {
				t.Errorf("spool holds %v, want every snapshot %v:\n%s", left, names, out)
			}
			if !strings.Contains(out, `msg="--once: snapshots left in the spool, not delivered"`) ||
				!strings.Contains(out, `count=3 snapshots="`+strings.Join(names, " ")+`"`) {
				t.Errorf("the log does not say which snapshots were left:\n%s", out)
			}
		})
	}
}

// SIGTERM while every worker waits on a full Graphite queue (a peer that never reads) still
// stops stats-process within its 10 s drain bound, exit 0, every snapshot kept.
func TestProcessStopsDuringBackPressure(t *testing.T) {
	golden := "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"
	if _, err := os.Stat(golden); err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	var names []string
	for i := 0; i < 6; i++ {
		n := fmt.Sprint(1700000001 + 10*i)
		copySnapshot(t, golden, src, n)
		names = append(names, n)
	}
	host, port, _ := net.SplitHostPort(blackHole(t))
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 2
[graphite]
server = `+host+`
port = `+port+`
hostname = e2e
queue-size = 100
write-timeout = 0.5
stall-timeout = 1
`)
	p := start(t, "stats-process", "-f", conf)
	// Written and never read: the queue is full and the workers wait on it; the peer shows no
	// progress, so the connection is given up after stall-timeout (and the lines kept).
	waitUntil(t, 30*time.Second, "Graphite to stall", func() bool {
		return strings.Contains(p.out.String(), "graphite connection lost")
	})
	stopped := time.Now()
	p.stop(t) // fails the test if it takes more than 30 s or exits non-zero
	took := time.Since(stopped)
	t.Logf("stopped %v after SIGTERM during back-pressure (drain bound 10 s)", took.Round(time.Millisecond))
	if took > 10*time.Second+5*time.Second {
		t.Errorf("stop took %v, more than the 10 s drain bound (plus 5 s of slack)", took)
	}
	if left := snapshotsIn(t, src); strings.Join(left, " ") != strings.Join(names, " ") {
		t.Errorf("spool holds %v, want every snapshot %v", left, names)
	}
}

// A local store that cannot write keeps the snapshots in the spool and retried at every rescan;
// Graphite gets each snapshot once all the same, and once the local store works again
// everything is delivered and removed — still without a second copy to Graphite.
func TestFailingLocalStoreDoesNotMultiplyGraphiteTraffic(t *testing.T) {
	golden := "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"
	if _, err := os.Stat(golden); err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	names := []string{"1700000001", "1700000011", "1700000021"}
	for _, n := range names {
		copySnapshot(t, golden, src, n)
	}
	// A file where the local store's directory should be: every write fails (even as root).
	store := filepath.Join(base, "local-store")
	if err := os.WriteFile(store, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sink := listenSink(t, "127.0.0.1:0")
	host, port, _ := net.SplitHostPort(sink.ln.Addr().String())
	const rescan = time.Second
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 2
liveness-check-interval = `+fmt.Sprint(rescan.Seconds())+`
[graphite]
server = `+host+`
port = `+port+`
hostname = e2e
[local-store]
dir = `+store+`
`)
	p := start(t, "stats-process", "-f", conf)
	waitUntil(t, 20*time.Second, "every snapshot's lines at Graphite", func() bool {
		return countTimestamps(sink.snapshot(), names) == len(names)
	})
	// Watch several rescans, each retrying the three snapshots for the local store (which logs
	// each failure).
	const rescans = 4
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d rescans retrying the local store", rescans), func() bool {
		return strings.Count(p.out.String(), `msg="local-store: cannot write snapshot"`) >= len(names)*(1+rescans)
	})
	if left := snapshotsIn(t, src); len(left) != len(names) {
		t.Fatalf("spool holds %v while the local store fails, want every snapshot", left)
	}

	// The local store works again: the next rescan delivers there, and removes the snapshots.
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the spool to empty", func() bool { return len(snapshotsIn(t, src)) == 0 })
	p.stop(t)
	lines := sink.snapshot()
	seen := map[string]int{}
	for _, l := range lines {
		seen[l]++
	}
	for l, n := range seen {
		if n != 1 {
			t.Errorf("line %q reached Graphite %d times, want once: re-sent because the local store failed", l, n)
			break
		}
	}
	if countTimestamps(lines, names) != len(names) {
		t.Errorf("Graphite lacks some snapshots")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(store, n, "stats")); err != nil {
			t.Errorf("local store lacks %s: %v", n, err)
		}
	}
	t.Logf("Graphite received %d lines for %d snapshots (%d distinct) over %d+ rescans retrying the local store",
		len(lines), len(names), len(seen), rescans)
	if n := strings.Count(p.out.String(), `msg="snapshot kept on disk`); n > 2 {
		t.Errorf("the kept warning was logged %d times for one ongoing fault:\n%s", n, p.out.String())
	}
}

// countTimestamps is how many of the snapshot names appear as a line timestamp in lines.
func countTimestamps(lines, names []string) int {
	found := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 {
			found[f[2]] = true
		}
	}
	n := 0
	for _, name := range names {
		if found[name] {
			n++
		}
	}
	return n
}

// checkLines runs stats-process --check and compares its output (stderr, then stdout), with
// base replaced by B, line by line.
func checkLines(t *testing.T, base string, wantCode int, args []string, want ...string) {
	t.Helper()
	out, code := runProcess(t, nil, append(args, "--check")...)
	got := strings.ReplaceAll(strings.TrimSuffix(out, "\n"), base, "B")
	if code != wantCode || got != strings.Join(want, "\n") {
		t.Fatalf("stats-process %v --check: exit %d, output:\n%s\nwant exit %d and:\n%s", args, code, got, wantCode, strings.Join(want, "\n"))
	}
}

func TestProcessCheck(t *testing.T) {
	t.Run("valid with -d, nothing created", func(t *testing.T) {
		base := t.TempDir()
		src := filepath.Join(base, "incoming")
		os.Mkdir(src, 0o755)
		conf := writeConfig(t, base, "[process]\nsrc-dir = "+src+"\n[graphite]\nenabled = false\n")
		dir := filepath.Join(base, "conf.d")
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "10-local.conf"), []byte("[local-store]\ndir = "+base+"/ls\n"), 0o644)
		checkLines(t, base, 0, []string{"-f", conf, "-d", dir}, "configuration OK: B/statspipe.conf, B/conf.d/10-local.conf")
		if _, err := os.Stat(filepath.Join(base, "ls")); !os.IsNotExist(err) {
			t.Fatalf("--check created the local store: %v", err)
		}
		if names, _ := os.ReadDir(src); len(names) != 0 {
			t.Fatalf("--check left %v in src-dir", names)
		}
		// Without the -d file Graphite is disabled with nowhere else to go.
		checkLines(t, base, 1, []string{"-f", conf},
			"invalid configuration, file:'B/statspipe.conf' line:4 section:'graphite' option:'enabled' value:'false' "+
				"error: Graphite is disabled and there is no [local-store], [kafka] or [ship] section, so processed statistics would go nowhere",
			"configuration invalid: B/statspipe.conf (1 problem)")
	})
	t.Run("every problem, one line each", func(t *testing.T) {
		base := t.TempDir()
		os.WriteFile(filepath.Join(base, "exclude"), []byte("# frontends\nfe_www\n^api-.*$\n"), 0o644)
		conf := writeConfig(t, base, `
[process]
src-dir = `+base+`/incoming
workers = two
exclude-frontends = `+base+`/exclude
exclude-backends = `+base+`/missing
[graphite]
prot = 2003
group-namespace = groups
group-namespace-double-writes = false
[frontend-groups]
www = ^www
api = (?!api)
`)
		const p = "invalid configuration, file:'B/statspipe.conf' "
		checkLines(t, base, 1, []string{"-f", conf},
			p+"line:2 section:'process' option:'src-dir' value:'B/incoming' error: directory 'B/incoming' does not exist yet "+
				"(start stats-pull first; but note that [pull] dst-dir is '/var/lib/haproxystats/incoming', not this directory)",
			p+"line:3 section:'process' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'",
			p+"line:4 section:'process' option:'exclude-frontends' value:'B/exclude' error: line 3 '^api-.*$' is not a HAProxy proxy name "+
				"(names have only letters, digits, '-', '_', '.' and ':'): an exclude file lists exact names, one per line, not patterns, so this line excludes nothing",
			p+"line:5 section:'process' option:'exclude-backends' value:'B/missing' error: cannot use the exclude file, so nothing would be excluded: "+
				"cannot stat it: no such file or directory",
			p+"line:7 section:'graphite' option:'prot' value:'2003' error: unknown option, ignored (did you mean 'port'?)",
			p+"line:12 section:'frontend-groups' option:'api' value:'(?!api)' error: group 'api' has an invalid pattern: "+
				"error parsing regexp: invalid or unsupported Perl syntax: `(?!` (Go's RE2 syntax has no look-around or backreferences)",
			"configuration invalid: B/statspipe.conf (6 problems)")
	})
	t.Run("a problem in a -d file names that file", func(t *testing.T) {
		base := t.TempDir()
		os.Mkdir(filepath.Join(base, "incoming"), 0o755)
		conf := writeConfig(t, base, "[process]\nsrc-dir = "+base+"/incoming\n")
		dir := filepath.Join(base, "conf.d")
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "20-graphite.conf"), []byte("[graphite]\nport = 2003x\n"), 0o644)
		checkLines(t, base, 1, []string{"-f", conf, "-d", dir},
			"invalid configuration, file:'B/conf.d/20-graphite.conf' line:2 section:'graphite' option:'port' value:'2003x' "+
				"error: invalid literal for int() with base 10: '2003x'",
			"configuration invalid: B/statspipe.conf, B/conf.d/20-graphite.conf (1 problem)")
	})
	t.Run("the sample configuration", func(t *testing.T) {
		sample, err := os.ReadFile("../contrib/haproxystats.conf")
		if err != nil {
			t.Fatal(err)
		}
		base := t.TempDir()
		os.Mkdir(filepath.Join(base, "incoming"), 0o755) // stats-pull's dst-dir, created by its first start
		text := strings.ReplaceAll(string(sample), "/var/lib/haproxystats", base)
		conf := writeConfig(t, base, text)
		checkLines(t, base, 0, []string{"-f", conf}, "configuration OK: B/statspipe.conf")
		if _, err := os.Stat(filepath.Join(base, "local-store")); !os.IsNotExist(err) {
			t.Fatalf("--check created the local store: %v", err)
		}
	})
}
