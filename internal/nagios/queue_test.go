package nagios

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// queueRig is a dst-dir with n snapshot directories and a configuration file pointing at it.
type queueRig struct {
	dir, conf string
}

func newQueueRig(t *testing.T, snapshots int) queueRig {
	t.Helper()
	base := t.TempDir()
	r := queueRig{dir: filepath.Join(base, "incoming"), conf: filepath.Join(base, "haproxystats.conf")}
	mkdirs(t, r.dir, snapshots)
	writeFile(t, r.conf, "[pull]\ndst-dir = "+r.dir+"\n")
	return r
}

func mkdirs(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.Mkdir(filepath.Join(dir, strconv.Itoa(1700000000+i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runQueue(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	rc := QueueSize(args, "test", &out)
	return out.String(), rc
}

func TestQueueSizeStates(t *testing.T) {
	for _, tc := range []struct {
		queued int
		want   string
		rc     int
	}{
		{0, "OK", 0},
		{3, "OK", 0},
		{4, "WARNING", 1},
		{7, "WARNING", 1},
		{8, "CRITICAL", 2},
	} {
		r := newQueueRig(t, tc.queued)
		out, rc := runQueue(t, "-f", r.conf, "-o", "3", "-w", "7")
		want := tc.want + ": queue size " + strconv.Itoa(tc.queued) + ": Queue location=" + r.dir +
			", Thresholds OK=3 WARNING=7 and any higher value is critical|queue_size=" +
			strconv.Itoa(tc.queued) + ";3;7;0; quarantined=0;;;0;\n"
		if out != want || rc != tc.rc {
			t.Errorf("%d queued: got rc %d\n%q\nwant rc %d\n%q", tc.queued, rc, out, tc.rc, want)
		}
	}
}

func TestQueueSizeDefaultsAndLongOptions(t *testing.T) {
	r := newQueueRig(t, 61)
	out, rc := runQueue(t, "--file", r.conf)
	if rc != 1 || !strings.HasPrefix(out, "WARNING: queue size 61: ") || !strings.Contains(out, "Thresholds OK=60 WARNING=120 ") {
		t.Errorf("defaults -o 60 -w 120: rc %d %q", rc, out)
	}
	out, rc = runQueue(t, "--file="+r.conf, "--ok", "70", "--warning=80")
	if rc != 0 || !strings.Contains(out, "Thresholds OK=70 WARNING=80 ") {
		t.Errorf("long options: rc %d %q", rc, out)
	}
}

// The queue is counted as stats-pull counts it (spool.QueueLen): dot entries, plain files and
// the quarantine directory are not snapshots.
func TestQueueSizeCountsSnapshotsOnly(t *testing.T) {
	r := newQueueRig(t, 2)
	mkdirs(t, filepath.Join(r.dir, ".tmp-leftover"), 0)
	writeFile(t, filepath.Join(r.dir, "README"), "x")
	mkdirs(t, filepath.Join(r.dir, "x.quarantine"), 0)
	out, rc := runQueue(t, "-f", r.conf)
	if rc != 0 || !strings.HasPrefix(out, "OK: queue size 2: ") {
		t.Errorf("rc %d %q", rc, out)
	}
}

func TestQueueSizeQuarantine(t *testing.T) {
	r := newQueueRig(t, 1)
	mkdirs(t, r.dir+".quarantine", 2)
	long := "\n2 snapshot(s) in quarantine at " + r.dir + ".quarantine: stats-process could not read them; see the REASON file in each\n"

	out, rc := runQueue(t, "-f", r.conf)
	if rc != 0 || !strings.HasPrefix(out, "OK: queue size 1: ") || !strings.Contains(out, " quarantined=2;;;0;"+long) {
		t.Errorf("without -q the quarantine is reported, not alerted on: rc %d %q", rc, out)
	}
	out, rc = runQueue(t, "-f", r.conf, "-q")
	if rc != 1 || !strings.HasPrefix(out, "WARNING: queue size 1: ") || !strings.Contains(out, " quarantined=2;0;;0;"+long) {
		t.Errorf("-q: rc %d %q", rc, out)
	}
	out, rc = runQueue(t, "-f", r.conf, "-q", "-o", "0", "-w", "0")
	if rc != 2 || !strings.HasPrefix(out, "CRITICAL: queue size 1: ") {
		t.Errorf("-q never lowers CRITICAL: rc %d %q", rc, out)
	}
}

func TestQueueSizeMissingConfiguration(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no file", "", "OK: missing configuration as I got: No section: 'pull' (" + filepath.Join(dir, "no file") + " does not exist)\n"},
		{"no section", "[process]\nsrc-dir = /x\n", "OK: missing configuration as I got: No section: 'pull'\n"},
		{"no option", "[pull]\nqueue-size = 3\n", "OK: missing configuration as I got: No option 'dst-dir' in section: 'pull'\n"},
	} {
		path := filepath.Join(dir, tc.name)
		if tc.text != "" {
			writeFile(t, path, tc.text)
		}
		out, rc := runQueue(t, "-f", path)
		if out != tc.want || rc != 0 {
			t.Errorf("%s: rc %d %q, want rc 0 %q", tc.name, rc, out, tc.want)
		}
	}
}

// The file is read in the programs' dialect: DEFAULT inheritance, ${section:option}, and
// case-insensitive option names.
func TestQueueSizeInterpolation(t *testing.T) {
	r := newQueueRig(t, 5)
	writeFile(t, r.conf, "[DEFAULT]\nbase = "+filepath.Dir(r.dir)+"\n[paths]\nspool = ${base}\n[pull]\nDST-DIR = ${paths:spool}/incoming\n")
	out, rc := runQueue(t, "-f", r.conf, "-o", "4", "-w", "9")
	if rc != 1 || !strings.HasPrefix(out, "WARNING: queue size 5: Queue location="+r.dir+",") {
		t.Errorf("rc %d %q", rc, out)
	}
}

func TestQueueSizeUnknown(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, "[pull]\ndst-dir = /x\n[pull]\n")
	loop := filepath.Join(dir, "loop.conf")
	writeFile(t, loop, "[pull]\ndst-dir = ${dst-dir}\n")
	gone := filepath.Join(dir, "gone.conf")
	writeFile(t, gone, "[pull]\ndst-dir = "+filepath.Join(dir, "missing")+"\n")

	for _, tc := range []struct {
		name   string
		args   []string
		prefix string
	}{
		{"syntax error", []string{"-f", bad}, "UNKNOWN: can't read the configuration: invalid configuration, file:'" + bad + "' line:3 section:'pull' error: section 'pull' already exists"},
		{"interpolation", []string{"-f", loop}, "UNKNOWN: can't read the configuration: invalid configuration, file:'" + loop + "' line:2 section:'pull' option:'dst-dir'"},
		{"dst-dir missing", []string{"-f", gone}, "UNKNOWN: can't check " + filepath.Join(dir, "missing") + " due to open " + filepath.Join(dir, "missing") + ": no such file or directory\n"},
		{"unknown option", []string{"--bogus"}, "UNKNOWN: invalid command line"},
		{"extra argument", []string{"extra"}, "UNKNOWN: invalid command line"},
		{"bad numbers", []string{"-o", "x", "-w", "-1"}, "UNKNOWN: -o \"x\" is not a non-negative integer; -w \"-1\" is not a non-negative integer\nUsage:\n"},
		{"ok above warning", []string{"-o", "9", "-w", "3"}, "UNKNOWN: -o 9 is above -w 3: "},
	} {
		out, rc := runQueue(t, tc.args...)
		if rc != 3 || !strings.HasPrefix(out, tc.prefix) {
			t.Errorf("%s: rc %d\n%q\nwant rc 3 and prefix\n%q", tc.name, rc, out, tc.prefix)
		}
	}
}

func TestQueueSizeHelp(t *testing.T) {
	out, rc := runQueue(t, "-h")
	if rc != 0 || !strings.Contains(out, "check_statspipe_queue_size [-f <file>] [-o <ok>] [-w <warning>] [-q]") {
		t.Errorf("rc %d %q", rc, out)
	}
	out, rc = runQueue(t, "--version")
	if rc != 0 || out != "statspipe test\n" {
		t.Errorf("rc %d %q", rc, out)
	}
}
