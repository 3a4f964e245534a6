package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/testrig"
)

// loaderBin is stats-http-ebpf built once for the package, in a directory nobody can enter (the
// capability tests run it as nobody).
var loaderBin string

func TestMain(m *testing.M) {
	if n := os.Getenv("STATSPIPE_LOADER_TEST_SERVE"); n != "" {
		os.Exit(serveChild(n))
	}
	dir, err := os.MkdirTemp("", "stats-http-ebpf-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	loaderBin = filepath.Join(dir, "stats-http-ebpf")
	build := exec.Command("go", "build", "-o", loaderBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building stats-http-ebpf:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// serveChild is a process that serves HTTP (202 to everything) until it has answered n
// requests, then exits.
func serveChild(n string) int {
	want, err := strconv.Atoi(n)
	if err != nil || want < 1 || want > 100 {
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 2
	}
	closed := make(chan struct{}, 1000)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed <- struct{}{}
			}
		},
	}
	srv.SetKeepAlivesEnabled(false)
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	for i := 0; i < want; i++ {
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			return 3
		}
	}
	return 0
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading the HTTP statistics program, setpriv and a private bpffs need root (CI runs as root)")
	}
}

// mountBPFFS mounts a private bpffs (mode 0777 so that nobody can create its pin directory
// in it); the tests never touch /sys/fs/bpf.
func mountBPFFS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // nobody must reach it
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0777"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// serialize: see the bpf package's tests (same lock file).
func serialize(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "statspipe-http-ebpf-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

type proc struct {
	cmd  *exec.Cmd
	out  *testrig.Buffer
	done chan struct{}
}

// start runs prefix (e.g. setpriv …) + the binary + args.
func start(t *testing.T, env, prefix []string, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), loaderBin), args...)
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), out: &testrig.Buffer{}, done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("stats-http-ebpf output:\n%s", p.out.String())
		}
	})
	return p
}

// runBin runs the binary to its end (bounded) and returns its exit code and output.
func runBin(t *testing.T, env, prefix []string, args ...string) (int, string) {
	t.Helper()
	p := start(t, env, prefix, args...)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("stats-http-ebpf %v did not exit", args)
	}
	return p.cmd.ProcessState.ExitCode(), p.out.String()
}

