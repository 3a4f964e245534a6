package nagios

import (
	"bytes"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/status"
)

var now0 = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

// freshRig is a spool with status files written as of now0 minus the given ages.
type freshRig struct {
	dir, conf string
}

func newFreshRig(t *testing.T) freshRig {
	t.Helper()
	base := t.TempDir()
	r := freshRig{dir: filepath.Join(base, "incoming"), conf: filepath.Join(base, "haproxystats.conf")}
	mkdirs(t, r.dir, 0)
	writeFile(t, r.conf, "[pull]\ndst-dir = "+r.dir+"\n")
	return r
}

func (r freshRig) pull(t *testing.T, published, errored time.Duration, rounds int) {
	t.Helper()
	p := &status.Pull{Format: status.Format, Program: "stats-pull", PID: 42, Started: now0.Add(-time.Hour), Updated: now0.Add(-time.Second),
		RoundsWithoutPublish: rounds}
	if published >= 0 {
		p.LastPublish = &status.Publish{Time: now0.Add(-published), Snapshot: strconv.FormatInt(now0.Add(-published).Unix(), 10)}
	}
	if errored >= 0 {
		p.LastError = &status.Problem{Time: now0.Add(-errored), Error: "found zero sources to pull from; nothing published this round"}
	}
	if err := status.Write(filepath.Join(r.dir, status.PullFile), p); err != nil {
		t.Fatal(err)
	}
}

func (r freshRig) process(t *testing.T, delivered time.Duration) {
	t.Helper()
	p := &status.Process{Format: status.Format, Program: "stats-process", PID: 43, Started: now0.Add(-time.Hour), Updated: now0, Delivered: 7}
	if delivered >= 0 {
		p.LastDelivery = &status.Delivery{Time: now0.Add(-delivered), Snapshot: "1796191190"}
	}
	if err := status.Write(filepath.Join(r.dir, status.ProcessFile), p); err != nil {
		t.Fatal(err)
	}
}

func (r freshRig) queue(t *testing.T, ages ...time.Duration) {
	t.Helper()
	for _, a := range ages {
		mkdirs(t, filepath.Join(r.dir, strconv.FormatInt(now0.Add(-a).Unix(), 10)), 0)
	}
}

