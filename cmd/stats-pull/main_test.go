package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/status"
	"github.com/statspipe/statspipe/internal/testrig"
)

// binary is stats-pull built once for the whole package.
var binary string

// childEnv is added to the environment of every stats-pull started by the tests: a race-enabled
// binary otherwise sleeps 1 s at exit, and a data race must fail the test (exit code 66).
var childEnv = []string{"GORACE=atexit_sleep_ms=0 exitcode=66"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stats-pull-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "stats-pull")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goTool, append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building stats-pull:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one stats-pull process; it is killed on cleanup if still running.
type proc struct {
	cmd  *exec.Cmd
	out  *testrig.Buffer // stdout and stderr
	done chan struct{}
	err  error
}

func startPull(t testing.TB, cfgFile string, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, "-f", cfgFile), out: &testrig.Buffer{}, done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, childEnv...)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("stats-pull pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	})
	return p
}

// waitLog waits until the output contains s; it fails the test after timeout.
func (p *proc) waitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("stats-pull exited (%v) before logging %q:\n%s", p.err, s, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats-pull did not log %q within %s:\n%s", s, timeout, p.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitCode waits for the process to end and returns its exit code (-1 when killed).
func (p *proc) exitCode(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("stats-pull did not exit within %s:\n%s", timeout, p.out)
	}
	return p.cmd.ProcessState.ExitCode()
}

// stopWithin sends sig and requires exit status 0 within limit.
func (p *proc) stopWithin(t testing.TB, sig syscall.Signal, limit time.Duration) {
	t.Helper()
	sent := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("stats-pull did not exit within %s of %v:\n%s", limit, sig, p.out)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after %v (%s):\n%s", code, sig, time.Since(sent), p.out)
	}
}

type spoolDirs struct{ base, dst, tmp string }

// writeConfig writes a configuration whose [pull] section holds dst-dir, tmp-dst-dir and
// the given lines.
func writeConfig(t testing.TB, lines ...string) (string, spoolDirs) {
	t.Helper()
	base := t.TempDir()
	d := spoolDirs{base: base, dst: filepath.Join(base, "incoming"), tmp: filepath.Join(base, "incoming.tmp")}
	text := "[paths]\nbase-dir = " + base + "\n[pull]\ndst-dir = ${paths:base-dir}/incoming\ntmp-dst-dir = ${paths:base-dir}/incoming.tmp\n" +
		strings.Join(lines, "\n") + "\n"
	f := filepath.Join(base, "haproxystats.conf")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, d
}

// tmpLeftovers lists snapshot directories in tmp-dst-dir (none when it does not exist yet).
func tmpLeftovers(t testing.TB, tmp string) []string {
	t.Helper()
	des, err := os.ReadDir(tmp)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if _, ok := spool.TimestampOf(de.Name()); ok {
			out = append(out, de.Name())
		}
	}
	return out
}

