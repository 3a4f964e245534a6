package haproxy

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// showProc26 is HAProxy 2.6.12's show proc after two reloads, one old worker left.
const showProc26 = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
	"5784            master          2 [failed: 0]   0d00h12m30s     2.6.12-1+deb12u4\n" +
	"# workers\n" +
	"20360           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n" +
	"# old workers\n" +
	"5787            worker          2               0d00h12m30s     2.6.12-1+deb12u4\n" +
	"# programs\n" +
	"5790            dataplaneapi    2               0d00h12m30s     -\n" +
	"\n"

func TestParseShowProc(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        []worker
		err         string
	}{
		{"2.6 with an old worker and a program", showProc26,
			[]worker{{pid: 20360}, {pid: 5787, old: true, gen: 2}}, ""},
		{"no old worker", "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
			"5784            master          0 [failed: 0]   0d00h11m59s     2.6.12-1+deb12u4\n# workers\n" +
			"5787            worker          0               0d00h11m59s     2.6.12-1+deb12u4\n# programs\n\n",
			[]worker{{pid: 5787}}, ""},
		// HAProxy 2.0–2.4 (management.txt): a <relative PID> column, nbproc workers
		{"2.4 relative PID column", "#<PID>          <type>          <relative PID>  <reloads>       <uptime>        <version>\n" +
			"1162            master          0               5               0d00h02m07s     2.4.0\n# workers\n" +
			"1271            worker          1               0               0d00h00m00s     2.4.0\n" +
			"1272            worker          2               0               0d00h00m00s     2.4.0\n# old workers\n" +
			"1233            worker          1               3               0d00h00m43s     2.4.0\n# programs\n\n",
			[]worker{{pid: 1271}, {pid: 1272}, {pid: 1233, old: true, gen: 3}}, ""},
		{"not show proc", "Unknown command, but maybe one of the following ones is a better match:\n", nil, "no header line"},
		{"header without reloads", "#<PID> <type>\n# workers\n1 worker\n", nil, "lacks <PID>, <type> or <reloads>"},
		{"bad pid", "#<PID> <type> <reloads>\n# workers\nx worker 0\n", nil, "bad pid or reloads"},
		{"short row", "#<PID> <type> <reloads>\n# workers\n12 worker\n", nil, "unexpected row"},
	} {
		got, err := parseShowProc([]byte(tc.reply))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
}

// fakeMaster answers like a master CLI: one "<command>;quit" line per connection, the reply
// from answer (nil: close without a reply).
type fakeMaster struct {
	path     string
	answer   func(cmd string, n int64) []byte
	commands atomic.Int64
	mu       sync.Mutex
	seen     []string
}

func serveFakeMaster(t *testing.T, dir string, answer func(cmd string, n int64) []byte) *fakeMaster {
	t.Helper()
	f := &fakeMaster{path: filepath.Join(dir, "master.sock"), answer: answer}
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
				if err != nil {
					return
				}
				cmd, ok := strings.CutSuffix(strings.TrimSpace(line), ";quit")
				if !ok {
					c.Write([]byte("command without ;quit\n"))
					return
				}
				n := f.commands.Add(1)
				f.mu.Lock()
				f.seen = append(f.seen, cmd)
				f.mu.Unlock()
				c.Write(f.answer(cmd, n))
			}()
		}
	}()
	return f
}

func (f *fakeMaster) count(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.seen {
		if c == cmd {
			n++
		}
	}
	return n
}

func showProcWith(current int, old ...[2]int) string {
	var b strings.Builder
	b.WriteString("#<PID>          <type>          <reloads>       <uptime>        <version>      \n")
	b.WriteString("1               master          3 [failed: 0]   0d00h12m30s     2.6.12-1+deb12u4\n# workers\n")
	fmt.Fprintf(&b, "%-16dworker          0               0d00h00m01s     2.6.12-1+deb12u4\n# old workers\n", current)
	for _, o := range old {
		fmt.Fprintf(&b, "%-16dworker          %-16d0d00h12m30s     2.6.12-1+deb12u4\n", o[0], o[1])
	}
	b.WriteString("# programs\n\n")
	return b.String()
}

