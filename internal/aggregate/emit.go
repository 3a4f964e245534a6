package aggregate

import (
	"math"
	"slices"

	"github.com/statspipe/statspipe/internal/metric"
)

// Emit writes every line of the snapshot to c: the aggregates of every series in first-seen
// order (functions in policy order, a histogram's quantiles then its buckets), then with
// PerInstance each kept instance's own values in the order it gave them (unless
// StreamInstances wrote them already, as each instance ended). Only the first call after Reset
// writes anything.
func (a *Aggregator) Emit(c *metric.Chunker) {
	if a.emitted {
		return
	}
	if a.open {
		a.EndInstance(true)
	}
	a.emitted = true
	if a.needValues {
		a.gatherValues()
	}
	for i := range a.entries {
		e := &a.entries[i]
		switch e.class {
		case classBucket:
			// written with its histogram
		case classHist:
			a.emitHistogram(c, e)
		default:
			if e.n == 0 {
				continue
			}
			for _, f := range a.funcs[e.policy] {
				// an overflow (a sum or deviation beyond float64) is no value to write
				if v, ok := a.value(e, f); ok && !math.IsInf(v, 0) && !math.IsNaN(v) {
					suffix := ""
					if f.Op != Sum {
						suffix = f.String()
					}
					a.line(c, e, suffix, nil, v)
				}
			}
		}
	}
	if a.opt.PerInstance {
		for i := a.streamed; i < len(a.insts); i++ {
			a.emitInstance(c, int32(i))
		}
	}
}

// gatherValues puts the values of every series with a percentile in its policy side by side
// in a.values, sorted, by a counting sort over the staged values of the kept instances.
func (a *Aggregator) gatherValues() {
	total := int32(0)
	for i := range a.entries {
		e := &a.entries[i]
		if e.wantValues {
			e.valOff, e.valFill = total, 0
			total += e.n
		}
	}
	a.values = slices.Grow(a.values[:0], int(total))[:total]
	for _, in := range a.insts {
		for _, st := range a.staged[in.start:in.end] {
			e := &a.entries[st.entry]
			if e.wantValues {
				a.values[e.valOff+e.valFill] = st.value
				e.valFill++
			}
		}
	}
	for i := range a.entries {
		if e := &a.entries[i]; e.wantValues {
			slices.Sort(a.values[e.valOff : e.valOff+e.n])
		}
	}
}

// value is f over the instances' values of e (n ≥ 1).
func (a *Aggregator) value(e *entry, f Func) (float64, bool) {
	switch f.Op {
	case Sum:
		return e.sum, true
	case Avg:
		return e.sum / float64(e.n), true
	case Min:
		return e.min, true
	case Max:
		return e.max, true
	case Count:
		return float64(e.n), true
	case Stddev:
		if e.n < 2 {
			return 0, false
		}
		return math.Sqrt(e.m2 / float64(e.n-1)), true
	case Percentile:
		vals := a.values[e.valOff : e.valOff+e.n]
		return vals[percentileIndex(f.P, len(vals))], true
	}
	return 0, false
}

// percentileIndex is the nearest rank with ties to even, computed as numpy's "nearest" method
// (and haproxystats' CPU percentiles) compute it: round-half-even(q·(n−1)) with q the double
// nearest NN/100. The product is rounded, so a few exact halves land one rank apart from the
// exact rational (n=46, p70: 0.7·45 = 31.499999… → 31, not 32); the same rule everywhere
// matters more.
func percentileIndex(nn, n int) int {
	q := float64(nn) / 100
	return int(math.RoundToEven(q * float64(n-1)))
}

// mergedBuckets collects the summed buckets of histogram h into a.buckets (unsorted).
func (a *Aggregator) mergedBuckets(h *entry) []bucket {
	bs := a.buckets[:0]
	for b := h.hist; b >= 0; b = a.entries[b].prevBucket {
		be := &a.entries[b]
		if be.n > 0 {
			bs = append(bs, bucket{be.bound, be.sum})
		}
	}
	a.buckets = bs
	return bs
}

func (a *Aggregator) emitHistogram(c *metric.Chunker, h *entry) {
	bs := a.mergedBuckets(h)
	if len(bs) == 0 {
		return
	}
	a.emitQuantiles(c, h, nil, bs)
	if a.opt.HistogramBuckets {
		a.emitBucketLines(c, h)
	}
}

