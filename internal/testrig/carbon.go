package testrig

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CarbonBinary is Debian's carbon-cache (package graphite-carbon); tests that need it skip
// when it is missing.
const CarbonBinary = "/usr/bin/carbon-cache"

// Carbon is a real carbon-cache on loopback (rigs.md §1.1), with its own configuration and
// whisper storage under a test directory. Every series is stored at 1 s resolution for an hour
// (then 60 s for a day), so each point a test sends can be read back.
type Carbon struct {
	LinePort   int    // plaintext listener, 127.0.0.1
	PicklePort int    // pickle listener, 127.0.0.1
	QueryPort  int    // cache-query port, 127.0.0.1
	StorageDir string // STORAGE_DIR; whisper files are under StorageDir/whisper
	Dir        string // everything of this instance: conf/, storage/, log/, run/

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	output  *carbonOutput
	stopped bool
}

// LineAddr is "127.0.0.1:<LinePort>".
func (c *Carbon) LineAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.LinePort)) }

// StartCarbon writes a configuration in t.TempDir() with free loopback ports, starts
// carbon-cache in the foreground and waits until it listens. It is killed on cleanup. The test
// is skipped when carbon-cache is not installed.
func StartCarbon(t testing.TB) *Carbon {
	t.Helper()
	if _, err := os.Stat(CarbonBinary); err != nil {
		t.Skipf("carbon-cache not installed (%v): apt-get install graphite-carbon", err)
	}
	dir := t.TempDir()
	ports := carbonFreePorts(t, 3)
	c := &Carbon{
		LinePort:   ports[0],
		PicklePort: ports[1],
		QueryPort:  ports[2],
		StorageDir: filepath.Join(dir, "storage"),
		Dir:        dir,
	}
	for _, sub := range []string{"conf", "log", "run", "storage/whisper", "storage/lists"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"carbon.conf":              c.carbonConf(),
		"storage-schemas.conf":     carbonSchemas,
		"storage-aggregation.conf": carbonAggregation,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, "conf", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.kill)
	c.Start(t)
	return c
}

