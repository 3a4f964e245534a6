package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
	"golang.org/x/sys/unix"
)

// shortDir is a directory for UNIX sockets (t.TempDir() paths can exceed 108 bytes).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// building hands a spool snapshot to sources the way the pull loop does.
type building struct{ b *spool.Building }

func (w building) Create(name string) (pull.SnapshotFile, error) { return w.b.Create(name) }

func newBuilding(t testing.TB) *spool.Building {
	t.Helper()
	base := t.TempDir()
	w, err := spool.NewWriter(filepath.Join(base, "in"), filepath.Join(base, "tmp"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	b, err := w.Begin(1795312744)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Abort() })
	return b
}

// pullAll runs every source of one round in parallel, like the loop, and returns each
// source's error by name.
func pullAll(t testing.TB, ctx context.Context, p *Provider, b *spool.Building) map[string]error {
	t.Helper()
	sources, err := p.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]error{}
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Pull(ctx, building{b})
			mu.Lock()
			out[s.Name()] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func sourceNames(t *testing.T, p *Provider) []string {
	t.Helper()
	ss, err := p.Sources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "T-tcp-and-unix-servers", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSocketDirScan(t *testing.T) {
	dir, elsewhere := shortDir(t), shortDir(t)
	for _, n := range []string{"admin2.sock", "admin1.sock"} {
		testrig.ServeFakeStats(t, "unix", filepath.Join(dir, n), nil, false)
	}
	testrig.ServeFakeStats(t, "unix", filepath.Join(elsewhere, "real.sock"), nil, false)
	os.Symlink(filepath.Join(elsewhere, "real.sock"), filepath.Join(dir, "link.sock"))
	os.Symlink(filepath.Join(elsewhere, "gone.sock"), filepath.Join(dir, "gone.sock"))
	os.WriteFile(filepath.Join(dir, "haproxy.pid"), []byte("1\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	tcp := testrig.ServeFakeStats(t, "tcp", "127.0.0.1:0", nil, false)

	log, logs := testrig.Logger()
	p := New(Options{
		SocketDir: dir,
		Servers: []config.Server{
			{Network: "unix", Address: filepath.Join(dir, "admin1.sock"), Name: "admin1.sock"}, // same socket again
			{Network: "tcp", Address: tcp.Address, Name: tcp.Address},
			{Network: "unix", Address: filepath.Join(elsewhere, "real.sock"), Name: "admin2.sock"}, // name clash
		},
	}, log)
	want := strings.Join([]string{"admin1.sock", "admin2.sock", "link.sock", tcp.Address}, " ")
	if got := strings.Join(sourceNames(t, p), " "); got != want {
		t.Fatalf("sources %s, want %s", got, want)
	}
	for _, skipped := range []string{"gone.sock", "haproxy.pid", "sub"} {
		if n := len(logs.Lines("level=WARN", "skipping entry of socket-dir", filepath.Join(dir, skipped))); n != 1 {
			t.Errorf("%s: %d warnings, want 1:\n%s", skipped, n, logs)
		}
	}
	if len(logs.Lines("level=WARN", "gone.sock", "dangling symlink")) != 1 {
		t.Errorf("dangling symlink not named as such:\n%s", logs)
	}
	if len(logs.Lines("level=WARN", "same snapshot files", "real.sock")) != 1 {
		t.Errorf("name clash not warned:\n%s", logs)
	}
	// The next round repeats the skips at debug level only.
	sourceNames(t, p)
	if n := len(logs.Lines("level=WARN", "skipping entry")); n != 3 {
		t.Errorf("%d skip warnings after two rounds, want 3:\n%s", n, logs)
	}
	if n := len(logs.Lines("level=DEBUG", "skipping entry")); n != 3 {
		t.Errorf("%d skip debug lines after two rounds, want 3", n)
	}

	empty := New(Options{SocketDir: shortDir(t)}, log)
	if got := sourceNames(t, empty); len(got) != 0 {
		t.Fatalf("sources in an empty dir: %v", got)
	}
	if len(logs.Lines("found zero UNIX sockets under")) != 1 {
		t.Errorf("zero sockets not logged:\n%s", logs)
	}
	if _, err := New(Options{SocketDir: filepath.Join(dir, "missing")}, log).Sources(context.Background()); err == nil {
		t.Fatal("a missing socket-dir must fail the round")
	}
}

func TestRepliesStoredVerbatimUnderHAProxyNames(t *testing.T) {
	dir := shortDir(t)
	tcp := testrig.ServeFakeStats(t, "tcp", "127.0.0.1:0", testrig.FakeReply{
		"show info": golden(t, "127.0.0.1:31999_info"), "show stat": golden(t, "127.0.0.1:31999_stat"),
	}, false)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "admin5.sock"), testrig.FakeReply{
		"show info": golden(t, "admin5.sock_info"), "show stat": golden(t, "admin5.sock_stat"),
	}, false)
	log, _ := testrig.Logger()
	p := New(Options{SocketDir: dir, Servers: []config.Server{{Network: "tcp", Address: tcp.Address, Name: tcp.Address}}, Workers: 1, BufferLimit: 100}, log)
	b := newBuilding(t)
	for name, err := range pullAll(t, context.Background(), p, b) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for file, want := range map[string]string{
		tcp.Address + "_info": "127.0.0.1:31999_info", tcp.Address + "_stat": "127.0.0.1:31999_stat",
		"admin5.sock_info": "admin5.sock_info", "admin5.sock_stat": "admin5.sock_stat",
	} {
		got, err := os.ReadFile(filepath.Join(b.Path(), file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, golden(t, want)) {
			t.Errorf("%s differs from the reply (%d vs %d bytes)", file, len(got), len(golden(t, want)))
		}
	}
	if des, _ := os.ReadDir(b.Path()); len(des) != 4 {
		t.Fatalf("%d files, want 4", len(des))
	}
}

func TestEmptyReplyFails(t *testing.T) {
	dir := shortDir(t)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "admin1.sock"), testrig.FakeReply{"show info": []byte("Name: HAProxy\n"), "show stat": {}}, false)
	log, _ := testrig.Logger()
	errs := pullAll(t, context.Background(), New(Options{SocketDir: dir}, log), newBuilding(t))
	if err := errs["admin1.sock"]; err == nil || !strings.Contains(err.Error(), `received zero data for "show stat"`) {
		t.Fatalf("empty reply: %v", err)
	}
}

