package httpebpf

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// The pull half against the kernel (root; CI runs as root): the program's three maps made from
// its embedded specification in a private bpffs — once with their BTF, once without (as a
// reader without CAP_SYS_ADMIN sees them: the declared types must decode them the same) —
// filled, pulled by stats-pull's loop and processed.

func mountBPFFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_SYS_ADMIN) to create maps and mount a bpffs; CI runs as root")
	}
	return testrig.MountBPFFS(t)
}

// childComm starts a child with a known program name and returns its PID once it has exec'ed.
func childComm(t *testing.T) (uint32, string) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 500; i++ {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); strings.TrimSpace(string(b)) == "sleep" {
			return uint32(cmd.Process.Pid), "sleep"
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the child never became sleep")
	return 0, ""
}

func TestKernelPull(t *testing.T) {
	for _, withBTF := range []bool{true, false} {
		t.Run(map[bool]string{true: "btf", false: "declared"}[withBTF], func(t *testing.T) {
			pins := filepath.Join(mountBPFFS(t), "statspipe", "http")
			os.MkdirAll(pins, 0o700)
			spec, err := bpf.CollectionSpec()
			if err != nil {
				t.Fatal(err)
			}
			pidA, comm := childComm(t)
			pidB, _ := childComm(t)
			maps := map[string]*ebpf.Map{}
			for _, name := range Maps {
				ms := spec.Maps[name].Copy()
				ms.Pinning = ebpf.PinNone
				if !withBTF {
					ms.Key, ms.Value = nil, nil
				}
				m, err := ebpf.NewMap(ms)
				if err != nil {
					t.Fatalf("map %s: %v", name, err)
				}
				t.Cleanup(func() { m.Close() })
				if err := m.Pin(filepath.Join(pins, name)); err != nil {
					t.Fatal(err)
				}
				maps[name] = m
			}
			le := binary.LittleEndian
			req := func(pid uint32, method string, n uint64) {
				k := make([]byte, 12)
				le.PutUint32(k, pid)
				copy(k[4:], method)
				if err := maps[bpf.RequestsMap].Put(k, n); err != nil {
					t.Fatal(err)
				}
			}
			resp := func(pid, code uint32, n uint64) {
				if err := maps[bpf.ResponsesMap].Put(le.AppendUint32(le.AppendUint32(nil, pid), code), n); err != nil {
					t.Fatal(err)
				}
			}
			req(pidA, "GET", 7)
			req(pidA, "DELETE", 1)
			req(pidB, "GET", 3)
			resp(pidA, 200, 6)
			resp(pidA, 418, 1)
			resp(pidB, 503, 2)
			resp(pidB, 202, 1)
			ncpu, _ := ebpf.PossibleCPU()
			drops := make([]uint64, ncpu)
			drops[ncpu-1] = 4
			if err := maps[bpf.DropsMap].Put(uint32(1), drops); err != nil {
				t.Fatal(err)
			}

			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
			section := "[source.http]\ntype = http-ebpf\npin-dir = " + pins + "\n"
			cfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+section, config.PullProgram)
			snap, log := sourcetest.PullOnce(t, cfg)
			if snap == "" {
				t.Fatalf("nothing published:\n%s", log)
			}
			part := filepath.Join(snap, "http")
			var meta spool.InstanceMeta
			if err := spool.ReadJSON(filepath.Join(part, bpf.ResponsesMap+spool.MetaSuffix), &meta); err != nil {
				t.Fatal(err)
			}
			wantTypes := map[bool]string{true: "btf", false: "declared"}[withBTF]
			if meta.Extra["types"] != wantTypes || meta.Extra["pid:"+strconv.Itoa(int(pidA))] != comm || meta.Extra["entries"] != "4" {
				t.Errorf("meta extra %v", meta.Extra)
			}
			pcfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+section, config.ProcessProgram)
			out, err := sourcetest.ProcessPart(t, processHalf.NewFormat, pcfg, part)
			if err != nil {
				t.Fatal(err)
			}
			got := lines(out)
			want := map[string]string{
				"loadbalancers.vm.http.sleep.requests":                 "11.0",
				"loadbalancers.vm.http.sleep.requests.max":             "8.0",
				"loadbalancers.vm.http.sleep.requests.min":             "3.0",
				"loadbalancers.vm.http.sleep.requests.method.GET":      "10.0",
				"loadbalancers.vm.http.sleep.requests.method.DELETE":   "1.0",
				"loadbalancers.vm.http.sleep.responses":                "10.0",
				"loadbalancers.vm.http.sleep.responses.code.200":       "6.0",
				"loadbalancers.vm.http.sleep.responses.code.202":       "1.0",
				"loadbalancers.vm.http.sleep.responses.code.503":       "2.0",
				"loadbalancers.vm.http.sleep.responses.code.other":     "1.0",
				"loadbalancers.vm.http.sleep.responses.class.2xx":      "7.0",
				"loadbalancers.vm.http.sleep.responses.class.4xx":      "1.0",
				"loadbalancers.vm.http.sleep.responses.class.5xx":      "2.0",
				"loadbalancers.vm.http.not_counted.requests_map_full":  "0.0",
				"loadbalancers.vm.http.not_counted.responses_map_full": "4.0",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %s", k, got[k], v)
				}
			}
			if t.Failed() {
				t.Logf("lines:\n%s\npull log:\n%s", out, log)
			}
		})
	}
}

// Without the loader's pins: the source fails with the hint, naming the pin.
func TestKernelPullWithoutLoader(t *testing.T) {
	pins := filepath.Join(mountBPFFS(t), "statspipe", "http")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+"[source.http]\ntype = http-ebpf\npin-dir = "+pins+"\n", config.PullProgram)
	snap, log := sourcetest.PullOnce(t, cfg)
	if snap != "" || !strings.Contains(log.String(), "is stats-http-ebpf running with --pin-dir "+pins) || !strings.Contains(log.String(), "http_drops") {
		t.Errorf("snapshot %q, log:\n%s", snap, log)
	}
	// A pin directory that is not on a bpffs: the mount hint.
	cfg = sourcetest.LoadConfig(t, sourcetest.BaseConf(dir)+"[source.http]\ntype = http-ebpf\npin-dir = "+dir+"\n", config.PullProgram)
	os.WriteFile(filepath.Join(dir, bpf.DropsMap), nil, 0o644)
	if snap, log = sourcetest.PullOnce(t, cfg); snap != "" || !strings.Contains(log.String(), "not on a bpf filesystem (mount one") {
		t.Errorf("snapshot %q, log:\n%s", snap, log)
	}
}
