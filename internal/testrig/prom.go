package testrig

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Prometheus/OpenMetrics producers on loopback (rigs.md §5): each rig starts the real program
// on free 127.0.0.1 ports, waits until its metrics URL answers 200 from that very process, and
// stops it on cleanup with SIGTERM (SIGKILL after promStopGrace).

const (
	// NodeExporterBinary is Debian's prometheus-node-exporter 1.5.
	NodeExporterBinary = "/usr/bin/prometheus-node-exporter"
	// DebianPython is Debian's interpreter; python3 on PATH may be a pyenv one without
	// Debian's modules (rigs.md §0).
	DebianPython = "/usr/bin/python3"

	// promStartAttempts bounds the restarts after a port clash: a port picked free can be
	// taken by another test before the program binds it.
	promStartAttempts = 3
	promReadyLimit    = 10 * time.Second
	promStopGrace     = 3 * time.Second
	promKillLimit     = 5 * time.Second
	// promLogTail is how much of a program's stdout and stderr a failure message shows.
	promLogTail = 4 << 10
	// promMaxBody bounds the metrics bodies the rigs read while polling.
	promMaxBody = 16 << 20
)

// NodeExporterCollectors is the limited collector set of rigs.md §5.1: every one of them works
// on the test VMs, so the exposition is stable in structure (about 184 families).
var NodeExporterCollectors = []string{
	"cpu", "meminfo", "loadavg", "netdev", "filesystem", "stat", "time", "uname",
	"vmstat", "diskstats", "sockstat", "pressure",
}

// FreeLoopbackPort returns a TCP port of 127.0.0.1 that was free a moment ago. Another
// process can take it before the caller binds it; the rigs below retry on such a clash.
func FreeLoopbackPort(t testing.TB) int {
	t.Helper()
	return carbonFreePorts(t, 1)[0]
}

// StartNodeExporters starts n node_exporters with the collectors NodeExporterCollectors, each
// on its own free loopback port, and returns their metrics URLs
// ("http://127.0.0.1:PORT/metrics"). The test is skipped when node_exporter is not installed.
func StartNodeExporters(t testing.TB, n int) []string {
	t.Helper()
	if _, err := os.Stat(NodeExporterBinary); err != nil {
		t.Skipf("node_exporter is not installed (%s): apt-get install prometheus-node-exporter", NodeExporterBinary)
	}
	if n < 1 {
		t.Fatalf("StartNodeExporters: n = %d", n)
	}
	args := []string{"--collector.disable-defaults"}
	for _, c := range NodeExporterCollectors {
		args = append(args, "--collector."+c)
	}
	dir := t.TempDir()
	// Distinct ports for all instances at once: ports picked one after the other could repeat.
	ports := carbonFreePorts(t, n)
	urls := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("node_exporter%d", i+1)
		port := ports[i]
		p := startPromProgram(t, name, dir, func(attempt int) ([]string, int) {
			if attempt > 1 {
				port = FreeLoopbackPort(t)
			}
			addr := "--web.listen-address=127.0.0.1:" + strconv.Itoa(port)
			return append([]string{NodeExporterBinary, addr}, args...), port
		}, nil)
		urls[i] = p.metricsURL
	}
	return urls
}

// PromexInstance is one haproxy serving its built-in Prometheus exporter (PROMEX).
type PromexInstance struct {
	MetricsURL  string // "http://127.0.0.1:PORT/metrics" of frontend prom
	StatsSocket string // UNIX stats socket, level admin
}

// PromexFrontends are the frontends of every StartPromexHAProxy instance; its backend be_app
// has the servers app1 (a Go HTTP server, UP) and app.dead (127.0.0.1:1, DOWN).
var PromexFrontends = []string{"prom", "fe_main"}

