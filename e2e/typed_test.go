package e2e

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// Fields that may differ between two pulls a moment apart with no traffic in between, and how
// far. Everything else must be equal.
var (
	// `show stat`: ages and durations in seconds move with the clock (lastchg, downtime of a
	// DOWN server or backend, lastsess); check_duration is the last health check's time in
	// ms (checks run every 200 ms); last_chk and check_status are the check's texts, "* "
	// while one runs (compared without it).
	typedStatSeconds = []string{"lastchg", "downtime", "lastsess"}
	typedStatChecks  = []string{"check_duration", "last_chk", "check_status"}
	// `show info`: the clock (Uptime, Uptime_sec), and what each CLI command moves, being a
	// connection, a request and a reply (CumConns, CumReq, the bytes out, the pool memory,
	// the connection and session rates, the current connection, jobs and tasks, idle time).
	typedInfoSeconds = []string{"Uptime_sec"}
	typedInfoMoving  = []string{"Uptime", "CumConns", "CumReq", "TotalBytesOut", "BytesOutRate",
		"PoolAlloc_MB", "PoolUsed_MB", "PoolAlloc_bytes", "PoolUsed_bytes", "ConnRate", "MaxConnRate",
		"SessRate", "MaxSessRate", "CurrConns", "Jobs", "Tasks", "Run_queue", "Idle_pct"}
)

// typedCSVRows reads a `show stat` reply: "pxname/svname" → column → value (non-empty cells;
// the `-` column left out).
func typedCSVRows(t *testing.T, data string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(data), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		t.Fatalf("not a show stat reply: %.200q", data)
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	out := map[string]map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",") // the rig's names and texts have no comma
		if len(f) != len(cols) {
			t.Fatalf("row of %d fields, header %d: %q", len(f), len(cols), l)
		}
		row := map[string]string{}
		for i, c := range cols {
			if f[i] != "" && c != "-" && c != "" {
				row[c] = f[i]
			}
		}
		key := row["pxname"] + "/" + row["svname"]
		if out[key] != nil {
			t.Fatalf("row %s twice", key)
		}
		out[key] = row
	}
	return out
}

// typedRows reads a `show stat typed` reply the same way: one row per object, field name →
// value (non-empty values: the CSV cannot tell an empty string from no value).
func typedRows(t *testing.T, data string) map[string]map[string]string {
	t.Helper()
	objs := map[string]map[string]string{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(data), "\n") {
		f := strings.SplitN(l, ":", 4)
		name := strings.Split(f[0], ".")
		if len(f) != 4 || len(name) != 6 {
			t.Fatalf("not a typed line: %q", l)
		}
		obj := strings.Join(name[:3], ".") + "." + name[5]
		if objs[obj] == nil {
			objs[obj] = map[string]string{}
			order = append(order, obj)
		}
		if f[3] != "" { // an empty string (last_chk of a passing HTTP check) is an empty CSV cell
			objs[obj][name[4]] = f[3]
		}
	}
	out := map[string]map[string]string{}
	for _, obj := range order {
		row := objs[obj]
		out[row["pxname"]+"/"+row["svname"]] = row
	}
	return out
}

// typedInfo reads `show info` ("Key: value") or `show info typed` into key → value.
func typedInfo(t *testing.T, data string, typed bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(data), "\n") {
		if typed {
			f := strings.SplitN(l, ":", 4)
			name := strings.Split(f[0], ".")
			if len(f) != 4 || len(name) < 3 {
				t.Fatalf("not a typed info line: %q", l)
			}
			out[strings.Join(name[1:len(name)-1], ".")] = f[3]
		} else if k, v, ok := strings.Cut(l, ": "); ok {
			out[k] = v
		}
	}
	return out
}

// closeSeconds: two integer values at most 3 apart (the pulls are well within a second of
// each other; 3 leaves room for a loaded machine).
func closeSeconds(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && (x-y <= 3 && y-x <= 3)
}

