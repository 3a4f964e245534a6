package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// statesShow reads `show stat` of a socket: "pxname/svname" → status, check_status, agent_status
// of the server rows ("* " of a running check dropped).
func statesShow(t *testing.T, sock string) map[string][3]string {
	t.Helper()
	out := map[string][3]string{}
	for key, row := range omShowStat(t, sock) {
		if row["type"] != "2" {
			continue
		}
		out[key] = [3]string{row["status"], strings.TrimPrefix(row["check_status"], "* "), strings.TrimPrefix(row["agent_status"], "* ")}
	}
	return out
}

// TestServerStatesRealHAProxy forces servers of two real HAProxy processes into MAINT and
// DRAIN through the admin socket (app.dead is DOWN: nothing listens on its port), pulls with
// stats-pull and processes with stats-process --once ([process] server-states = true). Each
// server's status_code is its worst state over the two processes, and the backend counts are
// those of `show stat`.
func TestServerStatesRealHAProxy(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 2})
	i1, i2 := h.Instances[0], h.Instances[1]
	for _, c := range []struct {
		inst *testrig.HAProxyInstance
		cmd  string
	}{
		{i1, "disable server be_app/app1"},
		{i1, "set server be_app/app2 state drain"},
		{i2, "set server be.dotted.name/web.1 state maint"},
	} {
		if reply := strings.TrimSpace(omHAProxy(t, c.inst.Socket, c.cmd)); reply != "" {
			t.Fatalf("%q answered %q", c.cmd, reply)
		}
	}
	// wait (bounded) until the checks settled: app.dead DOWN, app2 and app1 UP on instance 2
	settled := func() bool {
		a, b := statesShow(t, i1.Socket), statesShow(t, i2.Socket)
		return a["be_app/app.dead"][0] == "DOWN" && b["be_app/app.dead"][0] == "DOWN" &&
			b["be_app/app1"][0] == "UP" && b["be_app/app2"][0] == "UP" && a["be.dotted.name/web.1"][0] == "UP"
	}
	for i := 0; !settled(); i++ {
		if i == 100 {
			t.Fatalf("states did not settle: %v / %v", statesShow(t, i1.Socket), statesShow(t, i2.Socket))
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := []map[string][3]string{statesShow(t, i1.Socket), statesShow(t, i2.Socket)}

	dir := t.TempDir()
	conf := writeConfig(t, dir, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+dir+`/incoming
tmp-dst-dir = `+dir+`/incoming.tmp
pull-timeout = 3
[process]
src-dir = `+dir+`/incoming
server-states = true
[graphite]
enabled = false
namespace = lb
hostname = h1
fqdn = false
[local-store]
dir = `+dir+`/store
`)
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	snap, _ := omPull(t, conf)
	after := []map[string][3]string{statesShow(t, i1.Socket), statesShow(t, i2.Socket)}
	for i := range before {
		for k, v := range before[i] {
			if after[i][k][0] != v[0] { // (check results may move from INI meanwhile)
				t.Fatalf("instance %d: %s changed during the pull: %v → %v", i+1, k, v, after[i][k])
			}
		}
	}
	got := omProcess(t, conf, filepath.Join(dir, "store"), filepath.Base(snap))

	// the model: the worst state over the processes (DOWN > MAINT > DRAIN > UP), counted by backend
	code := map[string]float64{"DOWN": 0, "UP": 1, "MAINT": 3, "DRAIN": 4}
	worse := map[string]int{"UP": 0, "DRAIN": 1, "MAINT": 2, "DOWN": 3}
	worst := map[string]string{}
	for _, inst := range before {
		for key, st := range inst {
			if _, ok := code[st[0]]; !ok {
				t.Fatalf("%s: status %q is not one this test forces", key, st[0])
			}
			if w, ok := worst[key]; !ok || worse[st[0]] > worse[w] {
				worst[key] = st[0]
			}
		}
	}
	counts := map[string]map[string]float64{}
	name := func(s string) string { return strings.ReplaceAll(s, ".", "_") }
	for key, st := range worst {
		be, srv, _ := strings.Cut(key, "/")
		path := "lb.h1.haproxy.backend." + name(be) + ".server." + name(srv) + ".status_code"
		if v, ok := got[path]; !ok || v != code[st] {
			t.Errorf("%s = %v (%v), want %v (%s)", path, v, ok, code[st], st)
		}
		if counts[be] == nil {
			counts[be] = map[string]float64{}
		}
		counts[be][st]++
	}
	for be, c := range counts {
		p := "lb.h1.haproxy.backend." + name(be) + "."
		for st, metric := range map[string]string{"UP": "ServersUp", "DOWN": "ServersDown", "MAINT": "ServersMaint", "DRAIN": "ServersDrain"} {
			if v, ok := got[p+metric]; !ok || v != c[st] {
				t.Errorf("%s%s = %v (%v), want %v", p, metric, v, ok, c[st])
			}
		}
		for _, metric := range []string{"ServersNolb", "ServersNoCheck"} {
			if v, ok := got[p+metric]; !ok || v != 0 {
				t.Errorf("%s%s = %v (%v), want 0", p, metric, v, ok)
			}
		}
	}
	// what the test forced shows: be_app has one server in each of MAINT, DRAIN, DOWN
	for metric, want := range map[string]float64{"ServersMaint": 1, "ServersDrain": 1, "ServersDown": 1, "ServersUp": 0} {
		if v := got["lb.h1.haproxy.backend.be_app."+metric]; v != want {
			t.Errorf("be_app %s = %v, want %v", metric, v, want)
		}
	}
	if v := got["lb.h1.haproxy.backend.be_app.server.app_dead.check_status_code"]; v != 23 {
		t.Errorf("app.dead check_status_code = %v, want 23 (L4CON)", v)
	}
}
