package haproxy

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestStatusCodeForms(t *testing.T) {
	for text, want := range map[string]int{
		"UP": 1, "DOWN": 0, "DOWN (agent)": 0, "NOLB": 2, "MAINT": 3, "MAINT (via be/srv)": 3,
		"MAINT (resolution)": 3, "MAINT(via)": 3, "MAINT(resolution)": 3, "DRAIN": 4, "DRAIN (agent)": 4,
		"no check": 5, "UP 1/3": 6, "UP 12/30": 6, "DOWN 1/2": 7, "NOLB 1/3": 8, "DRAIN 2/3": 9,
		"": -1, "OPEN": -1, "UP 1/": -1, "UP /3": -1, "UP x/3": -1, "DOWN ": -1, "up": -1, "no check ": -1,
	} {
		if got := statusCode([]byte(text)); got != want {
			t.Errorf("statusCode(%q) = %d, want %d", text, got, want)
		}
	}
}

func TestCheckCodeForms(t *testing.T) {
	for text, want := range map[string]int{
		"": 0, "L4OK": 1, "L6OK": 2, "L7OK": 3, "L7OKC": 4, "PROCOK": 5, "INI": 10, "UNK": 11,
		"CHECKED": 12, "HANA": 20, "SOCKERR": 21, "L4TOUT": 22, "L4CON": 23, "L6TOUT": 24,
		"L6RSP": 25, "L7TOUT": 26, "L7RSP": 27, "L7STS": 28, "PROCERR": 29, "PROCTOUT": 30,
		"* L7OK": 3, "* L4CON": 23, "* ": 0, "*L7OK": 19, "L8OK": 19, "l7ok": 19,
	} {
		if got := checkCode([]byte(text)); got != want {
			t.Errorf("checkCode(%q) = %d, want %d", text, got, want)
		}
	}
}

func TestStatusRankInverts(t *testing.T) {
	seen := map[float64]bool{}
	for i, r := range statusRank {
		if r == 0 || seen[r] {
			t.Fatalf("status code %d has rank %v (0 or repeated)", i-1, r)
		}
		seen[r] = true
		if statusOfRank[int(r)] != i-1 {
			t.Errorf("statusOfRank[%v] = %d, want %d", r, statusOfRank[int(r)], i-1)
		}
	}
}

// stateRow is one server row of a synthetic `show stat` file.
type stateRow struct{ be, srv, status, check, agent string }

// statesFile returns a `show stat` reply of golden A's columns (HAProxy 2.6) whose server rows
// are rows, cloned from be_app/app1 with the given names and state cells.
func statesFile(t *testing.T, rows []stateRow) [][]string {
	t.Helper()
	a := readStat(t, filepath.Join(goldenA, "admin1.sock_stat"))
	var tmpl []string
	for _, r := range a[1:] {
		if r[0] == "be_app" && r[1] == "app1" {
			tmpl = r
		}
	}
	st, ck, ag := column(a, "status"), column(a, "check_status"), column(a, "agent_status")
	out := [][]string{a[0]}
	for _, r := range rows {
		row := slices.Clone(tmpl)
		row[0], row[1], row[st], row[ck], row[ag] = r.be, r.srv, r.status, r.check, r.agent
		out = append(out, row)
	}
	return out
}

// everyForm has one server per status form and check result, in backend "be".
var everyForm = []stateRow{
	{"be", "up", "UP", "L7OK", ""},
	{"be", "down", "DOWN", "L4CON", ""},
	{"be", "down_agent", "DOWN (agent)", "L7OK", "L7STS"},
	{"be", "nolb", "NOLB", "L7OKC", ""},
	{"be", "maint", "MAINT", "", ""},
	{"be", "maint_via", "MAINT (via be/maint)", "", ""},
	{"be", "maint_res", "MAINT (resolution)", "L4TOUT", ""},
	{"be", "drain", "DRAIN", "* L7OK", "L4OK"},
	{"be", "drain_agent", "DRAIN (agent)", "L7OK", "* L7OK"},
	{"be", "nocheck", "no check", "", ""},
	{"be", "going_down", "UP 1/3", "* L7STS", ""},
	{"be", "going_up", "DOWN 1/2", "L6OK", "INI"},
	{"be", "nolb_going", "NOLB 2/3", "SOCKERR", ""},
	{"be", "drain_going", "DRAIN 1/3", "L7TOUT", "L4CON"},
	{"be", "odd", "WEIRD", "L9OK", ""},
}