func TestSilentSocketFailsAtDeadlineWithoutStarvingOthers(t *testing.T) {
	dir := shortDir(t)
	for _, n := range []string{"hung1.sock", "hung2.sock", "hung3.sock"} {
		testrig.ServeFakeStats(t, "unix", filepath.Join(dir, n), nil, true)
	}
	big := append(bytes.Repeat([]byte("x"), 1<<20), "\n\n"...) // HAProxy ends a reply with an empty line
	for _, n := range []string{"ok1.sock", "ok2.sock"} {
		testrig.ServeFakeStats(t, "unix", filepath.Join(dir, n), testrig.FakeReply{"show info": big, "show stat": big}, false)
	}
	log, _ := testrig.Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs := pullAll(t, ctx, New(Options{SocketDir: dir, Workers: 1}, log), newBuilding(t))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("pull took %s with a 300 ms deadline", took)
	}
	for name, err := range errs {
		hung := strings.HasPrefix(name, "hung")
		if hung && (err == nil || !strings.Contains(err.Error(), "deadline exceeded")) {
			t.Errorf("%s: %v, want a deadline error", name, err)
		}
		if !hung && err != nil {
			t.Errorf("%s failed next to silent sockets with one worker: %v", name, err)
		}
	}
}

func TestReadErrorIsASourceFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write(bytes.Repeat([]byte("y"), 64<<10))
			c.(*net.TCPConn).SetLinger(0) // close with RST: the reader gets ECONNRESET
			c.Close()
		}
	}()
	log, _ := testrig.Logger()
	addr := l.Addr().String()
	p := New(Options{Servers: []config.Server{{Network: "tcp", Address: addr, Name: addr}}}, log)
	errs := pullAll(t, context.Background(), p, newBuilding(t))
	if err := errs[addr]; err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reset connection: %v", err)
	}
}

