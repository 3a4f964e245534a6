package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// The Mesos source kind end to end: fixture HTTP servers replaying real master payloads (and
// synthetic agent ones) → stats-pull --once → stats-process --once → the local store, checked
// against an independent computation from the raw bodies the snapshot holds, decoded here
// with encoding/json; and a real carbon-cache storing a path that is both a leaf and a node.

// mesosTestdata is the kind's testdata folder.
var mesosTestdata = filepath.Join("..", "internal", "sources", "mesos", "testdata")

func mesosPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mesosTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mesosNumber is a JSON number after a ':' (keys hold no ':').
var mesosNumber = regexp.MustCompile(`(:\s*)(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)`)

// mesosRescale gives every value of a raw body another value (integers stay integers), so
// that three instances replaying one real payload differ; the bytes around them (escapes,
// layout) are kept.
func mesosRescale(body []byte, mul, add int) []byte {
	return mesosNumber.ReplaceAllFunc(body, func(m []byte) []byte {
		sub := mesosNumber.FindSubmatch(m)
		num := string(sub[2])
		var v string
		if i, err := strconv.ParseInt(num, 10, 64); err == nil {
			v = strconv.FormatInt(i*int64(mul)+int64(add), 10)
		} else {
			f, _ := strconv.ParseFloat(num, 64)
			v = strconv.FormatFloat(f*float64(mul)+float64(add)/4, 'g', -1, 64)
		}
		return append(append([]byte(nil), sub[1]...), v...)
	})
}

// mesosSetElected sets master/elected (escaped or not) in a raw body.
func mesosSetElected(t *testing.T, body []byte, v int) []byte {
	t.Helper()
	re := regexp.MustCompile(`("master(?:\\/|/)elected"\s*:\s*)[0-9]+`)
	if !re.Match(body) {
		t.Fatal("no master/elected in the body")
	}
	return re.ReplaceAll(body, []byte("${1}"+strconv.Itoa(v)))
}

// mesosFixture serves one instance's /metrics/snapshot.
type mesosFixture struct {
	body   []byte
	gzip   bool
	status int
	hang   bool // never answers: the client's timeout ends the request
}

func mesosServe(t *testing.T, f mesosFixture) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics/snapshot" {
			http.NotFound(w, r)
			return
		}
		if f.hang {
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if f.status != 0 {
			w.WriteHeader(f.status)
			w.Write([]byte(`{"error":"injected"}`))
			return
		}
		if f.gzip {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Errorf("no Accept-Encoding: gzip in the request")
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(f.body)
			zw.Close()
			return
		}
		w.Write(f.body)
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL // a base URL: the kind adds /metrics/snapshot
}

// mesosFuncs is the kind's default policy table (README.md), written anew from the
// documentation with suffix tests instead of globs.
func mesosFuncs(key string) []string {
	last := key[strings.LastIndexByte(key, '/')+1:]
	parent := ""
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		parent = key[:i]
	}
	timerStat := strings.HasSuffix(parent, "_ms") &&
		(last == "min" || last == "max" || len(last) > 1 && last[0] == 'p' && last[1] >= '0' && last[1] <= '9')
	switch {
	case strings.HasSuffix(parent, "_ms") && last == "count":
		return []string{"sum"}
	case timerStat, strings.HasSuffix(key, "_ms"):
		return []string{"max", "avg"}
	case key == "master/elected":
		return []string{"sum"}
	case key == "master/uptime_secs", key == "slave/uptime_secs":
		return []string{"min", "max"}
	case strings.HasPrefix(key, "system/load_"):
		return []string{"avg", "max"}
	case strings.HasPrefix(key, "slave/") && strings.HasSuffix(key, "_percent"):
		return []string{"avg", "max"}
	case key == "slave/executor_directory_max_allowed_age_secs":
		return []string{"min", "max"}
	}
	return []string{"sum"}
}

// mesosPath maps a key to its path below the source: '.' in a part → '_', '/' → '.', each
// part sanitised as a component.
func mesosPath(t *testing.T, key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = omComponent(t, strings.ReplaceAll(p, ".", "_"))
	}
	return strings.Join(parts, ".")
}