// snapshots lists dst-dir (nothing when it does not exist yet).
func snapshots(t testing.TB, dst string) []spool.Entry {
	t.Helper()
	if _, err := os.Stat(dst); os.IsNotExist(err) {
		return nil
	}
	es, err := spool.List(dst)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func fileNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

var smallReplies = testrig.FakeReply{
	"show info": []byte("Name: HAProxy\nProcess_num: 1\n\n"),
	"show stat": []byte("# pxname,svname,\nfe,FRONTEND,\n\n"),
}

func TestRealHAProxy(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2, TCPStats: true})
	tcp := h.Instances[0].TCPStats
	cfg, d := writeConfig(t,
		"socket-dir = "+h.SocketDir,
		"servers = tcp://"+tcp,
		"pull-interval = 1",
		"loglevel = debug",
	)
	p := startPull(t, cfg)
	p.waitLog(t, "statistics are stored in", 5*time.Second)
	h.SendTraffic(t, 10)
	deadline := time.Now().Add(8 * time.Second)
	for len(snapshots(t, d.dst)) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	p.stopWithin(t, syscall.SIGTERM, time.Second)

	es := snapshots(t, d.dst)
	if len(es) < 4 {
		t.Fatalf("%d snapshots in 8 s at pull-interval 1:\n%s", len(es), p.out)
	}
	first, _ := spool.TimestampOf(es[0].Name)
	for i, e := range es {
		if ts, _ := spool.TimestampOf(e.Name); ts != first+int64(i) {
			t.Fatalf("snapshot names %v: want one per second", es)
		}
	}
	want := []string{tcp + "_info", tcp + "_stat", "admin1.sock_info", "admin1.sock_stat", "admin2.sock_info", "admin2.sock_stat"}
	sort.Strings(want)
	pids := map[string]int{"admin1.sock": h.Instances[0].Pid(), "admin2.sock": h.Instances[1].Pid(), tcp: h.Instances[0].Pid()}
	reqTot := regexp.MustCompile(`(?m)^fe_main,FRONTEND,(?:[^,]*,){46}([0-9]+),`) // req_tot is column 48
	for _, e := range es {
		if got := fileNames(t, e.Path); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s holds %v, want %v", e.Name, got, want)
		}
		for name, pid := range pids {
			info, _ := os.ReadFile(filepath.Join(e.Path, name+"_info"))
			if !bytes.HasPrefix(info, []byte("Name: HAProxy\n")) || !bytes.Contains(info, []byte("\nProcess_num: 1\n")) ||
				!bytes.Contains(info, []byte(fmt.Sprintf("\nPid: %d\n", pid))) {
				t.Fatalf("%s/%s_info is not the show info of pid %d:\n%.400s", e.Name, name, pid, info)
			}
			stat, _ := os.ReadFile(filepath.Join(e.Path, name+"_stat"))
			if !bytes.HasPrefix(stat, []byte("# pxname,svname,qcur,qmax,")) || !bytes.HasSuffix(stat, []byte(",\n\n")) ||
				!bytes.Contains(stat, []byte("\nbe_app,app.dead,")) || !reqTot.Match(stat) {
				t.Fatalf("%s/%s_stat is not a complete show stat:\n%.400s", e.Name, name, stat)
			}
		}
	}
	// The traffic sent after the first snapshot shows up in the last one.
	last, _ := os.ReadFile(filepath.Join(es[len(es)-1].Path, "admin2.sock_stat"))
	if m := reqTot.FindSubmatch(last); m == nil || string(m[1]) != "10" {
		t.Fatalf("fe_main req_tot in the last snapshot: %q, want 10", m)
	}
	if left := tmpLeftovers(t, d.tmp); len(left) != 0 {
		t.Fatalf("tmp-dst-dir after SIGTERM: %v", left)
	}
}

func TestIPv6ServerNaming(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	fake := testrig.ServeFakeStats(t, "tcp", "[::1]:0", smallReplies, false)
	port := fake.Address[strings.LastIndex(fake.Address, ":")+1:]
	cfg, d := writeConfig(t, "servers = tcp://[::1]:"+port, "pull-interval = 1")
	p := startPull(t, cfg)
	p.waitLog(t, "statistics are stored in", 5*time.Second)
	p.stopWithin(t, syscall.SIGTERM, time.Second)
	es := snapshots(t, d.dst)
	if got := fileNames(t, es[0].Path); strings.Join(got, " ") != "::1:"+port+"_info ::1:"+port+"_stat" {
		t.Fatalf("files %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(es[0].Path, "::1:"+port+"_stat")); !bytes.Equal(b, smallReplies["show stat"]) {
		t.Fatalf("stat file %q", b)
	}
}

var elapsedRE = regexp.MustCompile(`failed to pull stats.* elapsed=([0-9.]+m?s)`)

func TestSilentSocketAndNonSocketEntries(t *testing.T) {
	dir := shortDir(t)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "ok.sock"), smallReplies, false)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "silent.sock"), nil, true)
	os.WriteFile(filepath.Join(dir, "haproxy.pid"), []byte("1\n"), 0o644)
	os.Symlink(filepath.Join(dir, "gone.sock"), filepath.Join(dir, "dangling.sock"))

	cfg, d := writeConfig(t, "socket-dir = "+dir, "pull-interval = 1", "pull-timeout = 0.3")
	p := startPull(t, cfg)
	p.waitLog(t, "failed to pull stats", 5*time.Second)
	m := elapsedRE.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no elapsed time in the failure line:\n%s", p.out)
	}
	if took, _ := time.ParseDuration(m[1]); took > time.Second {
		t.Fatalf("a pull with pull-timeout 0.3 took %s", took)
	}
	p.stopWithin(t, syscall.SIGTERM, time.Second)
	out := p.out.String()
	for _, want := range []string{
		"source=silent.sock", "pull-timeout of 300ms reached",
		"skipping entry of socket-dir\" program=stats-pull source=haproxy kind=haproxy path=" + filepath.Join(dir, "haproxy.pid"),
		"path=" + filepath.Join(dir, "dangling.sock") + " reason=\"dangling symlink",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if es := snapshots(t, d.dst); len(es) != 0 {
		t.Fatalf("published despite a silent socket: %v", es)
	}

	cfg, d = writeConfig(t, "socket-dir = "+dir, "pull-interval = 1", "pull-timeout = 0.3", "allow-partial = true")
	p = startPull(t, cfg)
	p.waitLog(t, "partial statistics are stored in", 5*time.Second)
	p.stopWithin(t, syscall.SIGTERM, time.Second)
	es := snapshots(t, d.dst)
	if len(es) == 0 {
		t.Fatal("nothing published with allow-partial")
	}
	if got := fileNames(t, es[0].Path); strings.Join(got, " ") != "ok.sock_info ok.sock_stat "+spool.PartialFile {
		t.Fatalf("partial snapshot holds %v", got)
	}
	rec, err := spool.PartialRecord(es[0].Path)
	if err != nil || len(rec) != 1 || rec[0].Name != "silent.sock" || !strings.Contains(rec[0].Err, "pull-timeout of 300ms reached") {
		t.Fatalf("partial record %v %v", rec, err)
	}
}