func workerReply(cmd string) []byte {
	pid, what, _ := strings.Cut(strings.TrimPrefix(cmd, "@!"), " ")
	switch what {
	case "show info":
		return []byte("Name: HAProxy\nPid: " + pid + "\n\n")
	case "show stat":
		return []byte("# pxname,svname,stot,\nbe,BACKEND," + pid + ",\n\n")
	}
	return []byte("Unknown command.\n")
}

func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestMasterFilesPerWorkerGeneration(t *testing.T) {
	f := serveFakeMaster(t, shortDir(t), func(cmd string, _ int64) []byte {
		if cmd == "show proc" {
			return []byte(showProcWith(300, [2]int{200, 1}, [2]int{100, 2}))
		}
		return workerReply(cmd)
	})
	log, _ := testrig.Logger()
	p := New(Options{MasterSockets: []string{f.path}}, log)
	if got := sourceNames(t, p); !slices.Equal(got, []string{"master.sock"}) {
		t.Fatalf("sources %v", got)
	}
	b := newBuilding(t)
	if errs := pullAll(t, context.Background(), p, b); errs["master.sock"] != nil {
		t.Fatal(errs["master.sock"])
	}
	want := []string{"master.sock@0_info", "master.sock@0_stat", "master.sock@1_info", "master.sock@1_stat",
		"master.sock@2_info", "master.sock@2_stat", "master.sock_proc"}
	if got := snapshotFiles(t, b.Path()); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for file, pid := range map[string]string{"master.sock@0_info": "300", "master.sock@1_info": "200", "master.sock@2_stat": "100"} {
		data, _ := os.ReadFile(filepath.Join(b.Path(), file))
		if !strings.Contains(string(data), pid) {
			t.Errorf("%s = %q, want worker %s's reply", file, data, pid)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(b.Path(), "master.sock_proc")); string(data) != showProcWith(300, [2]int{200, 1}, [2]int{100, 2}) {
		t.Errorf("_proc is not the show proc reply verbatim: %q", data)
	}
	if n := f.commands.Load(); n != 7 {
		t.Errorf("%d commands, want 7 (show proc and two per worker)", n)
	}
}

func TestMasterDuplicateGenerations(t *testing.T) {
	ws, err := (&masterSocket{sock: socket{name: "m"}}).workers([]byte(
		"#<PID> <type> <relative PID> <reloads>\n# workers\n11 worker 1 0\n12 worker 2 0\n# old workers\n9 worker 1 1\n8 worker 2 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, w := range ws {
		files = append(files, w.file)
	}
	if want := []string{"m@0", "m@0-2", "m@1", "m@1-2"}; !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
}

func TestMasterTooManyWorkers(t *testing.T) {
	old := make([][2]int, MaxMasterWorkers) // + the current one
	for i := range old {
		old[i] = [2]int{1000 + i, i + 1}
	}
	f := serveFakeMaster(t, shortDir(t), func(cmd string, _ int64) []byte {
		if cmd == "show proc" {
			return []byte(showProcWith(999, old...))
		}
		return workerReply(cmd)
	})
	log, _ := testrig.Logger()
	b := newBuilding(t)
	err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}}, log), b)["master.sock"]
	if err == nil || !strings.Contains(err.Error(), "master CLI socket "+f.path+" lists 65 workers, more than the 64") {
		t.Fatalf("error %v", err)
	}
	if n := f.commands.Load(); n != 1 {
		t.Errorf("%d commands, want show proc only", n)
	}
	// exactly 64 is fine
	old = old[:MaxMasterWorkers-1]
	b = newBuilding(t)
	if err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}}, log), b)["master.sock"]; err != nil {
		t.Fatal(err)
	}
	if n := len(snapshotFiles(t, b.Path())); n != 2*MaxMasterWorkers+1 {
		t.Errorf("%d files, want %d", n, 2*MaxMasterWorkers+1)
	}
}