// wantStates is what everyForm gives: path below p.backend.be. → value.
var wantStates = map[string]string{
	"server.up.status_code": "1", "server.up.check_status_code": "3",
	"server.down.status_code": "0", "server.down.check_status_code": "23",
	"server.down_agent.status_code": "0", "server.down_agent.check_status_code": "3", "server.down_agent.agent_status_code": "28",
	"server.nolb.status_code": "2", "server.nolb.check_status_code": "4",
	"server.maint.status_code":     "3",
	"server.maint_via.status_code": "3",
	"server.maint_res.status_code": "3", "server.maint_res.check_status_code": "22",
	"server.drain.status_code": "4", "server.drain.check_status_code": "3", "server.drain.agent_status_code": "1",
	"server.drain_agent.status_code": "4", "server.drain_agent.check_status_code": "3", "server.drain_agent.agent_status_code": "3",
	"server.nocheck.status_code":    "5",
	"server.going_down.status_code": "6", "server.going_down.check_status_code": "28",
	"server.going_up.status_code": "7", "server.going_up.check_status_code": "2", "server.going_up.agent_status_code": "10",
	"server.nolb_going.status_code": "8", "server.nolb_going.check_status_code": "21",
	"server.drain_going.status_code": "9", "server.drain_going.check_status_code": "26", "server.drain_going.agent_status_code": "23",
	"server.odd.status_code": "-1", "server.odd.check_status_code": "19",
	"TotalServers": "15",
	"ServersUp":    "2", "ServersDown": "3", "ServersMaint": "3", "ServersDrain": "3", "ServersNolb": "2", "ServersNoCheck": "1",
}

// stateLines returns the state lines of got (status codes and Servers* counts) below
// p.backend.be., and checks that every other line is exactly what the same snapshot gives
// with the option off, in the same order (apart from MetricsServer and timings).
func stateLines(t *testing.T, dir string) map[string]string {
	t.Helper()
	off := run(t, dir, 1700000000, Options{Prefix: "p"})
	on := run(t, dir, 1700000000, Options{Prefix: "p", ServerStates: true})
	if off.err != nil || on.err != nil {
		t.Fatalf("errors: off %v, on %v", off.err, on.err)
	}
	if len(on.stats.Problems) != 0 {
		t.Fatalf("problems: %v", on.stats.Problems)
	}
	isState := func(path string) bool {
		return strings.HasSuffix(path, "_code") || strings.Contains(path, ".Servers")
	}
	var rest []gline
	got := map[string]string{}
	stateCount := 0
	for _, l := range on.lines {
		if isState(l.path) {
			if _, dup := got[l.path]; dup {
				t.Errorf("%s written twice", l.path)
			}
			got[strings.TrimPrefix(l.path, "p.backend.be.")] = l.value
			stateCount++
			continue
		}
		rest = append(rest, l)
	}
	// MetricsServer counts the state lines too
	offMetrics, _ := strconv.Atoi(valueOf(t, off.lines, "p.haproxystats.MetricsServer"))
	want := strconv.Itoa(offMetrics + stateCount)
	if got := valueOf(t, on.lines, "p.haproxystats.MetricsServer"); got != want {
		t.Errorf("MetricsServer = %s, want %s (+%d state lines)", got, want, stateCount)
	}
	setValue(t, off.lines, "p.haproxystats.MetricsServer", want)
	compareOrdered(t, off.lines, rest)
	if t.Failed() {
		t.FailNow()
	}
	got["TotalServers"] = valueOf(t, on.lines, "p.backend.be.TotalServers")
	return got
}

