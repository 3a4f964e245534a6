package testrig

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// GraphiteWebModule is the Python package of Debian's graphite-web; tests that need it skip
// when it is missing.
const GraphiteWebModule = "/usr/lib/python3/dist-packages/graphite/settings.py"

const (
	graphiteWebReadyLimit = 30 * time.Second
	graphiteWebKillLimit  = 10 * time.Second
	// graphiteWebMaxBody bounds one /render or /metrics/find reply read by the rig.
	graphiteWebMaxBody = 32 << 20
)

// GraphiteWeb is Debian's graphite-web 1.1.8 run by Django's development server on loopback
// (rigs.md §1.4), reading the whisper files of a Carbon rig and its unflushed points through
// the cache-query port (CARBONLINK), with its own settings module: nothing under /etc is used.
type GraphiteWeb struct {
	URL string // "http://127.0.0.1:<port>"
	Dir string // settings module, log, sqlite database

	cmd    *exec.Cmd
	output *Buffer
	exited chan struct{}
	client *http.Client
}

// StartGraphiteWeb starts graphite-web on a free loopback port over carbon's storage, waits
// until /version/ answers and stops it (SIGKILL to its process group) on cleanup. The test is
// skipped when graphite-web is not installed. No database migration is run: /render,
// /metrics/find and /version/ do not need one.
func StartGraphiteWeb(t testing.TB, carbon *Carbon) *GraphiteWeb {
	t.Helper()
	if _, err := os.Stat(GraphiteWebModule); err != nil {
		t.Skipf("graphite-web is not installed (%v): apt-get install graphite-web", err)
	}
	if _, err := os.Stat(DebianPython); err != nil {
		t.Skipf("%s is missing (%v)", DebianPython, err)
	}
	dir := t.TempDir()
	for _, sub := range []string{"log/webapp", "webapp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	whisper := filepath.Join(carbon.StorageDir, "whisper")
	settings := fmt.Sprintf(`# written by internal/testrig/graphiteweb.go
SECRET_KEY = 'test-rig-not-secret'
ALLOWED_HOSTS = ['*']
TIME_ZONE = 'UTC'
DEBUG = False
GRAPHITE_ROOT = '/usr/share/graphite-web'
WEBAPP_DIR = %[1]q
STATIC_ROOT = %[2]q
STORAGE_DIR = %[3]q
WHISPER_DIR = %[4]q
STANDARD_DIRS = [%[4]q]
LOG_DIR = %[5]q
INDEX_FILE = %[6]q
CARBONLINK_HOSTS = ['127.0.0.1:%[7]d']
CARBONLINK_TIMEOUT = 2.0
DATABASES = {'default': {'NAME': %[8]q, 'ENGINE': 'django.db.backends.sqlite3'}}
`, filepath.Join(dir, "webapp"), filepath.Join(dir, "static-root"), carbon.StorageDir, whisper,
		filepath.Join(dir, "log", "webapp"), filepath.Join(dir, "index"), carbon.QueryPort,
		filepath.Join(dir, "graphite.db"))
	if err := os.WriteFile(filepath.Join(dir, "graphite_rig_settings.py"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &GraphiteWeb{Dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreeLoopbackPort(t)
		g.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		g.start(t, port)
		if lastErr = g.waitReady(); lastErr == nil {
			t.Cleanup(g.kill)
			return g
		}
		g.kill()
		if !addressInUse(g.output.String()) {
			break
		}
	}
	t.Fatalf("graphite-web did not start: %v\n%s", lastErr, tail(g.output.String(), promLogTail))
	return nil
}

func (g *GraphiteWeb) start(t testing.TB, port int) {
	t.Helper()
	cmd := exec.Command(DebianPython, "-m", "django", "runserver", "127.0.0.1:"+strconv.Itoa(port),
		"--noreload", "--insecure")
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(),
		"PYTHONPATH="+g.Dir,
		"GRAPHITE_SETTINGS_MODULE=graphite_rig_settings",
		"DJANGO_SETTINGS_MODULE=graphite.settings",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	)
	g.output = &Buffer{}
	cmd.Stdout, cmd.Stderr = g.output, g.output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting graphite-web: %v", err)
	}
	g.cmd, g.exited = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(g.exited)
}

func (g *GraphiteWeb) waitReady() error {
	deadline := time.Now().Add(graphiteWebReadyLimit)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-g.exited:
			return fmt.Errorf("graphite-web exited during start-up")
		default:
		}
		resp, err := client.Get(g.URL + "/version/")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(strings.TrimSpace(string(body))) > 0 {
				return nil
			}
			err = fmt.Errorf("/version/: status %d: %q", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", graphiteWebReadyLimit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server and everything in its process group.
func (g *GraphiteWeb) kill() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-g.exited:
	case <-time.After(graphiteWebKillLimit):
	}
}