// mesosExpect models stats-process's lines of one source from the raw bodies of its snapshot
// directory, with the leader rule applied to masters' bodies when electedOnly.
func mesosExpect(t *testing.T, part, source string, electedOnly, perInstance bool) *omExpect {
	t.Helper()
	e := newOMExpect(t, source, omPolicy{})
	metas, _ := filepath.Glob(filepath.Join(part, "*.meta.json"))
	slices.Sort(metas)
	if len(metas) == 0 {
		t.Fatalf("no instance in %s", part)
	}
	for _, m := range metas {
		inst := strings.TrimSuffix(filepath.Base(m), ".meta.json")
		raw, err := os.ReadFile(filepath.Join(part, inst+".body"))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]json.Number
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&body); err != nil {
			t.Fatalf("%s: encoding/json: %v", inst, err)
		}
		standby := electedOnly && body["master/elected"] == "0"
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range body {
				if !yield(k) {
					return
				}
			}
		})
		seen := map[string]bool{}
		for _, k := range keys {
			if standby && strings.HasPrefix(k, "master/") && k != "master/elected" && k != "master/uptime_secs" {
				continue
			}
			v, err := strconv.ParseFloat(string(body[k]), 64)
			if err != nil {
				t.Fatalf("%s: %s = %s: %v", inst, k, body[k], err)
			}
			p := mesosPath(t, k)
			if seen[p] {
				t.Fatalf("%s: two keys make %s: the model does not cover that", inst, p)
			}
			seen[p] = true
			e.add(e.prefix+"."+p, mesosFuncs(k), v)
			if perInstance {
				e.addInstance(e.prefix+".instance."+omComponent(t, inst)+"."+p, v)
			}
		}
	}
	return e
}

