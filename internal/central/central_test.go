package central

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/metric"
)

func newAgg(t *testing.T, rules ...[2]string) *Aggregator {
	t.Helper()
	p, err := aggregate.ParsePolicies(rules)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 20, Policies: p, Now: func() int64 { return 2000 }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func flushAll(t *testing.T, a *Aggregator, all bool) ([]int64, string) {
	t.Helper()
	var out bytes.Buffer
	buckets, err := a.Flush(func(b *metric.Batch) error { out.Write(b.Data); metric.Recycle(b); return nil }, all)
	if err != nil {
		t.Fatal(err)
	}
	return buckets, out.String()
}

func hostLines(host string, ts int64, kv ...any) []byte {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "lb.%s.%s %v %d\n", host, kv[i], kv[i+1], ts)
	}
	return []byte(b.String())
}

// Sums and functions across hosts per bucket; lines of other namespaces ignored.
func TestAcrossHosts(t *testing.T) {
	a := newAgg(t, [2]string{"aggregate.haproxy.daemon.CpuUsage", "sum avg max stddev"})
	a.Add("h1", 1000, hostLines("h1", 1000, "haproxy.frontend.fe.req_tot", 10, "haproxy.daemon.CpuUsage", 20))
	a.Add("h2", 1001, hostLines("h2", 1001, "haproxy.frontend.fe.req_tot", 5, "haproxy.daemon.CpuUsage", 40))
	a.Add("h3", 1009, append(hostLines("h3", 1009, "haproxy.frontend.fe.req_tot", 1), "other.h3.x 1 1009\n"...))
	if b, out := flushAll(t, a, false); len(b) != 0 || out != "" {
		t.Fatalf("flushed before the window: %v %q", b, out)
	}
	// A snapshot at 1030 = bucket end 1010 + lateness 20: the bucket 1000 is written.
	a.Add("h1", 1030, hostLines("h1", 1030, "haproxy.frontend.fe.req_tot", 99))
	b, out := flushAll(t, a, false)
	want := "lb.eu.haproxy.frontend.fe.req_tot 16.0 1000\n" +
		"lb.eu.haproxy.daemon.CpuUsage 60.0 1000\n" +
		"lb.eu.haproxy.daemon.CpuUsage.avg 30.0 1000\n" +
		"lb.eu.haproxy.daemon.CpuUsage.max 40.0 1000\n" +
		"lb.eu.haproxy.daemon.CpuUsage.stddev 14.142135623730951 1000\n"
	if len(b) != 1 || b[0] != 1000 || !sameLines(out, want) {
		t.Fatalf("buckets %v, lines\n%swant\n%s", b, out, want)
	}
	// Late: bucket 1000 is written; a snapshot of it is refused and counted.
	if err := a.Add("h4", 1005, hostLines("h4", 1005, "haproxy.frontend.fe.req_tot", 7)); !errors.Is(err, ErrLate) || a.Late() != 1 {
		t.Fatalf("late snapshot: %v, Late %d", err, a.Late())
	}
	// Inside the window: bucket 1010 is open while the newest is 1030 < 1010+10+20.
	if err := a.Add("h2", 1012, hostLines("h2", 1012, "haproxy.frontend.fe.req_tot", 3)); err != nil {
		t.Fatal(err)
	}
	b, out = flushAll(t, a, true)
	if len(b) != 2 || !strings.Contains(out, "lb.eu.haproxy.frontend.fe.req_tot 3.0 1010\n") || !strings.Contains(out, "lb.eu.haproxy.frontend.fe.req_tot 99.0 1030\n") {
		t.Fatalf("buckets %v lines\n%s", b, out)
	}
	// A clock far ahead is refused.
	if err := a.Add("h5", 9999, hostLines("h5", 9999, "x", 1)); !errors.Is(err, ErrTooFarAway) {
		t.Fatalf("a snapshot far ahead: %v", err)
	}
}

// Two snapshots of one host in one bucket: the newer's values (as Graphite keeps them).
func TestNewerSnapshotOfAHostWins(t *testing.T) {
	a := newAgg(t)
	a.Add("h1", 1005, hostLines("h1", 1005, "m", 2))
	a.Add("h1", 1001, hostLines("h1", 1001, "m", 1, "n", 4))
	a.Add("h2", 1003, hostLines("h2", 1003, "m", 10))
	_, out := flushAll(t, a, true)
	if !sameLines(out, "lb.eu.m 12.0 1000\nlb.eu.n 4.0 1000\n") {
		t.Fatalf("lines\n%s", out)
	}
}

func sameLines(a, b string) bool {
	x, y := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	if len(x) != len(y) {
		return false
	}
	m := map[string]int{}
	for _, l := range x {
		m[l]++
	}
	for _, l := range y {
		if m[l] == 0 {
			return false
		}
		m[l]--
	}
	return true
}

