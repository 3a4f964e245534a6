package bpf

import (
	"bufio"
	"errors"
	"fmt"
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

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/testrig"
)

// A child started by TestPruneDeletesExitedProcess: it serves HTTP until it has answered
// the number of requests in its environment, then exits.
func TestMain(m *testing.M) {
	if n := os.Getenv("STATSPIPE_LOADER_TEST_SERVE"); n != "" {
		os.Exit(serveChild(n))
	}
	os.Exit(m.Run())
}

func serveChild(n string) int {
	want, err := strconv.Atoi(n)
	if err != nil || want < 1 || want > 100 {
		fmt.Fprintln(os.Stderr, "bad request count", n)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// A connection is closed (keep-alives are off) once its response is written.
	served := make(chan struct{}, 1000)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				served <- struct{}{}
			}
		},
	}
	srv.SetKeepAlivesEnabled(false)
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	for i := 0; i < want; i++ {
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			fmt.Fprintln(os.Stderr, "timed out waiting for requests")
			return 3
		}
	}
	srv.Close()
	return 0
}

// needRoot skips a test that loads the program or mounts a bpffs when not privileged.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading the HTTP statistics program and mounting a private bpffs needs root (CI runs as root)")
	}
}

// mountBPFFS mounts a private, empty bpffs in a temporary directory: the tests never touch
// /sys/fs/bpf.
func mountBPFFS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot mount a bpffs (needs CAP_SYS_ADMIN): %v", err)
		}
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// serialize keeps the tests of this package and of cmd/stats-http-ebpf (the loader, in this kind's folder) that serve HTTP while
// a tracer is attached from running at the same time (go test runs packages in parallel): the
// tracer sees the whole machine, so one's server is foreign traffic in the other's maps.
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