func runFresh(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	rc := freshness(args, "test", &out, func() time.Time { return now0 })
	return out.String(), rc
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func TestFreshnessOK(t *testing.T) {
	r := newFreshRig(t)
	r.pull(t, 2*time.Second, -1, 0)
	r.process(t, time.Second)
	out, rc := runFresh(t, "-f", r.conf)
	want := "OK: stats-pull published 2s ago (snapshot 1796191198), stats-process delivered 1s ago (snapshot 1796191190), 0 queued, 0 quarantined" +
		"|pull_age=2s;60;300;0; delivery_age=1s;120;600;0; oldest_age=0s;300;900;0; queued=0;;;0; quarantined=0;0;100;0;"
	if rc != 0 || firstLine(out) != want {
		t.Fatalf("rc %d\n%s\nwant\n%s", rc, out, want)
	}
	for _, l := range []string{
		"\npull: stats-pull published 2s ago (snapshot 1796191198), last round ended 1s ago (pid 42, status " + filepath.Join(r.dir, status.PullFile) + ")\n",
		"\nprocess: stats-process delivered 1s ago (snapshot 1796191190), 7 delivered by pid 43 since it started 3600s ago (status " + filepath.Join(r.dir, status.ProcessFile) + ")\n",
		"\nqueue: 0 queued in " + r.dir + "\n",
		"\nquarantine: 0 snapshot(s) in " + r.dir + ".quarantine (",
	} {
		if !strings.Contains(out, l) {
			t.Errorf("long output lacks %q:\n%s", l, out)
		}
	}
}

// The stale pull of the issue: socket-dir emptied, every round logs an error and publishes
// nothing; the age of the last publish crosses -w then -c.
func TestFreshnessStalePull(t *testing.T) {
	r := newFreshRig(t)
	r.process(t, 5*time.Second)
	for _, tc := range []struct {
		age  time.Duration
		want string
		rc   int
	}{
		{3 * time.Second, "OK: stats-pull published 3s ago", 0},
		{4 * time.Second, "WARNING: stats-pull published nothing for 4s (last snapshot 1796191196, 3 round(s) without one, last error 1s ago: found zero sources to pull from; nothing published this round)|pull_age=4s;3;6;0; ", 1},
		{6 * time.Second, "WARNING: stats-pull published nothing for 6s", 1},
		{7 * time.Second, "CRITICAL: stats-pull published nothing for 7s", 2},
	} {
		r.pull(t, tc.age, time.Second, 3)
		out, rc := runFresh(t, "-f", r.conf, "-w", "3", "-c", "6")
		if rc != tc.rc || !strings.HasPrefix(out, tc.want) {
			t.Errorf("published %v ago: rc %d\n%s\nwant rc %d, prefix %q", tc.age, rc, out, tc.rc, tc.want)
		}
	}
	// Never published: the age runs from the start of stats-pull.
	r.pull(t, -1, time.Second, 3600)
	out, rc := runFresh(t, "-f", r.conf)
	if rc != 2 || !strings.HasPrefix(out, "CRITICAL: stats-pull published nothing for 3600s (none since it started, 3600 round(s) without one, last error 1s ago: ") ||
		!strings.Contains(out, "|pull_age=3600s;") {
		t.Errorf("never published: rc %d %s", rc, out)
	}
}

func TestFreshnessStuckProcessing(t *testing.T) {
	r := newFreshRig(t)
	r.pull(t, time.Second, -1, 0)
	r.process(t, 200*time.Second)
	// Nothing waits: an old last delivery is what a healthy, idle stats-process leaves.
	if out, rc := runFresh(t, "-f", r.conf); rc != 0 || !strings.Contains(out, "delivery_age=200s;120;600;0;") {
		t.Errorf("idle: rc %d %s", rc, out)
	}
	r.queue(t, 30*time.Second, 10*time.Second)
	out, rc := runFresh(t, "-f", r.conf)
	if rc != 1 || !strings.HasPrefix(out, "WARNING: stats-process delivered nothing for 200s while 2 snapshot(s) wait|") ||
		!strings.Contains(out, " oldest_age=30s;300;900;0; queued=2;;;0; ") {
		t.Errorf("stuck: rc %d %s", rc, out)
	}
	// The oldest snapshot's age has thresholds of its own.
	out, rc = runFresh(t, "-f", r.conf, "--delivery-warning", "1000", "--delivery-critical", "2000", "--oldest-warning", "10", "--oldest-critical", "20")
	if rc != 2 || !strings.HasPrefix(out, "CRITICAL: oldest queued snapshot "+strconv.FormatInt(now0.Unix()-30, 10)+" is 30s old (2 queued)|") {
		t.Errorf("oldest: rc %d %s", rc, out)
	}
	// Two problems: both named, the worst state wins.
	out, rc = runFresh(t, "-f", r.conf, "--oldest-warning", "10", "--oldest-critical", "20")
	if rc != 2 || !strings.HasPrefix(out, "CRITICAL: stats-process delivered nothing for 200s while 2 snapshot(s) wait, oldest queued snapshot ") {
		t.Errorf("both: rc %d %s", rc, out)
	}
}

func TestFreshnessQuarantine(t *testing.T) {
	r := newFreshRig(t)
	r.pull(t, time.Second, -1, 0)
	r.process(t, time.Second)
	mkdirs(t, r.dir+".quarantine", 3)
	out, rc := runFresh(t, "-f", r.conf)
	if rc != 1 || !strings.HasPrefix(out, "WARNING: 3 snapshot(s) in quarantine|") || !strings.Contains(out, " quarantined=3;0;100;0;") {
		t.Errorf("rc %d %s", rc, out)
	}
	out, rc = runFresh(t, "-f", r.conf, "--quarantine-warning", "5", "--quarantine-critical", "10")
	if rc != 0 || !strings.Contains(out, ", 3 quarantined|") {
		t.Errorf("rc %d %s", rc, out)
	}
}

func TestFreshnessUnknown(t *testing.T) {
	r := newFreshRig(t)
	pullPath := filepath.Join(r.dir, status.PullFile)
	out, rc := runFresh(t, "-f", r.conf)
	if rc != 3 || out != "UNKNOWN: no status file "+pullPath+": has stats-pull run yet?\n" {
		t.Errorf("no pull status: rc %d %q", rc, out)
	}
	r.pull(t, time.Second, -1, 0)
	// No stats-process yet and nothing waits: fine.
	out, rc = runFresh(t, "-f", r.conf)
	if rc != 0 || !strings.Contains(out, "|pull_age=1s;60;300;0; oldest_age=0s;") || !strings.Contains(out, "\nprocess: no status file ") {
		t.Errorf("no process status, empty queue: rc %d %s", rc, out)
	}
	r.queue(t, time.Second)
	out, rc = runFresh(t, "-f", r.conf)
	if rc != 3 || !strings.HasPrefix(out, "UNKNOWN: no status file "+filepath.Join(r.dir, status.ProcessFile)+": has stats-process run yet? (1 snapshot(s) wait in "+r.dir+")") {
		t.Errorf("no process status, a snapshot waits: rc %d %s", rc, out)
	}
	writeFile(t, pullPath, "{")
	out, rc = runFresh(t, "-f", r.conf)
	if rc != 3 || !strings.HasPrefix(out, "UNKNOWN: can't read stats-pull's status: "+pullPath+": not a statspipe status record: ") {
		t.Errorf("torn status: rc %d %s", rc, out)
	}

	// src-dir of [process] is where stats-process's status and the queue are.
	other := filepath.Join(filepath.Dir(r.dir), "other")
	mkdirs(t, other, 0)
	r.pull(t, time.Second, -1, 0)
	writeFile(t, r.conf, "[pull]\ndst-dir = "+r.dir+"\n[process]\nsrc-dir = "+other+"\n")
	if out, rc = runFresh(t, "-f", r.conf); rc != 0 || !strings.Contains(out, "queue: 0 queued in "+other+"\n") {
		t.Errorf("src-dir: rc %d %s", rc, out)
	}
	writeFile(t, r.conf, "[pull]\ndst-dir = "+r.dir+"\n[process]\nsrc-dir = "+filepath.Join(other, "gone")+"\n")
	if out, rc = runFresh(t, "-f", r.conf); rc != 3 || !strings.HasPrefix(out, "UNKNOWN: can't check "+filepath.Join(other, "gone")+" due to ") {
		t.Errorf("src-dir missing: rc %d %s", rc, out)
	}

	// Not configured here: OK, like the queue check.
	if out, rc = runFresh(t, "-f", filepath.Join(r.dir, "none.conf")); rc != 0 || !strings.HasPrefix(out, "OK: missing configuration as I got: No section: 'pull'") {
		t.Errorf("no configuration: rc %d %s", rc, out)
	}
	for _, args := range [][]string{{"--bogus"}, {"-w", "x"}, {"-c", "5:1"}, {"extra"}} {
		if out, rc := runFresh(t, args...); rc != 3 || !strings.HasPrefix(out, "UNKNOWN: ") || !strings.Contains(out, "\nUsage:\n") {
			t.Errorf("%v: rc %d %s", args, rc, out)
		}
	}
	if out, rc := runFresh(t, "--version"); rc != 0 || out != "statspipe test\n" {
		t.Errorf("--version: rc %d %q", rc, out)
	}
}

// An error text with a '|' or a newline cannot break the plugin output.
func TestFreshnessCleansErrorTexts(t *testing.T) {
	r := newFreshRig(t)
	p := &status.Pull{Format: status.Format, Started: now0, Updated: now0,
		LastError: &status.Problem{Time: now0, Error: "a|b\nc"}}
	if err := status.Write(filepath.Join(r.dir, status.PullFile), p); err != nil {
		t.Fatal(err)
	}
	out, _ := runFresh(t, "-f", r.conf, "-w", "@0:0", "-c", "10")
	if first := firstLine(out); strings.Count(first, "|") != 1 || !strings.Contains(first, ", last error 0s ago: a/b c)|pull_age=0s;@0:0;10;0;") {
		t.Errorf("%q", out)
	}
}

func TestRange(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		text  string
		alert []float64
		quiet []float64
	}{
		{"10", []float64{-1, 10.5, inf}, []float64{0, 5, 10}},
		{"10:", []float64{9.9, math.Inf(-1)}, []float64{10, 1e9}},
		{"~:10", []float64{11}, []float64{-1e9, 10}},
		{"10:20", []float64{9, 21}, []float64{10, 20}},
		{"@10:20", []float64{10, 15, 20}, []float64{9, 21}},
		{"0", []float64{1}, []float64{0}},
		{" 3 ", []float64{4}, []float64{3}},
	} {
		r, err := ParseRange(tc.text)
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		for _, v := range tc.alert {
			if !r.Alert(v) {
				t.Errorf("%q: %v does not alert", tc.text, v)
			}
		}
		for _, v := range tc.quiet {
			if r.Alert(v) {
				t.Errorf("%q: %v alerts", tc.text, v)
			}
		}
	}
	for _, bad := range []string{"", "@", "x", ":5", "5:1", "1:x", "NaN", "inf", "~"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if Evaluate(7, mustRange(t, "3"), mustRange(t, "6")) != Critical || Evaluate(4, mustRange(t, "3"), mustRange(t, "6")) != Warning ||
		Evaluate(3, mustRange(t, "3"), mustRange(t, "6")) != OK {
		t.Error("Evaluate")
	}
	if Worse(Unknown, Warning) != Warning || Worse(OK, Unknown) != Unknown || Worse(Critical, Warning) != Critical {
		t.Error("Worse")
	}
}

func mustRange(t *testing.T, s string) Range {
	t.Helper()
	r, err := ParseRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// With [central], the check is of the central tier: its status file in work-dir, the age of
// its last delivery judged at all times, and both quarantines; no pull, no queue.
func TestFreshnessCentralTier(t *testing.T) {
	base := t.TempDir()
	work := filepath.Join(base, "central")
	conf := filepath.Join(base, "haproxystats.conf")
	// [pull] is there too (ignored): the same file may serve an edge's stats-pull.
	writeFile(t, conf, "[pull]\ndst-dir = "+filepath.Join(base, "incoming")+"\n[central]\nbrokers = 127.0.0.1:9092\nwork-dir = "+work+"\n")
	out, rc := runFresh(t, "-f", conf)
	if want := "UNKNOWN: no status file " + filepath.Join(work, status.ProcessFile) + ": has stats-process (central tier) run yet?"; rc != 3 || firstLine(out) != want {
		t.Fatalf("before a start: rc %d %q, want %q", rc, out, want)
	}
	mkdirs(t, work, 0)
	write := func(delivered time.Duration) {
		t.Helper()
		p := &status.Process{Format: status.Format, Program: "stats-process", PID: 43, Started: now0.Add(-time.Hour), Updated: now0, Delivered: 9}
		if delivered >= 0 {
			p.LastDelivery = &status.Delivery{Time: now0.Add(-delivered), Snapshot: "1796191190"}
		}
		if err := status.Write(filepath.Join(work, status.ProcessFile), p); err != nil {
			t.Fatal(err)
		}
	}
	write(3 * time.Second)
	out, rc = runFresh(t, "-f", conf)
	want := "OK: central tier delivered 3s ago (1796191190), 0 quarantined|delivery_age=3s;120;600;0; quarantined=0;0;100;0;"
	if rc != 0 || firstLine(out) != want {
		t.Fatalf("rc %d\n%s\nwant\n%s", rc, out, want)
	}
	if l := "\ncentral: central tier delivered 3s ago (1796191190), 9 delivered by pid 43 since it started 3600s ago (status " + filepath.Join(work, status.ProcessFile) + ")\n"; !strings.Contains(out, l) {
		t.Errorf("long output lacks %q:\n%s", l, out)
	}
	// No spool: a quiet tier is judged, unlike an idle stats-process with an empty spool.
	write(200 * time.Second)
	if out, rc = runFresh(t, "-f", conf); rc != 1 || !strings.HasPrefix(out, "WARNING: central tier delivered nothing for 200s (last 1796191190)|delivery_age=200s;") {
		t.Errorf("quiet: rc %d %s", rc, out)
	}
	write(-1)
	if out, rc = runFresh(t, "-f", conf); rc != 2 || !strings.HasPrefix(out, "CRITICAL: central tier delivered nothing for 3600s (none since it started)|") {
		t.Errorf("never delivered: rc %d %s", rc, out)
	}
	write(time.Second)
	mkdirs(t, CentralQuarantineDirs(work)[0], 2)
	mkdirs(t, CentralQuarantineDirs(work)[1], 1)
	out, rc = runFresh(t, "-f", conf)
	if rc != 1 || !strings.HasPrefix(out, "WARNING: 3 record(s) in quarantine|") || !strings.Contains(out, " quarantined=3;0;100;0;") ||
		!strings.Contains(out, "quarantine: 2 in "+work+"/received.quarantine, 1 in "+work+"/lines.quarantine") {
		t.Errorf("quarantine: rc %d %s", rc, out)
	}
	// work-dir unset: the programs' default.
	writeFile(t, conf, "[central]\nbrokers = 127.0.0.1:9092\n")
	if out, rc = runFresh(t, "-f", conf); rc != 3 || !strings.Contains(out, config.DefaultCentralWorkDir) {
		t.Errorf("default work-dir: rc %d %s", rc, out)
	}
}