func checkStates(t *testing.T, got, want map[string]string) {
	t.Helper()
	for path, v := range want {
		if got[path] != v {
			t.Errorf("%s = %q, want %q", path, got[path], v)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("unexpected line %s = %s", path, got[path])
		}
	}
}

func TestServerStatesEveryForm(t *testing.T) {
	rows := statesFile(t, everyForm)
	t.Run("fast-path", func(t *testing.T) {
		dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(rows)})
		checkStates(t, stateLines(t, dir), wantStates)
	})
	t.Run("quoted", func(t *testing.T) {
		// every field quoted: the quote-aware path records the state cells
		var sb strings.Builder
		for _, r := range rows {
			for _, f := range r {
				sb.WriteString(`"` + f + `",`)
			}
			sb.WriteString("\n")
		}
		dir := writeSnapshot(t, map[string]string{"a_stat": sb.String()})
		checkStates(t, stateLines(t, dir), wantStates)
	})
	t.Run("generic-path", func(t *testing.T) {
		// columns in reverse order after pxname: svname is not the second column, so every
		// row takes the generic path
		rev := make([][]string, len(rows))
		for i := range rows {
			r := slices.Clone(rows[i][1:])
			slices.Reverse(r)
			rev[i] = append([]string{rows[i][0]}, r...)
		}
		dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(rev)})
		checkStates(t, stateLines(t, dir), wantStates)
	})
	t.Run("tiny-read-buffer", func(t *testing.T) {
		dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(rows)})
		p := NewProcessor(Options{Prefix: "p", ServerStates: true}, nil)
		p.rd.buf = make([]byte, 7)
		got := paths(runWith(t, p, dir, 1700000000, nil).lines)
		for path, v := range wantStates {
			if g := got["p.backend.be."+path]; g != v {
				t.Errorf("%s = %q, want %q", path, g, v)
			}
		}
	})
}

func TestServerStatesAcrossFiles(t *testing.T) {
	// The same servers in two files (processes): each takes its worst status and the highest
	// check and agent codes; a server in one file only keeps that file's state.
	a := statesFile(t, []stateRow{
		{"be", "s1", "UP", "L7OK", "L4OK"},
		{"be", "s2", "DOWN", "L4CON", ""},
		{"be", "s3", "MAINT", "", ""},
		{"be", "s4", "UP 1/3", "L7OK", ""},
		{"be", "s5", "DRAIN", "L7OK", ""},
		{"be", "only_a", "NOLB", "L7OK", ""},
	})
	b := statesFile(t, []stateRow{
		{"be", "s1", "UP", "* L7STS", ""},
		{"be", "s2", "DOWN 1/2", "L7OK", ""},
		{"be", "s3", "DOWN", "L4TOUT", ""},
		{"be", "s4", "UP", "L7OK", ""},
		{"be", "s5", "MAINT (via be/s3)", "", "L7STS"},
	})
	dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(a), "b_stat": statCSV(b)})
	checkStates(t, stateLines(t, dir), map[string]string{
		"server.s1.status_code": "1", "server.s1.check_status_code": "28", "server.s1.agent_status_code": "1",
		"server.s2.status_code": "0", "server.s2.check_status_code": "23",
		"server.s3.status_code": "0", "server.s3.check_status_code": "22",
		"server.s4.status_code": "6", "server.s4.check_status_code": "3",
		"server.s5.status_code": "3", "server.s5.check_status_code": "3", "server.s5.agent_status_code": "28",
		"server.only_a.status_code": "2", "server.only_a.check_status_code": "3",
		"TotalServers": "6",
		"ServersUp":    "2", "ServersDown": "2", "ServersMaint": "1", "ServersDrain": "0", "ServersNolb": "1", "ServersNoCheck": "0",
	})
}

