package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// vmHWM is the peak resident set size of process pid so far, in KiB.
func vmHWM(pid int) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// A measurement, not part of the suite: STATSPIPE_MEMORY=60s go test -run MemoryUnderLoad -v ./e2e/
//
// stats-process with the default configuration (4 workers, queue-bytes 8 MiB; built without the
// race detector, so the figures are real) gets the benchmark snapshot (4 HAProxy processes ×
// 1000 backends × 10 servers, 354,000 lines, 35 MB of them) once a second for the given time,
// delivered to real carbon-cache, which reads more slowly than that, so the dispatcher's
// back-pressure is on all the time. It prints the peak RSS (VmHWM) and how many snapshots
// carbon had proven read by the end. STATSPIPE_MEMORY_CONF adds lines to [process] and
// [graphite] ("workers = 1", "queue-bytes = 2097152") for comparisons.
func TestMemoryUnderLoad(t *testing.T) {
	spec := os.Getenv("STATSPIPE_MEMORY")
	if spec == "" {
		t.Skip("a measurement: set STATSPIPE_MEMORY to a duration, e.g. STATSPIPE_MEMORY=60s")
	}
	length, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatalf("STATSPIPE_MEMORY=%q: %v", spec, err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/statspipe/statspipe/cmd/stats-process",
		"github.com/statspipe/statspipe/tools/gensnapshot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base := t.TempDir()
	proto := filepath.Join(base, "proto")
	gen := exec.Command(filepath.Join(bin, "gensnapshot"), "-dir", proto, "-procs", "4", "-backends", "1000",
		"-servers", "10", "-frontends", "50", "-idle", "0.2", "-seed", "1")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gensnapshot: %v\n%s", err, out)
	}
	carbon := testrig.StartCarbon(t)
	src := filepath.Join(base, "incoming")
	os.MkdirAll(src, 0o755)
	extra := strings.ReplaceAll(os.Getenv("STATSPIPE_MEMORY_CONF"), ";", "\n")
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = mem
`+extra+"\n")
	proc := startFrom(t, bin, "stats-process", "-f", conf)

	publish := func(ts int64) {
		tmp := filepath.Join(base, ".tmp-"+strconv.FormatInt(ts, 10))
		copyTree(t, proto, tmp)
		if err := os.Rename(tmp, filepath.Join(src, strconv.FormatInt(ts, 10))); err != nil {
			t.Fatal(err)
		}
	}
	first := time.Now().Unix() - int64(length.Seconds()) - 10
	start := time.Now()
	published := 0
	peak := 0
	for tick := time.NewTicker(time.Second); time.Since(start) < length; <-tick.C {
		publish(first + int64(published))
		published++
		hwm, err := vmHWM(proc.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("stats-process is gone: %v\n%s", err, proc.out.String())
		}
		if hwm > peak {
			peak = hwm
			t.Logf("%5.1fs: peak RSS %.1f MB, %d snapshots waiting", time.Since(start).Seconds(),
				float64(peak)/1024, len(snapshotsIn(t, src)))
		}
	}
	waiting := len(snapshotsIn(t, src))
	usage, _ := sampleProc(proc.cmd.Process.Pid)
	proc.stop(t)
	t.Logf("memory: stats-process CPU %v in all, %.1f ms per snapshot delivered", usage.cpu,
		float64(usage.cpu.Milliseconds())/float64(max(1, published-waiting)))
	if os.Getenv("STATSPIPE_MEMORY_LOG") != "" {
		t.Logf("stats-process log:\n%s", proc.out.String())
	}
	t.Logf("memory: %d snapshots published in %v, %d delivered, %d still waiting; stats-process peak RSS %.1f MB (conf: %q)",
		published, length, published-waiting, waiting, float64(peak)/1024, extra)
}