// StartPromexHAProxy starts n haproxy processes configured like rigs.md §5.3: frontend prom
// serves PROMEX at /metrics (and the stats page at /stats), frontend fe_main forwards to
// be_app. Each waits until /metrics answers and the stats socket answers "show info". The test
// is skipped when haproxy is not installed.
func StartPromexHAProxy(t testing.TB, n int) []PromexInstance {
	t.Helper()
	if _, err := os.Stat(HAProxyBinary); err != nil {
		t.Skipf("haproxy is not installed (%s): apt-get install haproxy", HAProxyBinary)
	}
	if n < 1 {
		t.Fatalf("StartPromexHAProxy: n = %d", n)
	}
	// The health checks of app1 ask for "/" of a Go server, not for node_exporter's /metrics:
	// HAProxy closes a check after the status line, and node_exporter logs an error for every
	// family it could not send (rigs.md §5.1).
	app := startHTTPServer(t)
	// UNIX socket paths must stay under 108 bytes, which t.TempDir() may exceed.
	sockDir, err := os.MkdirTemp("", "sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dir := t.TempDir()
	out := make([]PromexInstance, n)
	for i := range n {
		name := fmt.Sprintf("haproxy%d", i+1)
		sock := filepath.Join(sockDir, fmt.Sprintf("admin%d.sock", i+1))
		cfg := filepath.Join(dir, name+".cfg")
		ready := func() error {
			info, err := haproxyCommand(sock, "show info")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(info, "Name: HAProxy\n") {
				return fmt.Errorf("show info answered %.100q", info)
			}
			return nil
		}
		p := startPromProgram(t, name, dir, func(int) ([]string, int) {
			ports := carbonFreePorts(t, 2)
			if err := os.WriteFile(cfg, []byte(promexConfig(sock, ports[0], ports[1], app)), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{HAProxyBinary, "-f", cfg, "-db"}, ports[0]
		}, ready)
		out[i] = PromexInstance{MetricsURL: p.metricsURL, StatsSocket: sock}
	}
	return out
}

func promexConfig(sock string, promPort, fePort int, app string) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 200
    stats socket %s mode 600 level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend prom
    bind 127.0.0.1:%d
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    no log
frontend fe_main
    bind 127.0.0.1:%d
    default_backend be_app
backend be_app
    option httpchk GET /
    server app1 %s check inter 1s
    server app.dead 127.0.0.1:1 check inter 1s
`, sock, promPort, fePort, app)
}

// haproxyCommand sends one command to a stats socket and returns the whole reply.
func haproxyCommand(sock, command string) (string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(c, promMaxBody))
	return string(b), err
}

// omApp is the OpenMetrics producer of rigs.md §5.6: one family of each kind the Python client
// has, a unit, NaN and an escaped label value.
const omApp = `# Small OpenMetrics producer for tests (testrig.StartPythonOpenMetricsApp).
import signal, sys, time
from prometheus_client import Counter, Enum, Gauge, Histogram, Info, start_http_server
port = int(sys.argv[1])
jobs = Counter('app_jobs', 'Jobs done', ['result'])
jobs.labels('ok').inc(3)
jobs.labels('bad "x"\nline').inc()
Gauge('app_room_temp_celsius', 'Room temperature', unit='celsius').set(20.5)
Gauge('app_missing', 'Never measured').set(float('nan'))
Histogram('app_wait_seconds', 'Wait', buckets=[0.1, 1.0]).observe(0.3)
Info('app_version', 'Version').info({'v': '1'})
Enum('app_mode', 'Mode', states=['a', 'b']).state('b')
start_http_server(port, addr='127.0.0.1')
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
`

// StartPythonOpenMetricsApp starts the Python OpenMetrics app of rigs.md §5.6 with Debian's
// python3 and prometheus_client on a free loopback port and returns its metrics URL. It answers
// OpenMetrics (labelled version=0.0.1) when the Accept header asks for it, text 0.0.4
// otherwise. The test is skipped when python3-prometheus-client is not installed.
func StartPythonOpenMetricsApp(t testing.TB) string {
	t.Helper()
	if out, err := exec.Command(DebianPython, "-I", "-c", "import prometheus_client").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import prometheus_client (%v: %s): apt-get install python3-prometheus-client",
			DebianPython, err, strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "om_app.py")
	if err := os.WriteFile(script, []byte(omApp), 0o644); err != nil {
		t.Fatal(err)
	}
	// -I: no PYTHON* variables or user site-packages from the environment; -B: no
	// __pycache__ next to the script.
	p := startPromProgram(t, "om_app", dir, func(int) ([]string, int) {
		port := FreeLoopbackPort(t)
		return []string{DebianPython, "-I", "-B", script, strconv.Itoa(port)}, port
	}, nil)
	return p.metricsURL
}

// promProgram is one started producer.
type promProgram struct {
	name       string
	cmd        *exec.Cmd
	exited     chan struct{}
	stdout     string // log file paths
	stderr     string
	port       int
	metricsURL string
}

// startPromProgram runs the command that command(attempt) returns, which listens on the port
// it returns, and waits until GET /metrics on that port answers 200 from this process and
// ready (if not nil) succeeds. It starts again on new ports (command is called again) when the
// program could not bind its port, at most promStartAttempts times, and fails the test on any
// other failure, showing the program's output.
func startPromProgram(t testing.TB, name, dir string, command func(attempt int) ([]string, int), ready func() error) *promProgram {
	t.Helper()
	for attempt := 1; ; attempt++ {
		argv, port := command(attempt)
		p := &promProgram{
			name:       name,
			exited:     make(chan struct{}),
			stdout:     filepath.Join(dir, fmt.Sprintf("%s.%d.stdout", name, attempt)),
			stderr:     filepath.Join(dir, fmt.Sprintf("%s.%d.stderr", name, attempt)),
			port:       port,
			metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
		}
		started := time.Now()
		p.start(t, argv)
		err := p.waitReady(ready)
		if err == nil {
			t.Logf("%s: %s ready in %v", name, p.metricsURL, time.Since(started).Round(time.Millisecond))
			return p
		}
		p.stop(t)
		if errors.Is(err, errPortTaken) && attempt < promStartAttempts {
			t.Logf("%s: port %d was taken (%v); starting again on another port", name, port, err)
			continue
		}
		t.Fatalf("%s (%s) did not start: %v\n%s", name, strings.Join(argv, " "), err, p.logs())
	}
}

func (p *promProgram) start(t testing.TB, argv []string) {
	t.Helper()
	stdout, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	// Files, not pipes: nothing waits for an inherited pipe to close (rigs.md §0), and the
	// logs stay in the test directory for a failure message. Stdin is /dev/null.
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	p.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
}

// stop sends SIGTERM, then SIGKILL after promStopGrace, and waits for the exit. It may run
// twice (a failed attempt, then its cleanup).
func (p *promProgram) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(promStopGrace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		t.Logf("%s (pid %d) needed SIGKILL: SIGTERM did not stop it within %v", p.name, p.cmd.Process.Pid, promStopGrace)
	case <-time.After(promKillLimit):
		t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// errPortTaken means that another process holds the port the program was to listen on.
var errPortTaken = errors.New("port taken")

// waitReady polls the metrics URL until this process answers it with 200 and ready succeeds,
// for at most promReadyLimit.
func (p *promProgram) waitReady(ready func() error) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(promReadyLimit)
	owned := false
	var err error
	for {
		select {
		case <-p.exited:
			if addressInUse(p.logs()) {
				return fmt.Errorf("%w: it exited: %v", errPortTaken, p.cmd.ProcessState)
			}
			return fmt.Errorf("it exited during start-up: %v", p.cmd.ProcessState)
		default:
		}
		err = getOK(client, p.metricsURL)
		if err == nil && !owned {
			// A 200 may come from another process that took the port first; this one then
			// fails to bind and exits, maybe only after that answer.
			owned, err = listensOn(p.cmd.Process.Pid, p.port)
			if err == nil && !owned {
				return fmt.Errorf("%w: another process answers on port %d", errPortTaken, p.port)
			}
		}
		if err == nil && ready != nil {
			err = ready()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", promReadyLimit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func getOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, promMaxBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return err
}

// addressInUse recognises the bind failures of node_exporter and Python ("address already in
// use", errno 98) and of haproxy ("cannot bind socket (Address already in use)").
func addressInUse(logs string) bool {
	return strings.Contains(strings.ToLower(logs), "address already in use")
}

// listensOn reports whether process pid holds a socket listening on 127.0.0.1:port (Linux
// /proc: the listening socket's inode in /proc/net/tcp, among the process's fds).
func listensOn(pid, port int) (bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	defer f.Close()
	// The address is printed as the raw 32-bit word: 0100007F on little-endian machines.
	locals := []string{fmt.Sprintf("0100007F:%04X", port), fmt.Sprintf("7F000001:%04X", port)}
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
			continue
		}
		if fields[1] == locals[0] || fields[1] == locals[1] {
			inodes["socket:["+fields[9]+"]"] = true
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if len(inodes) == 0 {
		return false, nil
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[target] {
			return true, nil
		}
	}
	return false, nil
}

// logs is the end of the program's stdout and stderr.
func (p *promProgram) logs() string {
	var b strings.Builder
	for _, file := range []string{p.stdout, p.stderr} {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(&b, "--- %s: %v\n", file, err)
			continue
		}
		if len(data) > promLogTail {
			data = data[len(data)-promLogTail:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", file, data)
	}
	return b.String()
}
