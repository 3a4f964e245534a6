package graphite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/testrig"
)

func carbonConfig(c *testrig.Carbon) config.Graphite {
	cfg := testConfig(c.LineAddr())
	cfg.Interval, cfg.Delay = 50*time.Millisecond, 200*time.Millisecond
	return cfg
}

// carbonSnapshot is `chunks` chunks of `series` lines each: e2e.<name>.c<chunk>.m<i> with a
// value that depends on the timestamp, so that every point is distinct.
func carbonSnapshot(name string, ts int64, chunks, series int) ([]*metric.Batch, map[string]float64) {
	want := map[string]float64{}
	var out []*metric.Batch
	for c := range chunks {
		var buf bytes.Buffer
		for i := range series {
			path := fmt.Sprintf("statspipe.e2e.%s.c%d.m%d", name, c, i)
			v := float64(ts%1000) + float64(i)/4
			want[path] = v
			fmt.Fprintf(&buf, "%s %s %d\n", path, strconv.FormatFloat(v, 'f', -1, 64), ts)
		}
		out = append(out, &metric.Batch{Timestamp: ts, Source: fmt.Sprintf("/spool/%d", ts), Seq: c,
			Last: c == chunks-1, Data: buf.Bytes(), Lines: series})
	}
	return out, want
}

// checkCarbon waits until carbon has stored every point of want at ts, and compares values.
func checkCarbon(t *testing.T, c *testrig.Carbon, ts int64, want map[string]float64) {
	t.Helper()
	for path, v := range want {
		got, ok := c.WaitFor(t, path, ts, 10*time.Second)
		if !ok {
			t.Fatalf("carbon has no point of %s at %d\n%s", path, ts, c.Output())
		}
		if got != v {
			t.Fatalf("carbon: %s at %d = %v, want %v", path, ts, got, v)
		}
	}
}

func TestRealCarbonStoresEveryPoint(t *testing.T) {
	c := testrig.StartCarbon(t)
	d := New(carbonConfig(c), nil)
	rec := newDoneRecorder(t)
	now := time.Now().Unix()
	var snaps [][]*metric.Batch
	wants := map[int64]map[string]float64{}
	for _, ts := range []int64{now - 30, now - 20, now - 10} {
		// The same series at three timestamps: three points per whisper file.
		snap, want := carbonSnapshot("all", ts, 2, 20)
		snaps = append(snaps, snap)
		wants[ts] = want
		submitAll(t, d, rec, snap)
	}
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	for ts, want := range wants {
		checkCarbon(t, c, ts, want)
	}
	for path := range wants[now-10] {
		points := c.Fetch(t, path, now-40, now)
		if len(points) != 3 {
			t.Fatalf("%s holds %v, want exactly the 3 points sent", path, points)
		}
	}
}