func (p *proc) waitFor(t *testing.T, what string, timeout time.Duration, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok(p.out.String()) {
		select {
		case <-p.done:
			t.Fatalf("stats-http-ebpf exited (%v) while waiting for %s", p.cmd.ProcessState, what)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func (p *proc) attached(t *testing.T) {
	t.Helper()
	p.waitFor(t, `the "attached" line`, 20*time.Second, func(s string) bool { return strings.Contains(s, "msg=attached") })
}

// stop sends SIGTERM and checks the clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("stats-http-ebpf did not stop within 10 s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.out.String(), "msg=stopped") {
		t.Fatalf("after SIGTERM: exit %d\n%s", code, p.out.String())
	}
}

// server and do: the loopback status server and its requests (testrig).
func server(t *testing.T) string { return testrig.StatusServer(t) }

func do(t *testing.T, method, url string, want int) { testrig.Request(t, method, url, want) }

// pinned reads pid's counts from the pins in dir, as stats-pull would (read-only, raw keys:
// struct req_key {u32 pid; char method[8]}, struct resp_key {u32 pid; u32 code}).
func pinned(t *testing.T, dir string, pid uint32) (map[string]uint64, map[uint32]uint64) {
	t.Helper()
	req, resp := map[string]uint64{}, map[uint32]uint64{}
	for _, name := range []string{bpf.RequestsMap, bpf.ResponsesMap} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var k []byte
		var v uint64
		it := m.Iterate()
		for it.Next(&k, &v) {
			if binary.LittleEndian.Uint32(k) != pid {
				continue
			}
			if name == bpf.RequestsMap {
				req[strings.TrimRight(string(k[4:]), "\x00")] = v
			} else {
				resp[binary.LittleEndian.Uint32(k[4:])] = v
			}
		}
		err = it.Err()
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return req, resp
}

func equal[K comparable](a, b map[K]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// setpriv runs the binary as nobody with only the given capabilities (e.g. "+bpf,+perfmon";
// "" for none).
func setpriv(caps string) []string {
	p := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	if caps != "" {
		p = append(p, "--inh-caps="+caps, "--ambient-caps="+caps)
	}
	return p
}

func TestUsage(t *testing.T) {
	if code, out := runBin(t, nil, nil, "-h"); code != 0 || !strings.Contains(out, "--pin-dir <dir>") {
		t.Errorf("-h: %d\n%s", code, out)
	}
	if code, out := runBin(t, nil, nil, "-v"); code != 0 || !strings.HasPrefix(out, "statspipe ") {
		t.Errorf("-v: %d %q", code, out)
	}
	if code, _ := runBin(t, nil, nil, "--no-such-option"); code != 2 {
		t.Errorf("a bad option: exit %d, want 1", code)
	}
	for _, bad := range [][]string{{"--pin-mode", "0999"}, {"--max-entries", "0"}, {"--prune-interval", "soon"}, {"--exited-grace", "-1s"}, {"--pin-group", "no-such-group-here"}} {
		code, out := runBin(t, nil, nil, bad...)
		if code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, bad[0]) {
			t.Errorf("%v: exit %d, want 1 and one line naming the option\n%s", bad, code, out)
		}
	}
}

const capLine = `stats-http-ebpf: loading the HTTP statistics program needs CAP_BPF and CAP_PERFMON, which this process lacks (%s); see README "http-ebpf", section "Privileges"` + "\n"

// Without CAP_BPF or CAP_PERFMON the program says which it lacks in one line and exits 4. As
// root this is measured with setpriv as nobody: the pre-check for each set, and (with the
// pre-check off) what the kernel itself refuses; not as root, this process's own set.
func TestMissingCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		code, out := runBin(t, nil, nil, "--pin-dir", t.TempDir())
		if code != 4 || out != fmt.Sprintf(capLine, "CAP_BPF and CAP_PERFMON") {
			t.Fatalf("exit %d, output %q", code, out)
		}
		return
	}
	dir := mountBPFFS(t)
	for caps, missing := range map[string]string{"": "CAP_BPF and CAP_PERFMON", "+bpf": "CAP_PERFMON", "+perfmon": "CAP_BPF"} {
		code, out := runBin(t, nil, setpriv(caps), "--pin-dir", filepath.Join(dir, "pre"+caps))
		if code != 4 || out != fmt.Sprintf(capLine, missing) {
			t.Errorf("nobody with %q: exit %d, output %q", caps, code, out)
		}
		// The kernel agrees: without the pre-check, loading fails with EPERM.
		code, out = runBin(t, []string{"STATS_HTTP_EBPF_NO_CAP_CHECK=1"}, setpriv(caps), "--pin-dir", filepath.Join(dir, "kernel"+caps))
		want := `stats-http-ebpf: loading the HTTP statistics program: insufficient privileges for eBPF: loading eBPF programs needs root or CAP_BPF+CAP_PERFMON (operation not permitted); see README "http-ebpf", section "Privileges"` + "\n"
		if code != 4 || out != want {
			t.Errorf("nobody with %q, no pre-check: exit %d, output %q", caps, code, out)
		}
		if strings.Contains(out, "MEMLOCK") {
			t.Errorf("cilium's MEMLOCK hint was printed: %q", out)
		}
	}
}

