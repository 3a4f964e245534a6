package haproxy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const typedDir = "testdata/typed"

var typedSockets = []string{"admin1.sock", "admin2.sock"}

// infoMovedByCLI are the `show info` keys that change between two replies with no traffic in
// between: each CLI command is itself a connection and a request, and its reply bytes.
var infoMovedByCLI = []string{"CumConns", "CumReq", "TotalBytesOut", "BytesOutRate", "PoolAlloc_bytes",
	"PoolUsed_bytes", "PoolAlloc_MB", "PoolUsed_MB", "ConnRate", "MaxConnRate", "SessRate", "MaxSessRate",
	"Uptime", "Uptime_sec", "Tasks", "Run_queue", "Jobs", "Idle_pct"}

func readTyped(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(typedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The typed `show stat` of a real HAProxy 2.6, transcoded, is byte for byte the plain `show
// stat` taken right after it (no traffic in between): header, columns never filled, the `-`
// column, the module counters, the final blank line.
func TestTypedStatTranscodesToThePlainCSV(t *testing.T) {
	for _, s := range typedSockets {
		var tc typedTranscoder
		if err := tc.transcodeStat(readTyped(t, s+"_stat.typed")); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		want := readTyped(t, s+"_stat")
		if !bytes.Equal(tc.out, want) {
			t.Errorf("%s: transcoded CSV differs from show stat:\n%s", s, firstDiff(string(tc.out), string(want)))
		}
	}
}

// The typed `show info`, transcoded, has the keys of the plain one in its order, with the same
// values except those the CLI commands themselves move.
func TestTypedInfoTranscodesToThePlainText(t *testing.T) {
	for _, s := range typedSockets {
		var tc typedTranscoder
		if err := tc.transcodeInfo(readTyped(t, s+"_info.typed")); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got := strings.Split(string(tc.out), "\n")
		want := strings.Split(string(readTyped(t, s+"_info")), "\n")
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines, show info has %d", s, len(got), len(want))
		}
		same := 0
		for i := range got {
			gk, _, _ := strings.Cut(got[i], ": ")
			wk, _, _ := strings.Cut(want[i], ": ")
			switch {
			case gk != wk:
				t.Errorf("%s line %d: key %q, show info has %q", s, i+1, gk, wk)
			case got[i] == want[i]:
				same++
			case !slices.Contains(infoMovedByCLI, gk):
				t.Errorf("%s line %d: %q, show info has %q", s, i+1, got[i], want[i])
			}
		}
		if same < 50 {
			t.Errorf("%s: only %d lines identical", s, same)
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got %.300q\nwant %.300q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(al), len(bl))
}

// snapshotOf copies the captures of the given form into a new snapshot directory; with typed,
// <s>_info.typed and <s>_stat.typed, else <s>_info and <s>_stat. infoFrom, when set, takes the
// info files from the other form (to compare stat-derived output without the CLI's moves).
func snapshotOf(t *testing.T, typed bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "1796276700")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	suffix := ""
	if typed {
		suffix = typedSuffix
	}
	for _, s := range typedSockets {
		for _, f := range []string{s + "_info" + suffix, s + "_stat" + suffix} {
			if err := os.WriteFile(filepath.Join(dir, f), readTyped(t, f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// allOptions turns on every output that reads more columns and keys.
var allOptions = Options{Prefix: "lb.host", AggrServerMetrics: true, PerProcessMetrics: true,
	CalculatePercentages: true, ServerStates: true}

// A typed snapshot gives the lines of the plain snapshot of the same moment: the same paths,
// the same values, in the same order, except the daemon keys the CLI commands move (and the
// processor's own timings).
func TestTypedSnapshotGivesThePlainLines(t *testing.T) {
	const ts = 1796276700
	withAll := allOptions
	withAll.AllMetrics = true // its second pass reads the typed files again (allmetrics.go)
	for _, opts := range []Options{{Prefix: "lb.host"}, allOptions, {Prefix: "lb.host", AllMetrics: true}, withAll} {
		plain := run(t, snapshotOf(t, false), ts, opts)
		typed := run(t, snapshotOf(t, true), ts, opts)
		if plain.err != nil || typed.err != nil {
			t.Fatalf("errors: plain %v, typed %v", plain.err, typed.err)
		}
		if typed.stats.FilesUsed != 4 || typed.stats.FilesSkipped != 0 || len(typed.stats.Problems) != 0 {
			t.Fatalf("typed: %+v", typed.stats)
		}
		if len(plain.lines) != len(typed.lines) {
			t.Fatalf("plain %d lines, typed %d", len(plain.lines), len(typed.lines))
		}
		same, moved := 0, 0
		for i, pl := range plain.lines {
			tl := typed.lines[i]
			switch {
			case pl.path != tl.path:
				t.Fatalf("line %d: path %s, plain %s", i+1, tl.path, pl.path)
			case pl.value == tl.value:
				same++
			case isTiming(pl.path) || movedDaemonPath(pl.path):
				moved++
			default:
				t.Errorf("line %d: %s = %s, plain %s", i+1, pl.path, tl.value, pl.value)
			}
		}
		if same < 400 {
			t.Errorf("only %d identical lines (%d moved)", same, moved)
		}
		t.Logf("%d lines: %d identical, %d moved by the CLI or timings", len(plain.lines), same, moved)
	}
}

// movedDaemonPath: a daemon line derived from a key the CLI commands move.
func movedDaemonPath(path string) bool {
	if !strings.Contains(path, ".daemon.") {
		return false
	}
	last := path[strings.LastIndexByte(path, '.')+1:]
	for _, k := range infoMovedByCLI {
		if strings.Contains(last, k) {
			return true
		}
	}
	return strings.Contains(last, "Percentage") || strings.Contains(last, "CpuUsagePct")
}

// The natures come from the tags of the typed replies, per row type and for show info; a
// snapshot without typed files knows none.
func TestTypedNatures(t *testing.T) {
	log, lb := newTestLogger()
	p := NewProcessor(Options{Prefix: "lb"}, log)
	if r := runWith(t, p, snapshotOf(t, true), 1796276700, lb); r.err != nil {
		t.Fatal(r.err)
	}
	for _, c := range []struct {
		obj   byte
		field string
		want  Nature
	}{
		{'F', "stot", NatureCounter}, {'F', "scur", NatureGauge}, {'F', "smax", NatureMax},
		{'F', "slim", NatureLimit}, {'F', "req_rate", NatureRate}, {'F', "pxname", NatureName},
		{'F', "h1_bytes_in", NatureCounter}, {'B', "qtime", NatureAvg}, {'B', "lastchg", NatureAge},
		{'S', "check_duration", NatureDuration}, {'S', "status", NatureGauge},
		{'S', "lastsess", NatureAge}, {'I', "Uptime_sec", NatureDuration}, {'I', "Idle_pct", NatureAvg},
		{'I', "CumConns", NatureCounter}, {'I', "node", NatureOutput}, {'I', "Maxconn", NatureLimit},
		{'F', "qtime", NatureUnknown}, // no frontend has it
		{'S', "no_such_field", NatureUnknown}, {'X', "stot", NatureUnknown},
	} {
		if got := p.typedNature(c.obj, c.field); got != c.want {
			t.Errorf("typedNature(%c, %s) = %q, want %q", c.obj, c.field, got, c.want)
		}
	}
	if r := runWith(t, p, snapshotOf(t, false), 1796276700, lb); r.err != nil {
		t.Fatal(r.err)
	}
	if got := p.typedNature('F', "stot"); got != NatureUnknown || len(p.typedNatures) != 0 {
		t.Errorf("after a plain snapshot: %q, %d natures", got, len(p.typedNatures))
	}
}

// A snapshot with both forms of a socket (assembled by hand) counts it once, from the typed
// file, and says so.
func TestTypedAndPlainOfOneSocket(t *testing.T) {
	dir := snapshotOf(t, true)
	for _, s := range typedSockets {
		for _, f := range []string{s + "_info", s + "_stat"} {
			if err := os.WriteFile(filepath.Join(dir, f), readTyped(t, f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	both := run(t, dir, 1796276700, Options{Prefix: "lb"})
	typed := run(t, snapshotOf(t, true), 1796276700, Options{Prefix: "lb"})
	if both.err != nil || both.stats.FilesUsed != 4 {
		t.Fatalf("%v %+v", both.err, both.stats)
	}
	if n := strings.Count(both.log, "ignoring a plain file beside its typed form"); n != 4 {
		t.Errorf("%d warnings, want 4:\n%s", n, both.log)
	}
	for i, l := range typed.lines {
		if !isTiming(l.path) && both.lines[i] != l {
			t.Fatalf("line %d: %v, typed only %v", i+1, both.lines[i], l)
		}
	}
}

// Malformed typed files are skipped whole with a problem naming the file and the line; the
// other files of the snapshot are used. Nothing panics.
func TestTypedMalformedFilesSkipped(t *testing.T) {
	good := readTyped(t, "admin1.sock_stat.typed")
	lines := strings.SplitAfter(string(good), "\n")
	replace := func(n int, with string) string { // line n (1-based) replaced
		out := slices.Clone(lines)
		out[n-1] = with + "\n"
		return strings.Join(out, "")
	}
	cases := []struct {
		name, stat, info, want string
	}{
		{"unknown command", "Unknown command. Please enter one of the following commands only :\n", "", "line 1: malformed typed reply: the object is not F, B, S or L"},
		{"plain csv in a typed file", string(readTyped(t, "admin1.sock_stat")), "", "line 1: malformed typed reply"},
		{"bad object", replace(3, "X.2.0.4.scur.1:MGP:u32:0"), "", "line 3: malformed typed reply: the object is not F, B, S or L"},
		{"bad value", replace(5, "F.2.0.6.slim.1:CLP:u32:12a"), "", "line 5: malformed typed reply: an unsigned value that is not digits"},
		{"bad type", replace(5, "F.2.0.6.slim.1:CLP:u99:1"), "", "line 5: malformed typed reply: an unknown type"},
		{"bad tags", replace(5, "F.2.0.6.slim.1:CLPXY:u32:1"), "", "line 5: malformed typed reply: the tags"},
		{"three parts", replace(7, "F.2.0.8.bin.1:MCP:u64"), "", "line 7: malformed typed reply: fewer than 4"},
		{"position too far", replace(7, "F.2.0.999999.bin.1:MCP:u64:1"), "", "line 7: malformed typed reply: bad field position"},
		{"position beyond the bound", replace(7, "F.2.0.5000.bin.1:MCP:u64:1"), "", "line 7: malformed typed reply: field position 5000 is beyond 4096"},
		{"two names for a position", replace(70, "F.3.0.0.pxnom.1:KNS:str:fe.dotted.name"), "", "line 70: malformed typed reply: field position 0 is named \"pxnom\" here and \"pxname\" before"},
		{"unclosed quote", replace(3, `F.2.0.4.scur.1:MGP:str:"abc`), "", "line 3: malformed typed reply: a quoted string value that is not closed"},
		{"empty", "", "", "empty file"},
		{"blank lines", "\n\n", "", "empty file"},
		{"info garbage", "", "Name: HAProxy\n", "line 1: malformed typed reply"},
		{"info bad process", "", "0.Name.x:POS:str:HAProxy\n", "line 1: malformed typed reply: bad process number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := snapshotOf(t, true)
			bad, file := c.stat, "admin1.sock_stat.typed"
			if c.info != "" {
				bad, file = c.info, "admin1.sock_info.typed"
			}
			if err := os.WriteFile(filepath.Join(dir, file), []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			r := run(t, dir, 1796276700, Options{Prefix: "lb"})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stats.FilesSkipped != 1 || r.stats.FilesUsed != 3 {
				t.Fatalf("%+v", r.stats)
			}
			if len(r.stats.Problems) != 1 || !strings.Contains(r.stats.Problems[0], filepath.Join(dir, file)) ||
				!strings.Contains(r.stats.Problems[0], c.want) {
				t.Fatalf("problems %q, want %s and %q", r.stats.Problems, file, c.want)
			}
		})
	}
}

// A string value with a comma or a quote that HAProxy did not quote is quoted in the CSV, so
// the row keeps its columns; a quoted one is kept as it is.
func TestTypedStringValuesStayOneCell(t *testing.T) {
	in := "B.4.0.0.pxname.1:KNS:str:be\nB.4.0.1.svname.1:KNS:str:BACKEND\n" +
		"B.4.0.2.qcur.1:MGP:u32:3\nB.4.0.17.status.1:SGP:str:a,b\"c\nB.4.0.32.type.1:CGS:u32:1\n" +
		"B.4.0.65.check_desc.1:SGP:str:\"x,\"\"y\"\nB.4.0.103.h1_x.1:MCP:u64:7\n\n"
	var tc typedTranscoder
	if err := tc.transcodeStat([]byte(in)); err != nil {
		t.Fatal(err)
	}
	hdr, row, _ := strings.Cut(string(tc.out), "\n")
	if !strings.HasPrefix(hdr, "# pxname,svname,qcur,qmax,") || !strings.HasSuffix(hdr, ",check_desc,-,h1_x,") {
		t.Fatalf("header %q", hdr)
	}
	var s csvScanner
	s.setWant(headerFields)
	_, n, _, st := s.next([]byte(row), true)
	nh := strings.Count(hdr, ",") + 1
	if st != scanOK || n != nh {
		t.Fatalf("row %q: %d fields (%v), header %d", row, n, st, nh)
	}
	if got := string(s.field(17)); got != `a,b"c` {
		t.Errorf("status = %q", got)
	}
	if got := string(s.field(65)); got != `x,"y` {
		t.Errorf("check_desc = %q", got)
	}
	if got := string(s.field(66)); got != "-" || string(s.field(67)) != "7" {
		t.Errorf("- and h1_x = %q %q", got, s.field(67))
	}
}

// Names the reply does not give for its static positions (another version's order) are not
// guessed: the columns sent are kept, in order, and nothing else.
func TestTypedUnknownOrderKeepsOnlyTheColumnsSent(t *testing.T) {
	in := "F.2.0.0.pxname.1:KNS:str:fe\nF.2.0.1.svname.1:KNS:str:FRONTEND\nF.2.0.3.newcol.1:MCP:u64:5\n" +
		"F.2.0.7.stot.1:MCP:u64:9\nF.2.0.32.type.1:CGS:u32:0\n"
	var tc typedTranscoder
	if err := tc.transcodeStat([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if got, want := string(tc.out), "# pxname,svname,newcol,stot,type,\nfe,FRONTEND,5,9,0,\n\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A typed reply many times the read buffer is streamed: the same lines as the plain reply of
// the same rows, no buffer grown to its size, and a bad line far into it named by its number.
func TestTypedLargeReplyIsStreamed(t *testing.T) {
	const copies = 120 // 120 × 26 KB: about 12 read buffers
	typedStat := bytes.Repeat(append(bytes.TrimRight(readTyped(t, "admin1.sock_stat.typed"), "\n"), '\n'), copies)
	hdr, rows, _ := bytes.Cut(bytes.TrimRight(readTyped(t, "admin1.sock_stat"), "\n"), []byte("\n"))
	plainStat := append(append(hdr, '\n'), bytes.Repeat(append(rows, '\n'), copies)...)
	if len(typedStat) < 10*readBufferSize {
		t.Fatalf("only %d bytes", len(typedStat))
	}
	write := func(name string, data []byte) string {
		dir := filepath.Join(t.TempDir(), "1796276700")
		os.Mkdir(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	log, lb := newTestLogger()
	p := NewProcessor(Options{Prefix: "lb", ServerStates: true}, log)
	typed := runWith(t, p, write("a.sock_stat.typed", typedStat), 1796276700, lb)
	plain := run(t, write("a.sock_stat", plainStat), 1796276700, Options{Prefix: "lb", ServerStates: true})
	if typed.err != nil || plain.err != nil || typed.stats.FilesUsed != 1 {
		t.Fatalf("typed %v %+v, plain %v", typed.err, typed.stats, plain.err)
	}
	if len(typed.lines) != len(plain.lines) || len(typed.lines) < 100 {
		t.Fatalf("typed %d lines, plain %d", len(typed.lines), len(plain.lines))
	}
	for i, l := range plain.lines {
		if !isTiming(l.path) && typed.lines[i] != l {
			t.Fatalf("line %d: typed %v, plain %v", i+1, typed.lines[i], l)
		}
	}
	if c := cap(p.tc.in.buf); c > readBufferSize {
		t.Errorf("typed input buffer grew to %d bytes", c)
	}
	if c := cap(p.rd.buf); c > readBufferSize {
		t.Errorf("read buffer grew to %d bytes", c)
	}
	// a bad line in copy 100
	lines := bytes.SplitAfter(typedStat, []byte("\n"))
	bad := 826*99 + 5
	lines[bad-1] = []byte("F.2.0.6.slim.1:CLP:u32:x\n")
	r := run(t, write("a.sock_stat.typed", bytes.Join(lines, nil)), 1796276700, Options{Prefix: "lb"})
	if want := fmt.Sprintf("line %d: malformed typed reply: an unsigned value that is not digits", bad); len(r.stats.Problems) != 1 ||
		!strings.Contains(r.stats.Problems[0], want) {
		t.Fatalf("problems %q, want %q", r.stats.Problems, want)
	}
}

// The natures of one snapshot are bounded: an info reply of many names records at most
// maxTypedNatures.
func TestTypedNaturesBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxTypedNatures + 100 {
		fmt.Fprintf(&b, "%d.Key%d.1:MCP:u32:1\n", i%1000, i)
	}
	dir := filepath.Join(t.TempDir(), "1796276700")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a.sock_info.typed"), []byte(b.String()), 0o644)
	log, lb := newTestLogger()
	p := NewProcessor(Options{Prefix: "lb"}, log)
	if r := runWith(t, p, dir, 1796276700, lb); r.err != nil || r.stats.FilesUsed != 1 {
		t.Fatalf("%v %+v", r.err, r.stats)
	}
	if n := len(p.typedNatures); n != maxTypedNatures {
		t.Fatalf("%d natures, want %d", n, maxTypedNatures)
	}
	if p.typedNature('I', "Key0") != NatureCounter || p.typedNature('I', fmt.Sprintf("Key%d", maxTypedNatures+50)) != NatureUnknown {
		t.Fatal("natures past the bound")
	}
}

// A snapshot may mix the forms, socket by socket: admin1 typed and admin2 plain give the
// lines of the all-plain snapshot (the per-process paths too).
func TestTypedMixedWithPlain(t *testing.T) {
	dir := snapshotOf(t, false)
	for _, f := range []string{"admin1.sock_info", "admin1.sock_stat"} {
		os.Remove(filepath.Join(dir, f))
		if err := os.WriteFile(filepath.Join(dir, f+typedSuffix), readTyped(t, f+typedSuffix), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mixed := run(t, dir, 1796276700, allOptions)
	plain := run(t, snapshotOf(t, false), 1796276700, allOptions)
	if mixed.err != nil || mixed.stats.FilesUsed != 4 || len(mixed.lines) != len(plain.lines) {
		t.Fatalf("%v %+v: %d lines, plain %d", mixed.err, mixed.stats, len(mixed.lines), len(plain.lines))
	}
	for i, l := range plain.lines {
		if m := mixed.lines[i]; m.path != l.path || m.value != l.value && !isTiming(l.path) && !movedDaemonPath(l.path) {
			t.Errorf("line %d: %v, plain %v", i+1, m, l)
		}
	}
}