// BenchmarkAddAndFlush: one bucket of 100 hosts × 10,000 lines (about the HAProxy lines of a
// host with 50 backends of 10 servers) added and written, per iteration.
func BenchmarkAddAndFlush(b *testing.B) {
	const hosts, perHost = 100, 10000
	bodies := make([][]byte, hosts)
	size := 0
	for h := range bodies {
		var s strings.Builder
		for i := 0; i < perHost; i++ {
			fmt.Fprintf(&s, "lb.h%03d.haproxy.backend.be_%d.server.srv_%d.m%d %d 1000\n", h, i/200, i/20%10, i%20, i*7%1000)
		}
		bodies[h] = []byte(s.String())
		size += s.Len()
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	out := 0
	for n := 0; n < b.N; n++ {
		a, err := New(Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 0, Now: func() int64 { return 2000 }})
		if err != nil {
			b.Fatal(err)
		}
		for h := range bodies {
			if err := a.Add(fmt.Sprintf("h%03d", h), 1000, bodies[h]); err != nil {
				b.Fatal(err)
			}
		}
		out = 0
		if _, err := a.Flush(func(c *metric.Batch) error { out += c.Lines; metric.Recycle(c); return nil }, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(hosts*perHost)*float64(b.N)/b.Elapsed().Seconds(), "host-lines/s")
	b.ReportMetric(float64(out), "cluster-lines/op")
}

// AddLine (the line-topic's records, one line each, hosts mixed) gives the same cluster lines
// as Add of each host's snapshot; a later line of a series replaces an earlier one in its
// bucket; lines of another namespace are refused.
func TestAddLineEqualsAdd(t *testing.T) {
	now := func() int64 { return 1700000100 }
	byHost, err := New(Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 0, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	byLine, _ := New(Options{Namespace: "lb", Cluster: "eu", Bucket: 10, Lateness: 0, Now: now})
	hosts := map[string]string{
		"a": "lb.a.fe.req 10 1700000000\nlb.a.fe.rtime 4 1700000000\n",
		"b": "lb.b.fe.req 5 1700000003\nlb.b.fe.rtime 8 1700000003\n",
	}
	for h, lines := range hosts {
		if err := byHost.Add(h, 1700000000, []byte(lines)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"lb.a.fe.req 99 1700000000", "lb.a.fe.req 10 1700000000\n", "lb.a.fe.rtime 4 1700000000",
		"lb.b.fe.req 5 1700000003", "lb.b.fe.rtime 8 1700000003"} {
		if start, err := byLine.AddLine([]byte(l)); err != nil || start != 1700000000 {
			t.Fatalf("%q: %v %d", l, err, start)
		}
	}
	for _, bad := range []string{"other.a.x 1 1700000000", "lb.a.x one 1700000000", "lb.a.x 1", "lb.x 1 1700000000"} {
		if _, err := byLine.AddLine([]byte(bad)); !errors.Is(err, ErrNotALine) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	flushAll := func(a *Aggregator) string {
		var out strings.Builder
		if _, err := a.Flush(func(b *metric.Batch) error { out.Write(b.Data); return nil }, true); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	want, got := flushAll(byHost), flushAll(byLine)
	if got != want || !strings.Contains(got, "lb.eu.fe.req 15.0 1700000000\n") {
		t.Fatalf("by line:\n%s\nby host:\n%s", got, want)
	}
	if _, err := byLine.AddLine([]byte("lb.c.fe.req 1 1700000005")); !errors.Is(err, ErrLate) {
		t.Fatalf("after the flush: %v", err)
	}
}

// parseValue equals strconv.ParseFloat on what it reads itself and hands the rest to it.
func TestParseValue(t *testing.T) {
	for _, s := range []string{"0", "12", "-0.375", "0.1", "123456789012345", "1234567890.12345", "99.9", "-0", "1e3",
		"1.", ".5", "1234567890123456", "0.30000000000000004", "inf", "-Inf", "1_0", "", "-", ".", "nan", "NaN", "1.2.3"} {
		got, ok := parseValue([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		wantOK := err == nil && !math.IsNaN(want)
		if ok != wantOK || ok && (got != want || math.Signbit(got) != math.Signbit(want)) {
			t.Errorf("%q: %v %v, strconv %v %v", s, got, ok, want, err)
		}
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"0", "-0.375", "1e3", "12345678901234.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseValue([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if wantOK := err == nil && !math.IsNaN(want); ok != wantOK || ok && got != want {
			t.Fatalf("%q: %v %v, strconv %v %v", s, got, ok, want, err)
		}
	})
}
