// Package testrig starts real peer programs on loopback for integration tests and demos.
package testrig

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// HAProxyBinary is Debian's haproxy; tests that need it skip when it is missing.
const HAProxyBinary = "/usr/sbin/haproxy"

// HAProxyOptions configure StartHAProxy.
type HAProxyOptions struct {
	// Instances is the number of haproxy processes; 0 means 1.
	Instances int
	// SocketDir receives admin<N>.sock of instance N (1-based), and nothing else, so that it
	// can serve as stats-pull's socket-dir. Default: a fresh directory under os.TempDir()
	// (a UNIX socket path must stay under 108 bytes, which t.TempDir() may exceed), removed
	// on cleanup.
	SocketDir string
	// TCPStats adds `stats socket 127.0.0.1:<free port> level admin` to every instance.
	TCPStats bool
	// SocketStats adds `option socket-stats` to the frontends, so that `show stat` has a
	// listener row (type 3) per bind line.
	SocketStats bool
}

// HAProxy is a set of running haproxy instances that share the same backend servers.
type HAProxy struct {
	SocketDir string
	Instances []*HAProxyInstance
}

// HAProxyInstance is one `haproxy -db` process. Its configuration mirrors the golden data set
// A-real-default:
//
//	frontend fe_main          → backend be_app: app1 (weight 100), app2 (weight 50), app.dead (closed port, DOWN)
//	frontend fe.dotted.name   → backend be.dotted.name: web.1
//	backend be_noservers        (no servers)
//	backend be_onlyodd: s1      (odd-numbered instances only; never gets traffic)
//
// app1, app2 and web.1 are Go HTTP servers on loopback, shared by all instances: "/" answers
// 200, "/status/<code>" that code (200–599), any other path 404; "?delay=<ms>" (≤ 1000)
// delays the answer. Health checks run every 200 ms, so app.dead is DOWN within a second.
type HAProxyInstance struct {
	Index          int    // 1-based
	Socket         string // UNIX stats socket, <SocketDir>/admin<Index>.sock
	TCPStats       string // "127.0.0.1:<port>" with HAProxyOptions.TCPStats, else ""
	Frontend       string // "127.0.0.1:<port>" of fe_main
	DottedFrontend string // "127.0.0.1:<port>" of fe.dotted.name
	ConfigFile     string

	socketStats bool

	cmd    *exec.Cmd
	output *Buffer
	exited chan struct{}
}

// StartHAProxy starts the instances, waits until every stats socket accepts connections and
// registers their shutdown (SIGKILL) with t.Cleanup. It skips the test when haproxy is not
// installed.
func StartHAProxy(t testing.TB, opts HAProxyOptions) *HAProxy {
	t.Helper()
	if _, err := os.Stat(HAProxyBinary); err != nil {
		t.Skipf("haproxy is not installed (%s): apt-get install haproxy", HAProxyBinary)
	}
	n := max(opts.Instances, 1)
	h := &HAProxy{SocketDir: opts.SocketDir}
	if h.SocketDir == "" {
		dir, err := os.MkdirTemp("", "sp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		h.SocketDir = dir
	}
	app1 := startHTTPServer(t)
	app2 := startHTTPServer(t)
	web1 := startHTTPServer(t)
	dead := FreePort(t) // nothing will listen there

	cfgDir := t.TempDir()
	for i := 1; i <= n; i++ {
		inst := &HAProxyInstance{
			Index:          i,
			Socket:         filepath.Join(h.SocketDir, fmt.Sprintf("admin%d.sock", i)),
			Frontend:       FreePort(t),
			DottedFrontend: FreePort(t),
			ConfigFile:     filepath.Join(cfgDir, fmt.Sprintf("haproxy%d.cfg", i)),
			output:         &Buffer{},
			exited:         make(chan struct{}),
			socketStats:    opts.SocketStats,
		}
		if opts.TCPStats {
			inst.TCPStats = FreePort(t)
		}
		if err := os.WriteFile(inst.ConfigFile, []byte(inst.config(app1, app2, web1, dead)), 0o644); err != nil {
			t.Fatal(err)
		}
		inst.start(t)
		h.Instances = append(h.Instances, inst)
	}
	for _, inst := range h.Instances {
		inst.waitReady(t)
	}
	return h
}

func (inst *HAProxyInstance) config(app1, app2, web1, dead string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    maxconn 1000\n    nbthread 1\n")
	fmt.Fprintf(&b, "    stats socket %s mode 600 level admin\n", inst.Socket)
	if inst.TCPStats != "" {
		fmt.Fprintf(&b, "    stats socket %s level admin\n", inst.TCPStats)
	}
	b.WriteString(`defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    default-server inter 200ms fall 1 rise 1
`)
	socketStats, bindName := "", ""
	if inst.socketStats {
		socketStats, bindName = "    option socket-stats\n", " name l.dotted"
	}
	fmt.Fprintf(&b, "frontend fe_main\n    bind %s\n%s    default_backend be_app\n", inst.Frontend, socketStats)
	fmt.Fprintf(&b, "frontend fe.dotted.name\n    bind %s%s\n%s    default_backend be.dotted.name\n", inst.DottedFrontend, bindName, socketStats)
	fmt.Fprintf(&b, "backend be_app\n    server app1 %s weight 100 check\n    server app2 %s weight 50 check\n    server app.dead %s check\n", app1, app2, dead)
	fmt.Fprintf(&b, "backend be.dotted.name\n    server web.1 %s check\n", web1)
	b.WriteString("backend be_noservers\n")
	if inst.Index%2 == 1 {
		fmt.Fprintf(&b, "backend be_onlyodd\n    server s1 %s check\n", app1)
	}
	return b.String()
}

func (inst *HAProxyInstance) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(HAProxyBinary, "-f", inst.ConfigFile, "-db")
	cmd.Stdout, cmd.Stderr = inst.output, inst.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting haproxy %d: %v", inst.Index, err)
	}
	inst.cmd = cmd
	go func() {
		cmd.Wait()
		close(inst.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-inst.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("haproxy %d (pid %d) did not exit after SIGKILL", inst.Index, cmd.Process.Pid)
		}
	})
}

