package metric

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// pythonRepr is Python's repr(float) written the slow, obvious way.
func pythonRepr(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if v != 0 && (exp < -4 || exp >= 16) {
		return e
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

func TestAppendFloatExamples(t *testing.T) {
	cases := map[float64]string{
		0:                    "0.0",
		math.Copysign(0, -1): "-0.0",
		286:                  "286.0",
		1000000:              "1000000.0",
		0.25:                 "0.25",
		150.5:                "150.5",
		70.5:                 "70.5",
		1e16:                 "1e+16",
		1.5e-05:              "1.5e-05",
		0.0001:               "0.0001",
		9999999999999998:     "9999999999999998.0",
		11.224972160321824:   "11.224972160321824",
		7.7781745930520225:   "7.7781745930520225",
		-2.75:                "-2.75",
		0.1:                  "0.1",
		0.3:                  "0.3",
		1.0 / 3:              "0.3333333333333333",
		math.NaN():           "nan",
		math.Inf(1):          "inf",
	}
	for v, want := range cases {
		if got := string(AppendFloat(nil, v)); got != want {
			t.Errorf("AppendFloat(%v) = %q, want %q", v, got, want)
		}
		if got := pythonRepr(v); got != want {
			t.Errorf("reference pythonRepr(%v) = %q, want %q", v, got, want)
		}
	}
}

// The fast paths (integral, ≤ 3 decimals) must agree with the shortest-repr rule everywhere,
// in particular for means n/d of the kind aggregation produces.
func TestAppendFloatMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v float64) {
		if got, want := string(AppendFloat(nil, v)), pythonRepr(v); got != want {
			t.Fatalf("AppendFloat(%v) = %q, want %q", v, got, want)
		}
	}
	for i := 0; i < 30000; i++ {
		n := float64(r.Int64N(1 << uint(1+r.IntN(50))))
		d := float64(1 + r.IntN(64))
		check(n / d)
		check(-n / d)
		check(n / 1000)
		check(n / 8)
		check(math.Float64frombits(r.Uint64()))
		check(r.Float64() * math.Pow(10, float64(r.IntN(40)-20)))
	}
	for _, v := range []float64{0.001, 0.005, 0.0015, 999999999999.999, 1e12 - 0.5, 0.1 + 0.2, 2.675, 1.005} {
		check(v)
	}
}

func TestAppendValue(t *testing.T) {
	cases := []struct {
		v       float64
		isFloat bool
		want    string
	}{
		{4990, false, "4990"},
		{4990, true, "4990.0"},
		{0, false, "0"},
		{-1, false, "-1"},
		{0.25, false, "0.25"}, // a non-integral value never prints as an int
		{1e20, false, "1e+20"},
		{3996, true, "3996.0"},
	}
	for _, c := range cases {
		if got := string(AppendValue(nil, c.v, c.isFloat)); got != c.want {
			t.Errorf("AppendValue(%v, %v) = %q, want %q", c.v, c.isFloat, got, c.want)
		}
	}
	if got := string(AppendSeconds(nil, 0.0764)); got != "0.076" {
		t.Errorf("AppendSeconds = %q", got)
	}
}

