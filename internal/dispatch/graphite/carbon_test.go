package graphite

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
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
	waitFor(t, 10*time.Second, "the loss to be noticed", func() bool { return d.Stats().Losses > 0 })
	time.Sleep(300 * time.Millisecond) // a few refused reconnects
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
	if logs.count("INFO graphite reconnected") != 1 {
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