// carbon-cache is stopped between two snapshots and started again on the same port with the
// same storage: the second snapshot, submitted while it is down, is not reported delivered
// until it really is, and every point ends up in whisper.
func TestRealCarbonRestartLosesNothing(t *testing.T) {
	c := testrig.StartCarbon(t)
	log, logs := newLogger()
	d := New(carbonConfig(c), log)
	rec := newDoneRecorder(t)
	now := time.Now().Unix()
	a, wantA := carbonSnapshot("restart", now-30, 3, 20)
	b, wantB := carbonSnapshot("restart", now-20, 3, 20)

	submitAll(t, d, rec, a)
	waitAllDone(t, rec, [][]*metric.Batch{a})
	checkCarbon(t, c, now-30, wantA) // carbon has read all of A: nothing is in flight

	c.Stop(t)
	submitAll(t, d, rec, b)
	// The dispatcher reconnects at once after proving A; the peer's end is then noticed as the
	// loss of that idle connection, or, when the peer went before the reconnect, as a refused
	// connect. Either way nothing of B may be reported delivered.
	waitFor(t, 10*time.Second, "the peer's end to be noticed", func() bool {
		st := d.Stats()
		return st.Losses > 0 || st.ConnectFailures > 0
	})
	waitFor(t, 10*time.Second, "a few refused reconnects", func() bool { return d.Stats().ConnectFailures >= 2 })
	if n := rec.count(); n != len(a) {
		t.Fatalf("%d chunks of B reported delivered while carbon was down", n-len(a))
	}
	c.Start(t)
	waitAllDone(t, rec, [][]*metric.Batch{a, b})
	checkCarbon(t, c, now-20, wantB)
	checkCarbon(t, c, now-30, wantA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// After a loss, one reconnection is logged; when carbon went before the reconnect that
	// follows a drain, there was no loss, only refused connects.
	if d.Stats().Losses > 0 && logs.count("INFO graphite reconnected") != 1 {
		t.Errorf("want one reconnection logged: %q", logs.messages())
	}
}

// carbon-cache is stopped while snapshots stream in, then started again: every snapshot the
// dispatcher reported delivered is in whisper, although carbon-cache drops the points it
// received during its last second or so (they were read, but the proof lags the reading by
// two windows, and a stop ends the connection before the rest is proven).
func TestRealCarbonStoppedMidStreamLosesNothing(t *testing.T) {
	c := testrig.StartCarbon(t)
	log, logs := newLogger()
	d := newDispatcher(carbonConfig(c), log, nil, nil)
	d.start()
	rec := newDoneRecorder(t)
	now := time.Now().Unix()
	wants := map[int64]map[string]float64{}
	var snaps [][]*metric.Batch
	stopped := false
	for i := range 60 {
		ts := now - 600 + int64(i)
		snap, want := carbonSnapshot("stream", ts, 4, 200)
		snaps = append(snaps, snap)
		wants[ts] = want
		submitAll(t, d, rec, snap)
		time.Sleep(20 * time.Millisecond)
		if i == 30 && !stopped {
			c.Stop(t)
			stopped = true
			c.Start(t)
		}
	}
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	t.Logf("dispatcher log: %q", logs.messages())
	var missing []int64
	// carbon may still be writing its cache: the first checks wait up to 10 s in all.
	deadline := time.Now().Add(10 * time.Second)
	for i := range snaps {
		ts := now - 600 + int64(i)
		// the first and last line of every chunk
		var lost []string
		for c2 := range 4 {
			for _, m := range []int{0, 199} {
				path := fmt.Sprintf("statspipe.e2e.stream.c%d.m%d", c2, m)
				if _, ok := c.WaitFor(t, path, ts, max(time.Until(deadline), 100*time.Millisecond)); !ok {
					lost = append(lost, fmt.Sprintf("c%d.m%d", c2, m))
				}
			}
		}
		if len(lost) > 0 {
			missing = append(missing, ts)
			t.Logf("snapshot %d (#%d): missing %v", ts, i, lost)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d snapshots lost", len(missing), len(wants))
	}
}

// carbonSignal sends sig to the carbon-cache process group (it runs in its own group).
func carbonSignal(t *testing.T, c *testrig.Carbon, sig syscall.Signal) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Dir, "run", "carbon-cache.pid"))
	if err != nil {
		t.Fatalf("carbon pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("carbon pid file: %v", err)
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		t.Fatalf("kill -%v carbon: %v", sig, err)
	}
}

