package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/testrig"
)

// The HTTP statistics kind end to end, as root (CI runs as root): stats-http-ebpf attaches the
// program and pins its maps in a private bpffs; two processes of one Go net/http program and a
// `python3 -m http.server` (run under its own name, pyhttpd, so that no other python3 of the
// machine mixes in) answer a known set of requests on loopback; stats-pull --once reads the
// maps, stats-process --once writes the local store. The tracer sees the whole machine, so the
// test checks exactly the lines of its own servers' processes and programs: per PID, the sums
// across the two Go workers with their spread, by method, code and class. Then one server
// exits, and its entries must be pruned within the loader's bound.

// httpServer is a server process of the test and its address.
type httpServer struct {
	cmd  *exec.Cmd
	addr string
	pid  int
	stop func()
}

func startHTTPWorker(t *testing.T, bin string) *httpServer {
	t.Helper()
	cmd := exec.Command(bin)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &httpServer{cmd: cmd, pid: cmd.Process.Pid}
	s.stop = func() { stdin.Close(); cmd.Wait() }
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("httpworker: %v", err)
	}
	s.addr = strings.TrimSpace(line)
	return s
}

// startPyHTTPD runs python3 -m http.server under the name pyhttpd (a symlink: a process's comm
// is the name it was executed by) in a directory with an index.
func startPyHTTPD(t *testing.T) *httpServer {
	t.Helper()
	// Debian's python3, not a version manager's shim (a shell script that dispatches on the
	// name it was run by).
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("/usr/bin/python3 is not installed")
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "pyhttpd")
	if err := os.Symlink(py, link); err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("<p>hello</p>\n"), 0o644)
	cmd := exec.Command(link, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", www, "0")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard // one access log line per request
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &httpServer{cmd: cmd, pid: cmd.Process.Pid}
	s.stop = func() { cmd.Process.Signal(unix.SIGTERM); cmd.Wait() }
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) < 6 || f[4] != "port" {
		t.Fatalf("python3 -m http.server printed %q (%v)", line, err)
	}
	s.addr = "127.0.0.1:" + f[5]
	return s
}

// commOf waits (bounded) until pid has exec'ed into want.
func commOf(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is %q, not %s", pid, b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type httpCall struct {
	method, path string
	code         int
}

// call makes the requests one after another on one keep-alive client and checks each code.
func call(t *testing.T, addr string, calls []httpCall, times ...int) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for i, k := range calls {
		n := 1
		if i < len(times) {
			n = times[i]
		}
		for j := 0; j < n; j++ {
			req, _ := http.NewRequest(k.method, "http://"+addr+k.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != k.code {
				t.Fatalf("%s %s: %d, want %d", k.method, k.path, resp.StatusCode, k.code)
			}
		}
	}
}

// model are the counters one server process must have.
type serverModel struct {
	methods map[string]float64
	codes   map[int]float64
}

func (m serverModel) add(calls []httpCall, times []int) {
	for i, k := range calls {
		if times[i] == 0 {
			continue
		}
		m.methods[k.method] += float64(times[i])
		m.codes[k.code] += float64(times[i])
	}
}

// listed are the codes with their own path (Scope's list).
var listed = []int{100, 200, 201, 202, 204, 308, 400, 401, 403, 404, 408, 451, 500, 501, 502, 503}

// samples are a process's sample values by name (without the program).
func (m serverModel) samples() map[string]float64 {
	out := map[string]float64{}
	for meth, n := range m.methods {
		out["requests"] += n
		out["requests.method."+meth] += n
	}
	for code, n := range m.codes {
		out["responses"] += n
		if slices.Contains(listed, code) {
			out["responses.code."+strconv.Itoa(code)] += n
		} else {
			out["responses.code.other"] += n
		}
		out["responses.class."+strconv.Itoa(code/100)+"xx"] += n
	}
	return out
}