func TestConnectRetries(t *testing.T) {
	closed := testrig.FreePort(t) // refuses connections
	server := []config.Server{{Network: "tcp", Address: closed, Name: closed}}
	for _, retries := range []int{0, 2} {
		log, logs := testrig.Logger()
		p := New(Options{Servers: server, Retries: retries, Interval: 20 * time.Millisecond, Timeout: time.Second}, log)
		errs := pullAll(t, context.Background(), p, newBuilding(t))
		if err := errs[closed]; err == nil || !strings.Contains(err.Error(), "failed to connect to TCP socket "+closed+" after") {
			t.Fatalf("retries=%d: %v", retries, err)
		}
		// One connection per socket (show info;show stat), retried `retries` times.
		caught := logs.Lines("level=WARN", "when connecting to TCP socket "+closed, "connection refused", "sleeping for 0.02 seconds")
		if len(caught) != retries {
			t.Fatalf("retries=%d: %d retry lines, want %d:\n%s", retries, len(caught), retries, logs)
		}
		for r := retries; r >= 1; r-- {
			if n := len(logs.Lines("remaining tries " + string(rune('0'+r)))); n != 1 {
				t.Errorf("retries=%d: %d lines with remaining tries %d", retries, n, r)
			}
		}
	}

	log, logs := testrig.Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p := New(Options{Servers: server, Retries: -1, Interval: 10 * time.Millisecond}, log)
	errs := pullAll(t, ctx, p, newBuilding(t))
	if err := errs[closed]; err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("retries=-1: %v", err)
	}
	if n := len(logs.Lines("remaining tries unlimited")); n < 6 {
		t.Fatalf("retries=-1: only %d attempts in 300 ms", n)
	}
}