func TestRefusedServerIsRetriedAsConfigured(t *testing.T) {
	closed := testrig.FreePort(t)
	cfg, d := writeConfig(t, "servers = tcp://"+closed, "pull-interval = 1", "retries = 3", "interval = 0.05")
	p := startPull(t, cfg)
	p.waitLog(t, "failed to pull stats", 5*time.Second)
	p.stopWithin(t, syscall.SIGTERM, time.Second)
	out := p.out.String()
	// One round: the socket's one connection (show info;show stat) tries 4 times, so 3 retries.
	for r := 3; r >= 1; r-- {
		line := fmt.Sprintf("when connecting to TCP socket %s, remaining tries %d, sleeping for 0.05 seconds", closed, r)
		if n := strings.Count(out, line); n != 1 {
			t.Errorf("%d lines %q, want 1", n, line)
		}
	}
	if !strings.Contains(out, "failed to connect to TCP socket "+closed+" after 3 retries") {
		t.Errorf("no final connect failure:\n%s", out)
	}
	if es := snapshots(t, d.dst); len(es) != 0 {
		t.Fatalf("published: %v", es)
	}
}

// TestKill9NeverPublishesPartialSnapshots kills stats-pull with SIGKILL at random moments while
// it streams big replies, and checks that every directory that ever appears in dst-dir is
// complete, byte for byte, and that the next start cleans tmp-dst-dir.
func TestKill9NeverPublishesPartialSnapshots(t *testing.T) {
	const sockets, kills = 4, 60
	dir := shortDir(t)
	expected := map[string][]byte{}
	for i := range sockets {
		name := fmt.Sprintf("admin%d.sock", i)
		info := []byte(fmt.Sprintf("Name: HAProxy\nPid: %d\n\n", 1000+i))
		stat := bytes.Repeat([]byte(fmt.Sprintf("be_%d,srv,%s,\n", i, strings.Repeat("7", 80))), (3<<20)/90)
		stat = append(stat, '\n')
		expected[name+"_info"], expected[name+"_stat"] = info, stat
		testrig.ServeFakeStats(t, "unix", filepath.Join(dir, name), testrig.FakeReply{"show info": info, "show stat": stat}, false)
	}
	var wantNames []string
	for n := range expected {
		wantNames = append(wantNames, n)
	}
	sort.Strings(wantNames)
	cfg, d := writeConfig(t, "socket-dir = "+dir, "pull-interval = 1", "pull-timeout = 10", "queue-size = 100000")

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	verified := map[string]bool{}
	published, leftovers := 0, 0
	verify := func() {
		for _, e := range snapshots(t, d.dst) {
			if verified[e.Name] {
				continue
			}
			if got := fileNames(t, e.Path); strings.Join(got, " ") != strings.Join(wantNames, " ") {
				t.Fatalf("published snapshot %s holds %v, want %v", e.Name, got, wantNames)
			}
			for _, n := range wantNames {
				b, err := os.ReadFile(filepath.Join(e.Path, n))
				if err != nil || !bytes.Equal(b, expected[n]) {
					t.Fatalf("published snapshot %s: %s has %d bytes, want the full reply of %d (%v)", e.Name, n, len(b), len(expected[n]), err)
				}
			}
			verified[e.Name] = true
			published++
			os.RemoveAll(e.Path) // keep the disk footprint small; the name stays taken in verified
		}
	}
	// kill SIGKILLs p and checks what it left: every published snapshot complete, and whether
	// it left a snapshot half-built in tmp-dst-dir that was not there before it started.
	kill := func(p *proc, before []string) (midWrite bool) {
		t.Helper()
		p.cmd.Process.Signal(syscall.SIGKILL)
		if code := p.exitCode(t, 10*time.Second); code != -1 {
			t.Fatalf("stats-pull exited with %d before the kill:\n%s", code, p.out)
		}
		verify()
		for _, n := range tmpLeftovers(t, d.tmp) {
			if !slices.Contains(before, n) {
				return true
			}
		}
		return false
	}

	// Kills at random moments: they land wherever the program happens to be.
	start := time.Now()
	random := 0
	for ; random < kills && time.Since(start) < 30*time.Second; random++ {
		before := tmpLeftovers(t, d.tmp)
		p := startPull(t, cfg)
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond) // picks the moment; nothing waits on it
		if kill(p, before) {
			leftovers++
		}
	}
	if random < 10 {
		t.Fatalf("only %d kills in 30 s", random)
	}
	t.Logf("%d random kills: %d snapshots published and verified, %d kills left a snapshot half-built in tmp-dst-dir", random, published, leftovers)

	// On a loaded machine the random kills may all land before the first round ends, or never
	// inside one. Then kills aimed at what was missed follow, until both were hit (bounded):
	// right after a publish, and while a snapshot is being written. Aiming changes where a kill
	// lands, not what is checked after it.
	for aimed := 0; published == 0 || leftovers == 0; aimed++ {
		if aimed == 20 {
			t.Fatalf("the kills never landed both mid-write (%d) and after a publish (%d) in %d random and %d aimed kills; the test proves nothing",
				leftovers, published, random, aimed)
		}
		before := tmpLeftovers(t, d.tmp)
		p := startPull(t, cfg)
		if published == 0 {
			p.waitLog(t, "msg=\"statistics are stored in", 20*time.Second)
		} else {
			// After "started" the leftovers of earlier kills are gone: a snapshot directory in
			// tmp-dst-dir is this run's round in progress.
			p.waitLog(t, "level=INFO msg=started", 20*time.Second)
			before = nil
			for deadline := time.Now().Add(20 * time.Second); len(tmpLeftovers(t, d.tmp)) == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("no round started within 20 s:\n%s", p.out)
				}
				time.Sleep(time.Millisecond)
			}
		}
		if kill(p, before) {
			leftovers++
		}
		t.Logf("aimed kill %d: %d published, %d mid-write", aimed+1, published, leftovers)
	}

	hadLeftover := len(tmpLeftovers(t, d.tmp)) > 0
	p := startPull(t, cfg)
	p.waitLog(t, "level=INFO msg=started", 5*time.Second)
	if hadLeftover && !strings.Contains(p.out.String(), "removed leftover snapshot of an interrupted run") {
		t.Fatalf("leftover not removed at start:\n%s", p.out)
	}
	p.waitLog(t, "msg=\"statistics are stored in", 10*time.Second)
	p.stopWithin(t, syscall.SIGTERM, time.Second)
	verify()
	if left := fileNames(t, d.tmp); strings.Join(left, " ") != ".statspipe-pull.lock" {
		t.Fatalf("tmp-dst-dir after a clean run: %v", left)
	}
	for _, n := range fileNames(t, d.dst) {
		if strings.HasPrefix(n, ".") && n != status.PullFile { // the status file stays, by design
			t.Fatalf("dst-dir holds %s after a clean run", n)
		}
	}
	if _, err := status.ReadPull(filepath.Join(d.dst, status.PullFile)); err != nil {
		t.Fatalf("status file after a clean run: %v", err)
	}
}