func load(t *testing.T, opts Options) *Tracer {
	t.Helper()
	tr, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %+v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// server and do: the loopback status server and its requests (testrig).
func server(t *testing.T) string { return testrig.StatusServer(t) }

func do(t *testing.T, method, url string, want int) { testrig.Request(t, method, url, want) }

// counts reads pid's requests by method and responses by code from the tracer's maps.
func counts(t *testing.T, tr *Tracer, pid uint32) (map[string]uint64, map[uint32]uint64) {
	t.Helper()
	req, resp := map[string]uint64{}, map[uint32]uint64{}
	var rk httpStatsReqKey
	var n uint64
	it := tr.objs.HttpRequests.Iterate()
	for it.Next(&rk, &n) {
		if rk.Pid == pid {
			req[method(rk)] = n
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	var sk httpStatsRespKey
	it = tr.objs.HttpResponses.Iterate()
	for it.Next(&sk, &n) {
		if sk.Pid == pid {
			resp[uint32(sk.Code)] = n
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return req, resp
}

func method(k httpStatsReqKey) string {
	var b []byte
	for _, c := range k.Method {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// pids returns the pids that have keys in the tracer's maps.
func pids(t *testing.T, tr *Tracer) map[uint32]bool {
	t.Helper()
	out := map[uint32]bool{}
	rk, err := keys[httpStatsReqKey](tr.objs.HttpRequests, tr.maxEntries)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rk {
		out[k.Pid] = true
	}
	sk, err := keys[httpStatsRespKey](tr.objs.HttpResponses, tr.maxEntries)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range sk {
		out[k.Pid] = true
	}
	return out
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

// The known set of requests of TestLoadCountsExactly, and what the maps must hold for it.
func knownSet(t *testing.T, url string) {
	t.Helper()
	for _, r := range []struct {
		method string
		code   int
	}{
		{"GET", 200}, {"GET", 200}, {"POST", 200},
		{"GET", 404}, {"DELETE", 404},
		{"POST", 503},
		{"GET", 418},
	} {
		do(t, r.method, url+"/"+strconv.Itoa(r.code), r.code)
	}
}

var (
	knownRequests  = map[string]uint64{"GET": 4, "POST": 2, "DELETE": 1}
	knownResponses = map[uint32]uint64{200: 3, 404: 2, 503: 1, 418: 1}
)

// Loaded and attached in a private bpffs, the program counts exactly the requests and
// responses of a server in this process (the tracer sees the whole machine: only our pid is
// looked at), and the three pins have the mode asked for.
func TestLoadCountsExactly(t *testing.T) {
	needRoot(t)
	serialize(t)
	dir := filepath.Join(mountBPFFS(t), "statspipe", "http")
	tr := load(t, Options{PinDir: dir, PinGroup: -1, PinMode: 0o644})
	if tr.MaxEntries() != 16384 || tr.PinDir() != dir || len(tr.Replaced()) != 0 {
		t.Fatalf("MaxEntries %d PinDir %s Replaced %v", tr.MaxEntries(), tr.PinDir(), tr.Replaced())
	}
	knownSet(t, server(t))
	req, resp := counts(t, tr, uint32(os.Getpid()))
	if !equal(req, knownRequests) || !equal(resp, knownResponses) {
		t.Fatalf("requests %v responses %v, want %v %v", req, resp, knownRequests, knownResponses)
	}
	for _, name := range []string{RequestsMap, ResponsesMap, DropsMap} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", name, fi.Mode())
		}
	}
	for _, name := range []string{"pending_reads", "accepted_fds", "pending_accepts"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is pinned (%v); only the three maps stats-pull reads are", name, err)
		}
	}
	if r, s, err := tr.Drops(); err != nil || r != 0 || s != 0 {
		t.Errorf("Drops %d %d %v, want none", r, s, err)
	}

	// Close detaches: a request after it is not counted, and the pins stay.
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", server(t)+"/200", 200)
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, RequestsMap), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("the pin went with Close: %v", err)
	}
	defer m.Close()
	var n uint64
	k := httpStatsReqKey{Pid: uint32(os.Getpid())}
	copy8(&k.Method, "GET")
	if err := m.Lookup(&k, &n); err != nil || n != 4 {
		t.Errorf("GET after Close: %d %v, want still 4", n, err)
	}
}

func copy8(dst *[8]int8, s string) {
	for i := 0; i < len(s) && i < 8; i++ {
		dst[i] = int8(s[i])
	}
}

// Loading again over the pins of an earlier loader reuses them: the counts go on. A pin with
// another max_entries is replaced by an empty map, and Replaced says so.
func TestReloadKeepsCountsAndReplacesIncompatiblePins(t *testing.T) {
	needRoot(t)
	serialize(t)
	dir := mountBPFFS(t)
	tr := load(t, Options{PinDir: dir, PinGroup: -1, MaxEntries: 1024})
	url := server(t)
	do(t, "GET", url+"/200", 200)
	tr.Close()

	tr = load(t, Options{PinDir: dir, PinGroup: -1, MaxEntries: 1024})
	if len(tr.Replaced()) != 0 {
		t.Fatalf("compatible pins replaced: %v", tr.Replaced())
	}
	do(t, "GET", server(t)+"/200", 200) // a new server: its socket is accepted after the attach
	req, resp := counts(t, tr, uint32(os.Getpid()))
	if req["GET"] != 2 || resp[200] != 2 {
		t.Fatalf("after a reload: requests %v responses %v, want GET 2 and 200 2", req, resp)
	}
	tr.Close()

	tr = load(t, Options{PinDir: dir, PinGroup: -1, MaxEntries: 2048})
	got := strings.Join(tr.Replaced(), "; ")
	if len(tr.Replaced()) != 2 || !strings.Contains(got, "http_requests (MaxEntries: 1024 changed to 2048)") ||
		!strings.Contains(got, "http_responses (MaxEntries: 1024 changed to 2048)") {
		t.Fatalf("Replaced %q", got)
	}
	info, err := tr.objs.HttpRequests.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxEntries != 2048 {
		t.Fatalf("max_entries %d after the replacement", info.MaxEntries)
	}
	if req, resp := counts(t, tr, uint32(os.Getpid())); len(req) != 0 || len(resp) != 0 {
		t.Fatalf("a replaced map kept counts: %v %v", req, resp)
	}
	if r, _, err := tr.Drops(); err != nil || r != 0 {
		t.Fatalf("http_drops (compatible, reused): %d %v", r, err)
	}
}

// A process that served HTTP and exited: the first Prune after its exit marks it, Prune keeps
// its keys for ExitedGrace (stats-pull reads its final counts), and the first Prune at least
// ExitedGrace after the mark deletes them, all of them; our own (live) keys stay.
func TestPruneDeletesExitedProcess(t *testing.T) {
	needRoot(t)
	serialize(t)
	const grace = 30 * time.Second
	tr := load(t, Options{PinDir: mountBPFFS(t), PinGroup: -1, ExitedGrace: grace})
	own := server(t)
	do(t, "GET", own+"/200", 200)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STATSPIPE_LOADER_TEST_SERVE=3")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child printed no address: %v", err)
	}
	url := "http://" + strings.TrimSpace(addr)
	do(t, "GET", url+"/", http.StatusAccepted)
	do(t, "POST", url+"/", http.StatusAccepted)
	do(t, "PUT", url+"/", http.StatusAccepted)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child did not exit")
	}
	child := uint32(cmd.Process.Pid)
	if ProcessAlive(child) {
		t.Fatalf("pid %d still exists after Wait", child)
	}
	req, resp := counts(t, tr, child)
	if !equal(req, map[string]uint64{"GET": 1, "POST": 1, "PUT": 1}) || !equal(resp, map[uint32]uint64{202: 3}) {
		t.Fatalf("child's counts %v %v", req, resp)
	}

	t0 := time.Now()
	st, err := tr.Prune(t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 0 || st.Waiting < 1 {
		t.Fatalf("first Prune after the exit: %+v, want the child marked, nothing deleted", st)
	}
	st, err = tr.Prune(t0.Add(grace - time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if req, _ := counts(t, tr, child); len(req) != 3 || st.Keys != 0 {
		t.Fatalf("Prune before the grace ended deleted keys: %+v, left %v", st, req)
	}
	st, err = tr.Prune(t0.Add(grace))
	if err != nil {
		t.Fatal(err)
	}
	if req, resp := counts(t, tr, child); len(req) != 0 || len(resp) != 0 {
		t.Fatalf("after the grace: %+v, child's keys left %v %v", st, req, resp)
	}
	if st.Pids < 1 || st.Keys < 4 {
		t.Fatalf("stats %+v, want at least the child's pid and 4 keys", st)
	}
	if req, _ := counts(t, tr, uint32(os.Getpid())); req["GET"] != 1 {
		t.Fatalf("our own keys were pruned: %v", req)
	}
	// Only Prune deletes: traffic since can only have added keys.
	if n := len(pidsKeys(t, tr)); st.Requests+st.Responses > n || st.Requests+st.Responses < 1 {
		t.Fatalf("entries %+v vs %d keys in the maps", st, n)
	}
}

func pidsKeys(t *testing.T, tr *Tracer) []uint32 {
	var out []uint32
	rk, _ := keys[httpStatsReqKey](tr.objs.HttpRequests, tr.maxEntries)
	for _, k := range rk {
		out = append(out, k.Pid)
	}
	sk, _ := keys[httpStatsRespKey](tr.objs.HttpResponses, tr.maxEntries)
	for _, k := range sk {
		out = append(out, k.Pid)
	}
	return out
}

// The pruning rule with a fake liveness and keys written from user space: a pid found alive
// again before the grace ended (reused) is unmarked; one Prune reads at most MaxEntries keys;
// the dead bookkeeping forgets pids no longer in the maps.
func TestPruneRule(t *testing.T) {
	needRoot(t)
	alive := map[uint32]bool{}
	tr := load(t, Options{PinDir: mountBPFFS(t), PinGroup: -1, MaxEntries: 64, ExitedGrace: 10 * time.Second,
		Alive: func(pid uint32) bool { return alive[pid] }})
	// Fake pids above pid_max (4194304): no real process has their keys.
	const a, b = 1<<23 + 1, 1<<23 + 2
	one := uint64(1)
	for _, pid := range []uint32{a, b} {
		k := httpStatsReqKey{Pid: pid}
		copy8(&k.Method, "GET")
		if err := tr.objs.HttpRequests.Put(&k, &one); err != nil {
			t.Fatal(err)
		}
		if err := tr.objs.HttpResponses.Put(&httpStatsRespKey{Pid: pid, Code: 200}, &one); err != nil {
			t.Fatal(err)
		}
	}
	has := func(pid uint32) bool {
		for _, p := range pidsKeys(t, tr) {
			if p == pid {
				return true
			}
		}
		return false
	}
	t0 := time.Now()
	alive[a] = true
	if _, err := tr.Prune(t0); err != nil { // b marked dead at t0
		t.Fatal(err)
	}
	alive[b] = true // b's pid reused: unmarked
	if _, err := tr.Prune(t0.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	alive[a], alive[b] = false, false // both marked at t0+6s
	if _, err := tr.Prune(t0.Add(6 * time.Second)); err != nil {
		t.Fatal(err)
	}
	st, err := tr.Prune(t0.Add(15 * time.Second)) // 10 s after b's first mark, 9 s after the second
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 0 || !has(a) || !has(b) {
		t.Fatalf("a reused pid kept its first mark: %+v", st)
	}
	st, err = tr.Prune(t0.Add(16 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids != 2 || st.Keys != 4 || has(a) || has(b) || len(tr.dead) != 0 {
		t.Fatalf("after the grace: %+v, dead %v", st, tr.dead)
	}

	// Bounded: with more keys in a map than max entries could ever be (not possible in the
	// kernel), a walk stops at max.
	for pid := uint32(1 << 24); pid < 1<<24+10; pid++ {
		if err := tr.objs.HttpResponses.Put(&httpStatsRespKey{Pid: pid, Code: 200}, &one); err != nil {
			t.Fatal(err)
		}
	}
	if ks, err := keys[httpStatsRespKey](tr.objs.HttpResponses, 4); err != nil || len(ks) != 4 {
		t.Fatalf("keys with max 4: %d %v", len(ks), err)
	}
}

// A full map is counted, never silent: with MaxEntries 2 and three methods from this process,
// GET and POST take the two entries and the DELETE is one request drop; the responses map
// (one code) drops nothing. The tracer sees the whole machine, so a witness tracer with
// large maps watches the same window: when it saw another process's HTTP traffic (which could
// take entries or add drops), the window is retried, at most 5 times.
func TestFullMapCountsDrops(t *testing.T) {
	needRoot(t)
	serialize(t)
	for attempt := 1; attempt <= 5; attempt++ {
		witness := load(t, Options{PinDir: mountBPFFS(t), PinGroup: -1})
		tr := load(t, Options{PinDir: mountBPFFS(t), PinGroup: -1, MaxEntries: 2})
		url := server(t)
		do(t, "GET", url+"/200", 200)
		do(t, "POST", url+"/200", 200)
		do(t, "DELETE", url+"/200", 200)
		r, s, err := tr.Drops()
		req, resp := counts(t, tr, uint32(os.Getpid()))
		tr.Close()
		foreign := pids(t, witness)
		witness.Close()
		if err != nil {
			t.Fatal(err)
		}
		delete(foreign, uint32(os.Getpid()))
		if len(foreign) > 0 {
			t.Logf("attempt %d: other processes served HTTP meanwhile (%v): retrying", attempt, foreign)
			continue
		}
		if r != 1 || s != 0 {
			t.Fatalf("drops: requests %d responses %d, want 1 and 0", r, s)
		}
		if !equal(req, map[string]uint64{"GET": 1, "POST": 1}) || !equal(resp, map[uint32]uint64{200: 3}) {
			t.Fatalf("full maps hold %v %v", req, resp)
		}
		return
	}
	t.Fatal("five windows in a row saw other processes' HTTP traffic")
}

// A pin directory that is not on a bpffs (here the test's temporary directory, and a
// directory below it that does not exist yet) gives the mount hint, not a crash.
func TestLoadNotOnBPFFS(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "statspipe", "http")} {
		_, err := Load(Options{PinDir: dir, PinGroup: -1})
		want := dir + ` is not on a bpf filesystem: mount one with "mount -t bpf bpf /sys/fs/bpf" (README http-ebpf, "Privileges")`
		if !errors.Is(err, ErrNotBPFFS) || err.Error() != want {
			t.Errorf("Load(%s): %v, want %q", dir, err, want)
		}
		if _, err := os.Stat(filepath.Join(dir, RequestsMap)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("something was created in %s: %v", dir, err)
		}
	}
}

// EPERM from the kernel becomes ErrNoPrivilege, naming the capabilities and without
// cilium/ebpf's RLIMIT_MEMLOCK hint; errors.Is(err, os.ErrPermission) still holds.
func TestLoadErrorClassifiesEPERM(t *testing.T) {
	cilium := fmt.Errorf("field SysEnter: program sys_enter: load program: %w (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", syscall.EPERM)
	err := loadError("loading the HTTP statistics program", cilium)
	want := "loading the HTTP statistics program: insufficient privileges for eBPF: loading eBPF programs needs root or CAP_BPF+CAP_PERFMON (operation not permitted)"
	if !errors.Is(err, ErrNoPrivilege) || !errors.Is(err, os.ErrPermission) || err.Error() != want {
		t.Fatalf("%v\nwant %s", err, want)
	}
	other := loadError("x", errors.New("boom"))
	if errors.Is(other, ErrNoPrivilege) || other.Error() != "x: boom" {
		t.Fatalf("%v", other)
	}
}
