package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// procSample is what /proc says about a process at one moment.
type procSample struct {
	rssKiB  int
	fds     int
	threads int
	cpu     time.Duration // user + system
}

func sampleProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			s.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	return s, nil
}

// A soak run, not part of the suite: STATSPIPE_SOAK=15m go test -run Soak -v ./e2e/
//
// Real HAProxy (2 instances, traffic all along) → stats-pull every second → stats-process
// (built without the race detector, so memory figures are real) → real carbon-cache, which is
// stopped for 20 s every 2 minutes, and the local store. It prints stats-process's memory, file
// descriptors, threads and CPU over time, and checks at the end that every snapshot was
// delivered to both: a local-store file each, and a point in carbon for each timestamp.
func TestSoak(t *testing.T) {
	spec := os.Getenv("STATSPIPE_SOAK")
	if spec == "" {
		t.Skip("a soak run: set STATSPIPE_SOAK to a duration, e.g. STATSPIPE_SOAK=15m")
	}
	length, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatalf("STATSPIPE_SOAK=%q: %v", spec, err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/statspipe/statspipe/cmd/stats-pull",
		"github.com/statspipe/statspipe/cmd/stats-process")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	carbon := testrig.StartCarbon(t)
	base := t.TempDir()
	conf := pipelineConfig(t, base, h.SocketDir, 2, `
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = soak
connect-timeout = 0.5
retries = 2
interval = 0.5
delay = 2
[local-store]
dir = ${paths:base-dir}/local-store
`)
	pull, proc := startFrom(t, bin, "stats-pull", "-f", conf), startFrom(t, bin, "stats-process", "-f", conf)

	start := time.Now()
	var samples []procSample
	outages := 0
	nextOutage := start.Add(2 * time.Minute)
	for time.Since(start) < length {
		h.SendTraffic(t, 20)
		if time.Now().After(nextOutage) {
			carbon.Stop(t)
			time.Sleep(20 * time.Second)
			carbon.Start(t)
			outages++
			nextOutage = time.Now().Add(2 * time.Minute)
		}
		s, err := sampleProc(proc.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("stats-process is gone: %v\n%s", err, proc.out.String())
		}
		if len(samples)%30 == 0 {
			t.Logf("%5.0fs: stats-process RSS %.1f MB, %d fds, %d threads, CPU %v; queue %d",
				time.Since(start).Seconds(), float64(s.rssKiB)/1024, s.fds, s.threads, s.cpu,
				len(snapshotsIn(t, filepath.Join(base, "incoming"))))
		}
		samples = append(samples, s)
		time.Sleep(time.Second)
	}
	pull.stop(t)
	waitUntil(t, 2*time.Minute, "the spool to drain", func() bool {
		return len(snapshotsIn(t, filepath.Join(base, "incoming"))) == 0
	})
	last, _ := sampleProc(proc.cmd.Process.Pid)
	proc.stop(t)

	stored := snapshotsIn(t, filepath.Join(base, "local-store"))
	if len(stored) < int(length.Seconds())*9/10 {
		t.Errorf("only %d snapshots in %v at one per second", len(stored), length)
	}
	slices.Sort(stored)
	first, _ := strconv.ParseInt(stored[0], 10, 64)
	lastTS, _ := strconv.ParseInt(stored[len(stored)-1], 10, 64)
	const series = "loadbalancers.soak.haproxy.frontend.fe_main.req_tot"
	points := carbon.Fetch(t, series, first, lastTS+1)
	var missing []string
	for _, name := range stored {
		ts, _ := strconv.ParseInt(name, 10, 64)
		if _, ok := points[ts]; !ok {
			// carbon may not have written its cache to disk yet
			if _, ok := carbon.WaitFor(t, series, ts, 10*time.Second); !ok {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d snapshots have no point in carbon: %v", len(missing), len(stored), missing)
	}
	if q := snapshotsIn(t, filepath.Join(base, "incoming.quarantine")); len(q) > 0 {
		t.Errorf("quarantined: %v", q)
	}

	rss := func(s procSample) float64 { return float64(s.rssKiB) / 1024 }
	minS, maxS := samples[0], samples[0]
	for _, s := range samples {
		if s.rssKiB < minS.rssKiB {
			minS = s
		}
		if s.rssKiB > maxS.rssKiB {
			maxS = s
		}
	}
	fdMin, fdMax := samples[0].fds, samples[0].fds
	for _, s := range samples {
		fdMin, fdMax = min(fdMin, s.fds), max(fdMax, s.fds)
	}
	half := samples[len(samples)/2]
	t.Logf("soak: %v, %d snapshots in the local store, %d of them in carbon (%d carbon outages of 20 s)",
		length.Round(time.Second), len(stored), len(stored)-len(missing), outages)
	t.Logf("stats-process: RSS %.1f–%.1f MB (at half time %.1f, at the end %.1f), fds %d–%d, CPU %v in all, %.1f ms per snapshot",
		rss(minS), rss(maxS), rss(half), rss(last), fdMin, fdMax, last.cpu,
		float64(last.cpu.Milliseconds())/float64(len(stored)))
}