// As nobody with exactly CAP_BPF and CAP_PERFMON the loader attaches, its pins have the mode
// and group asked for, and a server's requests are counted exactly.
func TestAsNobodyWithBPFAndPerfmon(t *testing.T) {
	needRoot(t)
	serialize(t)
	dir := filepath.Join(mountBPFFS(t), "http")
	// setpriv --clear-groups leaves nobody in no group: its own group 65534 is the one it can give.
	p := start(t, nil, setpriv("+bpf,+perfmon"), "--pin-dir", dir, "--pin-mode", "0644", "--pin-group", "65534")
	p.attached(t)
	url := server(t)
	do(t, "GET", url+"/200", 200)
	do(t, "POST", url+"/201", 201)
	do(t, "GET", url+"/404", 404)
	req, resp := pinned(t, dir, uint32(os.Getpid()))
	if !equal(req, map[string]uint64{"GET": 2, "POST": 1}) || !equal(resp, map[uint32]uint64{200: 1, 201: 1, 404: 1}) {
		t.Fatalf("counts %v %v", req, resp)
	}
	for _, name := range []string{bpf.RequestsMap, bpf.ResponsesMap, bpf.DropsMap} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o777 != 0o644 || st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s: mode %o uid %d gid %d", name, st.Mode&0o777, st.Uid, st.Gid)
		}
	}
	p.stop(t)
}