// Output is what the server printed (request log, tracebacks) plus the tail of its
// exception log.
func (g *GraphiteWeb) Output() string {
	var b strings.Builder
	if g.output != nil {
		b.WriteString(tail(g.output.String(), promLogTail))
	}
	for _, name := range []string{"exception.log", "info.log"} {
		if data, err := os.ReadFile(filepath.Join(g.Dir, "log", "webapp", name)); err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s\n%s", name, tail(string(data), promLogTail))
		}
	}
	return b.String()
}

// Series is one series of a /render?format=json reply.
type Series struct {
	Target     string        `json:"target"`
	Datapoints [][2]*float64 `json:"datapoints"` // [value or null, timestamp]
}

// Values returns the non-null points of s, timestamp → value.
func (s Series) Values() map[int64]float64 {
	out := map[int64]float64{}
	for _, p := range s.Datapoints {
		if p[0] != nil && p[1] != nil {
			out[int64(*p[1])] = *p[0]
		}
	}
	return out
}

// Render evaluates one Graphite target over [from, until] (anything graphite-web accepts:
// "-5min", an epoch) with format=json. An error reply (a bad function, a parse error) is an
// error, with graphite-web's message.
func (g *GraphiteWeb) Render(target, from, until string) ([]Series, error) {
	q := url.Values{"target": {target}, "from": {from}, "until": {until}, "format": {"json"}}
	body, err := g.get("/render?" + q.Encode())
	if err != nil {
		return nil, err
	}
	var series []Series
	if err := json.Unmarshal(body, &series); err != nil {
		return nil, fmt.Errorf("render %q: %v: %.300s", target, err, body)
	}
	return series, nil
}

// RenderURL is the address of a PNG graph of targets with the given extra parameters (width,
// height, title, from, …).
func (g *GraphiteWeb) RenderURL(targets []string, params url.Values) string {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	q["target"] = targets
	return g.URL + "/render?" + q.Encode()
}

// Find lists the paths /metrics/find returns for a glob query.
func (g *GraphiteWeb) Find(query string) ([]string, error) {
	body, err := g.get("/metrics/find?" + url.Values{"query": {query}, "format": {"completer"}}.Encode())
	if err != nil {
		return nil, err
	}
	var reply struct {
		Metrics []struct {
			Path string `json:"path"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return nil, fmt.Errorf("find %q: %v: %.300s", query, err, body)
	}
	var paths []string
	for _, m := range reply.Metrics {
		paths = append(paths, strings.TrimSuffix(m.Path, "."))
	}
	return paths, nil
}

// Get fetches a path of the server (e.g. a PNG from RenderURL without the host) and returns
// its body; a status other than 200 is an error.
func (g *GraphiteWeb) Get(pathAndQuery string) ([]byte, error) { return g.get(pathAndQuery) }

func (g *GraphiteWeb) get(pathAndQuery string) ([]byte, error) {
	resp, err := g.client.Get(g.URL + pathAndQuery)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, graphiteWebMaxBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %.500s", pathAndQuery, resp.StatusCode, body)
	}
	return body, nil
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