// carbonFreeze streams snapshots into real carbon-cache, freezes it with SIGSTOP for longer
// than the old 3 s replay window (until five connections or connect attempts failed), then thaws it
// (SIGCONT) or kills it (SIGKILL) and restarts it. Every point of every snapshot must end up
// in whisper.
func carbonFreeze(t *testing.T, kill bool) {
	c := testrig.StartCarbon(t)
	cfg := carbonConfig(c)
	cfg.StallTimeout = time.Second
	log, logs := newLogger()
	d := New(cfg, log)
	rec := newDoneRecorder(t)
	const n, chunks, series = 30, 4, 200
	now := time.Now().Unix()
	// Carbon creates its whisper files first: a SIGKILL in the middle of a creation leaves a
	// truncated file that carbon cannot write to again, which is carbon's loss, not ours.
	warm, wantWarm := carbonSnapshot("freeze", now-700, chunks, series)
	warmRec := newDoneRecorder(t)
	submitAll(t, d, warmRec, warm)
	checkCarbon(t, c, now-700, wantWarm)
	var snaps [][]*metric.Batch
	submitted := make(chan struct{})
	frozen := make(chan struct{})
	for i := range n {
		snap, _ := carbonSnapshot("freeze", now-600+int64(i), chunks, series)
		snaps = append(snaps, snap)
	}
	go func() {
		defer close(submitted)
		for i, snap := range snaps {
			if i == n/3 {
				close(frozen)
			}
			submitAll(t, d, rec, snap)
			time.Sleep(100 * time.Millisecond) // the pull interval of this scenario
		}
	}()
	<-frozen
	carbonSignal(t, c, syscall.SIGSTOP)
	start := time.Now()
	before := d.Stats()
	waitFor(t, 30*time.Second, "five failures", func() bool {
		st := d.Stats()
		return st.Losses+st.ConnectFailures >= before.Losses+before.ConnectFailures+5 && time.Since(start) > 4*time.Second
	})
	frozenFor := time.Since(start)
	if kill {
		carbonSignal(t, c, syscall.SIGKILL)
		c.Stop(t) // only waits for the exit
		c.Start(t)
	} else {
		carbonSignal(t, c, syscall.SIGCONT)
	}
	<-submitted
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	st := d.Stats()
	t.Logf("frozen %v; %d snapshots; stats %+v", frozenFor.Round(time.Millisecond), n, st)
	t.Logf("log: %q", logs.messages())
	missing := 0
	deadline := time.Now().Add(15 * time.Second)
	for ch := range chunks {
		for m := range series {
			path := fmt.Sprintf("statspipe.e2e.freeze.c%d.m%d", ch, m)
			var points map[int64]float64
			var err error
			for {
				points, err = testrig.ReadWhisper(c.WhisperFile(path), now-600, now)
				if len(points) >= n || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(points) < n {
				var lost []int64
				for i := range n {
					if _, ok := points[now-600+int64(i)]; !ok {
						lost = append(lost, int64(i))
					}
				}
				t.Logf("%s: snapshots %v missing (%v)", path, lost, err)
			}
			missing += n - len(points)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d points missing from whisper", missing, n*chunks*series)
	}
}

func TestRealCarbonFrozenThenKilledLosesNothing(t *testing.T) { carbonFreeze(t, true) }
func TestRealCarbonFrozenThenThawedLosesNothing(t *testing.T) { carbonFreeze(t, false) }

// How soon after its last chunk was submitted is a small snapshot proven read by real
// carbon-cache (replay hold off)? An upper bound of the delay after carbon read it.
func TestMeasureRealCarbonProofDelay(t *testing.T) {
	shortReplayHold(t, 0)
	c := testrig.StartCarbon(t)
	d := New(carbonConfig(c), nil)
	now := time.Now().Unix()
	var delays []time.Duration
	for i := range 10 {
		snap, _ := carbonSnapshot("delay", now-100+int64(i), 4, 200)
		done := make(chan struct{}, len(snap))
		for _, b := range snap {
			if err := d.Submit(context.Background(), b, func(err error) {
				if err != nil {
					t.Error(err)
				}
				done <- struct{}{}
			}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for range snap {
			<-done
		}
		delays = append(delays, time.Since(start))
	}
	closeOK(t, d)
	slices.Sort(delays)
	t.Logf("snapshots of 800 lines (36 KB): proven %v (median), %v (max) after the last Submit; %+v",
		delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond), d.Stats())
}