// A worker that exits after show proc is skipped: the master no longer knows it (its reply
// names the PID), or its request fails and the next show proc does not list it. Its files
// are removed, even one already committed; the round goes on.
func TestMasterWorkerGoneIsSkipped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(cmd string, n int64) []byte
	}{
		{"master does not know the pid", func(cmd string, _ int64) []byte {
			if strings.HasPrefix(cmd, "@!200 ") {
				return []byte("Can't find the target PID matching the prefix '@!200'\n")
			}
			return nil
		}},
		{"stat fails after info, gone from show proc", func(cmd string, _ int64) []byte {
			if cmd == "@!200 show stat" {
				return []byte{} // closed without a reply
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var procs atomic.Int64
			f := serveFakeMaster(t, shortDir(t), func(cmd string, n int64) []byte {
				if cmd == "show proc" {
					if procs.Add(1) == 1 {
						return []byte(showProcWith(300, [2]int{200, 1}))
					}
					return []byte(showProcWith(300))
				}
				if r := tc.answer(cmd, n); r != nil {
					return r
				}
				return workerReply(cmd)
			})
			log, logs := testrig.Logger()
			b := newBuilding(t)
			if err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}}, log), b)["master.sock"]; err != nil {
				t.Fatal(err)
			}
			if got, want := snapshotFiles(t, b.Path()), []string{"master.sock@0_info", "master.sock@0_stat", "master.sock_proc"}; !slices.Equal(got, want) {
				t.Fatalf("files %v, want %v", got, want)
			}
			if n := len(logs.Lines("level=DEBUG", "worker exited between show proc and its request", "pid=200")); n != 1 {
				t.Errorf("%d debug lines for the gone worker, want 1:\n%s", n, logs)
			}
			if n := len(logs.Lines("level=WARN")) + len(logs.Lines("level=ERROR")); n != 0 {
				t.Errorf("warnings or errors:\n%s", logs)
			}
		})
	}
}

// A worker whose request fails while show proc still lists it fails the source.
func TestMasterWorkerFailureStillListedFails(t *testing.T) {
	f := serveFakeMaster(t, shortDir(t), func(cmd string, _ int64) []byte {
		switch cmd {
		case "show proc":
			return []byte(showProcWith(300, [2]int{200, 1}))
		case "@!200 show stat":
			return []byte{}
		}
		return workerReply(cmd)
	})
	log, _ := testrig.Logger()
	err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}}, log), newBuilding(t))["master.sock"]
	if err == nil || !strings.Contains(err.Error(), `received zero data for "@!200 show stat" from master CLI socket `+f.path) {
		t.Fatalf("error %v", err)
	}
	if n := f.count("show proc"); n != 2 {
		t.Errorf("show proc sent %d times, want 2 (the round's, then the check)", n)
	}
}

func TestMasterBadShowProcFails(t *testing.T) {
	for reply, want := range map[string]string{
		"":                   "received zero data for \"show proc\" from master CLI socket",
		"Unknown command.\n": "show proc on master CLI socket %s: no header line",
		"#<PID> <type> <reloads>\n# workers\n0 worker 0\n":    "bad pid or reloads",
		"#<PID> <type> <reloads>\n# workers\n# old workers\n": "master CLI socket %s lists no worker",
		strings.Repeat("#", 1e5):                              "show proc reply of master CLI socket %s is larger than 65536 bytes",
	} {
		f := serveFakeMaster(t, shortDir(t), func(string, int64) []byte { return []byte(reply) })
		log, _ := testrig.Logger()
		err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}}, log), newBuilding(t))["master.sock"]
		if want = strings.ReplaceAll(want, "%s", f.path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reply %.40q: error %v, want %q", reply, err, want)
		}
	}
}

