package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// carbonMissing returns the keys of truth that have no point in carbon's whisper files.
func carbonMissing(c *testrig.Carbon, truth map[string]truthLine) []string {
	byPath := map[string][]int64{}
	for k := range truth {
		path, ts, _ := strings.Cut(k, " ")
		n, _ := strconv.ParseInt(ts, 10, 64)
		byPath[path] = append(byPath[path], n)
	}
	var missing []string
	for path, tss := range byPath {
		lo, hi := tss[0], tss[0]
		for _, ts := range tss {
			lo, hi = min(lo, ts), max(hi, ts)
		}
		points, _ := testrig.ReadWhisper(c.WhisperFile(path), lo, hi) // a missing file: every point missing
		for _, ts := range tss {
			if _, ok := points[ts]; !ok {
				missing = append(missing, path+" "+strconv.FormatInt(ts, 10))
			}
		}
	}
	return missing
}

// waitCarbon polls (bounded) until carbon's whisper files hold every line of truth, and
// returns what is still missing. carbon writes a point about 1 s after receiving it.
func waitCarbon(c *testrig.Carbon, truth map[string]truthLine, limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	for {
		missing := carbonMissing(c, truth)
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// carbonQuiet brings the rig to a state where carbon has read and written to whisper every
// line sent so far, so that what the fault then loses is what carbon never read: carbon's own
// cache is volatile, and points it read but had not yet written die with it (README
// "Guarantees"), which no sender can see.
func carbonQuiet(t *testing.T, r *spoolRig, c *testrig.Carbon) {
	t.Helper()
	if !r.drained(30 * time.Second) {
		t.FailNow()
	}
	if missing := waitCarbon(c, r.truth(), 20*time.Second); len(missing) > 0 {
		t.Fatalf("before the fault: %d lines never reached carbon's whisper files, e.g. %q", len(missing), missing[0])
	}
}

// carbonRow counts the lines of the local store missing from carbon. carbon keeps one point
// per path and second, so duplicates and bytes re-sent cannot be seen.
func carbonRow(t *testing.T, r *spoolRig, c *testrig.Carbon, name string) faultRow {
	t.Helper()
	truth := r.truth()
	missing := waitCarbon(c, truth, 15*time.Second)
	if len(missing) > 0 {
		per := map[string]int{}
		for _, k := range missing {
			per[truth[k].snapshot]++
		}
		var snaps []string
		for _, n := range r.names {
			if per[n] > 0 {
				snaps = append(snaps, n+": "+strconv.Itoa(per[n]))
			}
		}
		t.Errorf("%d of %d lines never reached carbon (per snapshot: %s), e.g. %q", len(missing), len(truth),
			strings.Join(snaps, ", "), missing[0])
	}
	t.Logf("%s: %d snapshots, %d lines, %d lost", name, len(r.names), len(truth), len(missing))
	return faultRow{fault: name, snapshots: len(r.names), lines: len(truth), lost: len(missing),
		duplicates: "n/a", connsPerSecond: "n/a", resent: "n/a", peerResets: "n/a", logLines: r.logLines}
}

// Real carbon-cache 1.1 frozen (SIGSTOP) for 5 pull intervals, then killed (SIGKILL) and
// restarted: what it held unread in its socket died with it and must be sent again.
func faultCarbonStopKill(t *testing.T, record func(faultRow)) {
	c := testrig.StartCarbon(t)
	conns := sampleConnections(t, c.LinePort)
	r := newSpoolRig(t, c.LinePort, carbonSnapshot, "", "")
	r.publishAtCadence(2)
	carbonQuiet(t, r, c)
	c.Freeze(t)
	r.publishAtCadence(5)
	c.Crash(t)
	c.Start(t)
	r.publishAtCadence(2)
	r.drained(60 * time.Second)
	r.stop()
	row := carbonRow(t, r, c, "real carbon-cache SIGSTOP 5 s, then SIGKILL and restart")
	conns.check(t, &row)
	record(row)
}

// Real carbon-cache frozen for 5 pull intervals, then continued (SIGCONT): it reads what its
// sockets held; nothing may have been thrown away meanwhile (a reset discards it).
func faultCarbonStopCont(t *testing.T, record func(faultRow)) {
	c := testrig.StartCarbon(t)
	conns := sampleConnections(t, c.LinePort)
	r := newSpoolRig(t, c.LinePort, mediumSnapshot, "", "")
	r.publishAtCadence(2)
	carbonQuiet(t, r, c)
	c.Freeze(t)
	r.publishAtCadence(5)
	c.Thaw(t)
	r.publishAtCadence(2)
	r.drained(60 * time.Second)
	r.stop()
	row := carbonRow(t, r, c, "real carbon-cache SIGSTOP 5 s, then SIGCONT")
	conns.check(t, &row)
	record(row)
}
