package aggregate

import (
	"math"
	"slices"
)

// bucket is one cumulative histogram bucket: count observations ≤ bound.
type bucket struct {
	bound, count float64
}

func compareBuckets(a, b bucket) int {
	switch {
	case a.bound < b.bound:
		return -1
	case a.bound > b.bound:
		return 1
	}
	return 0
}

// precisionTolerance is the relative difference below which a decrease of a cumulative count
// is taken for a floating-point error (summing float counts of many instances) rather than
// for inconsistent data.
const precisionTolerance = 1e-12

// prepareBuckets brings buckets into the shape histogram_quantile works on, in place, and
// returns the usable part, or nil when no quantile can be derived. The steps are those of
// Prometheus' histogram_quantile:
//
//   - sort by bound (the input may come in any order);
//   - the highest bound must be +Inf, else there is no quantile;
//   - buckets with equal bounds are merged by adding their counts;
//   - a count that differs from the one before by a relative 1e-12 or less is set to it (a
//     float rounding error, not a real decrease);
//   - the counts are made monotonic by taking the running maximum ("envelope"): a cumulative
//     count can never decrease, so a decrease means inconsistent data (an instance missing a
//     bucket its peers have contributes nothing at that bound, see doc.go), and the envelope is
//     Prometheus' fix;
//   - at least two buckets are needed, and a +Inf count above 0.
func prepareBuckets(bs []bucket) []bucket {
	if len(bs) == 0 {
		return nil
	}
	slices.SortFunc(bs, compareBuckets)
	if !math.IsInf(bs[len(bs)-1].bound, 1) {
		return nil
	}
	out := 0
	for i := 1; i < len(bs); i++ {
		if bs[i].bound == bs[out].bound {
			bs[out].count += bs[i].count
			continue
		}
		out++
		bs[out] = bs[i]
	}
	bs = bs[:out+1]
	prev := bs[0].count
	for i := 1; i < len(bs); i++ {
		cur := bs[i].count
		d := math.Abs(cur - prev)
		if d == 0 {
			continue
		}
		if d/cur <= precisionTolerance {
			bs[i].count = prev
		} else {
			prev = cur
		}
	}
	top := bs[0].count
	for i := 1; i < len(bs); i++ {
		if bs[i].count < top {
			bs[i].count = top
		} else {
			top = bs[i].count
		}
	}
	if len(bs) < 2 || !(bs[len(bs)-1].count > 0) {
		return nil
	}
	return bs
}

// bucketQuantile is the q-quantile (0 < q < 1) of buckets prepared by prepareBuckets: the
// bucket holding the rank q·count(+Inf) is the first whose cumulative count reaches it; inside
// it the value is interpolated linearly between its lower bound (the previous bucket's bound,
// 0 for the first bucket) and its upper bound. A rank in the +Inf bucket gives the highest
// finite bound; a rank in a first bucket whose bound is ≤ 0 gives that bound.
func bucketQuantile(q float64, bs []bucket) float64 {
	total := bs[len(bs)-1].count
	rank := q * total
	last := len(bs) - 1
	// first bucket, +Inf excluded, whose count reaches the rank (last if none)
	lo, hi := 0, last
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if bs[mid].count >= rank {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	b := lo
	if b == last {
		return bs[last-1].bound
	}
	if b == 0 && bs[0].bound <= 0 {
		return bs[0].bound
	}
	start, end, count := 0.0, bs[b].bound, bs[b].count
	if b > 0 {
		start = bs[b-1].bound
		count -= bs[b-1].count
		rank -= bs[b-1].count
	}
	return start + (end-start)*(rank/count)
}
