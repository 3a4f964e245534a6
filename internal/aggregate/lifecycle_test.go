package aggregate

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
)

// A broken instance leaves no trace: not its values, not the series it introduced (which
// would otherwise move in first-seen order), not the buckets it added to known histograms.
func TestEndInstanceDiscards(t *testing.T) {
	o := Options{Prefix: "p", PerInstance: true, HistogramBuckets: true,
		Policies: Policies{Default: []Func{{Op: Sum}, {Op: Percentile, P: 50}}}}
	good1 := inst{"a", []sample.Sample{smp(sample.Gauge, "x", 1), bkt("h", "1", 1), bkt("h", "+Inf", 2)}}
	broken := inst{brokenName, []sample.Sample{
		smp(sample.Gauge, "y", 100), smp(sample.Gauge, "x", 100),
		bkt("h", "0.5", 50), bkt("h", "+Inf", 100), bkt("g", "+Inf", 1), smp(sample.Gauge, "z", 1),
	}}
	good2 := inst{"b", []sample.Sample{smp(sample.Gauge, "z", 3), smp(sample.Gauge, "y", 2), smp(sample.Gauge, "x", 5), bkt("h", "+Inf", 1)}}
	with := run(t, o, good1, broken, good2)
	without := run(t, o, good1, good2)
	diff(t, with, without)
	if !strings.Contains(without, "p.z 3.0") || strings.Contains(without, "100") {
		t.Fatalf("unexpected output:\n%s", without)
	}
	// the order is good2's: z before y
	if strings.Index(without, "p.z ") > strings.Index(without, "p.y ") {
		t.Fatalf("order:\n%s", without)
	}
	// discarding the only instance leaves nothing
	if out := run(t, o, broken); out != "" {
		t.Fatalf("output of a discarded instance:\n%s", out)
	}
}

func TestResetReuse(t *testing.T) {
	o := Options{Prefix: "one", PerInstance: true, HistogramBuckets: true,
		Policies: Policies{Default: []Func{{Op: Sum}, {Op: Stddev}, {Op: Percentile, P: 90}}}}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	input := append(goldenInput(), inst{"z", []sample.Sample{bkt("h", "2", 1), bkt("h", "+Inf", 1)}})
	feed(a, input)
	first := emit(a)
	if again := emit(a); again != "" {
		t.Fatalf("second Emit wrote:\n%s", again)
	}
	// a different snapshot in between, then the same input again under another prefix
	a.Reset("other")
	feed(a, []inst{{"q", []sample.Sample{smp(sample.Gauge, "other", 1), bkt("h", "+Inf", 7)}}})
	if out := emit(a); !strings.HasPrefix(out, "other.other 1.0") {
		t.Fatalf("between:\n%s", out)
	}
	a.Reset("one")
	feed(a, input)
	diff(t, emit(a), first)
}

func TestMaxSeries(t *testing.T) {
	o := Options{Prefix: "p", MaxSeries: 3}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var ss []sample.Sample
	for i := range 10 {
		ss = append(ss, smp(sample.Gauge, fmt.Sprint("m", i), 1))
	}
	feed(a, []inst{{"a", ss}, {"b", ss}})
	out := emit(a)
	diff(t, out, lines("p.m0 2.0", "p.m1 2.0", "p.m2 2.0"))
	if a.Dropped() != 14 || a.Series() != 3 {
		t.Fatalf("dropped %d series %d", a.Dropped(), a.Series())
	}
	// a histogram needs room for itself and its bucket
	a.Reset("p")
	feed(a, []inst{{"a", []sample.Sample{smp(sample.Gauge, "x", 1), smp(sample.Gauge, "y", 1), bkt("h", "+Inf", 1)}}})
	if a.Series() != 2 || a.Dropped() != 1 {
		t.Fatalf("series %d dropped %d", a.Series(), a.Dropped())
	}
	if a.Duplicates() != 0 {
		t.Fatal("duplicates")
	}
}

