package aggregate

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
)

const testTS = 1700000000

// smp builds a sample; labels are name, value pairs.
func smp(kind sample.Kind, name string, v float64, labels ...string) sample.Sample {
	s := sample.Sample{Name: []byte(name), Kind: kind, Value: v}
	for i := 0; i+1 < len(labels); i += 2 {
		s.Labels = append(s.Labels, sample.Label{Name: []byte(labels[i]), Value: []byte(labels[i+1])})
	}
	return s
}

// fam sets a sample's family (and bound, for buckets and quantiles).
func fam(s sample.Sample, family string, bound float64) sample.Sample {
	s.Family = []byte(family)
	s.Bound = bound
	return s
}

type inst struct {
	name    string
	samples []sample.Sample
}

// brokenName marks an instance whose body turned out broken: EndInstance(false).
const brokenName = "BROKEN"

// feed gives the instances to a, each sample through one reused Sample as a parser would.
func feed(a *Aggregator, insts []inst) {
	var s sample.Sample
	for _, in := range insts {
		a.BeginInstance(in.name)
		for i := range in.samples {
			s = in.samples[i]
			// a parser reuses its buffers: hand over copies and scribble on them afterwards
			s.Name = append([]byte(nil), s.Name...)
			a.Add(&s)
			for j := range s.Name {
				s.Name[j] = '!'
			}
		}
		a.EndInstance(in.name != brokenName)
	}
}

// emit runs Emit into a Chunker and returns the text.
func emit(a *Aggregator) string {
	var out bytes.Buffer
	c := metric.NewChunker(512) // small chunks: lines cross chunk boundaries
	c.Reset(func(b *metric.Batch) error {
		out.Write(b.Data)
		metric.Recycle(b)
		return nil
	}, "test", testTS)
	a.Emit(c)
	if err := c.Close(); err != nil {
		panic(err)
	}
	return out.String()
}

func run(t testing.TB, o Options, insts ...inst) string {
	t.Helper()
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	feed(a, insts)
	return emit(a)
}

// values maps each path of out to its value; a path given twice fails the test.
func values(t testing.TB, out string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		if len(f) != 3 || f[2] != strconv.Itoa(testTS) {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		if _, dup := m[f[0]]; dup {
			t.Fatalf("path %q written twice", f[0])
		}
		m[f[0]] = v
	}
	return m
}

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

func lines(ls ...string) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l)
		b.WriteString(" " + strconv.Itoa(testTS) + "\n")
	}
	return b.String()
}

// diff reports the first differing line.
func diff(t *testing.T, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("line %d:\n got %q\nwant %q\nfull output:\n%s", i+1, gl, wl, got)
		}
	}
}
