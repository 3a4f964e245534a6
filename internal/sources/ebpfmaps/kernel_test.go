package ebpfmaps

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// The in-process harness shared by every kind's tests (package sourcetest).
var (
	loadConfig = sourcetest.LoadConfig
	baseConf   = sourcetest.BaseConf
	pullOnce   = sourcetest.PullOnce
)

// processPart runs this kind's Format on a snapshot's source directory and returns its lines.
func processPart(t testing.TB, cfg *config.Config, dir string) (string, error) {
	t.Helper()
	return sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, dir)
}

// The kernel round trip: maps created with BTF (and without), pinned in a private bpffs,
// filled, then pulled and processed. Needs root (CI runs as root).

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_SYS_ADMIN) to create maps and mount a bpffs; CI runs as root")
	}
}

// mountBPFFS mounts a private, empty bpffs for the test.
var mountBPFFS = testrig.MountBPFFS

func newMap(t *testing.T, spec *ebpf.MapSpec, pinPath string) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(spec)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("no eBPF privileges: creating map: %v", err)
		}
		t.Fatalf("map %s: %v", spec.Name, err)
	}
	t.Cleanup(func() { m.Close() })
	if err := os.MkdirAll(filepath.Dir(pinPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(pinPath); err != nil {
		t.Fatal(err)
	}
	return m
}

func put(t *testing.T, m *ebpf.Map, k, v any) {
	t.Helper()
	if err := m.Put(k, v); err != nil {
		t.Fatal(err)
	}
}

func u32b(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64b(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// startSleep starts a child process named sleep and returns its PID.
func startSleep(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The child's comm is "sleep" once it has exec'ed: wait for it, bounded.
	for i := 0; i < 500; i++ {
		if c, _ := readComm(strconv.Itoa(cmd.Process.Pid)); c == "sleep" {
			return uint32(cmd.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the child never became sleep")
	return 0
}

type fixture struct {
	dir        string
	ncpu       int
	pidA, pidB uint32
}

// makeMaps creates and fills the test maps in a private bpffs, with a program pin and a link
// pin beside them.
func makeMaps(t *testing.T) fixture {
	needRoot(t)
	f := fixture{dir: mountBPFFS(t)}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	f.ncpu = ncpu

	http := newMap(t, &ebpf.MapSpec{Name: "http_counts", Type: ebpf.Hash, KeySize: 16, ValueSize: 32, MaxEntries: 64,
		Key: tHTTPKey, Value: tHTTPVal}, filepath.Join(f.dir, "http_counts"))
	put(t, http, httpKey(42, 200, 5, 17, "curl", true), httpVal(7, 700, -3, 1, 2, -1))
	put(t, http, httpKey(43, 404, 0, 31, "wget12", false), httpVal(1, 10, 4, 0, 9, 0))

	stats := newMap(t, &ebpf.MapSpec{Name: "cpu_stats", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: 8,
		Key: tU32, Value: tStats}, filepath.Join(f.dir, "cpu_stats"))
	type statsV struct{ Packets, Bytes uint64 }
	vals := make([]statsV, ncpu)
	for i := range vals {
		vals[i] = statsV{uint64(i + 1), uint64(100 * (i + 1))}
	}
	put(t, stats, uint32(1), vals)

	raw := newMap(t, &ebpf.MapSpec{Name: "raw_counts", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 8},
		filepath.Join(f.dir, "raw_counts"))
	put(t, raw, u32b(7), u64b(9))
	rawHex := newMap(t, &ebpf.MapSpec{Name: "raw_hex", Type: ebpf.Hash, KeySize: 4, ValueSize: 16, MaxEntries: 8},
		filepath.Join(f.dir, "raw_hex"))
	put(t, rawHex, u32b(1), append(u64b(1), u64b(2)...))

	f.pidA, f.pidB = startSleep(t), startSleep(t)
	pidKey := &btf.Struct{Name: "pid_key", Size: 8, Members: []btf.Member{{Name: "pid", Type: tU32}, {Name: "code", Type: tU32, Offset: 32}}}
	byPID := newMap(t, &ebpf.MapSpec{Name: "by_pid", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: 16,
		Key: pidKey, Value: tU64}, filepath.Join(f.dir, "sub", "by_pid"))
	pk := func(pid, code uint32) []byte { return append(u32b(pid), u32b(code)...) }
	put(t, byPID, pk(f.pidA, 200), u64b(3))
	put(t, byPID, pk(f.pidB, 200), u64b(5))
	put(t, byPID, pk(f.pidA, 404), u64b(1))
	put(t, byPID, pk(4194305, 200), u64b(11)) // above PID_MAX_LIMIT: never a process

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "noop", Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	if err := prog.Pin(filepath.Join(f.dir, "a_prog")); err != nil {
		t.Fatal(err)
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: prog})
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Pin(filepath.Join(f.dir, "sub", "a_link")); err != nil {
		t.Fatal(err)
	}
	return f
}

// bodyLines returns a body's lines, sorted (a hash map's order is the kernel's).
func bodyLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	slices.Sort(lines)
	return lines
}

func TestKernelPullAndProcess(t *testing.T) {
	f := makeMaps(t)
	dir := t.TempDir()
	conf := baseConf(dir) +
		"[source.maps]\ntype = ebpf-maps\npins = " + f.dir + "\nlayout.raw_counts = key=u32:pid value=u64:count\n" +
		"[source.procs]\ntype = ebpf-maps\npins = " + filepath.Join(f.dir, "sub", "by_pid") + "\ngroup-by = pid\naggregate = sum max\nper-instance-metrics = true\n" +
		"[source.percpu]\ntype = ebpf-maps\npins = " + filepath.Join(f.dir, "cpu_stats") + ", " + filepath.Join(f.dir, "raw_hex") + "\nper-cpu = true\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	part := filepath.Join(snap, "maps")
	metas, _ := filepath.Glob(filepath.Join(part, "*"+spool.MetaSuffix))
	var names []string
	for _, m := range metas {
		names = append(names, strings.TrimSuffix(filepath.Base(m), spool.MetaSuffix))
	}
	// The program and link pins are skipped, the walk recursive.
	if got := strings.Join(names, " "); got != "cpu_stats http_counts raw_counts raw_hex sub_by_pid" {
		t.Fatalf("instances %q\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), `"pin skipped: not a map" source=maps kind=ebpf-maps path=`+filepath.Join(f.dir, "a_prog")+" object=*ebpf.Program") ||
		!strings.Contains(logs.String(), `"pin skipped: not a map" source=maps kind=ebpf-maps path=`+filepath.Join(f.dir, "sub", "a_link")+" object=*link.rawTracepoint") {
		t.Errorf("skipped pins not logged:\n%s", logs)
	}

	// Every entry decoded exactly.
	wantHTTP := []string{
		`{"key":[{"name":"pid","kind":"uint","num":42},{"name":"code","kind":"enum","num":200,"str":"HTTP_200"},{"name":"flags","kind":"uint","num":5},{"name":"kind","kind":"uint","num":17},{"name":"comm","kind":"string","str":"curl"},{"name":"tls","kind":"bool","num":1},{"name":"_pad","kind":"uint","num":0}],` +
			`"value":[{"name":"count","kind":"uint","num":7},{"name":"bytes","kind":"uint","num":700},{"name":"lat.delta","kind":"int","num":-3},{"name":"lat.hist.0","kind":"uint","num":1},{"name":"lat.hist.1","kind":"uint","num":2},{"name":"last","kind":"enum","num":-1,"str":"NEG"}],` +
			`"raw_key":"` + hex.EncodeToString(httpKey(42, 200, 5, 17, "curl", true)) + `","raw_value":"` + hex.EncodeToString(httpVal(7, 700, -3, 1, 2, -1)) + `"}`,
		`{"key":[{"name":"pid","kind":"uint","num":43},{"name":"code","kind":"enum","num":404,"str":"HTTP_404"},{"name":"flags","kind":"uint","num":0},{"name":"kind","kind":"uint","num":31},{"name":"comm","kind":"string","str":"wget12"},{"name":"tls","kind":"bool","num":0},{"name":"_pad","kind":"uint","num":0}],` +
			`"value":[{"name":"count","kind":"uint","num":1},{"name":"bytes","kind":"uint","num":10},{"name":"lat.delta","kind":"int","num":4},{"name":"lat.hist.0","kind":"uint","num":0},{"name":"lat.hist.1","kind":"uint","num":9},{"name":"last","kind":"enum","num":0,"str":"LOW"}],` +
			`"raw_key":"` + hex.EncodeToString(httpKey(43, 404, 0, 31, "wget12", false)) + `","raw_value":"` + hex.EncodeToString(httpVal(1, 10, 4, 0, 9, 0)) + `"}`,
	}
	gotHTTP := bodyLines(t, filepath.Join(part, "http_counts.body"))
	if !slices.Equal(gotHTTP, wantHTTP) {
		t.Errorf("http_counts\n got %s\nwant %s", strings.Join(gotHTTP, "\n"), strings.Join(wantHTTP, "\n"))
	}
	wantRaw := `{"key":[{"name":"pid","kind":"uint","num":7}],"value":[{"name":"count","kind":"uint","num":9}],"raw_key":"07000000","raw_value":"0900000000000000"}`
	if got := bodyLines(t, filepath.Join(part, "raw_counts.body")); len(got) != 1 || got[0] != wantRaw {
		t.Errorf("raw_counts %s", got)
	}
	wantHex := `{"value":[{"name":"0","kind":"uint","num":1},{"name":"1","kind":"uint","num":2}],"raw_key":"01000000","raw_value":"01000000000000000200000000000000"}`
	if got := bodyLines(t, filepath.Join(part, "raw_hex.body")); len(got) != 1 || got[0] != wantHex {
		t.Errorf("raw_hex %s", got)
	}
	var meta spool.InstanceMeta
	if err := spool.ReadJSON(filepath.Join(part, "cpu_stats"+spool.MetaSuffix), &meta); err != nil {
		t.Fatal(err)
	}
	wantMeta := fmt.Sprintf("map[entries:1 key_size:4 key_type:Typedef __u32 map_name:cpu_stats map_type:PerCPUHash max_entries:8 path:%s per_cpu_map:true types:btf value_size:16 value_type:Struct stats]",
		filepath.Join(f.dir, "cpu_stats"))
	if fmt.Sprint(meta.Extra) != wantMeta {
		t.Errorf("cpu_stats meta\n got %v\nwant %s", meta.Extra, wantMeta)
	}
	// Per-CPU: each CPU's values kept, and their sum.
	var e Entry
	stats := bodyLines(t, filepath.Join(part, "cpu_stats.body"))
	if err := jsonUnmarshal(stats[0], &e); err != nil || len(e.PerCPU) != f.ncpu || len(e.RawValues) != f.ncpu {
		t.Fatalf("cpu_stats %s %v", stats, err)
	}
	n := uint64(f.ncpu)
	wantSum := fmt.Sprintf(`[{"name":"packets","kind":"uint","num":%d},{"name":"bytes","kind":"uint","num":%d}]`, n*(n+1)/2, 100*n*(n+1)/2)
	if got := fieldsJSON(t, e.Value); got != wantSum {
		t.Errorf("per-CPU sum %s, want %s", got, wantSum)
	}

	out, err := processPart(t, loadConfig(t, conf, config.ProcessProgram), part)
	if err != nil {
		t.Fatal(err)
	}
	const p = "loadbalancers.vm.maps."
	for _, want := range []string{
		p + "http_counts.pid.42.code.HTTP_200.flags.5.kind.17.comm.curl.tls.1._pad.0.count 7.0 1700000000\n",
		p + "http_counts.pid.42.code.HTTP_200.flags.5.kind.17.comm.curl.tls.1._pad.0.lat.delta -3.0 1700000000\n",
		p + "http_counts.pid.42.code.HTTP_200.flags.5.kind.17.comm.curl.tls.1._pad.0.lat.hist.1 2.0 1700000000\n",
		p + "http_counts.pid.42.code.HTTP_200.flags.5.kind.17.comm.curl.tls.1._pad.0.last -1.0 1700000000\n",
		p + "http_counts.pid.43.code.HTTP_404.flags.0.kind.31.comm.wget12.tls.0._pad.0.bytes 10.0 1700000000\n",
		p + fmt.Sprintf("cpu_stats.key.1.packets %d.0 1700000000\n", n*(n+1)/2),
		p + "raw_counts.pid.7.count 9.0 1700000000\n",
		p + "raw_hex.key.01000000.value.1 2.0 1700000000\n",
		p + "sub_by_pid.pid." + strconv.Itoa(int(f.pidB)) + ".code.200.value 5.0 1700000000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}

	// group-by: the two sleep processes are one program.
	out, err = processPart(t, loadConfig(t, conf, config.ProcessProgram), filepath.Join(snap, "procs"))
	if err != nil {
		t.Fatal(err)
	}
	const q = "loadbalancers.vm.procs."
	for _, want := range []string{
		q + "by_pid.sleep.code.200.value 8.0 1700000000\n",
		q + "by_pid.sleep.code.200.value.max 5.0 1700000000\n",
		q + "by_pid.sleep.code.404.value 1.0 1700000000\n",
		q + "by_pid._unknown.code.200.value 11.0 1700000000\n",
		q + "instance.by_pid_" + strconv.Itoa(int(f.pidA)) + ".by_pid.sleep.code.200.value 3.0 1700000000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}

	out, err = processPart(t, loadConfig(t, conf, config.ProcessProgram), filepath.Join(snap, "percpu"))
	if err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < f.ncpu; cpu++ {
		want := fmt.Sprintf("loadbalancers.vm.percpu.cpu_stats.key.1.cpu.%d.bytes %d.0 1700000000\n", cpu, 100*(cpu+1))
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "cpu_stats.key.1.bytes") {
		t.Errorf("per-cpu = true wrote the sum too:\n%s", out)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
