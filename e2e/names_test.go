package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/testrig"
)

const goldenSmall = "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"

// plainStatsProcess builds stats-process without the race detector (whose shadow memory would
// multiply the RSS this file measures) and tools/runstat, once, into one directory.
//
// The peak RSS comes from runstat, not from this test's own wait: Go starts a child with
// vfork, and Linux counts the parent's RSS at that moment (here the 60 MB name and its
// snapshot) in the child's peak.
var plainStatsProcess = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(binDir, "plain")
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/statspipe/statspipe/cmd/stats-process",
		"github.com/statspipe/statspipe/tools/runstat").CombinedOutput()
	if err != nil {
		return "", &buildError{err, out}
	}
	return dir, nil
})

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + string(e.out) }

// hostileName is n bytes of a name with what sanitising replaces ('.', '/', ';') and multi-byte
// runes.
func hostileName(n int) string {
	const unit = "be/ünï;code.x-"
	return strings.Repeat(unit, n/len(unit)+1)[:n/len(unit)*len(unit)]
}

// writeLongNameSnapshot writes golden S's first process into dir with one name replaced by
// name: the frontend fe_0000, the backend be_0000.example.com (its BACKEND row and server srv00;
// srv01 is left out so that the name is in two rows), or the server srv00 of that backend.
// It returns the snapshot's size.
func writeLongNameSnapshot(t *testing.T, dir, which, name string) int64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	info, err := os.ReadFile(filepath.Join(goldenSmall, "admin1.sock_info"))
	if err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin1.sock_info"), info, 0o644); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(filepath.Join(goldenSmall, "admin1.sock_stat"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "admin1.sock_stat"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	const be = "be_0000.example.com,"
	for line := range bytes.Lines(stat) {
		switch {
		case which == "frontend" && bytes.HasPrefix(line, []byte("fe_0000,FRONTEND,")):
			w.WriteString(name)
			w.Write(line[len("fe_0000"):])
		case which == "backend" && bytes.HasPrefix(line, []byte(be+"srv01.example,")):
			// left out
		case which == "backend" && bytes.HasPrefix(line, []byte(be)):
			w.WriteString(name)
			w.Write(line[len(be)-1:])
		case which == "server" && bytes.HasPrefix(line, []byte(be+"srv00.example,")):
			w.WriteString(be + name)
			w.Write(line[len(be+"srv00.example"):])
		default:
			w.Write(line)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return fi.Size() + int64(len(info))
}

// A 60 MB frontend, backend or server name (STATSPIPE_LONG_NAME_MB changes the size) goes
// through the real stats-process --once into the local store: the name is shortened once,
// peak RSS stays within a small multiple of the snapshot's size, the output stays the size of
// a normal snapshot's, and the snapshot is delivered and removed. It printed 20 GB of RSS and
// an OOM kill before names were bounded.
func TestLongNameBoundedMemoryAndDisk(t *testing.T) {
	mb := 60
	if s := os.Getenv("STATSPIPE_LONG_NAME_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 1 || mb > 60 {
			t.Fatalf("STATSPIPE_LONG_NAME_MB=%q: want 1 to 60", s)
		}
	}
	bin, err := plainStatsProcess()
	if err != nil {
		t.Fatal(err)
	}
	name := hostileName(mb << 20)
	short, shortened := metric.Names{MaxLength: metric.DefaultMaxComponentLength}.Component(name)
	if !shortened {
		t.Fatal("the test name is not long enough to be shortened")
	}
	for _, which := range []string{"backend", "server", "frontend"} {
		t.Run(which, func(t *testing.T) {
			base := t.TempDir()
			src := filepath.Join(base, "incoming")
			snap := filepath.Join(src, "1700000000")
			size := writeLongNameSnapshot(t, snap, which, name)
			conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 2
[graphite]
enabled = false
hostname = vm
[local-store]
dir = `+base+`/local-store
`)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			figures := filepath.Join(base, "runstat")
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "runstat"), "-o", figures, "--",
				filepath.Join(bin, "stats-process"), "-f", conf, "--once")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			runErr := cmd.Run()
			if cmd.ProcessState == nil {
				t.Fatalf("stats-process did not run: %v", runErr)
			}
			// "cpu_ms user_ms sys_ms maxrss_kib wall_ms"
			var cpuMs, userMs, sysMs, wallMs float64
			var rssKiB int64
			if line, err := os.ReadFile(figures); err != nil {
				t.Fatalf("runstat: %v\n%s", err, out.String())
			} else if _, err := fmt.Sscan(string(line), &cpuMs, &userMs, &sysMs, &rssKiB, &wallMs); err != nil {
				t.Fatalf("runstat figures %q: %v", line, err)
			}
			rssMB := float64(rssKiB) / 1024
			stored, readErr := os.ReadFile(filepath.Join(base, "local-store", "1700000000", "stats"))
			lines := bytes.Count(stored, []byte("\n"))
			t.Logf("%s name of %d MB: snapshot %.1f MB, peak RSS %.1f MB, local-store file %d bytes (%d lines), CPU %.0f ms, %.2f s",
				which, mb, float64(size)/(1<<20), rssMB, len(stored), lines, cpuMs, wallMs/1000)
			if code := cmd.ProcessState.ExitCode(); code != 0 || readErr != nil {
				t.Fatalf("exit %d (%v), local-store file: %v\n%.4000s", code, runErr, readErr, out.String())
			}
			if bound := 4*float64(size)/(1<<20) + 64; rssMB > bound {
				t.Errorf("peak RSS %.1f MB, bound 4 × snapshot + 64 MB = %.1f MB", rssMB, bound)
			}
			if len(stored) > 1<<20 {
				t.Errorf("local-store file of %d bytes for %d lines", len(stored), lines)
			}
			for i, line := range bytes.Split(bytes.TrimSuffix(stored, []byte("\n")), []byte("\n")) {
				if len(line) > metric.DefaultMaxLineLength {
					t.Fatalf("line %d has %d bytes", i+1, len(line))
				}
				path, _, _ := bytes.Cut(line, []byte(" "))
				for _, c := range bytes.Split(path, []byte(".")) {
					if len(c) > metric.DefaultMaxComponentLength {
						t.Fatalf("line %d has a component of %d bytes", i+1, len(c))
					}
				}
			}
			want := map[string]string{
				"backend":  ".backend." + short + ".bin ",
				"server":   ".backend.be_0000_example_com.server." + short + ".bin ",
				"frontend": ".frontend." + short + ".bin ",
			}[which]
			if !bytes.Contains(stored, []byte(want)) {
				t.Errorf("no line with %s", want)
			}
			log := out.String()
			if n := strings.Count(log, "were shortened"); n != 1 || !strings.Contains(log, short) {
				t.Errorf("want one log line about the shortened name, got %d:\n%.4000s", n, log)
			}
			if _, err := os.Stat(snap); !os.IsNotExist(err) {
				t.Errorf("the delivered snapshot is still in the spool (%v)", err)
			}
		})
	}
}

// A line longer than max-line-length is not written, the rest of the snapshot is delivered to
// the local store, and the snapshot is not reported delivered: stats-process --once exits 1 and
// quarantines it with a REASON naming the problem (it is never retried as is).
func TestLongLineNotDelivered(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	snap := filepath.Join(src, "1700000000")
	// a 250-byte server name is within max-component-length but makes its lines longer than
	// 300 bytes
	writeLongNameSnapshot(t, snap, "server", strings.Repeat("s", 250))
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
workers = 1
max-line-length = 300
[graphite]
enabled = false
hostname = vm
[local-store]
dir = `+base+`/local-store
`)
	out, code := runProcess(t, nil, "-f", conf, "--once")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	stored, err := os.ReadFile(filepath.Join(base, "local-store", "1700000000", "stats"))
	if err != nil {
		t.Fatalf("the rest of the snapshot was not delivered: %v\n%s", err, out)
	}
	for _, want := range []string{".frontend.fe_0000.bin ", ".backend.be_0000_example_com.server.srv01_example.bin ", "TotalWallClockTime "} {
		if !bytes.Contains(stored, []byte(want)) {
			t.Errorf("local store lacks %s", want)
		}
	}
	if bytes.Contains(stored, []byte(strings.Repeat("s", 250))) {
		t.Error("a line over max-line-length was written")
	}
	if strings.Count(out, "longer than max-line-length were not written") != 1 {
		t.Errorf("want one log line about the long lines:\n%s", out)
	}
	if _, err := os.Stat(snap); err == nil {
		t.Errorf("the snapshot is still in the spool; want it quarantined:\n%s", out)
	}
	reason, err := os.ReadFile(filepath.Join(src+".quarantine", "1700000000", "REASON"))
	if err != nil {
		t.Fatalf("the snapshot was not quarantined with a REASON: %v\n%s", err, out)
	}
	if !bytes.Contains(reason, []byte("max-line-length")) {
		t.Errorf("REASON does not name the problem:\n%s", reason)
	}
}

// Real carbon-cache stores the series of a shortened name: its 255-byte component is a whisper
// directory like any other, and the '/' and ';' of the original make no extra directory or
// tagged series.
func TestLongNameIntoCarbon(t *testing.T) {
	carbon := testrig.StartCarbon(t)
	base := t.TempDir()
	src := filepath.Join(base, "incoming")
	ts := time.Now().Unix() // within carbon's 1 s archive
	name := hostileName(1 << 20)
	writeLongNameSnapshot(t, filepath.Join(src, strconv.FormatInt(ts, 10)), "backend", name)
	conf := writeConfig(t, base, `
[process]
src-dir = `+src+`
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = vm
[local-store]
dir = `+base+`/local-store
`)
	out, code := runProcess(t, nil, "-f", conf, "--once")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	short, _ := metric.Names{MaxLength: metric.DefaultMaxComponentLength}.Component(name)
	path := "loadbalancers.vm.haproxy.backend." + short + ".TotalServers"
	stored, err := os.ReadFile(filepath.Join(base, "local-store", strconv.FormatInt(ts, 10), "stats"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(stored, []byte(path+" "))
	if !ok {
		t.Fatalf("local store has no %s", path)
	}
	want, _ := strconv.ParseFloat(string(rest[:bytes.IndexByte(rest, ' ')]), 64)
	got, ok := carbon.WaitFor(t, path, ts, 20*time.Second)
	if !ok || got != want {
		t.Fatalf("carbon: %s at %d = %v (found %v), want %v\n%s", path, ts, got, ok, want, carbon.Output())
	}
	dir := filepath.Dir(carbon.WhisperFile(path))
	t.Logf("carbon stored %s = %v in a directory named with %d bytes", path[:60]+"…", got, len(filepath.Base(dir)))
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "be_") && e.Name() != short && !strings.HasPrefix(e.Name(), "be_0") {
			t.Errorf("unexpected whisper directory %q next to the shortened one", e.Name())
		}
	}
}