func TestServerStatesGoldenA(t *testing.T) {
	// golden A (real HAProxy 2.6, four processes): be_app has app1, app2 UP (L7OK) and
	// app.dead DOWN (L4CON); the other lines are unchanged, groups and all.
	on := paths(run(t, goldenA, tsA, Options{Prefix: prefixVM, ServerStates: true}).lines)
	for path, want := range map[string]string{
		"backend.be_app.server.app1.status_code":           "1",
		"backend.be_app.server.app1.check_status_code":     "3",
		"backend.be_app.server.app_dead.status_code":       "0",
		"backend.be_app.server.app_dead.check_status_code": "23",
		"backend.be_app.ServersUp":                         "2",
		"backend.be_app.ServersDown":                       "1",
		"backend.be_app.ServersMaint":                      "0",
		"backend.be_dotted_name.server.web_1.status_code":  "1",
		"backend.be_dotted_name.ServersUp":                 "1",
		"backend.be_onlyodd.ServersUp":                     "1",
	} {
		if got := on[prefixVM+"."+path]; got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if _, ok := on[prefixVM+".backend.be_app.server.app1.agent_status_code"]; ok {
		t.Error("agent_status_code written for a server without an agent")
	}
	if _, ok := on[prefixVM+".backend.be_noservers.ServersUp"]; ok {
		t.Error("counts written for a backend without servers (it has no TotalServers either)")
	}
}

func TestServerStatesOldHeader(t *testing.T) {
	// A header without agent_status (HAProxy 1.4) and one without any state column: no line
	// for what is absent, counts of zero, no problem reported.
	rows := statesFile(t, []stateRow{{"be", "s1", "UP 1/3", "L7OK", "L4OK"}})
	cut := func(rows [][]string, names ...string) [][]string {
		out := make([][]string, len(rows))
		for i := range rows {
			out[i] = slices.Clone(rows[i])
		}
		for _, n := range names {
			c := column(out, n)
			for i := range out {
				out[i] = slices.Delete(out[i], c, c+1)
			}
		}
		return out
	}
	dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(cut(rows, "agent_status"))})
	checkStates(t, stateLines(t, dir), map[string]string{
		"server.s1.status_code": "6", "server.s1.check_status_code": "3", "TotalServers": "1",
		"ServersUp": "1", "ServersDown": "0", "ServersMaint": "0", "ServersDrain": "0", "ServersNolb": "0", "ServersNoCheck": "0",
	})
	dir = writeSnapshot(t, map[string]string{"a_stat": statCSV(cut(rows, "agent_status", "check_status", "status"))})
	checkStates(t, stateLines(t, dir), map[string]string{
		"TotalServers": "1",
		"ServersUp":    "0", "ServersDown": "0", "ServersMaint": "0", "ServersDrain": "0", "ServersNolb": "0", "ServersNoCheck": "0",
	})
}

func TestServerStatesRowNamedFrontend(t *testing.T) {
	// A type-2 row named FRONTEND is re-read by the generic path (its class said frontend).
	dir := writeSnapshot(t, map[string]string{"a_stat": statCSV(statesFile(t, []stateRow{
		{"be", "FRONTEND", "MAINT (via be/x)", "", "L7OK"},
		{"be", "x", "DOWN", "L7STS", ""},
	}))})
	checkStates(t, stateLines(t, dir), map[string]string{
		"server.FRONTEND.status_code": "3", "server.FRONTEND.agent_status_code": "3",
		"server.x.status_code": "0", "server.x.check_status_code": "28", "TotalServers": "2",
		"ServersUp": "0", "ServersDown": "1", "ServersMaint": "1", "ServersDrain": "0", "ServersNolb": "0", "ServersNoCheck": "0",
	})
}