func TestSignalsStopPromptlyInEveryState(t *testing.T) {
	cases := []struct {
		name    string
		sig     syscall.Signal
		lines   []string
		prep    func(t *testing.T, d spoolDirs)
		replies testrig.FakeReply
		hang    bool
		ready   string // log line that shows the state was reached
	}{
		{name: "mid-pull", sig: syscall.SIGTERM, hang: true, lines: []string{"pull-timeout = 30"}},
		{name: "sleeping", sig: syscall.SIGTERM, replies: smallReplies, lines: []string{"pull-interval = 30"}, ready: "statistics are stored in"},
		{name: "suspended", sig: syscall.SIGTERM, replies: smallReplies, lines: []string{"pull-interval = 30", "queue-size = 1"},
			prep:  func(t *testing.T, d spoolDirs) { os.MkdirAll(filepath.Join(d.dst, "1"), 0o755) },
			ready: "pulling statistics is suspended"},
		{name: "sigint-sleeping", sig: syscall.SIGINT, replies: smallReplies, lines: []string{"pull-interval = 30"}, ready: "statistics are stored in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := shortDir(t)
			fake := testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "admin1.sock"), c.replies, c.hang)
			cfg, d := writeConfig(t, append([]string{"socket-dir = " + dir}, c.lines...)...)
			if c.prep != nil {
				c.prep(t, d)
			}
			p := startPull(t, cfg)
			if c.ready != "" {
				p.waitLog(t, c.ready, 5*time.Second)
			} else {
				deadline := time.Now().Add(5 * time.Second)
				for fake.Commands() < 2 { // both commands are waiting for an answer
					if time.Now().After(deadline) {
						t.Fatalf("no request reached the socket:\n%s", p.out)
					}
					time.Sleep(5 * time.Millisecond)
				}
				if len(tmpLeftovers(t, d.tmp)) != 1 {
					t.Fatal("no snapshot being built mid-pull")
				}
			}
			p.stopWithin(t, c.sig, time.Second)
			if left := tmpLeftovers(t, d.tmp); len(left) != 0 {
				t.Fatalf("tmp-dst-dir after %v: %v", c.sig, left)
			}
		})
	}
}

