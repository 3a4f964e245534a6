package aggregate

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
)

// FuzzAdd drives an Aggregator with a sequence of operations decoded from the input and
// checks that every line it writes is well-formed.
func FuzzAdd(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x10\x20\x30\x40"), uint8(0))
	f.Add([]byte("a.b/c d\xff\x00ü;~=!^\x01\x02\x03\x04\x05\x06\x07"), uint8(7))
	f.Add([]byte("\x03\x03\x03\x13\x23\x33\x43\x53\x63\x73\x83\x93\xa3\xb3\xc3\xd3\xe3\xf3"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		pol, _ := ParsePolicies([][2]string{{"aggregate", "sum avg min max count stddev p50 p99"}, {"aggregate.n1*", "none"}})
		o := Options{Prefix: "ns.src", Policies: pol, PerInstance: flags&1 != 0, GraphiteTags: flags&2 != 0,
			HistogramBuckets: flags&4 != 0, MaxSeries: 64 + int(flags>>3)}
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{"n1", "n2", "", "a.b", "x y", "ü", ";~", "=!^", "le", "name", "instance", "\xff", "~t", "n1_bucket"}
		vals := []float64{0, 1, -1, 2.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -0.0, 1e-300}
		bounds := []float64{0, 1, 0.5, math.Inf(1), math.Inf(-1), math.NaN(), -1, 2}
		var s sample.Sample
		for round := 0; round < 2; round++ {
			for i := 0; i+2 < len(data) && i < 3000; i += 3 {
				op, x, y := data[i], data[i+1], data[i+2]
				switch op % 8 {
				case 0:
					a.BeginInstance(texts[int(x)%len(texts)])
				case 1:
					a.EndInstance(x%2 == 0)
				default:
					s.Kind = sample.Kind(x % 10)
					s.Name = append(s.Name[:0], texts[int(y)%len(texts)]...)
					s.Family = append(s.Family[:0], texts[int(y>>4)%len(texts)]...)
					s.Value = vals[int(x>>4)%len(vals)]
					s.Bound = bounds[int(op>>3)%len(bounds)]
					s.Labels = s.Labels[:0]
					for l := 0; l < int(op>>6); l++ {
						s.Labels = append(s.Labels, sample.Label{
							Name:  []byte(texts[(int(y)+l)%len(texts)]),
							Value: []byte(texts[(int(x)+3*l)%len(texts)]),
						})
					}
					a.Add(&s)
				}
			}
			checkLines(t, emit(a), o.GraphiteTags)
			a.Reset("ns.src")
		}
	})
}

func checkLines(t *testing.T, out string, tags bool) {
	t.Helper()
	if out == "" {
		return
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("no final newline: %q", out)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Split(line, " ")
		if len(f) != 3 || f[2] != strconv.Itoa(testTS) {
			t.Fatalf("bad line %q", line)
		}
		if v, err := strconv.ParseFloat(f[1], 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("bad value in %q", line)
		}
		p := f[0]
		var tagList []string
		if tags {
			parts := strings.Split(p, ";")
			p, tagList = parts[0], parts[1:]
		} else if strings.Contains(p, ";") {
			t.Fatalf("';' in %q", line)
		}
		for _, c := range strings.Split(p, ".") {
			if c == "" {
				t.Fatalf("empty component in %q", line)
			}
			if tags {
				continue
			}
			for _, r := range c {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_:#-", r)) {
					t.Fatalf("component %q of %q", c, line)
				}
			}
		}
		for _, tag := range tagList {
			name, value, ok := strings.Cut(tag, "=")
			if !ok || name == "" || value == "" || strings.ContainsAny(name, "!^=") ||
				strings.HasPrefix(value, "~") || name == "name" {
				t.Fatalf("bad tag %q in %q", tag, line)
			}
		}
	}
}