// max-reply-size applies to every reply through the master.
func TestMasterMaxReplySize(t *testing.T) {
	f := serveFakeMaster(t, shortDir(t), func(cmd string, _ int64) []byte {
		if cmd == "show proc" {
			return []byte(showProcWith(300))
		}
		if cmd == "@!300 show stat" {
			return []byte(strings.Repeat("x", 5000))
		}
		return workerReply(cmd)
	})
	log, _ := testrig.Logger()
	err := pullAll(t, context.Background(), New(Options{MasterSockets: []string{f.path}, MaxReplySize: 4096}, log), newBuilding(t))["master.sock"]
	if err == nil || !strings.Contains(err.Error(), `reply to "@!300 show stat" from master CLI socket `+f.path+" is larger than max-reply-size (4096 bytes)") {
		t.Fatalf("error %v", err)
	}
}

// The real thing: haproxy -W -S, a held connection through the frontend, a reload.
func TestMasterRealHAProxyOldWorker(t *testing.T) {
	h := testrig.StartHAProxyMaster(t)
	h.SendTraffic(t, 10)
	first := h.CurrentPid(t)
	release := h.HoldConnection(t)
	second := h.Reload(t)
	log, logs := testrig.Logger()
	p := New(Options{MasterSockets: []string{h.MasterSocket}, Timeout: time.Second}, log)
	b := newBuilding(t)
	if err := pullAll(t, context.Background(), p, b)["master.sock"]; err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	want := []string{"master.sock@0_info", "master.sock@0_stat", "master.sock@1_info", "master.sock@1_stat", "master.sock_proc"}
	if got := snapshotFiles(t, b.Path()); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for file, pid := range map[string]int{"master.sock@0_info": second, "master.sock@1_info": first} {
		data, _ := os.ReadFile(filepath.Join(b.Path(), file))
		if !strings.Contains(string(data), "\nPid: "+strconv.Itoa(pid)+"\n") {
			t.Errorf("%s is not worker %d's show info: %.200q", file, pid, data)
		}
	}
	stat, _ := os.ReadFile(filepath.Join(b.Path(), "master.sock@1_stat"))
	if !strings.HasPrefix(string(stat), "# pxname,svname,") || !strings.Contains(string(stat), "\nbe_app,BACKEND,") {
		t.Errorf("old worker's show stat: %.200q", stat)
	}
	// a pid the master does not know (a worker that exited): the real reply is recognised
	m := &masterSocket{sock: socket{p: p, network: "unix", address: h.MasterSocket, name: "master.sock", master: true}}
	if err := m.pullWorker(context.Background(), building{b}, worker{pid: 1 << 22, old: true, gen: 9, file: "master.sock@9"}, make(chan struct{}, 1)); err != nil {
		t.Fatalf("unknown pid: %v", err)
	}
	if n := len(logs.Lines("level=DEBUG", "worker exited between show proc and its request", "Can't find the target PID")); n != 1 {
		t.Errorf("unknown pid: %d debug lines, want 1:\n%s", n, logs)
	}
	if got := snapshotFiles(t, b.Path()); !slices.Equal(got, want) {
		t.Fatalf("files after the unknown pid %v, want %v", got, want)
	}
	release()
	h.WaitOldWorkers(t, 0, 10*time.Second)
	b = newBuilding(t)
	if err := pullAll(t, context.Background(), p, b)["master.sock"]; err != nil {
		t.Fatal(err)
	}
	if got, want := snapshotFiles(t, b.Path()), []string{"master.sock@0_info", "master.sock@0_stat", "master.sock_proc"}; !slices.Equal(got, want) {
		t.Fatalf("after the old worker left: files %v, want %v", got, want)
	}
}