func (inst *HAProxyInstance) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-inst.exited:
			t.Fatalf("haproxy %d exited during start-up: %s\nconfig:\n%s", inst.Index, inst.output, inst.configText())
		default:
		}
		c, err := net.DialTimeout("unix", inst.Socket, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy %d: stats socket %s not ready after 5 s: %v\n%s", inst.Index, inst.Socket, err, inst.output)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (inst *HAProxyInstance) configText() string {
	b, _ := os.ReadFile(inst.ConfigFile)
	return string(b)
}

// Output is what haproxy printed so far (warnings, alerts).
func (inst *HAProxyInstance) Output() string { return inst.output.String() }

// Pid is the haproxy process id.
func (inst *HAProxyInstance) Pid() int { return inst.cmd.Process.Pid }

// Command sends one CLI command (e.g. "show stat") to the UNIX stats socket and returns the
// reply.
func (inst *HAProxyInstance) Command(t testing.TB, command string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", inst.Socket, time.Second)
	if err != nil {
		t.Fatalf("haproxy %d: %v", inst.Index, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		t.Fatalf("haproxy %d: sending %q: %v", inst.Index, command, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("haproxy %d: reading reply to %q: %v", inst.Index, command, err)
	}
	return string(out)
}

// SendTraffic sends n HTTP requests through fe_main and n through fe.dotted.name of every
// instance. Every fifth request asks for a missing page (404).
func (h *HAProxy) SendTraffic(t testing.TB, n int) {
	t.Helper()
	for _, inst := range h.Instances {
		inst.SendTraffic(t, n)
	}
}

// SendTraffic sends n HTTP requests through fe_main and n through fe.dotted.name. Every fifth
// request asks for a missing page (404).
func (inst *HAProxyInstance) SendTraffic(t testing.TB, n int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for _, fe := range []string{inst.Frontend, inst.DottedFrontend} {
		for i := 0; i < n; i++ {
			path, want := "/", http.StatusOK
			if i%5 == 4 {
				path, want = "/missing", http.StatusNotFound
			}
			resp, err := client.Get("http://" + fe + path)
			if err != nil {
				t.Fatalf("haproxy %d: GET %s%s: %v", inst.Index, fe, path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("haproxy %d: GET %s%s: status %d, want %d", inst.Index, fe, path, resp.StatusCode, want)
			}
		}
	}
}

// FreePort returns "127.0.0.1:<port>" of a TCP port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func startHTTPServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// ?delay=<ms> (at most 1000) makes response times visible in HAProxy's rtime.
			if ms, err := strconv.Atoi(r.URL.Query().Get("delay")); err == nil && ms > 0 {
				time.Sleep(time.Duration(min(ms, 1000)) * time.Millisecond)
			}
			if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
				if n, err := strconv.Atoi(code); err == nil && n >= 200 && n <= 599 {
					w.WriteHeader(n)
					return
				}
			}
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// FakeStatsSocket is a stats socket that answers like HAProxy's CLI — read one command line
// (commands separated by ';'), write the replies, close — with replies HAProxy cannot be made to give: huge, empty, or none
// at all. It serves each connection in its own goroutine.
type FakeStatsSocket struct {
	Network, Address string

	listener net.Listener
	replies  map[string][]byte
	hang     bool
	commands atomic.Int64
	closed   chan struct{}
	wg       sync.WaitGroup
}

// FakeReply answers a command with a fixed reply; commands not in the map get HAProxy's
// "Unknown command." text. Replies are shared, never copied.
type FakeReply map[string][]byte

// ServeFakeStats listens on network ("unix" or "tcp") and address and answers every command
// with replies[command]. With hang, it reads the command and then never answers (until Close).
// The socket is closed on cleanup.
func ServeFakeStats(t testing.TB, network, address string, replies FakeReply, hang bool) *FakeStatsSocket {
	t.Helper()
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeStatsSocket{Network: network, Address: l.Addr().String(), listener: l, replies: replies, hang: hang, closed: make(chan struct{})}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.Close)
	return f
}

// Commands is the number of command lines received so far.
func (f *FakeStatsSocket) Commands() int64 { return f.commands.Load() }

// Close stops listening and ends every connection.
func (f *FakeStatsSocket) Close() {
	select {
	case <-f.closed:
		return
	default:
	}
	close(f.closed)
	f.listener.Close()
	f.wg.Wait()
}

func (f *FakeStatsSocket) serve() {
	defer f.wg.Done()
	for {
		c, err := f.listener.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.answer(c)
		}()
	}
}

func (f *FakeStatsSocket) answer(c net.Conn) {
	defer c.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-f.closed:
			c.Close()
		case <-done:
		}
	}()
	line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
	if err != nil {
		return
	}
	// Commands separated by ';' are answered in order, each reply as it is (a reply captured
	// from HAProxy ends with the empty line HAProxy's CLI puts after every answer).
	cmds := strings.Split(strings.TrimSpace(line), ";")
	f.commands.Add(int64(len(cmds)))
	if f.hang {
		<-f.closed
		return
	}
	for _, cmd := range cmds {
		reply, ok := f.replies[strings.TrimSpace(cmd)]
		if !ok {
			reply = []byte("Unknown command. Please enter one of the following commands only :\n\n")
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}