// A pin directory not on a bpffs: one line with the mount hint, exit 3.
func TestNotOnBPFFS(t *testing.T) {
	dir := t.TempDir()
	code, out := runBin(t, []string{"STATS_HTTP_EBPF_NO_CAP_CHECK=1"}, nil, "--pin-dir", dir)
	want := `stats-http-ebpf: ` + dir + ` is not on a bpf filesystem: mount one with "mount -t bpf bpf /sys/fs/bpf" (README http-ebpf, "Privileges")` + "\n"
	if code != 3 || out != want {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

// Under a (fake) systemd: READY=1 with a STATUS once attached, watchdog pings, exact counts
// for this process's server in the pins, STOPPING=1 and exit 0 on SIGTERM; then the program is
// detached (a request is no longer counted) and the pins with their counts stay.
func TestRunsUnderSystemdAndDetachesOnStop(t *testing.T) {
	needRoot(t)
	serialize(t)
	dir := filepath.Join(mountBPFFS(t), "statspipe", "http")
	n := testrig.ListenNotify(t)
	p := start(t, n.Env(), nil, "--pin-dir", dir, "--prune-interval", "100ms")
	if m := n.Next(t, 20*time.Second); !strings.HasPrefix(m, "READY=1\nSTATUS=attached; maps pinned in "+dir) {
		t.Fatalf("first notification %q", m)
	}
	p.attached(t) // logged before READY; the pipe may deliver it later
	if !strings.Contains(p.out.String(), "max-entries=16384") {
		t.Fatalf("the attached line has no max-entries:\n%s", p.out.String())
	}
	url := server(t)
	for _, r := range []struct {
		m    string
		code int
	}{{"GET", 200}, {"GET", 200}, {"GET", 200}, {"POST", 404}, {"DELETE", 404}, {"POST", 503}, {"GET", 418}} {
		do(t, r.m, url+"/"+strconv.Itoa(r.code), r.code)
	}
	wantReq, wantResp := map[string]uint64{"GET": 4, "POST": 2, "DELETE": 1}, map[uint32]uint64{200: 3, 404: 2, 503: 1, 418: 1}
	if req, resp := pinned(t, dir, uint32(os.Getpid())); !equal(req, wantReq) || !equal(resp, wantResp) {
		t.Fatalf("counts %v %v, want %v %v", req, resp, wantReq, wantResp)
	}
	for i := 0; i < 3; i++ {
		if m := n.Next(t, 3*time.Second); m != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", m)
		}
	}
	p.stop(t)
	for m := n.Next(t, 5*time.Second); m != "STOPPING=1"; m = n.Next(t, 5*time.Second) {
		if m != "WATCHDOG=1" {
			t.Fatalf("notification %q while stopping", m)
		}
	}
	do(t, "GET", server(t)+"/200", 200)
	if req, resp := pinned(t, dir, uint32(os.Getpid())); !equal(req, wantReq) || !equal(resp, wantResp) {
		t.Fatalf("after the stop: %v %v, want the counts unchanged", req, resp)
	}
}

// A process that served HTTP and exited: its keys stay at least --exited-grace (stats-pull
// reads its final counts) and are gone within grace + 2 prune intervals (one to notice the
// exit, one for the rounding of the grace to rounds) plus slack for a loaded machine.
func TestPrunesExitedProcess(t *testing.T) {
	needRoot(t)
	serialize(t)
	const grace, interval = 600 * time.Millisecond, 100 * time.Millisecond
	dir := mountBPFFS(t)
	p := start(t, nil, nil, "--pin-dir", dir, "--prune-interval", interval.String(), "--exited-grace", grace.String())
	p.attached(t)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "STATSPIPE_LOADER_TEST_SERVE=2")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		child.Process.Kill()
		child.Wait()
		t.Fatal(err)
	}
	do(t, "GET", "http://"+strings.TrimSpace(addr)+"/", 202)
	do(t, "HEAD", "http://"+strings.TrimSpace(addr)+"/", 202)
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}
	exited := time.Now()
	pid := uint32(child.Process.Pid)
	if req, resp := pinned(t, dir, pid); !equal(req, map[string]uint64{"GET": 1, "HEAD": 1}) || !equal(resp, map[uint32]uint64{202: 2}) {
		t.Fatalf("the child's counts %v %v", req, resp)
	}
	bound := grace + 2*interval + 3*time.Second
	for {
		req, resp := pinned(t, dir, pid)
		gone := time.Since(exited)
		if len(req) == 0 && len(resp) == 0 {
			if gone < grace-20*time.Millisecond {
				t.Fatalf("the keys went %v after the exit, before the %v grace", gone, grace)
			}
			t.Logf("the exited child's keys went %v after its exit (grace %v, interval %v)", gone.Round(time.Millisecond), grace, interval)
			break
		}
		if gone > bound {
			t.Fatalf("the child's keys are still there %v after its exit: %v %v", gone, req, resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.waitFor(t, "the prune log line", 5*time.Second, func(s string) bool {
		return strings.Contains(s, "msg=\"deleted the counts of exited processes\"")
	})
	p.stop(t)
}

var dropLine = regexp.MustCompile(`level=WARN msg="maps full: events not counted; raise --max-entries" program=stats-http-ebpf requests-dropped=(\d+) responses-dropped=(\d+) requests-dropped-total=(\d+) responses-dropped-total=(\d+) max-entries=2`)

// With --max-entries 2, a third method is a drop: the program logs one warning in the round
// that saw it, none in the rounds after (no new drops), and one more for the next drop, with
// the new and total counts. The tracer sees the whole machine: a witness tracer with large maps
// watches the window, which is retried (at most 5 times) when other processes served HTTP.
func TestFullMapWarnsOncePerGrowth(t *testing.T) {
	needRoot(t)
	serialize(t)
	const interval = 50 * time.Millisecond
	for attempt := 1; attempt <= 5; attempt++ {
		wdir := mountBPFFS(t)
		witness, err := bpf.Load(bpf.Options{PinDir: wdir, PinGroup: -1})
		if err != nil {
			t.Fatal(err)
		}
		p := start(t, nil, nil, "--pin-dir", mountBPFFS(t), "--max-entries", "2", "--prune-interval", interval.String())
		p.attached(t)
		url := server(t)
		do(t, "GET", url+"/200", 200)
		do(t, "POST", url+"/200", 200)
		do(t, "DELETE", url+"/200", 200)
		p.waitFor(t, "the first drop warning", 10*time.Second, func(s string) bool { return dropLine.MatchString(s) })
		// Absence over some rounds can only be waited for: 6 rounds without a new line.
		time.Sleep(6 * interval)
		first := len(dropLine.FindAllString(p.out.String(), -1))
		do(t, "DELETE", url+"/200", 200)
		p.waitFor(t, "the second drop warning", 10*time.Second, func(s string) bool { return len(dropLine.FindAllString(s, -1)) >= 2 })
		time.Sleep(6 * interval)
		p.stop(t)

		foreign := map[uint32]bool{}
		for _, name := range []string{bpf.RequestsMap, bpf.ResponsesMap} {
			m, err := ebpf.LoadPinnedMap(filepath.Join(wdir, name), &ebpf.LoadPinOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var k []byte
			var v uint64
			for it := m.Iterate(); it.Next(&k, &v); {
				if pid := binary.LittleEndian.Uint32(k); pid != uint32(os.Getpid()) {
					foreign[pid] = true
				}
			}
			m.Close()
		}
		witness.Close()
		if len(foreign) > 0 {
			t.Logf("attempt %d: other processes served HTTP meanwhile (%v): retrying", attempt, foreign)
			continue
		}
		lines := dropLine.FindAllStringSubmatch(p.out.String(), -1)
		if first != 1 || len(lines) != 2 {
			t.Fatalf("%d warnings after the first drop and its rounds, %d in all, want 1 and 2:\n%s", first, len(lines), p.out.String())
		}
		if got := [2]string{strings.Join(lines[0][1:], " "), strings.Join(lines[1][1:], " ")}; got != [2]string{"1 0 1 0", "1 0 2 0"} {
			t.Fatalf("warnings (new and total requests, responses): %q, want 1 0 1 0 then 1 0 2 0", got)
		}
		return
	}
	t.Fatal("five windows in a row saw other processes' HTTP traffic")
}

func readUnit(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../../../../contrib/systemd/stats-http-ebpf.service")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The shipped unit passes `systemd-analyze verify` without a single line of output (with
// ExecStart pointing at the built binary), and its `systemd-analyze security` exposure is
// logged.
func TestUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	text := readUnit(t)
	const shipped = "ExecStart=/usr/bin/stats-http-ebpf "
	if !strings.Contains(text, shipped) {
		t.Fatalf("no %q line", shipped)
	}
	path := filepath.Join(t.TempDir(), "stats-http-ebpf.service")
	if err := os.WriteFile(path, []byte(strings.Replace(text, shipped, "ExecStart="+loaderBin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--recursive-errors=no", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"CapabilityBoundingSet=CAP_BPF CAP_PERFMON\n", "AmbientCapabilities=CAP_BPF CAP_PERFMON\n", "NoNewPrivileges=yes\n", "Type=notify\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the unit has no %q", want)
		}
	}
	out, _ = exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	if m := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out); m != nil {
		t.Logf("systemd-analyze security --offline=true: %s", m[1])
	} else {
		t.Logf("systemd-analyze security printed no score:\n%s", out)
	}
}

// The shipped unit under a real systemd (a user manager): with a drop-in that points it at the
// test's binary and a private bpffs and runs it as nobody, it reaches active with READY's
// STATUS, the capability settings give it exactly CAP_BPF and CAP_PERFMON, it counts a
// server's requests, and a stop detaches it cleanly.
func TestUnitRunsUnderSystemd(t *testing.T) {
	needRoot(t)
	serialize(t)
	// Not under /tmp or /dev (PrivateTmp, PrivateDevices hide them), nor /root (ProtectHome).
	base, err := os.MkdirTemp("/var/lib", "stats-http-ebpf-rig")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	bin := filepath.Join(base, "stats-http-ebpf")
	data, err := os.ReadFile(loaderBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// A private bpffs in place of /sys/fs/bpf, mounted 0700 as systemd mounts it. The manager
	// runs in a mount namespace of its own, so it is mounted before the manager starts. The
	// shipped ExecStartPre= runs as it is on it: it makes it traversable and creates the pin
	// directory.
	bpffs := filepath.Join(base, "bpffs")
	if err := os.Mkdir(bpffs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	pins := filepath.Join(bpffs, "statspipe", "http")
	log := filepath.Join(base, "out.log")
	sd := testrig.StartUserSystemd(t)
	// The manager is root's: its notify socket is in a 0700 runtime directory, which the
	// unit's User=nobody could not reach (a real system manager's /run/systemd/notify is
	// reachable by every user). Let others through, for this test only.
	env := sd.MustSystemctl(t, "show-environment")
	for _, line := range strings.Split(env, "\n") {
		if rt, ok := strings.CutPrefix(line, "XDG_RUNTIME_DIR="); ok {
			os.Chmod(rt, 0o711)
			os.Chmod(filepath.Join(rt, "systemd"), 0o711)
			os.Chmod(filepath.Join(rt, "systemd", "notify"), 0o777)
		}
	}
	// What differs from the shipped unit: the private directory instead of /sys/fs/bpf, no
	// haproxystats user here (nobody instead), the built binary, output to a file (no
	// journald), and a short watchdog.
	unit := strings.ReplaceAll(readUnit(t), "/sys/fs/bpf", bpffs)
	unit = strings.ReplaceAll(unit, "-o haproxystats -g haproxystats", "-o nobody -g nogroup")
	if !strings.Contains(unit, "install -d -o nobody -g nogroup -m 0755 "+pins) {
		t.Fatalf("the unit's ExecStartPre= no longer creates the pin directory the way this test expects:\n%s", unit)
	}
	sd.InstallUnit(t, "stats-http-ebpf.service", unit, `[Service]
User=nobody
Group=nogroup
ExecStart=
ExecStart=`+bin+` --pin-dir `+pins+` --pin-mode 0644 --prune-interval 200ms
StandardOutput=append:`+log+`
StandardError=append:`+log+`
WatchdogSec=2s
`)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(log)
			t.Logf("stats-http-ebpf output:\n%s", out)
		}
	})
	if out, err := sd.Systemctl("start", "stats-http-ebpf.service"); err != nil {
		st, _ := sd.Systemctl("status", "--no-pager", "stats-http-ebpf.service")
		logs, _ := os.ReadFile(log)
		t.Fatalf("start: %v %s\n%s\n%s", err, out, st, logs)
	}
	p := sd.Show(t, "stats-http-ebpf.service", "ActiveState", "SubState", "StatusText", "MainPID")
	if p["ActiveState"] != "active" || !strings.HasPrefix(p["StatusText"], "attached; maps pinned in "+pins) {
		t.Fatalf("after start: %v", p)
	}
	status, err := os.ReadFile("/proc/" + p["MainPID"] + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs:") {
			t.Logf("the unit's process: %s", line)
		}
		// CAP_BPF (39) and CAP_PERFMON (38): 0xc000000000, nothing else.
		if c, ok := strings.CutPrefix(line, "CapEff:"); ok && strings.TrimSpace(c) != "000000c000000000" {
			t.Errorf("CapEff %s, want exactly CAP_BPF and CAP_PERFMON (000000c000000000)", strings.TrimSpace(c))
		}
		if c, ok := strings.CutPrefix(line, "CapBnd:"); ok && strings.TrimSpace(c) != "000000c000000000" {
			t.Errorf("CapBnd %s, want exactly CAP_BPF and CAP_PERFMON", strings.TrimSpace(c))
		}
	}
	url := server(t)
	do(t, "GET", url+"/200", 200)
	do(t, "PATCH", url+"/204", 204)
	if req, resp := pinned(t, pins, uint32(os.Getpid())); !equal(req, map[string]uint64{"GET": 1, "PATCH": 1}) || !equal(resp, map[uint32]uint64{200: 1, 204: 1}) {
		t.Fatalf("counts under systemd %v %v", req, resp)
	}
	sd.MustSystemctl(t, "stop", "stats-http-ebpf.service")
	p = sd.Show(t, "stats-http-ebpf.service", "ActiveState", "Result", "ExecMainStatus")
	if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		t.Fatalf("after stop: %v", p)
	}
}