// TestTypedPullMatchesCSVRealHAProxy pulls three real HAProxy 2.6 processes twice, as CSV
// and typed (two stats-pull --once runs with no traffic in between), and checks that every
// field both forms have is equal, except a listed set of fields that move with the clock or
// with the CLI commands themselves (checked loosely); that each form has exactly the fields
// of the other (the CSV's empty cells are the typed reply's missing fields); and that
// stats-process gives the same lines from both snapshots, except those derived from the
// moving fields.
func TestTypedPullMatchesCSVRealHAProxy(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 3})
	h.SendTraffic(t, 25)
	// settled: app.dead DOWN on every instance, and the rates of the traffic back to 0 (they
	// count over the last second), so that the two pulls see the same values
	waitUntil(t, 15*time.Second, "checks and rates settled", func() bool {
		for _, inst := range h.Instances {
			for key, row := range omShowStat(t, inst.Socket) {
				if key == "be_app/app.dead" && row["status"] != "DOWN" {
					return false
				}
				for _, c := range []string{"rate", "req_rate", "conn_rate"} {
					if v := row[c]; v != "" && v != "0" {
						return false
					}
				}
			}
		}
		return true
	})

	dir := t.TempDir()
	confs := map[bool]string{}
	for _, typed := range []bool{false, true} {
		base := filepath.Join(dir, "csv")
		if typed {
			base = filepath.Join(dir, "typed")
		}
		os.MkdirAll(filepath.Join(base, "incoming"), 0o755)
		confs[typed] = writeConfig(t, base, `
[pull]
socket-dir = `+h.SocketDir+`
dst-dir = `+base+`/incoming
tmp-dst-dir = `+base+`/incoming.tmp
pull-timeout = 3
typed = `+strconv.FormatBool(typed)+`
[process]
src-dir = `+base+`/incoming
server-states = true
per-process-metrics = true
aggr-server-metrics = true
[graphite]
enabled = false
namespace = lb
hostname = h1
fqdn = false
[local-store]
dir = `+base+`/store
`)
	}
	csvSnap, _ := omPull(t, confs[false])
	typedSnap, _ := omPull(t, confs[true])

	compared, loose := 0, 0
	for _, inst := range h.Instances {
		sock := filepath.Base(inst.Socket)
		read := func(snap, name string) string {
			data, err := os.ReadFile(filepath.Join(snap, name))
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
		if _, err := os.Stat(filepath.Join(typedSnap, sock+"_stat")); err == nil {
			t.Fatalf("the typed snapshot has a plain %s_stat", sock)
		}
		csvRows := typedCSVRows(t, read(csvSnap, sock+"_stat"))
		tRows := typedRows(t, read(typedSnap, sock+"_stat.typed"))
		if got, want := sortedKeys(tRows), sortedKeys(csvRows); !slices.Equal(got, want) {
			t.Fatalf("%s: typed rows %v, CSV rows %v", sock, got, want)
		}
		for key, crow := range csvRows {
			trow := tRows[key]
			if got, want := sortedKeys(trow), sortedKeys(crow); !slices.Equal(got, want) {
				t.Errorf("%s %s: typed fields %v, CSV fields %v", sock, key, got, want)
			}
			for field, cv := range crow {
				tv, ok := trow[field]
				switch {
				case !ok:
				case slices.Contains(typedStatSeconds, field):
					loose++
					if !closeSeconds(tv, cv) {
						t.Errorf("%s %s %s: typed %s, CSV %s (more than 3 s apart)", sock, key, field, tv, cv)
					}
				case slices.Contains(typedStatChecks, field):
					loose++
					if field == "check_status" && strings.TrimPrefix(tv, "* ") != strings.TrimPrefix(cv, "* ") {
						t.Errorf("%s %s check_status: typed %s, CSV %s", sock, key, tv, cv)
					}
				case tv != cv:
					t.Errorf("%s %s %s: typed %q, CSV %q", sock, key, field, tv, cv)
				default:
					compared++
				}
			}
		}
		csvInfo := typedInfo(t, read(csvSnap, sock+"_info"), false)
		tInfo := typedInfo(t, read(typedSnap, sock+"_info.typed"), true)
		if got, want := sortedKeys(tInfo), sortedKeys(csvInfo); !slices.Equal(got, want) {
			t.Errorf("%s: typed info keys %v, CSV %v", sock, got, want)
		}
		for k, cv := range csvInfo {
			tv := tInfo[k]
			switch {
			case slices.Contains(typedInfoSeconds, k):
				loose++
				if !closeSeconds(tv, cv) {
					t.Errorf("%s info %s: typed %s, CSV %s", sock, k, tv, cv)
				}
			case slices.Contains(typedInfoMoving, k):
				loose++
			case tv != cv:
				t.Errorf("%s info %s: typed %q, CSV %q", sock, k, tv, cv)
			default:
				compared++
			}
		}
	}
	// 3 instances × 12 rows × ~60 fields, and the info keys
	if compared < 2000 {
		t.Errorf("only %d values compared equal", compared)
	}
	t.Logf("%d values equal, %d moving values checked loosely", compared, loose)

	// stats-process on both snapshots: the same lines, except those made of moving fields
	csvOut := omProcess(t, confs[false], filepath.Join(dir, "csv", "store"), filepath.Base(csvSnap))
	typedOut := omProcess(t, confs[true], filepath.Join(dir, "typed", "store"), filepath.Base(typedSnap))
	if got, want := sortedKeys(typedOut), sortedKeys(csvOut); !slices.Equal(got, want) {
		t.Fatalf("stats-process paths differ:\ntyped %v\nCSV   %v", got, want)
	}
	same, moving := 0, 0
	var differed []string
	for path, cv := range csvOut {
		tv := typedOut[path]
		switch {
		case typedMovingPath(path):
			moving++
			if tv != cv {
				differed = append(differed, path[strings.LastIndexByte(path, '.')+1:])
			}
			if strings.HasSuffix(path, ".downtime") && math.Abs(tv-cv) > 3 {
				t.Errorf("%s: typed %v, CSV %v (more than 3 s apart)", path, tv, cv)
			}
		case tv != cv:
			t.Errorf("stats-process %s: typed %v, CSV %v", path, tv, cv)
		default:
			same++
		}
	}
	if same < 500 {
		t.Errorf("only %d stats-process lines equal", same)
	}
	slices.Sort(differed)
	t.Logf("stats-process: %d lines, %d equal, %d made of moving fields, of which these differed: %v",
		len(csvOut), same, moving, slices.Compact(differed))
}

// typedMovingPath: a stats-process line made of a moving field (downtime, a daemon metric of
// a moving key or a percentage of one) or the processor's own timings.
func typedMovingPath(path string) bool {
	last := path[strings.LastIndexByte(path, '.')+1:]
	if last == "downtime" || strings.Contains(path, ".haproxystats.") {
		return true
	}
	if !strings.Contains(path, ".daemon.") {
		return false
	}
	for _, k := range append(typedInfoMoving, typedInfoSeconds...) {
		if strings.HasSuffix(last, k) {
			return true
		}
	}
	return strings.Contains(last, "Percentage") || strings.Contains(last, "CpuUsagePct")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