func TestStartupRefusals(t *testing.T) {
	t.Run("different filesystems", func(t *testing.T) {
		shm, err := os.MkdirTemp("/dev/shm", "sp")
		if err != nil {
			t.Skipf("no /dev/shm: %v", err)
		}
		defer os.RemoveAll(shm)
		var a, b syscall.Stat_t
		disk := t.TempDir()
		if syscall.Stat(shm, &a) != nil || syscall.Stat(disk, &b) != nil || a.Dev == b.Dev {
			t.Skip("/dev/shm is on the same filesystem as the temp dir")
		}
		cfg := filepath.Join(disk, "c.conf")
		os.WriteFile(cfg, []byte("[pull]\ndst-dir = "+disk+"/in\ntmp-dst-dir = "+shm+"/tmp\nservers = tcp://127.0.0.1:1\n"), 0o644)
		p := startPull(t, cfg)
		if code := p.exitCode(t, 5*time.Second); code != 1 || !strings.Contains(p.out.String(), "different filesystems") {
			t.Fatalf("exit %d:\n%s", code, p.out)
		}
	})
	t.Run("invalid value", func(t *testing.T) {
		cfg, _ := writeConfig(t, "pull-interval = ten")
		p := startPull(t, cfg)
		if code := p.exitCode(t, 5*time.Second); code != 1 {
			t.Fatalf("exit %d", code)
		}
		out := strings.TrimSuffix(p.out.String(), "\n")
		if strings.Count(out, "\n") != 0 || !strings.Contains(out, "pull-interval") {
			t.Fatalf("want one line naming pull-interval, got:\n%s", out)
		}
	})
	t.Run("dst-dir cannot be created", func(t *testing.T) {
		cfg, d := writeConfig(t)
		os.WriteFile(d.dst, nil, 0o644)
		os.WriteFile(cfg, []byte("[pull]\ndst-dir = "+d.dst+"/q\ntmp-dst-dir = "+d.tmp+"\nservers = tcp://127.0.0.1:1\n"), 0o644)
		p := startPull(t, cfg)
		want := "dst-dir " + d.dst + "/q does not exist and cannot be created: mkdir " + d.dst + ": not a directory " +
			"(create it beforehand, writable by the user stats-pull runs as, or set dst-dir to another directory)"
		if code := p.exitCode(t, 5*time.Second); code != 1 || !strings.Contains(p.out.String(), want) {
			t.Fatalf("exit %d, want a log containing %q:\n%s", code, want, p.out)
		}
	})
	t.Run("explicit file missing", func(t *testing.T) {
		p := startPull(t, filepath.Join(t.TempDir(), "missing.conf"))
		if code := p.exitCode(t, 5*time.Second); code != 1 || !strings.Contains(p.out.String(), "missing.conf") {
			t.Fatalf("exit %d:\n%s", code, p.out)
		}
	})
	t.Run("another instance on the same tmp-dst-dir", func(t *testing.T) {
		cfg, _ := writeConfig(t, "servers = tcp://"+testrig.FreePort(t), "pull-interval = 30", "retries = 0")
		first := startPull(t, cfg)
		first.waitLog(t, "msg=started", 5*time.Second)
		second := startPull(t, cfg)
		if code := second.exitCode(t, 5*time.Second); code != 1 || !strings.Contains(second.out.String(), "in use by another stats-pull") {
			t.Fatalf("exit %d:\n%s", code, second.out)
		}
		first.stopWithin(t, syscall.SIGTERM, time.Second)
	})
}

func TestVersionAndUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-v"}, 0, "statspipe dev\n"},
		{[]string{"--version"}, 0, "statspipe dev\n"},
		{[]string{"-h"}, 0, "stats-pull [-f <file>] [-p | -P]"},
		{[]string{"-h"}, 0, "    stats-pull [-f <file>] --check\n"},
		{[]string{"-p", "-P"}, 2, "stats-pull: these arguments do not fit any usage line: -p -P\nUsage:\n"},
		{[]string{"-p"}, 0, "[pull]\n"},
		// A typo'd option is named, with the closest one, before the usage lines.
		{[]string{"--onse"}, 2, "stats-pull: unknown option --onse (did you mean --once?)\nUsage:\n    stats-pull [-f <file>] [-p | -P] [--once]\n"},
		{[]string{"-f", "x.conf", "--chek"}, 2, "stats-pull: unknown option --chek (did you mean --check?)\nUsage:\n"},
		{[]string{"-x"}, 2, "stats-pull: unknown option -x\nUsage:\n"},
		{[]string{"-f"}, 2, "stats-pull: -f requires argument\nUsage:\n"},
	} {
		cmd := exec.Command(binary, c.args...)
		cmd.Env = append(os.Environ(), childEnv...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d containing %q", c.args, cmd.ProcessState.ExitCode(), out, c.code, c.want)
		}
	}
}

