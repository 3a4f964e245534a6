package haproxy

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

// longName is a name of n bytes with the characters that sanitising replaces and multi-byte
// runes, so that shortening has to sanitise and cut at a rune boundary.
func longName(n int, last string) string {
	const unit = "be/ünï;code.x-"
	s := strings.Repeat(unit, n/len(unit)+1)[:n-len(last)]
	for !strings.HasSuffix(s, "x") { // end on a whole rune
		s = s[:len(s)-1]
	}
	return s + last
}

func shortened(t *testing.T, raw string) string {
	t.Helper()
	s, short := metric.Names{MaxLength: metric.DefaultMaxComponentLength}.Component(raw)
	if !short || len(s) > metric.DefaultMaxComponentLength {
		t.Fatalf("a %d-byte name gave %d bytes (shortened %v)", len(raw), len(s), short)
	}
	return s
}

// longNamesSnapshot is golden A's first process with 1 MB names: frontend fe_main, backend
// be_app (4 rows), server web.1 of be.dotted.name, and be_onlyodd renamed to a name that
// differs from be_app's only in its last byte.
func longNamesSnapshot(t *testing.T) (dir string, size int64, fe, be, be2, srv string) {
	return longNamesSnapshotOf(t, 1<<20)
}

// longNamesSnapshotOf is longNamesSnapshot with names of n bytes.
func longNamesSnapshotOf(t *testing.T, n int) (dir string, size int64, fe, be, be2, srv string) {
	fe, be, be2, srv = longName(n, "F"), longName(n, "B"), longName(n, "C"), longName(n, "S")
	rows := readStat(t, filepath.Join(goldenA, "admin1.sock_stat"))
	for _, r := range rows[1:] {
		switch {
		case r[0] == "fe_main":
			r[0] = fe
		case r[0] == "be_app":
			r[0] = be
		case r[0] == "be_onlyodd":
			r[0] = be2
		case r[1] == "web.1":
			r[1] = srv
		}
	}
	dir = writeSnapshot(t, map[string]string{
		"admin1.sock_info": readFile(t, filepath.Join(goldenA, "admin1.sock_info")),
		"admin1.sock_stat": statCSV(rows),
	})
	for _, f := range []string{"admin1.sock_info", "admin1.sock_stat"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	return dir, size, fe, be, be2, srv
}

// A name of a megabyte is shortened once per entity: every line and component stays within
// its bound, the output and the memory of a snapshot do not grow with name × metrics, the
// shortened names are distinct and stable, and one log line per snapshot says so.
func TestLongNamesAreShortened(t *testing.T) {
	dir, size, fe, be, be2, srv := longNamesSnapshot(t)
	log, lb := newTestLogger()
	p := NewProcessor(Options{Prefix: prefixVM}, log)
	first := runWith(t, p, dir, 1700000000, lb)
	if first.err != nil {
		t.Fatal(first.err)
	}
	for _, l := range first.lines {
		if n := len(l.String()); n > metric.DefaultMaxLineLength {
			t.Fatalf("a line of %d bytes", n)
		}
		for _, c := range strings.Split(l.path, ".") {
			if len(c) > metric.DefaultMaxComponentLength {
				t.Fatalf("a component of %d bytes: %.80s…", len(c), c)
			}
		}
	}
	m := paths(first.lines)
	sFe, sBe, sBe2, sSrv := shortened(t, fe), shortened(t, be), shortened(t, be2), shortened(t, srv)
	if sBe == sBe2 {
		t.Fatalf("two names differing in their last byte got the same path component %q", sBe)
	}
	if !strings.HasPrefix(sBe, "be_ünï_code_x-be_") {
		t.Errorf("shortened name %q does not start with the sanitised name", sBe)
	}
	for _, want := range []string{
		prefixVM + ".frontend." + sFe + ".scur",
		prefixVM + ".backend." + sBe + ".bin",
		prefixVM + ".backend." + sBe + ".TotalServers",
		prefixVM + ".backend." + sBe + ".server.app1.bin",
		prefixVM + ".backend." + sBe2 + ".server.s1.bin",
		prefixVM + ".backend.be_dotted_name.server." + sSrv + ".bin",
	} {
		if _, ok := m[want]; !ok {
			t.Errorf("missing %.200s", want)
		}
	}
	if first.stats.ShortenedNames != 4 {
		t.Errorf("ShortenedNames = %d, want 4 (a frontend, two backends, a server)", first.stats.ShortenedNames)
	}
	if n := strings.Count(first.log, "were shortened"); n != 1 || !strings.Contains(first.log, "count=4") ||
		!strings.Contains(first.log, "shortened_to=") {
		t.Errorf("want one log line counting 4 shortened names, got %d:\n%.2000s", n, first.log)
	}
	if len(first.raw) > 256<<10 {
		t.Errorf("%d bytes of output for %d lines", len(first.raw), len(first.lines))
	}

	// The next snapshot (rows with long names are looked up again, the others come from the
	// row cache) gives the same lines, and costs memory in proportion to its size only.
	lb.buf.Reset()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	second := runWith(t, p, dir, 1700000000, lb)
	runtime.ReadMemStats(&after)
	if second.err != nil {
		t.Fatal(second.err)
	}
	compareMultiset(t, first.lines, second.lines)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("snapshot %d bytes, %d lines, %d bytes of output; second pass allocated %d bytes",
		size, len(second.lines), len(second.raw), alloc)
	if bound := uint64(2*size + 8<<20); alloc > bound {
		t.Errorf("processing a %d-byte snapshot allocated %d bytes (bound %d)", size, alloc, bound)
	}
	if strings.Count(second.log, "were shortened") != 1 {
		t.Errorf("second snapshot: want one log line about shortened names:\n%.2000s", second.log)
	}
	if len(p.rd.buf) != readBufferSize {
		t.Errorf("read buffer kept at %d bytes after the snapshot", len(p.rd.buf))
	}
}

// An exclude file names a long backend by its full name or by its shortened form (64 kB
// names: the file must stay within MaxExcludeFileSize).
func TestExcludeLongName(t *testing.T) {
	dir, _, _, be, be2, _ := longNamesSnapshotOf(t, 64<<10)
	excl := filepath.Join(t.TempDir(), "exclude-backends")
	if err := os.WriteFile(excl, []byte(be+"\n"+shortened(t, be2)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := run(t, dir, 1700000000, Options{Prefix: prefixVM, ExcludeBackends: excl})
	if got.err != nil {
		t.Fatal(got.err)
	}
	excluded := []string{shortened(t, be), shortened(t, be2)}
	for _, l := range got.lines {
		for _, name := range excluded {
			if strings.Contains(l.path, ".backend."+name+".") {
				t.Fatalf("excluded backend written: %.200s", l.path)
			}
		}
	}
}

// A line longer than max-line-length is not written; every other line is, the final chunk
// included, and Process says so with an error the runner recognises as dispatch.Rejected.
func TestLongLinesAreRejected(t *testing.T) {
	beName, srvName := strings.Repeat("b", 100), strings.Repeat("s", 200) // within 255: not shortened
	rows := readStat(t, filepath.Join(goldenA, "admin1.sock_stat"))
	for _, r := range rows[1:] {
		if r[0] == "be_onlyodd" {
			r[0] = beName
			if r[1] == "s1" {
				r[1] = srvName
			}
		}
	}
	dir := writeSnapshot(t, map[string]string{
		"admin1.sock_info": readFile(t, filepath.Join(goldenA, "admin1.sock_info")),
		"admin1.sock_stat": statCSV(rows),
	})
	ref := run(t, dir, 1700000000, Options{Prefix: prefixVM})
	if ref.err != nil {
		t.Fatal(ref.err)
	}
	const limit = 300
	var want []gline
	tooLong := 0
	for _, l := range ref.lines {
		if len(l.String()) > limit {
			tooLong++
		} else {
			want = append(want, l)
		}
	}
	if tooLong == 0 || tooLong == len(ref.lines) {
		t.Fatalf("%d of %d lines over %d bytes: the test needs some", tooLong, len(ref.lines), limit)
	}

	log, lb := newTestLogger()
	got := runWith(t, NewProcessor(Options{Prefix: prefixVM, MaxLineLength: limit}, log), dir, 1700000000, lb)
	var rejected dispatch.Rejected
	if !errors.As(got.err, &rejected) {
		t.Fatalf("Process returned %v, want a dispatch.Rejected", got.err)
	}
	var e *LinesTooLongError
	if !errors.As(got.err, &e) || e.Lines != tooLong || e.Dir != dir || e.Limit != limit {
		t.Errorf("error %+v, want %d lines of %s", e, tooLong, dir)
	}
	if r := rejected.Rejected(); !strings.Contains(r, dir) || !strings.Contains(r, "max-line-length") ||
		!strings.Contains(r, srvName[:50]) {
		t.Errorf("Rejected() = %q: should name the snapshot, the limit and the line", r)
	}
	if len(got.batches) == 0 || !got.batches[len(got.batches)-1].Last {
		t.Fatal("the final chunk was not flushed")
	}
	if got.stats.LongLines != tooLong {
		t.Errorf("Stats.LongLines = %d, want %d", got.stats.LongLines, tooLong)
	}
	// timings differ between runs; compare everything else
	compareMultiset(t, want, got.lines)
	if n := strings.Count(got.log, "longer than max-line-length"); n != 1 {
		t.Errorf("want one log line about long lines, got %d:\n%s", n, got.log)
	}
}

// With group paths, a group path that is too long does not stop the default path of a double
// write, and a namespace too long for any line rejects everything but still closes the
// snapshot's chunks.
func TestLongGroupAndNamespace(t *testing.T) {
	longGroup := strings.Repeat("g.", 150) + "g" // 301 bytes, short components
	opts := Options{
		Prefix:         prefixVM,
		MaxLineLength:  300,
		GroupNamespace: longGroup,
		DoubleWrites:   true,
		BackendGroups:  []Group{{Name: "app", Pattern: regexp.MustCompile("be_app")}},
	}
	got := run(t, goldenA, tsA, opts)
	var e *LinesTooLongError
	if !errors.As(got.err, &e) || e.Lines == 0 {
		t.Fatalf("err = %v", got.err)
	}
	m := paths(got.lines)
	if _, ok := m[prefixVM+".backend.be_app.bin"]; !ok {
		t.Error("the default path of a grouped backend was not written")
	}
	for p := range m {
		if strings.Contains(p, longGroup) {
			t.Errorf("too long a group path written: %s", p)
		}
	}

	ns := strings.Repeat("n.", 200) + "n"
	got = run(t, goldenA, tsA, Options{Prefix: ns, MaxLineLength: 300})
	if !errors.As(got.err, &e) || len(got.lines) != 0 || e.Lines == 0 {
		t.Fatalf("a namespace too long for any line: err %v, %d lines written", got.err, len(got.lines))
	}
	if len(got.batches) != 1 || !got.batches[0].Last {
		t.Errorf("%d chunks; want only the (empty) final chunk", len(got.batches))
	}

	// a namespace component over the bound is shortened, not rejected
	long := strings.Repeat("x", 300)
	got = run(t, goldenA, tsA, Options{Prefix: "ns." + long + ".haproxy"})
	want := "ns." + shortened(t, long) + ".haproxy.frontend.fe_main.scur"
	if _, ok := paths(got.lines)[want]; got.err != nil || !ok {
		t.Errorf("err %v; missing %s", got.err, want)
	}
}

func TestSlashAndSemicolonInNames(t *testing.T) {
	header := []string{"# pxname", "svname", "scur", "bin", "type", "lbtot", "weight"}
	dir := writeSnapshot(t, map[string]string{"a.sock_stat": statCSV([][]string{header,
		{"fe/a;b=c", "FRONTEND", "1", "10", "0", "", ""},
		{"be/x", "srv;1", "2", "20", "2", "1", "1"},
		{"be/x", "BACKEND", "3", "30", "1", "1", "1"},
	})})
	got := run(t, dir, 1700000000, Options{Prefix: "ns/a;b"})
	if got.err != nil {
		t.Fatal(got.err)
	}
	m := paths(got.lines)
	for _, want := range []string{
		"ns_a_b.frontend.fe_a_b=c.bin", "ns_a_b.backend.be_x.bin", "ns_a_b.backend.be_x.server.srv_1.bin",
	} {
		if _, ok := m[want]; !ok {
			t.Errorf("missing %s in %v", want, slices.Sorted(func(yield func(string) bool) {
				for p := range m {
					if !yield(p) {
						return
					}
				}
			}))
		}
	}
}

// Rows with long names are not kept in the row cache but keep their position in it: whatever
// the order in which one Processor meets snapshots with and without them, in files sharing a
// cache or not, it gives what a fresh Processor gives.
func TestLongNamesInRowCache(t *testing.T) {
	long := longName(4096, "L")
	rows := readStat(t, filepath.Join(goldenA, "admin1.sock_stat"))
	with := func(edit func(r []string)) string {
		out := [][]string{rows[0]}
		for _, r := range rows[1:] {
			r = slices.Clone(r)
			edit(r)
			out = append(out, r)
		}
		return statCSV(out)
	}
	plain := with(func([]string) {})
	longBe := with(func(r []string) {
		if r[0] == "be_app" {
			r[0] = long
		}
	})
	longSrv := with(func(r []string) {
		if r[1] == "app2" {
			r[1] = long
		}
	})
	info := readFile(t, filepath.Join(goldenA, "admin1.sock_info"))
	snapshots := []map[string]string{
		{"admin1.sock_info": info, "admin1.sock_stat": longBe, "admin2.sock_stat": longBe},
		{"admin1.sock_info": info, "admin1.sock_stat": longBe, "admin2.sock_stat": plain},
		{"admin1.sock_info": info, "admin1.sock_stat": plain, "admin2.sock_stat": longSrv},
		{"admin1.sock_info": info, "admin1.sock_stat": longSrv, "admin2.sock_stat": longBe},
		{"admin1.sock_info": info, "admin1.sock_stat": longBe, "admin2.sock_stat": longBe},
	}
	reused := NewProcessor(Options{Prefix: prefixVM, AggrServerMetrics: true}, nil)
	for i, files := range snapshots {
		dir := writeSnapshot(t, files)
		want := run(t, dir, 1700000000, Options{Prefix: prefixVM, AggrServerMetrics: true})
		got := runWith(t, reused, dir, 1700000000, nil)
		if want.err != nil || got.err != nil {
			t.Fatalf("snapshot %d: %v, %v", i, want.err, got.err)
		}
		compareMultiset(t, want.lines, got.lines)
		if got.stats.ShortenedNames != want.stats.ShortenedNames || want.stats.ShortenedNames == 0 {
			t.Errorf("snapshot %d: %d shortened names, a fresh processor %d", i, got.stats.ShortenedNames, want.stats.ShortenedNames)
		}
	}
}