// Three masters (one elected, one served gzip, one an old 0.22 master with legacy keys) and
// two agents, plus five agents that fail (a 500, one past its timeout, a truncated body, an
// oversized one, a non-snapshot JSON): the store holds exactly the values computed here from
// the snapshot's raw bodies; the failed agents are recorded, the others delivered.
func TestMesosMastersAndAgents(t *testing.T) {
	escaped := mesosPayload(t, "master_snapshot_escaped_slashes.json")
	legacy := mesosPayload(t, "dd-agent_mesos_master_stats.json")
	leader := escaped
	standbyGzip := mesosSetElected(t, mesosRescale(escaped, 3, 1), 0)
	standbyOld := mesosSetElected(t, legacy, 0)
	agentA, agentB := mesosPayload(t, "agent_a.json"), mesosPayload(t, "agent_b.json")
	var big bytes.Buffer
	big.Write(agentA[:len(agentA)-2]) // without "}\n"
	for i := 0; big.Len() < 100_000; i++ {
		fmt.Fprintf(&big, `,"slave\/padding\/k%06d":%d`, i, i)
	}
	big.WriteString("}\n")

	urls := map[string]string{
		"m1":        mesosServe(t, mesosFixture{body: leader}),
		"m2":        mesosServe(t, mesosFixture{body: standbyGzip, gzip: true}),
		"m3":        mesosServe(t, mesosFixture{body: standbyOld}),
		"a1":        mesosServe(t, mesosFixture{body: agentA}),
		"a2":        mesosServe(t, mesosFixture{body: agentB, gzip: true}),
		"err500":    mesosServe(t, mesosFixture{status: 500}),
		"slow":      mesosServe(t, mesosFixture{hang: true}),
		"truncated": mesosServe(t, mesosFixture{body: agentA[:len(agentA)/2]}),
		"oversized": mesosServe(t, mesosFixture{body: big.Bytes()}),
		"state":     mesosServe(t, mesosFixture{body: []byte(`{"frameworks":[],"slaves":[]}`)}),
	}
	named := func(names ...string) string {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s=%s\n    ", n, urls[n])
		}
		return b.String()
	}
	base := t.TempDir()
	conf := omConfig(t, base, "", `
[source.masters]
type = mesos
urls = `+named("m1", "m2", "m3")+`
per-instance-metrics = true
[source.agents]
type = mesos
urls = `+named("a1", "a2", "err500", "slow", "truncated", "oversized", "state")+`
allow-partial = true
timeout = 1
max-body-size = 65536
`)
	start := time.Now()
	snap, log := omPull(t, conf)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stats-pull --once took %v: the slow instance was not cut at its timeout", d)
	}
	epoch := filepath.Base(snap)

	// The failed agents are recorded with what failed, and have no files.
	record, err := os.ReadFile(filepath.Join(snap, "statspipe-partial"))
	if err != nil {
		t.Fatalf("no statspipe-partial: %v\n%s", err, log)
	}
	failed := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(string(record), "\n"), "\n") {
		name, reason, _ := strings.Cut(l, "\t")
		failed[name] = reason
	}
	for inst, want := range map[string]string{
		"err500": "500", "slow": "timeout", "truncated": "truncated", "oversized": "65536", "state": "object or array",
	} {
		reason, ok := failed["agents/"+inst]
		if !ok || !strings.Contains(strings.ToLower(reason), want) {
			t.Errorf("statspipe-partial: agents/%s = %q (recorded %v), want a reason with %q", inst, reason, ok, want)
		}
		if _, err := os.Stat(filepath.Join(snap, "agents", inst+".meta.json")); err == nil {
			t.Errorf("failed instance %s has files in the snapshot", inst)
		}
	}
	if len(failed) != 5 {
		t.Errorf("statspipe-partial has %d lines, want 5:\n%s", len(failed), record)
	}
	// The bodies are kept as received (decompressed), escapes included.
	for inst, want := range map[string][]byte{"m1": leader, "m2": standbyGzip, "m3": standbyOld, "a2": agentB} {
		dir := "masters"
		if inst[0] == 'a' {
			dir = "agents"
		}
		got, err := os.ReadFile(filepath.Join(snap, dir, inst+".body"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s.body differs from what was served (%v)", inst, err)
		}
	}
	if m := omReadMeta(t, filepath.Join(snap, "masters", "m2.meta.json")); m.ContentEncoding != "gzip" || m.WireBytes >= m.Bytes ||
		m.URL != urls["m2"]+"/metrics/snapshot" {
		t.Errorf("m2 meta %+v: want gzip, fewer wire bytes, the URL with /metrics/snapshot added", m)
	}

	// The model, from the snapshot's bodies before stats-process consumes it; a copy is kept
	// for the second run.
	masters := mesosExpect(t, filepath.Join(snap, "masters"), "masters", true, true)
	agents := mesosExpect(t, filepath.Join(snap, "agents"), "agents", true, false)
	mastersOff := mesosExpect(t, filepath.Join(snap, "masters"), "masters", false, false)
	kept := filepath.Join(t.TempDir(), epoch)
	copyTree(t, snap, kept)
	got := omProcess(t, conf, filepath.Join(base, "store"), epoch)
	n := omCompare(t, masters, got) + omCompare(t, agents, got)

	// The points the issue names, spelled out.
	p := omPrefix + ".masters."
	var leaderBody map[string]float64
	if err := json.Unmarshal(leader, &leaderBody); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]float64{
		p + "master.elected":                          1,
		p + "master.cpus_total":                       leaderBody["master/cpus_total"], // the leader's only
		p + "master.slave_removals":                   leaderBody["master/slave_removals"],
		p + "master.slave_removals.reason_registered": leaderBody["master/slave_removals/reason_registered"],
		omPrefix + ".agents.slave.tasks_running":      3 + 2,
		omPrefix + ".agents.slave.registered":         2,
	} {
		if g, ok := got[path]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", path, g, ok, want)
		}
	}
	for _, not := range []string{p + "registrar.state_store_ms.p99", p + "master.uptime_secs", p + "system.load_1min",
		p + "instance.m2.master.cpus_total", p + "instance.m3.master.tasks_running"} {
		if v, ok := got[not]; ok {
			t.Errorf("unexpected line %s %v", not, v)
		}
	}
	if _, ok := got[p+"instance.m3.uptime"]; !ok {
		t.Errorf("the old master's legacy key uptime is missing")
	}
	t.Logf("%d lines compared with the model from the raw bodies; %d in the store", n, len(got))

	// The same snapshot with elected-only = false: every master's master/* values summed.
	off, offStore := omProcessOnly(t, kept, `
[source.masters]
type = mesos
elected-only = false
`)
	gotOff := omProcess(t, off, offStore, epoch)
	omCompare(t, mastersOff, gotOff)
	if gotOff[p+"master.elected"] != 1 || gotOff[p+"master.cpus_total"] <= got[p+"master.cpus_total"] {
		t.Errorf("elected-only = false: master.cpus_total %v (leader only: %v), master.elected %v",
			gotOff[p+"master.cpus_total"], got[p+"master.cpus_total"], gotOff[p+"master.elected"])
	}
}