// emitBucketLines writes the merged bucket counts of h as summed (before any fix-up), in bound
// order.
func (a *Aggregator) emitBucketLines(c *metric.Chunker, h *entry) {
	ids := a.ids[:0]
	for b := h.hist; b >= 0; b = a.entries[b].prevBucket {
		if a.entries[b].n > 0 {
			ids = append(ids, b)
		}
	}
	slices.SortFunc(ids, func(x, y int32) int {
		return compareBuckets(bucket{bound: a.entries[x].bound}, bucket{bound: a.entries[y].bound})
	})
	for _, b := range ids {
		if be := &a.entries[b]; !math.IsInf(be.sum, 0) {
			a.line(c, be, "", nil, be.sum)
		}
	}
	a.ids = ids[:0]
}

// emitQuantiles writes the HistogramQuantiles of bs for h (in is nil for the aggregate). bs is
// not changed.
func (a *Aggregator) emitQuantiles(c *metric.Chunker, h *entry, in *instance, bs []bucket) {
	if len(a.quantiles) == 0 {
		return
	}
	work := append(a.buckets2[:0], bs...)
	a.buckets2 = work
	work = prepareBuckets(work)
	if work == nil {
		return
	}
	for _, q := range a.quantiles {
		v := bucketQuantile(float64(q)/100, work)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		a.line(c, h, percentileNames[q], in, v)
	}
}

// groupedBucket is a bucket of one instance tagged with the histogram it belongs to (numbered
// in order of first appearance within the instance).
type groupedBucket struct {
	group int32
	b     bucket
}

// emitInstance writes the values of kept instance i in the order it gave them; a histogram
// comes where its first bucket came, as that instance's own quantiles.
func (a *Aggregator) emitInstance(c *metric.Chunker, i int32) {
	in := &a.insts[i]
	mark := i + 1
	items := a.staged[in.start:in.end]
	gb := a.grouped[:0]
	groups := int32(0)
	for _, st := range items {
		e := &a.entries[st.entry]
		if e.class != classBucket {
			continue
		}
		h := &a.entries[e.hist]
		if h.instMark != mark {
			h.instMark, h.instGroup = mark, groups
			groups++
		}
		gb = append(gb, groupedBucket{h.instGroup, bucket{e.bound, st.value}})
	}
	a.grouped = gb
	if len(gb) > 0 {
		slices.SortFunc(gb, func(x, y groupedBucket) int {
			if x.group != y.group {
				return int(x.group - y.group)
			}
			return compareBuckets(x.b, y.b)
		})
	}
	// starts[g] is where group g begins in gb
	starts := slices.Grow(a.ids[:0], int(groups)+1)[:groups+1]
	clear(starts)
	for _, x := range gb {
		starts[x.group+1]++
	}
	for g := 1; g < len(starts); g++ {
		starts[g] += starts[g-1]
	}
	a.ids = starts
	bs := a.buckets[:0]
	for _, st := range items {
		e := &a.entries[st.entry]
		if e.class != classBucket {
			a.line(c, e, "", in, st.value) // staged values are finite
			continue
		}
		h := &a.entries[e.hist]
		if h.instDone == mark {
			continue
		}
		h.instDone = mark
		bs = bs[:0]
		for _, x := range gb[starts[h.instGroup]:starts[h.instGroup+1]] {
			bs = append(bs, x.b)
		}
		a.emitQuantiles(c, h, in, bs)
	}
	a.buckets = bs
	a.ids = a.ids[:0]
}

// line writes one line: prefix, with in the per-instance part, the entry's path, the suffix
// (a function name) as the last path component, the tags, and v. A line longer than
// MaxLineLength is dropped and counted.
func (a *Aggregator) line(c *metric.Chunker, e *entry, suffix string, in *instance, v float64) {
	b := c.Start()
	start := len(b)
	b = append(b, a.prefix...)
	if in != nil && !a.opt.GraphiteTags {
		if len(b) > start {
			b = append(b, '.')
		}
		b = append(b, "instance."...)
		b = append(b, a.spanBytes(in.name)...)
	}
	if len(b) > start {
		b = append(b, '.')
	}
	b = append(b, a.spanBytes(e.path)...)
	if suffix != "" {
		b = append(b, '.')
		b = append(b, suffix...)
	}
	if a.opt.GraphiteTags {
		tags := a.spanBytes(e.tags)
		if in == nil {
			b = append(b, tags...)
		} else {
			b = append(b, tags[:e.tagSplit]...)
			b = append(b, ";instance="...)
			b = append(b, a.spanBytes(in.tag)...)
			b = append(b, tags[e.tagSplit:]...)
		}
	}
	b = append(b, ' ')
	b = metric.AppendFloat(b, v)
	if len(b)-start > a.maxLine {
		// not ended: the chunk keeps only the lines before
		a.longLines++
		return
	}
	c.End(b)
}
