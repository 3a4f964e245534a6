package aggregate

import (
	"math"
	"strconv"
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
)

func bkt(family string, le string, count float64, labels ...string) sample.Sample {
	bound, err := strconv.ParseFloat(le, 64)
	if err != nil {
		panic(err)
	}
	return fam(smp(sample.Bucket, family+"_bucket", count, labels...), family, bound)
}

func hpart(kind sample.Kind, family, suffix string, v float64, labels ...string) sample.Sample {
	return fam(smp(kind, family+suffix, v, labels...), family, 0)
}

func TestMergedHistogram(t *testing.T) {
	o := Options{Prefix: "p", HistogramQuantiles: []int{10, 25, 30, 50, 90}, PerInstance: true}
	l := []string{"path", "/a"}
	got := values(t, run(t, o,
		// a: buckets given unsorted
		inst{"a", []sample.Sample{
			bkt("lat", "+Inf", 6, l...), bkt("lat", "1", 5, l...), bkt("lat", "0.1", 2, l...),
			hpart(sample.HistogramCount, "lat", "_count", 6, l...), hpart(sample.HistogramSum, "lat", "_sum", 3, l...),
			// neg: the first bucket's bound is ≤ 0
			bkt("neg", "-1", 5), bkt("neg", "0", 6), bkt("neg", "+Inf", 10),
			// zero: no observation at all
			bkt("zero", "1", 0), bkt("zero", "+Inf", 0),
			// noinf: no +Inf bucket
			bkt("noinf", "1", 3), bkt("noinf", "2", 4),
		}},
		// b: "1.0" for a's "1", and a bound 0.5 the others lack
		inst{"b", []sample.Sample{
			bkt("lat", "0.1", 1, l...), bkt("lat", "0.5", 2, l...), bkt("lat", "1.0", 3, l...), bkt("lat", "+Inf", 4, l...),
			hpart(sample.HistogramCount, "lat", "_count", 4, l...), hpart(sample.HistogramSum, "lat", "_sum", 1.5, l...),
		}},
		// c: lacks the bucket 1
		inst{"c", []sample.Sample{
			bkt("lat", "0.1", 0, l...), bkt("lat", "+Inf", 2, l...),
			hpart(sample.HistogramCount, "lat", "_count", 2, l...), hpart(sample.HistogramSum, "lat", "_sum", 10, l...),
		}},
	))
	want := map[string]float64{
		// summed per bound: 0.1: 2+1+0 = 3; 0.5: 2 (b only); 1: 5+3 = 8 (c lacks it);
		// +Inf: 6+4+2 = 12. Monotonic envelope: 0.5 → 3. Buckets (0.1,3) (0.5,3) (1,8) (+Inf,12).
		// p10: rank 1.2 ≤ 3 → first bucket, lower bound 0: 0.1·1.2/3 = 0.04
		"p.lat.path._a.p10": 0.1 * (1.2 / 3),
		// p25: rank 3 → first bucket (3 ≥ 3): 0.1·3/3 = 0.1
		"p.lat.path._a.p25": 0.1,
		// p30: rank 3.6 → bucket 1 (count 8): 0.5 + (1−0.5)·(3.6−3)/(8−3) = 0.56
		"p.lat.path._a.p30": 0.5 + 0.5*(0.6/5),
		// p50: rank 6 → bucket 1: 0.5 + 0.5·(6−3)/5 = 0.8
		"p.lat.path._a.p50": 0.8,
		// p90: rank 10.8 > 8 → the +Inf bucket → the highest finite bound, 1
		"p.lat.path._a.p90":   1,
		"p.lat_count.path._a": 12, "p.lat_sum.path._a": 14.5,
		// neg: (−1,5) (0,6) (+Inf,10). p10 rank 1 and p25 rank 2.5 and p50 rank 5 → first
		// bucket with bound ≤ 0 → −1; p30 rank 3 → −1 too; p90 rank 9 → +Inf → 0
		"p.neg.p10": -1, "p.neg.p25": -1, "p.neg.p30": -1, "p.neg.p50": -1, "p.neg.p90": 0,
		// zero and noinf: nothing

		// per instance, from each instance's own buckets
		// a: (0.1,2) (1,5) (+Inf,6). p10 rank 0.6 → 0.1·0.6/2 = 0.03; p25 rank 1.5 → 0.075;
		// p30 rank 1.8 → 0.09; p50 rank 3 → 0.1 + 0.9·(3−2)/(5−2) = 0.4; p90 rank 5.4 → +Inf → 1
		"p.instance.a.lat.path._a.p10": 0.1 * 0.6 / 2, "p.instance.a.lat.path._a.p25": 0.1 * 1.5 / 2,
		"p.instance.a.lat.path._a.p30": 0.1 * 1.8 / 2, "p.instance.a.lat.path._a.p50": 0.1 + 0.9*(1.0/3),
		"p.instance.a.lat.path._a.p90":   1,
		"p.instance.a.lat_count.path._a": 6, "p.instance.a.lat_sum.path._a": 3,
		"p.instance.a.neg.p10": -1, "p.instance.a.neg.p25": -1, "p.instance.a.neg.p30": -1,
		"p.instance.a.neg.p50": -1, "p.instance.a.neg.p90": 0,
		// b: (0.1,1) (0.5,2) (1,3) (+Inf,4). p10 rank 0.4 → 0.1·0.4 = 0.04; p25 rank 1 → 0.1;
		// p30 rank 1.2 → 0.1 + 0.4·0.2/1 = 0.18; p50 rank 2 → 0.5; p90 rank 3.6 → 1
		"p.instance.b.lat.path._a.p10": 0.1 * 0.4, "p.instance.b.lat.path._a.p25": 0.1,
		"p.instance.b.lat.path._a.p30": 0.1 + 0.4*0.2, "p.instance.b.lat.path._a.p50": 0.5,
		"p.instance.b.lat.path._a.p90":   1,
		"p.instance.b.lat_count.path._a": 4, "p.instance.b.lat_sum.path._a": 1.5,
		// c: (0.1,0) (+Inf,2): every rank > 0 lies in +Inf → 0.1
		"p.instance.c.lat.path._a.p10": 0.1, "p.instance.c.lat.path._a.p25": 0.1,
		"p.instance.c.lat.path._a.p30": 0.1, "p.instance.c.lat.path._a.p50": 0.1,
		"p.instance.c.lat.path._a.p90":   0.1,
		"p.instance.c.lat_count.path._a": 2, "p.instance.c.lat_sum.path._a": 10,
	}
	for p, w := range want {
		if v, ok := got[p]; !ok || !near(v, w) {
			t.Errorf("%s = %v (present %v), want %v", p, v, ok, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s = %v", p, got[p])
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	o := Options{Prefix: "p", HistogramQuantiles: []int{}, HistogramBuckets: true}
	got := run(t, o,
		inst{"a", []sample.Sample{bkt("h", "+Inf", 3), bkt("h", "1", 1), bkt("zero", "1", 0), bkt("zero", "+Inf", 0)}},
		inst{"b", []sample.Sample{bkt("h", "1.0", 2), bkt("h", "0.25", 1), bkt("h", "+Inf", 2)}},
	)
	diff(t, got, lines(
		// merged counts as summed, in bound order; "1" and "1.0" are one bucket
		"p.h_bucket.le.0_25 1.0",
		"p.h_bucket.le.1_0 3.0",
		"p.h_bucket.le.inf 5.0",
		"p.zero_bucket.le.1_0 0.0",
		"p.zero_bucket.le.inf 0.0",
	))
}

// prepareBuckets and bucketQuantile on their own: the precision fix-up and coalescing.
func TestBucketQuantileEdges(t *testing.T) {
	inf := math.Inf(1)
	// equal bounds are merged: (1,2)+(1,2) = (1,4); +Inf 8: p50 rank 4 → 0 + 1·4/4 = 1
	bs := prepareBuckets([]bucket{{inf, 8}, {1, 2}, {1, 2}})
	if len(bs) != 2 || bucketQuantile(0.5, bs) != 1 {
		t.Fatalf("coalesce: %v", bs)
	}
	// a decrease within 1e-12 is float error: set to the previous count, then no envelope
	bs = prepareBuckets([]bucket{{1, 10}, {2, 10 - 1e-12}, {inf, 20}})
	if bs[1].count != 10 {
		t.Fatalf("precision: %v", bs)
	}
	if prepareBuckets([]bucket{{inf, 5}}) != nil {
		t.Fatal("a lone +Inf bucket gives a quantile")
	}
	if prepareBuckets(nil) != nil || prepareBuckets([]bucket{{1, 1}, {2, 2}}) != nil {
		t.Fatal("no +Inf bucket gives a quantile")
	}
}