// Graphite keeps a path that is both a leaf and a node: a real carbon-cache stores x.y and
// x.y.z side by side (whisper: x/y.wsp next to the directory x/y/), in either order; and the
// Mesos pipeline's leaf-and-node pairs (master.slave_removals and its reasons, a timer's .max
// next to .max.max) arrive and read back.
func TestMesosLeafAndNodeInCarbon(t *testing.T) {
	carbon := testrig.StartCarbon(t)
	ts := time.Now().Unix()
	conn, err := net.Dial("tcp", carbon.LineAddr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "leafnode.x.y 1 %d\nleafnode.x.y.z 2 %d\nleafnode.q.r.s 3 %d\nleafnode.q.r 4 %d\n", ts, ts, ts, ts)
	conn.Close()
	for path, want := range map[string]float64{"leafnode.x.y": 1, "leafnode.x.y.z": 2, "leafnode.q.r.s": 3, "leafnode.q.r": 4} {
		got, ok := carbon.WaitFor(t, path, ts, 20*time.Second)
		if !ok || got != want {
			t.Fatalf("carbon: %s = %v (found %v), want %v\n%s", path, got, ok, want, carbon.Output())
		}
	}
	for _, leafAndDir := range []string{"leafnode.x.y", "leafnode.q.r"} {
		file := carbon.WhisperFile(leafAndDir)
		fi, err := os.Stat(file)
		di, derr := os.Stat(strings.TrimSuffix(file, ".wsp"))
		if err != nil || !fi.Mode().IsRegular() || derr != nil || !di.IsDir() {
			t.Fatalf("%s: want the file %s and the directory beside it (%v, %v)", leafAndDir, file, err, derr)
		}
	}
	t.Logf("carbon stored leafnode.x.y (x/y.wsp) and leafnode.x.y.z (x/y/z.wsp), and the reverse order")

	// The pipeline: one elected master, processed into carbon.
	leader := mesosPayload(t, "master_snapshot_escaped_slashes.json")
	base := t.TempDir()
	conf := omConfig(t, base, "", "[source.masters]\ntype = mesos\nurls = m1="+mesosServe(t, mesosFixture{body: leader})+"\n")
	snap, _ := omPull(t, conf)
	epoch := filepath.Base(snap)
	ets, _ := strconv.ParseInt(epoch, 10, 64)
	b := t.TempDir()
	copyTree(t, snap, filepath.Join(b, "incoming", epoch))
	pconf := writeConfig(t, b, `
[process]
src-dir = `+b+`/incoming
[graphite]
server = 127.0.0.1
port = `+strconv.Itoa(carbon.LinePort)+`
hostname = vm
[local-store]
dir = `+b+`/store
`)
	if out, _, code := omRun(t, "stats-process", "-f", pconf, "--once"); code != 0 {
		t.Fatalf("stats-process --once exited %d: %s", code, out)
	}
	var body map[string]float64
	json.Unmarshal(leader, &body)
	p := omPrefix + ".masters."
	for path, want := range map[string]float64{
		p + "master.slave_removals":                   body["master/slave_removals"],
		p + "master.slave_removals.reason_registered": body["master/slave_removals/reason_registered"],
		p + "registrar.state_store_ms.max":            body["registrar/state_store_ms"],
		p + "registrar.state_store_ms.max.max":        body["registrar/state_store_ms/max"],
		p + "registrar.state_store_ms.p99.avg":        body["registrar/state_store_ms/p99"],
	} {
		got, ok := carbon.WaitFor(t, path, ets, 20*time.Second)
		if !ok || math.Abs(got-want) > 1e-12*math.Abs(want) {
			t.Errorf("carbon: %s at %d = %v (found %v), want %v", path, ets, got, ok, want)
		}
	}
}