// pinHasPID says whether a pinned map of the program has a key of pid (the first 4 bytes).
func pinHasPID(t *testing.T, pin string, pid int) bool {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(pin, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var k, v []byte
	it := m.Iterate()
	for n := 0; it.Next(&k, &v) && n < 1<<20; n++ {
		if len(k) >= 4 && binary.LittleEndian.Uint32(k) == uint32(pid) {
			return true
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}

func TestHTTPEBPF(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the HTTP statistics program (CAP_BPF, CAP_PERFMON) and mount a bpffs; CI runs as root")
	}
	pins := filepath.Join(testrig.MountBPFFS(t), "statspipe", "http")
	loader := start(t, "stats-http-ebpf", "--pin-dir", pins, "--prune-interval", "1s", "--exited-grace", "2s")
	waitUntil(t, 30*time.Second, "stats-http-ebpf to attach", func() bool { return strings.Contains(loader.out.String(), "attached") })

	worker := filepath.Join(t.TempDir(), "httpworker")
	if out, err := exec.Command("go", "build", "-o", worker, "./testdata/httpworker").CombinedOutput(); err != nil {
		t.Fatalf("building httpworker: %v\n%s", err, out)
	}
	goA, goB := startHTTPWorker(t, worker), startHTTPWorker(t, worker)
	py := startPyHTTPD(t)
	commOf(t, goA.pid, "httpworker")
	commOf(t, goB.pid, "httpworker")
	commOf(t, py.pid, "pyhttpd")

	goCalls := []httpCall{{"GET", "/ok", 200}, {"GET", "/missing", 404}, {"GET", "/unavailable", 503}, {"GET", "/teapot", 418}, {"POST", "/ok", 501}, {"DELETE", "/x", 501}}
	timesA, timesB := []int{5, 2, 1, 1, 1, 0}, []int{3, 1, 2, 0, 0, 1}
	pyCalls := []httpCall{{"GET", "/", 200}, {"GET", "/missing", 404}, {"POST", "/", 501}, {"HEAD", "/", 200}}
	timesPy := []int{2, 2, 1, 1}
	call(t, goA.addr, goCalls, timesA...)
	call(t, goB.addr, goCalls, timesB...)
	call(t, py.addr, pyCalls, timesPy...)
	models := map[int]serverModel{}
	for _, s := range []struct {
		srv   *httpServer
		calls []httpCall
		times []int
	}{{goA, goCalls, timesA}, {goB, goCalls, timesB}, {py, pyCalls, timesPy}} {
		m := serverModel{methods: map[string]float64{}, codes: map[int]float64{}}
		m.add(s.calls, s.times)
		models[s.srv.pid] = m
	}

	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.http]
type = http-ebpf
pin-dir = `+pins+`
per-instance-metrics = true
aggregate.*.responses.class.5xx = sum max
`)
	snap, log := omPull(t, conf)
	got := omProcess(t, conf, filepath.Join(base, "store"), filepath.Base(snap))

	// The expected lines: per PID, then per program across its PIDs.
	const prefix = omPrefix + ".http"
	want := map[string]float64{}
	byProgram := map[string]map[string][]float64{}
	for pid, m := range models {
		prog := "httpworker"
		if pid == py.pid {
			prog = "pyhttpd"
		}
		if byProgram[prog] == nil {
			byProgram[prog] = map[string][]float64{}
		}
		for name, v := range m.samples() {
			want[fmt.Sprintf("%s.instance.%d.%s.%s", prefix, pid, prog, name)] = v
			byProgram[prog][name] = append(byProgram[prog][name], v)
		}
	}
	for prog, names := range byProgram {
		for name, values := range names {
			funcs := []string{"sum"}
			switch {
			case name == "requests":
				funcs = []string{"sum", "min", "max", "avg", "p50", "p90", "p99", "stddev"}
			case name == "responses.class.5xx":
				funcs = []string{"sum", "max"}
			}
			for _, fn := range funcs {
				v, ok := omFunc(fn, values)
				if !ok {
					continue
				}
				p := prefix + "." + prog + "." + name
				if fn != "sum" {
					p += "." + fn
				}
				want[p] = v
			}
		}
	}
	for p, v := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing %s (want %v)", p, v)
		} else if math.Abs(g-v) > 1e-9*math.Max(1, math.Abs(v)) {
			t.Errorf("%s = %v, want %v", p, g, v)
		}
	}
	// Only the model's lines for these processes and programs (the machine's other HTTP
	// servers have their own).
	var extra []string
	for p := range got {
		ours := strings.HasPrefix(p, prefix+".httpworker.") || strings.HasPrefix(p, prefix+".pyhttpd.")
		for pid := range models {
			ours = ours || strings.HasPrefix(p, fmt.Sprintf("%s.instance.%d.", prefix, pid))
		}
		if _, ok := want[p]; ours && !ok {
			extra = append(extra, p)
		}
	}
	slices.Sort(extra)
	if len(extra) > 0 {
		t.Errorf("lines the model does not have: %s", strings.Join(extra, ", "))
	}
	// The numbers, stated once more: the Go workers' 10 and 7 requests.
	if got[prefix+".httpworker.requests"] != 17 || got[prefix+".httpworker.requests.max"] != 10 ||
		got[prefix+".httpworker.responses.class.5xx"] != 5 || got[prefix+".httpworker.responses.code.other"] != 1 ||
		got[prefix+".pyhttpd.responses.code.501"] != 1 || got[prefix+".not_counted.requests_map_full"] != 0 {
		t.Errorf("httpworker requests %v max %v 5xx %v other %v", got[prefix+".httpworker.requests"], got[prefix+".httpworker.requests.max"],
			got[prefix+".httpworker.responses.class.5xx"], got[prefix+".httpworker.responses.code.other"])
	}
	if t.Failed() {
		t.Logf("stats-pull:\n%s", log)
	}

	// A server that exits: its entries are pruned within the loader's bound (exited-grace 2 s
	// after the prune that sees it gone, prunes every second). The test reads the pins itself.
	py.stop()
	gone := time.Now()
	waitUntil(t, 30*time.Second, "the exited server's entries to be pruned", func() bool {
		return !pinHasPID(t, filepath.Join(pins, "http_requests"), py.pid) && !pinHasPID(t, filepath.Join(pins, "http_responses"), py.pid)
	})
	t.Logf("pruned %v after the server exited", time.Since(gone).Round(100*time.Millisecond))
	if !pinHasPID(t, filepath.Join(pins, "http_requests"), goA.pid) {
		t.Error("a running worker's entries were pruned")
	}
	loader.stop(t)
}