// BenchmarkMasterRound64Workers is one round through a fake master socket listing 64 workers
// (the maximum), each answering a show stat of 1 MB: 129 requests through one socket, at most
// masterParallel at a time, streamed like the plain sockets (B/op does not grow with the reply).
func BenchmarkMasterRound64Workers(b *testing.B) {
	stat := statReply(1 << 20)
	old := make([][2]int, MaxMasterWorkers-1)
	for i := range old {
		old[i] = [2]int{1000 + i, i + 1}
	}
	proc := []byte(showProcWith(999, old...))
	dir, err := os.MkdirTemp("", "spb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "master.sock"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
				if err != nil {
					return
				}
				switch cmd := strings.TrimSuffix(strings.TrimSpace(line), ";quit"); {
				case cmd == "show proc":
					c.Write(proc)
				case strings.HasSuffix(cmd, " show stat"):
					c.Write(stat)
				default:
					c.Write(workerReply(cmd))
				}
			}()
		}
	}()
	log := slog.New(slog.DiscardHandler)
	base := b.TempDir()
	w, err := spool.NewWriter(filepath.Join(base, "incoming"), filepath.Join(base, "incoming.tmp"), log)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	p := New(Options{MasterSockets: []string{filepath.Join(dir, "master.sock")}, Retries: 1, Timeout: time.Second, Workers: 8}, log)
	loop, err := pull.NewLoop(w, []pull.Provider{p}, pull.Options{Interval: time.Hour, Timeout: time.Minute}, log)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(MaxMasterWorkers * len(stat)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		path := loop.Once(context.Background())
		if path == "" {
			b.Fatal("round published nothing")
		}
		b.StopTimer()
		if st, err := os.Stat(filepath.Join(path, "master.sock@63_stat")); err != nil || st.Size() != int64(len(stat)) {
			b.Fatalf("master.sock@63_stat: %v %v", st, err)
		}
		if err := spool.Remove(path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// parseShowProc never panics, and what it returns is a list of positive pids.
func FuzzParseShowProc(f *testing.F) {
	f.Add([]byte(showProc26))
	f.Add([]byte(showProcWith(300, [2]int{200, 1})))
	f.Add([]byte("#<PID> <type> <relative PID> <reloads>\n# workers\n11 worker 1 0\n# old workers\n9 worker 1 1\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		ws, err := parseShowProc(reply)
		if err != nil {
			return
		}
		for _, w := range ws {
			if w.pid <= 0 || w.gen < 0 || (!w.old && w.gen != 0) {
				t.Fatalf("worker %+v from %q", w, reply)
			}
		}
	})
}

// With [pull] typed, every worker behind a master socket is asked the typed forms too, into
// <name>@<gen>_info.typed and _stat.typed; show proc stays plain.
func TestMasterTypedAsksWorkersTypedForms(t *testing.T) {
	f := serveFakeMaster(t, shortDir(t), func(cmd string, _ int64) []byte {
		if cmd == "show proc" {
			return []byte(showProcWith(300, [2]int{200, 1}))
		}
		if c, ok := strings.CutSuffix(cmd, " typed"); ok {
			return []byte("typed " + string(workerReply(c)))
		}
		return []byte("Unknown command.\n")
	})
	log, _ := testrig.Logger()
	p := New(Options{MasterSockets: []string{f.path}, Typed: true}, log)
	b := newBuilding(t)
	if errs := pullAll(t, context.Background(), p, b); errs["master.sock"] != nil {
		t.Fatal(errs["master.sock"])
	}
	want := []string{"master.sock@0_info.typed", "master.sock@0_stat.typed", "master.sock@1_info.typed",
		"master.sock@1_stat.typed", "master.sock_proc"}
	if got := snapshotFiles(t, b.Path()); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for _, cmd := range []string{"@!300 show info typed", "@!300 show stat typed", "@!200 show info typed", "@!200 show stat typed"} {
		if f.count(cmd) != 1 {
			t.Errorf("%q asked %d times, want once", cmd, f.count(cmd))
		}
	}
	data, _ := os.ReadFile(filepath.Join(b.Path(), "master.sock@1_stat.typed"))
	if !strings.HasPrefix(string(data), "typed # pxname") || !strings.Contains(string(data), "200") {
		t.Errorf("master.sock@1_stat.typed = %q, want worker 200's typed reply", data)
	}
}