func TestRetrySucceedsWhenSocketAppears(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "late.sock")
	log, logs := testrig.Logger()
	p := New(Options{Servers: []config.Server{{Network: "unix", Address: path, Name: "late.sock"}}, Retries: 50, Interval: 20 * time.Millisecond}, log)
	done := make(chan map[string]error)
	b := newBuilding(t)
	go func() { done <- pullAll(t, context.Background(), p, b) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(logs.Lines("when connecting to UNIX socket "+path)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	testrig.ServeFakeStats(t, "unix", path, testrig.FakeReply{"show info": []byte("Name: HAProxy\n\n"), "show stat": []byte("# pxname,svname,\n\n")}, false)
	if err := (<-done)["late.sock"]; err != nil {
		t.Fatalf("socket appeared while retrying: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.Path(), "late.sock_stat")); string(got) != "# pxname,svname,\n\n" {
		t.Fatalf("stat file %q", got)
	}
}

func TestRegisteredFromConfig(t *testing.T) {
	log, _ := testrig.Logger()
	if p := FromConfig(config.Pull{}, log); p != nil {
		t.Fatalf("no socket-dir, no servers: %v", p)
	}
	hp := FromConfig(config.Pull{SocketDir: "/nonexistent", Workers: 8, BufferLimit: 6291456, AllowPartial: true}, log)
	if hp == nil || !reflect.DeepEqual(hp.Info(), pull.ProviderInfo{Source: Kind, Kind: Kind, TopLevel: true, AllowPartial: true}) {
		t.Fatalf("socket-dir set: %+v", hp)
	}
	if hp.bufSize != maxCopyBuffer || cap(hp.bufs) != 8 {
		t.Fatalf("buffer %d × %d", hp.bufSize, cap(hp.bufs))
	}
}

// mksock creates a UNIX socket file with no listener behind it: the scan only looks at types.
func mksock(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mknod(path, unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
}

// A socket-dir holding more UNIX sockets than a round pulls gives the first
// MaxSocketDirSockets by name and an error naming the directory and the count (the round then
// fails, or is partial with allow-partial); too many entries of any kind are not all listed.
func TestSocketDirIsBounded(t *testing.T) {
	dir := shortDir(t)
	const extra = 3
	for i := range MaxSocketDirSockets + extra {
		mksock(t, filepath.Join(dir, fmt.Sprintf("s%05d.sock", i)))
	}
	for i := range 20 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.pid", i)), nil, 0o644)
	}
	log, logs := testrig.Logger()
	p := New(Options{SocketDir: dir, Servers: []config.Server{{Network: "tcp", Address: "127.0.0.1:1", Name: "127.0.0.1:1"}}}, log)
	sources, err := p.Sources(context.Background())
	want := fmt.Sprintf("socket-dir %s holds %d UNIX sockets, more than the %d a round pulls; "+
		"pulling the first %d by name, the round misses the other %d",
		dir, MaxSocketDirSockets+extra, MaxSocketDirSockets, MaxSocketDirSockets, extra)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if len(sources) != MaxSocketDirSockets+1 {
		t.Fatalf("%d sources, want %d sockets and the server", len(sources), MaxSocketDirSockets)
	}
	if first, last := sources[0].Name(), sources[MaxSocketDirSockets-1].Name(); first != "s00000.sock" ||
		last != fmt.Sprintf("s%05d.sock", MaxSocketDirSockets-1) || sources[MaxSocketDirSockets].Name() != "127.0.0.1:1" {
		t.Errorf("sources from %s to %s then %s: want the first by name, then servers", first, last, sources[MaxSocketDirSockets].Name())
	}
	// 20 regular files: 10 named at warning level, the rest counted, and nothing new next round
	if n := len(logs.Lines("level=WARN", "skipping entry of socket-dir")); n != maxSkipWarnings {
		t.Errorf("%d skipped entries named at warning level, want %d:\n%s", n, maxSkipWarnings, logs)
	}
	if len(logs.Lines("level=WARN", "skipping 10 more entries of socket-dir", dir)) != 1 {
		t.Errorf("the other skipped entries are not counted:\n%s", logs)
	}
	p.Sources(context.Background())
	if n := len(logs.Lines("level=WARN", "skipping")); n != maxSkipWarnings+1 {
		t.Errorf("%d skip warnings after a second round, want still %d", n, maxSkipWarnings+1)
	}

	// exactly at the bound: no error
	os.Remove(filepath.Join(dir, "s00000.sock"))
	os.Remove(filepath.Join(dir, "s00001.sock"))
	os.Remove(filepath.Join(dir, "s00002.sock"))
	if sources, err := p.Sources(context.Background()); err != nil || len(sources) != MaxSocketDirSockets+1 {
		t.Fatalf("%d sockets: %d sources, %v", MaxSocketDirSockets, len(sources), err)
	}

	// more entries than are listed
	p.maxEntries = 100
	sources, err = p.Sources(context.Background())
	if err == nil || !strings.Contains(err.Error(), "socket-dir "+dir+" holds more than 100 entries") {
		t.Fatalf("error %v, want one about the entries", err)
	}
	if len(sources) > 101 {
		t.Errorf("%d sources from 100 entries", len(sources))
	}
}

// TestBothRepliesSplitAtAnyOffset: the one-connection reply is split at the end of `show
// info`'s wherever the reads and the copy buffer cut it, including an empty line straddling
// two reads or a flush of the buffer.
func TestBothRepliesSplitAtAnyOffset(t *testing.T) {
	stat := golden(t, "admin5.sock_stat")
	for _, infoLen := range []int{2, 3, 511, 512, 513, 1022, 1023, 1024, 1025, 1026, 2047, 2048, 2049, 5000} {
		dir := shortDir(t)
		info := append(bytes.Repeat([]byte("i"), infoLen-2), "\n\n"...)
		for i := 50; i < len(info)-3; i += 51 {
			info[i] = '\n' // single newlines inside, as `Name: value` lines
		}
		testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "a.sock"), testrig.FakeReply{"show info": info, "show stat": stat}, false)
		log, _ := testrig.Logger()
		b := newBuilding(t)
		if err := pullAll(t, context.Background(), New(Options{SocketDir: dir, BufferLimit: 1}, log), b)["a.sock"]; err != nil {
			t.Fatalf("info of %d bytes: %v", infoLen, err)
		}
		for file, want := range map[string][]byte{"a.sock_info": info, "a.sock_stat": stat} {
			if got, _ := os.ReadFile(filepath.Join(b.Path(), file)); !bytes.Equal(got, want) {
				t.Errorf("info of %d bytes: %s holds %d bytes, want %d", infoLen, file, len(got), len(want))
			}
		}
	}
}

func TestInfoEnd(t *testing.T) {
	for _, c := range []struct {
		b      string
		from   int
		lastNL bool
		want   int
	}{
		{"", 0, false, -1}, {"\n", 0, false, -1}, {"\n", 0, true, 1}, {"\n\n", 0, false, 2},
		{"a\n\nb", 0, false, 3}, {"a\n\nb", 2, false, 3}, {"a\n\nb", 3, false, -1}, {"ab\n", 3, false, -1},
		{"ab\n\n", 3, false, 4}, {"x\n", 0, true, -1},
	} {
		if got := infoEnd([]byte(c.b), c.from, c.lastNL); got != c.want {
			t.Errorf("infoEnd(%q, %d, %v) = %d, want %d", c.b, c.from, c.lastNL, got, c.want)
		}
	}
}