func TestLongLinesAndNames(t *testing.T) {
	long := strings.Repeat("x", 300)
	o := Options{Prefix: "p", MaxLineLength: 400}
	got := run(t, o, inst{"a", []sample.Sample{
		smp(sample.Gauge, long, 1),
		smp(sample.Gauge, "y", 1, "a", long, "b", long),
		smp(sample.Gauge, "", 2),
	}})
	ls := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(ls) != 2 {
		t.Fatalf("lines:\n%s", got)
	}
	// a component is bounded to 255 bytes, ending in a hash
	name := strings.Fields(ls[0])[0][len("p."):]
	if len(name) != 255 || !strings.HasPrefix(name, "xxxx") || strings.Contains(name, ".") {
		t.Fatalf("bounded name %q", name)
	}
	if ls[1] != "p._ 2.0 1700000000" {
		t.Fatalf("empty name: %q", ls[1])
	}
}

func TestNewErrors(t *testing.T) {
	for _, q := range [][]int{{0}, {100}, {50, 50}} {
		if _, err := New(Options{HistogramQuantiles: q}); err == nil {
			t.Errorf("%v: no error", q)
		}
	}
}

func TestTagValues(t *testing.T) {
	a, err := New(Options{GraphiteTags: true})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"~a;b c": "_a_b_c", "": "_", "a.b/ü:1": "a.b/ü:1", "x\ty\n\xff": "x_y__", "a~": "a~",
	} {
		if got := string(a.appendTagValue(nil, []byte(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestDuplicatesFirstWins(t *testing.T) {
	a, err := New(Options{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	feed(a, []inst{
		{"a", []sample.Sample{smp(sample.Gauge, "x", 1, "k", "v"), smp(sample.Gauge, "x", 5, "k", "v"),
			bkt("h", "1", 1), bkt("h", "1.0", 9), bkt("h", "+Inf", 2)}},
		{"b", []sample.Sample{smp(sample.Gauge, "x", 2, "k", "v")}},
	})
	diff(t, emit(a), lines("p.x.k.v 3.0", "p.h.p50 1.0", "p.h.p90 1.0", "p.h.p99 1.0"))
	if a.Duplicates() != 2 {
		t.Fatalf("duplicates %d", a.Duplicates())
	}
}

// StreamInstances writes each instance's lines as it ends, before the aggregates: the same lines
// as without it, each instance's in the same order, and the aggregates after them.
func TestStreamInstancesSameLines(t *testing.T) {
	o := Options{Prefix: "ns.host.src", Policies: goldenPolicies(t), PerInstance: true, HistogramQuantiles: []int{50}}
	plain := run(t, o, goldenInput()...)

	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := metric.NewChunker(512)
	c.Reset(func(b *metric.Batch) error { out.Write(b.Data); metric.Recycle(b); return nil }, "test", testTS)
	for round := 0; round < 2; round++ { // a second snapshot with the same Aggregator
		out.Reset()
		a.Reset("ns.host.src")
		a.StreamInstances(c)
		feed(a, goldenInput())
		a.Emit(c)
		c.Close()
		c.Reset(func(b *metric.Batch) error { out.Write(b.Data); metric.Recycle(b); return nil }, "test", testTS)
		streamed := out.String()
		if !sameLineSet(plain, streamed) {
			t.Fatalf("round %d: streamed lines differ\n%s\nwant (any order)\n%s", round, streamed, plain)
		}
		// per-instance lines first, then the aggregates
		lines := strings.Split(strings.TrimSpace(streamed), "\n")
		firstAggregate := -1
		for i, l := range lines {
			if !strings.Contains(l, ".instance.web") {
				firstAggregate = i
				break
			}
		}
		for _, l := range lines[firstAggregate:] {
			if strings.HasPrefix(l, "ns.host.src.instance.") {
				t.Fatalf("round %d: a per-instance line after the aggregates: %q", round, l)
			}
		}
	}
}

func sameLineSet(a, b string) bool {
	x := strings.Split(strings.TrimSpace(a), "\n")
	y := strings.Split(strings.TrimSpace(b), "\n")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
