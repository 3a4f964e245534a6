package testrig

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HAProxyMaster is one `haproxy -W -S <MasterSocket> -db` (master-worker mode with its master
// CLI):
//
//	frontend fe_main → backend be_app: app1 (a loopback Go server)
//
// app1 answers "/" with 200 and any other path 404, except "/hold": it answers only once the
// request is released (HoldConnection), so that an old worker keeps serving it after a
// reload. Timeouts are long (client and server 60 s) so nothing but the test ends a held
// request. Reload sends SIGUSR2 and waits for the new worker.
type HAProxyMaster struct {
	MasterSocket string // master CLI, <dir>/master.sock
	Frontend     string // "127.0.0.1:<port>" of fe_main
	ConfigFile   string

	cmd    *exec.Cmd
	output *Buffer
	exited chan struct{}

	mu    sync.Mutex
	holds map[string]chan struct{} // /hold?id=<id> → closed to release
	seen  chan string              // ids of /hold requests that reached app1
}

// maxHold bounds how long app1 keeps a /hold request that is never released.
const maxHold = 60 * time.Second

// StartHAProxyMaster starts haproxy in master-worker mode, waits until its worker answers
// through the master CLI, and registers its shutdown (SIGKILL of the master and its workers)
// with t.Cleanup. It skips the test when haproxy is not installed.
func StartHAProxyMaster(t testing.TB) *HAProxyMaster {
	t.Helper()
	if _, err := os.Stat(HAProxyBinary); err != nil {
		t.Skipf("haproxy is not installed (%s): apt-get install haproxy", HAProxyBinary)
	}
	dir, err := os.MkdirTemp("", "spm") // a UNIX socket path must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxyMaster{
		MasterSocket: filepath.Join(dir, "master.sock"),
		Frontend:     FreePort(t),
		ConfigFile:   filepath.Join(t.TempDir(), "haproxy.cfg"),
		output:       &Buffer{},
		exited:       make(chan struct{}),
		holds:        map[string]chan struct{}{},
		seen:         make(chan string, 16),
	}
	app1 := h.startApp(t)
	cfg := fmt.Sprintf(`global
    maxconn 1000
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
frontend fe_main
    bind %s
    default_backend be_app
backend be_app
    server app1 %s
`, h.Frontend, app1)
	if err := os.WriteFile(h.ConfigFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(HAProxyBinary, "-W", "-S", h.MasterSocket, "-f", h.ConfigFile, "-db")
	cmd.Stdout, cmd.Stderr = h.output, h.output
	// its own process group, so that cleanup kills the workers too (old ones included)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting haproxy -W: %v", err)
	}
	h.cmd = cmd
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("haproxy master (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	h.waitWorker(t, 0)
	return h
}

func (h *HAProxyMaster) startApp(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/":
				io.WriteString(w, "ok\n")
			case "/hold":
				id := r.URL.Query().Get("id")
				h.mu.Lock()
				release := h.holds[id]
				h.mu.Unlock()
				if release == nil {
					http.Error(w, "unknown hold id", http.StatusBadRequest)
					return
				}
				h.seen <- id
				t := time.NewTimer(maxHold)
				defer t.Stop()
				select {
				case <-release:
				case <-r.Context().Done():
				case <-t.C:
				}
				io.WriteString(w, "released\n")
			default:
				http.NotFound(w, r)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// Pid is the master's process id.
func (h *HAProxyMaster) Pid() int { return h.cmd.Process.Pid }

// Output is what haproxy printed so far.
func (h *HAProxyMaster) Output() string { return h.output.String() }

// Command sends one command to the master CLI ("show proc", "@!<pid> show stat") and returns
// the reply. (";quit" is appended: the master CLI keeps a connection open after a command.)
func (h *HAProxyMaster) Command(t testing.TB, command string) string {
	t.Helper()
	out, err := h.command(command)
	if err != nil {
		t.Fatalf("haproxy master: %v", err)
	}
	return out
}

func (h *HAProxyMaster) command(command string) (string, error) {
	c, err := net.DialTimeout("unix", h.MasterSocket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, command+";quit\n"); err != nil {
		return "", fmt.Errorf("sending %q: %v", command, err)
	}
	out, err := io.ReadAll(io.LimitReader(c, 16<<20))
	if err != nil {
		return "", fmt.Errorf("reading reply to %q: %v", command, err)
	}
	return string(out), nil
}

// MasterWorker is a worker as show proc lists it.
type MasterWorker struct {
	Pid, Reloads int
	Old          bool
}

// Workers parses show proc: the current worker(s), then the old ones.
func (h *HAProxyMaster) Workers(t testing.TB) []MasterWorker {
	t.Helper()
	ws, err := h.workers()
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func (h *HAProxyMaster) workers() ([]MasterWorker, error) {
	out, err := h.command("show proc")
	if err != nil {
		return nil, err
	}
	var ws []MasterWorker
	section := ""
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, "# "); ok {
			section = s
			continue
		}
		f := strings.Fields(line)
		if (section != "workers" && section != "old workers") || len(f) < 3 || f[1] != "worker" {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		reloads, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("show proc: bad row %q", line)
		}
		ws = append(ws, MasterWorker{Pid: pid, Reloads: reloads, Old: section == "old workers"})
	}
	return ws, nil
}

// CurrentPid is the pid of the current worker.
func (h *HAProxyMaster) CurrentPid(t testing.TB) int {
	t.Helper()
	for _, w := range h.Workers(t) {
		if !w.Old {
			return w.Pid
		}
	}
	t.Fatalf("show proc lists no current worker:\n%s", h.Command(t, "show proc"))
	return 0
}

// OldPids are the pids of the old workers, in show proc order.
func (h *HAProxyMaster) OldPids(t testing.TB) []int {
	t.Helper()
	var pids []int
	for _, w := range h.Workers(t) {
		if w.Old {
			pids = append(pids, w.Pid)
		}
	}
	return pids
}

// waitWorker waits (bounded) until show proc lists a current worker other than notPid that
// answers `show info` through the master.
func (h *HAProxyMaster) waitWorker(t testing.TB, notPid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		select {
		case <-h.exited:
			t.Fatalf("haproxy master exited: %s", h.output)
		default:
		}
		if ws, err := h.workers(); err == nil {
			for _, w := range ws {
				if w.Old || w.Pid == notPid {
					continue
				}
				out, err := h.command("@!" + strconv.Itoa(w.Pid) + " show info")
				if err == nil && strings.Contains(out, "\nPid: "+strconv.Itoa(w.Pid)+"\n") {
					return w.Pid
				}
				last = fmt.Sprintf("worker %d: %q %v", w.Pid, out, err)
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy master: no new worker (other than %d) after 10 s (%s)\n%s", notPid, last, h.output)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reload sends SIGUSR2 to the master and waits (bounded, polling show proc) until a new
// current worker answers; it returns its pid. The previous worker becomes an old worker, and
// stays while it has connections.
func (h *HAProxyMaster) Reload(t testing.TB) int {
	t.Helper()
	prev := h.CurrentPid(t)
	if err := h.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	return h.waitWorker(t, prev)
}

// WaitOldWorkers waits (bounded) until show proc lists exactly n old workers.
func (h *HAProxyMaster) WaitOldWorkers(t testing.TB, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ws := h.Workers(t)
		old := slices.DeleteFunc(slices.Clone(ws), func(w MasterWorker) bool { return !w.Old })
		if len(old) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy master: %d old workers after %v, want %d: %+v", len(old), limit, n, ws)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SendTraffic sends n requests through fe_main; every fifth asks for a missing page (404).
func (h *HAProxyMaster) SendTraffic(t testing.TB, n int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for i := range n {
		path, want := "/", http.StatusOK
		if i%5 == 4 {
			path, want = "/missing", http.StatusNotFound
		}
		resp, err := client.Get("http://" + h.Frontend + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", h.Frontend, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s%s: status %d, want %d", h.Frontend, path, resp.StatusCode, want)
		}
	}
}

// HoldConnection opens a connection through fe_main with a request that app1 does not answer
// until release is called (at most maxHold): the worker serving it stays busy, so after a
// reload it stays as an old worker. It returns once app1 has the request. release answers the
// request, reads the reply and closes the connection; it may be called more than once.
func (h *HAProxyMaster) HoldConnection(t testing.TB) (release func()) {
	t.Helper()
	h.mu.Lock()
	id := strconv.Itoa(len(h.holds) + 1)
	ch := make(chan struct{})
	h.holds[id] = ch
	h.mu.Unlock()
	c, err := net.DialTimeout("tcp", h.Frontend, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /hold?id="+id+" HTTP/1.1\r\nHost: rig\r\nConnection: close\r\n\r\n"); err != nil {
		c.Close()
		t.Fatal(err)
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for arrived := false; !arrived; {
		select {
		case got := <-h.seen:
			arrived = got == id
		case <-timer.C:
			c.Close()
			t.Fatalf("held request %s did not reach app1 within 5 s", id)
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(ch)
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.Copy(io.Discard, io.LimitReader(c, 1<<20))
			c.Close()
		})
	}
	t.Cleanup(release)
	return release
}