func TestComponent(t *testing.T) {
	cases := map[string]string{
		"be_app":             "be_app",
		"be.dotted.name":     "be_dotted_name",
		"app.dead":           "app_dead",
		"a b":                "a_b",
		"a\nb":               "a_b",
		"a\tb\r":             "a_b_",
		"x\x00y\x7f":         "x_y_",
		"bad\xffutf8\xc3":    "bad_utf8_",
		"naïve-ünïcode:8080": "naïve-ünïcode:8080",
		"nbsp\u00a0zw\u200b": "nbsp_zw_",
		"line\u2028sep":      "line_sep",
		"":                   "",
	}
	for in, want := range cases {
		if got := Component(in); got != want {
			t.Errorf("Component(%q) = %q, want %q", in, got, want)
		}
		if got := string(AppendComponent(nil, []byte(in))); got != want {
			t.Errorf("AppendComponent(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamespace(t *testing.T) {
	cases := map[string]string{
		"loadbalancers":     "loadbalancers",
		"a.b.c":             "a.b.c",
		"with space":        "with_space",
		"nl\ninjected 1 2":  "nl_injected_1_2",
		"bad\xff":           "bad_",
		"ünïcode.ok":        "ünïcode.ok",
		"tab\there.and.dot": "tab_here.and.dot",
	}
	for in, want := range cases {
		if got := Namespace(in); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	cases := []struct {
		ns, host     string
		prefix, fqdn bool
		want         string
	}{
		{"loadbalancers", "vm", true, true, "loadbalancers.vm.haproxy"},
		{"loadbalancers", "lb-01.example.com", true, true, "loadbalancers.lb-01_example_com.haproxy"},
		{"loadbalancers", "lb-01.example.com", true, false, "loadbalancers.lb-01.haproxy"},
		{"loadbalancers", "lb-01.example.com", false, true, "loadbalancers.haproxy"},
		{"a.b", "h", true, true, "a.b.h.haproxy"},
		{"bad ns", "bad host\n", true, true, "bad_ns.bad_host_.haproxy"},
	}
	for _, c := range cases {
		if got := Prefix(c.ns, c.host, c.prefix, c.fqdn); got != c.want {
			t.Errorf("Prefix(%q, %q, %v, %v) = %q, want %q", c.ns, c.host, c.prefix, c.fqdn, got, c.want)
		}
	}
}

func TestChunker(t *testing.T) {
	var got []*Batch
	c := NewChunker(100)
	c.Reset(func(b *Batch) error { got = append(got, b); return nil }, "/spool/1700000000", 1700000000)
	for i := 0; i < 50; i++ {
		b := c.Start()
		b = append(b, "a.b.c"...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(i), 10)
		c.End(b)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	lines := 0
	for i, b := range got {
		if b.Seq != i || b.Last != (i == len(got)-1) || b.Timestamp != 1700000000 || b.Source != "/spool/1700000000" {
			t.Fatalf("chunk %d: %+v", i, b)
		}
		if i < len(got)-1 && len(b.Data) < 100 {
			t.Errorf("chunk %d flushed early: %d bytes", i, len(b.Data))
		}
		if bytes.Count(b.Data, []byte("\n")) != b.Lines {
			t.Errorf("chunk %d: Lines %d", i, b.Lines)
		}
		lines += b.Lines
		all.Write(b.Data)
	}
	if lines != 50 || c.Lines() != 50 {
		t.Fatalf("lines %d, Lines() %d", lines, c.Lines())
	}
	for i, l := range strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n") {
		if want := "a.b.c " + strconv.Itoa(i) + " 1700000000"; l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

func TestChunkerEmptyFinalAndError(t *testing.T) {
	var got []*Batch
	c := NewChunker(0)
	c.Reset(func(b *Batch) error { got = append(got, b); return nil }, "s", 1)
	if err := c.Close(); err != nil || len(got) != 1 || !got[0].Last || got[0].Lines != 0 {
		t.Fatalf("empty snapshot: %v %+v", err, got)
	}

	stop := errors.New("shutting down")
	calls := 0
	c = NewChunker(10)
	c.Reset(func(*Batch) error { calls++; return stop }, "s", 1)
	for i := 0; i < 5; i++ {
		c.End(append(c.Start(), "some.metric 1"...))
	}
	if !errors.Is(c.Err(), stop) || !errors.Is(c.Close(), stop) || calls != 1 {
		t.Fatalf("err %v, close %v, flush calls %d", c.Err(), c.Close(), calls)
	}
}

func TestRecycle(t *testing.T) {
	var got []*Batch
	c := NewChunker(64)
	c.Reset(func(b *Batch) error { got = append(got, b); return nil }, "s", 1)
	c.End(append(c.Start(), "first.line 1 with enough bytes to fill a whole chunk of 64 bytes"...))
	if len(got) != 1 {
		t.Fatalf("%d chunks", len(got))
	}
	first := got[0]
	mem := &first.Data[:1][0]
	want := string(first.Data)
	if want == "" {
		t.Fatal("empty chunk")
	}
	Recycle(first)
	if first.Data != nil {
		t.Error("Recycle must clear Data")
	}
	Recycle(first) // a second call is harmless
	c.End(append(c.Start(), "second.line 2 with enough bytes to fill a whole chunk of 64 bytes"...))
	if len(got) != 2 || &got[1].Data[:1][0] != mem {
		t.Error("the recycled memory was not reused")
	}
	if strings.Contains(string(got[1].Data), "first") {
		t.Error("old content leaked into the new chunk")
	}
	Recycle(nil)
	Recycle(&Batch{})
}

func TestLineEnd(t *testing.T) {
	var e LineEnd
	r := rand.New(rand.NewPCG(3, 4))
	for _, ts := range []int64{1700000000, 0, -5, 1795312594} {
		e.SetTimestamp(ts)
		check := func(v float64, isFloat bool) {
			want := " " + string(AppendValue(nil, v, isFloat)) + " " + strconv.FormatInt(ts, 10) + "\n"
			if got := string(e.Value(v, isFloat)); got != want {
				t.Fatalf("LineEnd.Value(%v, %v) = %q, want %q", v, isFloat, got, want)
			}
		}
		for _, v := range []float64{0, math.Copysign(0, -1), 1, 9, 10, 99, 100, 101, -1, -10, 4990,
			999999999999999, 1e15, 1e16, 0.25, -2.5, 1.0 / 3, math.NaN(), math.Inf(-1)} {
			check(v, false)
			check(v, true)
		}
		for i := 0; i < 2000; i++ {
			v := float64(r.Int64N(1 << uint(r.IntN(52))))
			check(v, i%2 == 0)
			check(-v, i%3 == 0)
			check(v/4, true)
		}
	}
}

// The last chunk of a snapshot is kept in memory of its own size, and the chunk buffer goes
// back to the pool at once: small snapshots waiting for Graphite then cost what they hold.
func TestLastChunkIsTight(t *testing.T) {
	var got []*Batch
	c := NewChunker(0)
	c.Reset(func(b *Batch) error { got = append(got, b); return nil }, "s", 1)
	c.End(append(c.Start(), "a.small.snapshot 1"...))
	mem := &c.buf[:1][0]
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if string(last.Data) != "a.small.snapshot 1 1\n" || cap(last.Data) > 2*len(last.Data) {
		t.Fatalf("last chunk %q with capacity %d", last.Data, cap(last.Data))
	}
	c.Reset(func(b *Batch) error { got = append(got, b); return nil }, "s", 2)
	if b := c.Start(); &b[:1][0] != mem {
		t.Error("the chunk buffer was not given back for the next snapshot")
	}
	Recycle(last) // a tight copy is left to the garbage collector
}

func TestReplacePrefix(t *testing.T) {
	b := &Batch{Timestamp: 7, Seq: 2, Last: true, Lines: 3,
		Data: []byte("lb.tier.a 1 7\nother.tier.b 2 7\nlb.tier.c.d 3 7\n")}
	got := ReplacePrefix(b, []byte("lb.tier."), []byte("lb.edge-host-1."))
	if want := "lb.edge-host-1.a 1 7\nother.tier.b 2 7\nlb.edge-host-1.c.d 3 7\n"; string(got.Data) != want ||
		got.Lines != 3 || got.Seq != 2 || !got.Last || got.Timestamp != 7 {
		t.Fatalf("%+v %q", got, got.Data)
	}
	if b.Data != nil {
		t.Fatal("the old chunk was not recycled")
	}
	short := ReplacePrefix(&Batch{Lines: 1, Data: []byte("lb.long-host.x 1 1\n")}, []byte("lb.long-host."), []byte("lb.h."))
	if string(short.Data) != "lb.h.x 1 1\n" {
		t.Fatalf("%q", short.Data)
	}
}