// Comments must be on their own lines: carbon's INI parser keeps an inline "# …" in the value.
func (c *Carbon) carbonConf() string {
	return fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/storage/
LOCAL_DATA_DIR = %[1]s/storage/whisper/
WHITELISTS_DIR = %[1]s/storage/lists/
CONF_DIR = %[1]s/conf/
LOG_DIR = %[1]s/log/
PID_DIR = %[1]s/run/
# blank: do not setuid to _graphite
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
# the default, 50 a minute, would delay tests that create many series
MAX_CREATES_PER_MINUTE = inf
MIN_TIMESTAMP_RESOLUTION = 1
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[3]d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[4]d
WHISPER_FALLOCATE_CREATE = False
WHISPER_SPARSE_CREATE = True
# otherwise carbon POSTs tagged series to graphite-web
ENABLE_TAGS = False
LOG_LISTENER_CONN_SUCCESS = False
`, c.Dir, c.LinePort, c.PicklePort, c.QueryPort)
}

const carbonSchemas = `[carbon]
pattern = ^carbon\.
retentions = 10s:1h

[test]
pattern = .*
retentions = 1s:1h,60s:1d
`

const carbonAggregation = `[sum]
pattern = \.(count|sum|req_tot)$
xFilesFactor = 0
aggregationMethod = sum

[default]
pattern = .*
xFilesFactor = 0
aggregationMethod = average
`

// Start (re)starts carbon-cache with the same configuration, ports and storage, and waits
// until both the line port and the cache-query port accept connections.
func (c *Carbon) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && !c.stopped {
		t.Fatal("carbon-cache is already running")
	}
	pidfile := filepath.Join(c.Dir, "run", "carbon-cache.pid")
	_ = os.Remove(pidfile) // a killed instance leaves it behind, and twistd refuses to start
	cmd := exec.Command(CarbonBinary, "--config="+filepath.Join(c.Dir, "conf", "carbon.conf"),
		"--nodaemon", "--pidfile="+pidfile, "--logdir="+filepath.Join(c.Dir, "log"), "start")
	c.output = &carbonOutput{}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = c.output, c.output
	// Its own process group, so that nothing it might spawn survives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", CarbonBinary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited, c.stopped = cmd, exited, false

	deadline := time.Now().Add(15 * time.Second)
	for _, port := range []int{c.LinePort, c.QueryPort} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			select {
			case <-exited:
				t.Fatalf("carbon-cache exited during start-up:\n%s", c.diagnosticsLocked())
			default:
			}
			conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				_ = conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("carbon-cache: %s not accepting after 15 s: %v\n%s", addr, err, c.diagnosticsLocked())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Stop sends SIGTERM and waits for carbon-cache to exit; it writes its cache to whisper first
// (about 1.5 s). Start brings it back on the same ports with the same storage.
func (c *Carbon) Stop(t testing.TB) {
	t.Helper()
	c.end(t, syscall.SIGTERM, 15*time.Second)
}

// Crash kills carbon-cache with SIGKILL (frozen or not) and waits for it to exit: its cache
// and whatever its sockets held unread are lost. Start brings it back on the same ports.
func (c *Carbon) Crash(t testing.TB) {
	t.Helper()
	c.end(t, syscall.SIGKILL, 10*time.Second)
}

// end sends sig to the running instance and waits up to limit for it to exit (then kills it
// and fails the test).
func (c *Carbon) end(t testing.TB, sig syscall.Signal, limit time.Duration) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.stopped {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	select {
	case <-c.exited:
	case <-time.After(limit):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		t.Fatalf("carbon-cache did not stop within %v of %v:\n%s", limit, sig, c.diagnosticsLocked())
	}
	c.stopped = true
}

// kill ends the instance at cleanup without waiting for it to flush.
func (c *Carbon) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.stopped {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
	c.stopped = true
}

// Output is what carbon-cache wrote to stdout and stderr, plus its console log.
func (c *Carbon) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.diagnosticsLocked()
}

func (c *Carbon) diagnosticsLocked() string {
	var b strings.Builder
	if c.output != nil {
		b.WriteString(c.output.String())
	}
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "log", "*", "*.log"))
	more, _ := filepath.Glob(filepath.Join(c.Dir, "log", "*.log"))
	for _, f := range append(logs, more...) {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

// WhisperFile is the file carbon stores metricPath in.
func (c *Carbon) WhisperFile(metricPath string) string {
	return filepath.Join(c.StorageDir, "whisper", strings.ReplaceAll(metricPath, ".", "/")+".wsp")
}

// Fetch returns the points of metricPath with from ≤ timestamp ≤ until, from its 1 s archive.
// It polls for up to 10 s until the series exists and has at least one point in that range,
// and fails the test otherwise.
func (c *Carbon) Fetch(t testing.TB, metricPath string, from, until int64) map[int64]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for {
		var points map[int64]float64
		points, err = ReadWhisper(c.WhisperFile(metricPath), from, until)
		if err == nil && len(points) > 0 {
			return points
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("carbon: no point of %s in [%d, %d] after 10 s (%v)\n%s", metricPath, from, until, err, c.Output())
	return nil
}

// WaitFor polls until metricPath has a point at ts and returns its value, or false after
// timeout.
func (c *Carbon) WaitFor(t testing.TB, metricPath string, ts int64, timeout time.Duration) (float64, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		points, err := ReadWhisper(c.WhisperFile(metricPath), ts, ts)
		if err == nil {
			if v, ok := points[ts]; ok {
				return v, true
			}
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadWhisper reads the points with from ≤ timestamp ≤ until from the highest-precision
// archive of a whisper file (whisper 1.1 format: big-endian metadata, archive table, then
// (uint32 timestamp, float64 value) points). A slot whose stored timestamp is outside the range
// is either empty (0) or stale, and is skipped. A missing or still incomplete file is an error
// wrapping os.ErrNotExist or io.ErrUnexpectedEOF.
func ReadWhisper(file string, from, until int64) (map[int64]float64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	const metaSize, archiveInfoSize, pointSize = 16, 12, 12
	if len(data) < metaSize {
		return nil, fmt.Errorf("%s: %w in the header", file, io.ErrUnexpectedEOF)
	}
	archives := int(binary.BigEndian.Uint32(data[12:16]))
	if archives < 1 || len(data) < metaSize+archives*archiveInfoSize {
		return nil, fmt.Errorf("%s: %d archives: %w", file, archives, io.ErrUnexpectedEOF)
	}
	info := data[metaSize : metaSize+archiveInfoSize]
	offset := int(binary.BigEndian.Uint32(info[0:4]))
	points := int(binary.BigEndian.Uint32(info[8:12]))
	end := offset + points*pointSize
	if end > len(data) {
		return nil, fmt.Errorf("%s: archive 0 ends at %d of %d bytes: %w", file, end, len(data), io.ErrUnexpectedEOF)
	}
	out := map[int64]float64{}
	for p := offset; p < end; p += pointSize {
		ts := int64(binary.BigEndian.Uint32(data[p : p+4]))
		if ts == 0 || ts < from || ts > until {
			continue
		}
		out[ts] = math.Float64frombits(binary.BigEndian.Uint64(data[p+4 : p+12]))
	}
	return out, nil
}

// carbonFreePorts returns n distinct loopback TCP ports that were free a moment ago.
func carbonFreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// carbonOutput collects the child's output; carbon writes while tests read.
type carbonOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *carbonOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *carbonOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