func TestSystemdNotify(t *testing.T) {
	sockDir := shortDir(t)
	notify := testrig.ListenNotify(t)
	testrig.ServeFakeStats(t, "unix", filepath.Join(sockDir, "admin1.sock"), smallReplies, false)
	cfg, _ := writeConfig(t, "servers = unix://"+filepath.Join(sockDir, "admin1.sock"), "pull-interval = 1")
	p := startPull(t, cfg, notify.Env()...)
	notify.ExpectLifecycle(t, func() { p.cmd.Process.Signal(syscall.SIGTERM) })
	if code := p.exitCode(t, time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}

// SIGHUP re-reads the configuration (haproxystats stopped): between rounds, with RELOADING=1
// and READY=1 with the status; a new server is pulled from the next round on. An invalid file
// is rejected with the error, and the running configuration keeps pulling.
func TestReloadOnSIGHUP(t *testing.T) {
	sockDir := shortDir(t)
	notify := testrig.ListenNotify(t)
	one := "unix://" + filepath.Join(sockDir, "admin1.sock")
	two := "unix://" + filepath.Join(sockDir, "admin2.sock")
	testrig.ServeFakeStats(t, "unix", filepath.Join(sockDir, "admin1.sock"), smallReplies, false)
	testrig.ServeFakeStats(t, "unix", filepath.Join(sockDir, "admin2.sock"), smallReplies, false)
	cfg, d := writeConfig(t, "servers = "+one, "pull-interval = 1")
	p := startPull(t, cfg, "NOTIFY_SOCKET="+notify.Path)
	next := func(prefix string) string {
		t.Helper()
		for i := 0; i < 50; i++ {
			if m := notify.Next(t, 10*time.Second); strings.HasPrefix(m, prefix) {
				return m
			} else if !strings.HasPrefix(m, "STATUS=") {
				t.Fatalf("notification %q, want %s", m, prefix)
			}
		}
		t.Fatalf("no %s", prefix)
		return ""
	}
	if m := next("READY=1"); !strings.Contains(m, "STATUS=pulling haproxy into "+d.dst) {
		t.Fatalf("READY %q", m)
	}
	// hasServer says whether the newest snapshot has the server's files.
	hasServer := func(name string) bool {
		es := snapshots(t, d.dst)
		if len(es) == 0 {
			return false
		}
		_, err := os.Stat(filepath.Join(es[len(es)-1].Path, name+"_stat"))
		return err == nil
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, p.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("a snapshot of admin1", func() bool { return hasServer("admin1.sock") })

	writeFile := func(text string) {
		t.Helper()
		b, _ := os.ReadFile(cfg)
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "servers = ") || strings.HasPrefix(l, "pull-interval = ") {
				lines[i] = ""
			}
		}
		if err := os.WriteFile(cfg+".new", []byte(strings.Join(lines, "\n")+text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg+".new", cfg); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("servers = " + one + "," + two + "\npull-interval = 1\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	if m := next("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Fatalf("RELOADING %q", m)
	}
	if m := next("READY=1"); !strings.Contains(m, "STATUS=pulling haproxy into") {
		t.Fatalf("READY after the reload %q", m)
	}
	p.waitLog(t, "msg=reloaded", 5*time.Second)
	waitFor("a snapshot of admin2", func() bool { return hasServer("admin2.sock") && hasServer("admin1.sock") })

	// An invalid file: rejected, the running configuration goes on (both servers).
	writeFile("servers = " + one + "\npull-interval = zero\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	if m := next("READY=1"); !strings.Contains(m, "reload rejected") || !strings.Contains(m, "pull-interval") {
		t.Fatalf("READY after a rejected reload %q", m)
	}
	p.waitLog(t, "reload rejected: the running configuration stays", 5*time.Second)
	before := len(snapshots(t, d.dst))
	waitFor("the old configuration to publish on", func() bool { return len(snapshots(t, d.dst)) > before+1 && hasServer("admin2.sock") })

	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}

// runPull runs stats-pull to its end and returns its stdout, stderr and exit status.
func runPull(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), childEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("stats-pull %v did not exit within 10 s", args)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// wantLines compares text, with the configuration file's path replaced by F, line by line.
func wantLines(t testing.TB, what, text, cfg string, want ...string) {
	t.Helper()
	got := strings.ReplaceAll(strings.TrimSuffix(text, "\n"), cfg, "F")
	if got != strings.Join(want, "\n") {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, got, strings.Join(want, "\n"))
	}
}

func TestCheck(t *testing.T) {
	t.Run("valid configuration, nothing created", func(t *testing.T) {
		sockets := t.TempDir()
		testrig.ServeFakeStats(t, "unix", filepath.Join(sockets, "admin1.sock"), smallReplies, false)
		cfg, d := writeConfig(t, "socket-dir = "+sockets, "servers = tcp://127.0.0.1:1")
		stdout, stderr, code := runPull(t, "-f", cfg, "--check")
		if code != 0 || stdout != "configuration OK: "+cfg+"\n" || stderr != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		for _, dir := range []string{d.dst, d.tmp} {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("--check created %s: %v", dir, err)
			}
		}
	})
	t.Run("every problem, one line each", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "sockets")
		cfg, _ := writeConfig(t, "workers = two", "pull-intervall = 5", "socket-dir = "+missing, "[grahpite]", "port = 1")
		stdout, stderr, code := runPull(t, "-f", cfg, "--check")
		if code != 1 || stdout != "" {
			t.Fatalf("exit %d, stdout %q", code, stdout)
		}
		const p = "invalid configuration, file:'F' "
		wantLines(t, "stderr", stderr, cfg,
			p+"line:6 section:'pull' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'",
			p+"line:7 section:'pull' option:'pull-intervall' value:'5' error: unknown option, ignored (did you mean 'pull-interval'?)",
			p+"line:8 section:'pull' option:'socket-dir' value:'"+missing+"' error: directory '"+missing+"' does not exist "+
				"(it should hold HAProxy's stats sockets: 'stats socket "+missing+"/admin.sock' in HAProxy's global section; or fix socket-dir)",
			p+"line:9 section:'grahpite' error: unknown section, ignored (did you mean 'graphite'?)",
			"configuration invalid: F (4 problems)")
	})
	t.Run("dst-dir that cannot be created", func(t *testing.T) {
		cfg, d := writeConfig(t)
		if err := os.WriteFile(d.dst, nil, 0o644); err != nil { // a file where the directory should be
			t.Fatal(err)
		}
		os.WriteFile(cfg, []byte("[pull]\ndst-dir = "+d.dst+"/q\ntmp-dst-dir = "+d.tmp+"\n"), 0o644)
		_, stderr, code := runPull(t, "-f", cfg, "--check")
		wantLines(t, "stderr", stderr, cfg,
			"invalid configuration, file:'F' line:2 section:'pull' option:'dst-dir' value:'"+d.dst+"/q' error: '"+d.dst+
				"/q' does not exist and cannot be created: '"+d.dst+"' is not a directory",
			"configuration invalid: F (1 problem)")
		if code != 1 {
			t.Fatalf("exit %d", code)
		}
		if _, err := os.Stat(d.tmp); !os.IsNotExist(err) {
			t.Fatalf("--check created tmp-dst-dir: %v", err)
		}
	})
	t.Run("-P prints an invalid configuration and exits 1", func(t *testing.T) {
		cfg, _ := writeConfig(t, "workers = two")
		stdout, stderr, code := runPull(t, "-f", cfg, "-P")
		if code != 1 || !strings.Contains(stdout, "\nworkers = two\n") || strings.Contains(stdout, "error:") {
			t.Fatalf("exit %d, stdout:\n%s", code, stdout)
		}
		wantLines(t, "stderr", stderr, cfg,
			"invalid configuration, file:'F' line:6 section:'pull' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'",
			"configuration invalid: F (1 problem)")
		// A valid one: only the configuration, exit 0.
		cfg, _ = writeConfig(t, "servers = tcp://127.0.0.1:1")
		if stdout, stderr, code := runPull(t, "-f", cfg, "-P"); code != 0 || stderr != "" || !strings.HasPrefix(stdout, "[DEFAULT]\n") {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
		}
	})
	t.Run("while stats-pull runs (a pre-reload hook)", func(t *testing.T) {
		cfg, _ := writeConfig(t, "servers = tcp://"+testrig.FreePort(t), "pull-interval = 30", "retries = 0")
		p := startPull(t, cfg)
		p.waitLog(t, "msg=started", 5*time.Second)
		if stdout, stderr, code := runPull(t, "-f", cfg, "--check"); code != 0 || stdout != "configuration OK: "+cfg+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		p.stopWithin(t, syscall.SIGTERM, time.Second)
	})
	t.Run("the sample configuration", func(t *testing.T) {
		sample, err := os.ReadFile("../../contrib/haproxystats.conf")
		if err != nil {
			t.Fatal(err)
		}
		base, sockets := t.TempDir(), t.TempDir()
		text := strings.NewReplacer("/var/lib/haproxystats", base, "/run/haproxy-extra", sockets, "/run/haproxy\n", sockets+"\n").Replace(string(sample))
		if strings.Contains(text, "/var/lib") || strings.Contains(text, "/run/") {
			t.Fatalf("a directory of the sample is not replaced:\n%s", text)
		}
		cfg := filepath.Join(base, "haproxystats.conf")
		os.WriteFile(cfg, []byte(text), 0o644)
		stdout, stderr, code := runPull(t, "-f", cfg, "--check")
		if code != 0 || stdout != "configuration OK: "+cfg+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
		// Without HAProxy running, the sockets are missing: warnings, not problems.
		wantLines(t, "stderr", stderr, cfg,
			"warning: [pull] socket-dir '"+sockets+"' has no UNIX socket now (is HAProxy running?)",
			"warning: [pull] servers: UNIX socket '"+sockets+"/admin.sock' does not exist now (is HAProxy running?)")
	})
}
