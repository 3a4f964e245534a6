package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
)

// DefaultMaxSeries bounds the distinct series of one snapshot when Options.MaxSeries is 0.
const DefaultMaxSeries = 1_000_000

// maxArena bounds the bytes of keys and of rendered paths per snapshot: offsets are int32,
// and no sane snapshot comes near it. A series that would cross it is dropped like one beyond
// MaxSeries.
const maxArena = 1 << 30

// Options configure an Aggregator.
type Options struct {
	// Prefix is "<namespace>[.<host>].<source-name>", already formed; it is not sanitised.
	Prefix   string
	Policies Policies
	// HistogramQuantiles are the NN of the pNN written per histogram; nil is 50 90 99, an
	// empty non-nil list none.
	HistogramQuantiles []int
	HistogramBuckets   bool
	PerInstance        bool
	GraphiteTags       bool
	// Names sanitises every component; Strict is forced true and MaxLength 0 is
	// metric.DefaultMaxComponentLength.
	Names metric.Names
	// MaxSeries bounds the distinct series (each histogram bucket counts as one, and so does
	// the histogram itself) of one snapshot; 0 is DefaultMaxSeries. Samples of further series
	// are dropped and counted (Dropped).
	MaxSeries int
	// MaxLineLength bounds a line without its timestamp; longer ones are dropped and counted
	// (LongLines). 0 is metric.DefaultMaxLineLength.
	MaxLineLength int
	// DottedNames reads a sample's Name as a dotted path: each '.'-separated part is one
	// component, sanitised on its own (an empty part is "_"). For kinds whose names are paths
	// (Envoy's `cluster.<name>.upstream_rq_2xx`, Mesos' `master/cpus_total`); such a kind must
	// keep dots out of the parts that are names (a cluster called a.b). Labels stay one
	// component each.
	DottedNames bool
}

// class is how a series aggregates; it is part of the series key, so that a name reused with
// another meaning never merges.
type class uint8

const (
	classPlain       class = iota // untyped, counter, gauge
	classQuantile                 // a summary quantile (the key holds the quantile)
	classSummaryPart              // a summary's _sum or _count
	classHistPart                 // a histogram's _sum or _count
	classBucket                   // one bucket of a histogram (the key holds the bound)
	classHist                     // a histogram (family + labels): owns its buckets
)

func classOf(k sample.Kind) class {
	switch k {
	case sample.Quantile:
		return classQuantile
	case sample.SummarySum, sample.SummaryCount:
		return classSummaryPart
	case sample.HistogramSum, sample.HistogramCount:
		return classHistPart
	case sample.Bucket:
		return classBucket
	}
	return classPlain
}

type span struct{ off, len int32 }

// entry is one series of the snapshot. Entries live in one slice, in first-seen order, and
// hold no pointers, so that a snapshot of a million series costs the garbage collector
// nothing to scan.
type entry struct {
	hash       uint64
	next       int32 // next entry with the same hash (-1: none)
	class      class
	wantValues bool  // a percentile is asked for: values are gathered at Emit
	policy     int32 // index into Aggregator.funcs
	seen       int32 // the instance that last added a value
	key        span  // in Aggregator.keys
	path       span  // in Aggregator.text: name[.label.value]…[.quantile.<q>|.le.<bound>]; with tags the name only
	tags       span  // in Aggregator.text: ";tag=value…" sorted by tag name (tags mode)
	tagSplit   int32 // bytes of tags that sort before "instance"

	n                  int32
	sum, min, max      float64
	mean, m2           float64 // Welford's running mean and sum of squared deviations
	bound              float64 // a bucket's upper bound
	hist               int32   // bucket: its histogram; histogram: its latest bucket (-1: none)
	prevBucket         int32   // bucket: the one of the same histogram created before it
	valOff, valFill    int32
	instMark, instDone int32
	instGroup          int32
}

// staged is one value of the current (or a kept) instance.
type staged struct {
	entry int32
	value float64
}

type instance struct {
	name       span // sanitised as a path component, in text
	tag        span // sanitised as a tag value, in text
	start, end int32
}

// Aggregator aggregates the samples of the instances of one source into Graphite lines. It is
// reused across snapshots by one goroutine.
type Aggregator struct {
	opt       Options
	names     metric.Names
	prefix    string
	maxSeries int
	maxLine   int
	quantiles []int
	// funcs are the resolved policies: 0 sum, 1 max (summary quantiles), 2 the default, then
	// the rules.
	funcs      [][]Func
	needValues bool
	keepStaged bool
	seed       maphash.Seed

	index   map[uint64]int32
	entries []entry
	keys    []byte
	text    []byte
	staged  []staged
	insts   []instance
	values  []float64

	// the open instance
	open       bool
	instNo     int32
	markEntry  int
	markKeys   int
	markText   int
	markStaged int
	instName   span
	instTag    span

	emitted bool
	// live receives each kept instance's lines as it ends (StreamInstances); streamed counts
	// the instances written there.
	live     *metric.Chunker
	streamed int

	dropped, duplicates, longLines int

	// scratch
	keyBuf, histKeyBuf, tmp []byte
	order                   []int
	tagList                 []tagSpan
	buckets, buckets2       []bucket
	grouped                 []groupedBucket
	ids                     []int32
}

type tagSpan struct{ name, value span }

var errNoPercentile = errors.New("histogram quantiles must be 1–99")

// New returns an Aggregator; it fails on invalid HistogramQuantiles.
func New(o Options) (*Aggregator, error) {
	a := &Aggregator{opt: o, seed: maphash.MakeSeed(), index: make(map[uint64]int32)}
	a.names = o.Names
	a.names.Strict = true
	if a.names.MaxLength == 0 {
		a.names.MaxLength = metric.DefaultMaxComponentLength
	}
	a.maxSeries = o.MaxSeries
	if a.maxSeries <= 0 {
		a.maxSeries = DefaultMaxSeries
	}
	a.maxSeries = min(a.maxSeries, maxArena)
	a.maxLine = o.MaxLineLength
	if a.maxLine <= 0 {
		a.maxLine = metric.DefaultMaxLineLength
	}
	a.quantiles = o.HistogramQuantiles
	if a.quantiles == nil {
		a.quantiles = []int{50, 90, 99}
	}
	for i, q := range a.quantiles {
		if q < 1 || q > 99 {
			return nil, fmt.Errorf("%w, not %d", errNoPercentile, q)
		}
		if slices.Contains(a.quantiles[:i], q) {
			return nil, fmt.Errorf("histogram quantile %d given twice", q)
		}
	}
	def := o.Policies.Default
	if def == nil {
		def = []Func{{Op: Sum}}
	}
	a.funcs = [][]Func{{{Op: Sum}}, {{Op: Max}}, def}
	for _, r := range o.Policies.Rules {
		a.funcs = append(a.funcs, r.Funcs)
	}
	for _, f := range a.funcs {
		a.needValues = a.needValues || hasPercentile(f)
	}
	a.keepStaged = a.needValues || o.PerInstance
	a.Reset(o.Prefix)
	return a, nil
}

// Reset starts a new snapshot with the same options and a new prefix. Memory is kept.
func (a *Aggregator) Reset(prefix string) {
	a.prefix = prefix
	clear(a.index)
	a.entries = a.entries[:0]
	a.keys = a.keys[:0]
	a.text = a.text[:0]
	a.staged = a.staged[:0]
	a.insts = a.insts[:0]
	a.open = false
	a.instNo = 0
	a.emitted = false
	a.live, a.streamed = nil, 0
	a.dropped, a.duplicates, a.longLines = 0, 0, 0
}

// StreamInstances makes every instance kept from now on (with PerInstance) write its own lines
// to c as soon as it ends, instead of Emit writing them after the aggregates. The instances'
// values are then not all kept until Emit: memory holds one instance's values plus those the
// percentiles need, not every instance's. Call it after Reset; Emit must get the same c.
func (a *Aggregator) StreamInstances(c *metric.Chunker) { a.live = c }

// Dropped is the number of samples of this snapshot dropped because MaxSeries was reached.
func (a *Aggregator) Dropped() int { return a.dropped }

// Duplicates is the number of samples of this snapshot ignored because their instance had
// already given a value for the series.
func (a *Aggregator) Duplicates() int { return a.duplicates }

// LongLines is the number of lines of this snapshot dropped for exceeding MaxLineLength.
func (a *Aggregator) LongLines() int { return a.longLines }

// Series is the number of distinct series of this snapshot (buckets and histograms included).
func (a *Aggregator) Series() int { return len(a.entries) }

// BeginInstance starts the samples of one instance. An instance still open is ended first as
// if EndInstance(true) had been called.
func (a *Aggregator) BeginInstance(name string) {
	if a.open {
		a.EndInstance(true)
	}
	a.open = true
	a.instNo++
	a.markEntry, a.markKeys, a.markStaged = len(a.entries), len(a.keys), len(a.staged)
	a.markText = len(a.text)
	raw := unsafe.Slice(unsafe.StringData(name), len(name)) // read only
	off := len(a.text)
	a.text = a.appendComponent(a.text, raw)
	a.instName = span{int32(off), int32(len(a.text) - off)}
	off = len(a.text)
	a.text = a.appendTagValue(a.text, raw)
	a.instTag = span{int32(off), int32(len(a.text) - off)}
}

// Add adds one sample of the open instance (without one it is ignored). It copies what it
// keeps: s may be reused by the caller. NaN and ±Inf values are skipped, and so are buckets
// and quantiles with a NaN bound; a second value of the same series from the same instance is
// ignored (the first wins).
func (a *Aggregator) Add(s *sample.Sample) {
	if !a.open {
		return
	}
	v := s.Value
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	cls := classOf(s.Kind)
	if (cls == classBucket || cls == classQuantile) && math.IsNaN(s.Bound) {
		return
	}
	a.order = sortLabels(a.order[:0], s.Labels)
	a.keyBuf = a.appendKey(a.keyBuf[:0], cls, s.Name, s.Labels, s.Bound)
	h := maphash.Bytes(a.seed, a.keyBuf)
	idx := a.lookup(h, a.keyBuf)
	if idx < 0 {
		idx = a.intern(cls, s, h)
		if idx < 0 {
			a.dropped++
			return
		}
	}
	e := &a.entries[idx]
	if e.seen == a.instNo {
		a.duplicates++
		return
	}
	e.seen = a.instNo
	a.staged = append(a.staged, staged{idx, v})
}

// EndInstance ends the open instance: keep=false discards everything it added, the series it
// introduced included, as if it had never been seen.
func (a *Aggregator) EndInstance(keep bool) {
	if !a.open {
		return
	}
	a.open = false
	if !keep {
		for i := len(a.entries) - 1; i >= a.markEntry; i-- {
			e := &a.entries[i]
			if a.index[e.hash] == int32(i) {
				if e.next < 0 {
					delete(a.index, e.hash)
				} else {
					a.index[e.hash] = e.next
				}
			}
			if e.class == classBucket && int(e.hist) < a.markEntry {
				a.entries[e.hist].hist = e.prevBucket
			}
		}
		a.entries = a.entries[:a.markEntry]
		a.keys = a.keys[:a.markKeys]
		a.text = a.text[:a.markText]
		a.staged = a.staged[:a.markStaged]
		return
	}
	for _, st := range a.staged[a.markStaged:] {
		e := &a.entries[st.entry]
		v := st.value
		if e.n == 0 {
			e.min, e.max = v, v
		} else {
			e.min = min(e.min, v)
			e.max = max(e.max, v)
		}
		e.n++
		e.sum += v
		d := v - e.mean
		e.mean += d / float64(e.n)
		e.m2 += d * (v - e.mean)
	}
	if !a.keepStaged {
		a.staged = a.staged[:a.markStaged]
		return
	}
	a.insts = append(a.insts, instance{a.instName, a.instTag, int32(a.markStaged), int32(len(a.staged))})
	i := len(a.insts) - 1
	if a.opt.PerInstance {
		if a.live == nil {
			return // Emit writes the instance's lines: every value is kept until then
		}
		a.emitInstance(a.live, int32(i))
		a.streamed = len(a.insts)
	}
	// Only the series with a percentile need their values at Emit (their sum, extremes and
	// deviation are kept per series already): drop the rest of the instance's values.
	kept := a.markStaged
	for _, st := range a.staged[a.markStaged:] {
		if a.entries[st.entry].wantValues {
			a.staged[kept] = st
			kept++
		}
	}
	a.staged = a.staged[:kept]
	a.insts[i].end = int32(kept)
}

// sortLabels returns the indexes of the labels with a non-empty value, sorted by name (then
// value). An empty value is no label, as in Prometheus.
func sortLabels(order []int, labels []sample.Label) []int {
	for i := range labels {
		if len(labels[i].Value) == 0 {
			continue
		}
		order = append(order, i)
		// insertion sort: a series has a handful of labels
		for j := len(order) - 1; j > 0; j-- {
			x, y := &labels[order[j-1]], &labels[order[j]]
			c := bytes.Compare(x.Name, y.Name)
			if c < 0 || c == 0 && bytes.Compare(x.Value, y.Value) <= 0 {
				break
			}
			order[j-1], order[j] = order[j], order[j-1]
		}
	}
	return order
}

// appendKey appends the canonical key of a series: class, name, the sorted labels, and for a
// quantile or bucket the bound as a number (so le="1.0" and le="1" are one bucket), every
// string length-prefixed so that no two series share a key.
func (a *Aggregator) appendKey(dst []byte, cls class, name []byte, labels []sample.Label, bound float64) []byte {
	dst = append(dst, byte(cls))
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	for _, i := range a.order {
		l := &labels[i]
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	}
	if cls == classBucket || cls == classQuantile {
		if bound == 0 {
			bound = 0 // -0 and 0 are one bound
		}
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(bound))
	}
	return dst
}

func (a *Aggregator) lookup(h uint64, key []byte) int32 {
	i, ok := a.index[h]
	if !ok {
		return -1
	}
	for i >= 0 {
		e := &a.entries[i]
		if e.hash == h && bytes.Equal(a.keys[e.key.off:e.key.off+e.key.len], key) {
			return i
		}
		i = e.next
	}
	return -1
}

// family is the name policies match and a histogram is named by.
func family(s *sample.Sample) []byte {
	if len(s.Family) > 0 {
		return s.Family
	}
	return s.Name
}

// intern adds the series of s (key in a.keyBuf, hash h) and returns its index, or -1 when
// MaxSeries is reached.
func (a *Aggregator) intern(cls class, s *sample.Sample, h uint64) int32 {
	if len(a.keys)+2*len(a.keyBuf) > maxArena || len(a.text) > maxArena/2 {
		return -1
	}
	hist := int32(-1)
	if cls == classBucket {
		a.histKeyBuf = a.appendKey(a.histKeyBuf[:0], classHist, family(s), s.Labels, 0)
		hh := maphash.Bytes(a.seed, a.histKeyBuf)
		hist = a.lookup(hh, a.histKeyBuf)
		if hist < 0 {
			if len(a.entries)+2 > a.maxSeries {
				return -1
			}
			hist = a.newEntry(classHist, hh, a.histKeyBuf)
			a.render(&a.entries[hist], family(s), s.Labels, "", 0)
			a.entries[hist].policy = -1
		}
	}
	if len(a.entries) >= a.maxSeries {
		return -1
	}
	i := a.newEntry(cls, h, a.keyBuf)
	e := &a.entries[i]
	switch cls {
	case classBucket:
		e.hist = hist
		e.bound = s.Bound
		e.prevBucket = a.entries[hist].hist
		a.entries[hist].hist = i
		e.policy = 0
		a.render(e, s.Name, s.Labels, "le", s.Bound)
	case classQuantile:
		e.policy = 1
		if r, ok := a.rule(family(s)); ok {
			e.policy = r
		}
		a.render(e, s.Name, s.Labels, "quantile", s.Bound)
	case classSummaryPart, classHistPart:
		e.policy = 0
		a.render(e, s.Name, s.Labels, "", 0)
	default:
		e.policy = 2
		if r, ok := a.rule(family(s)); ok {
			e.policy = r
		}
		a.render(e, s.Name, s.Labels, "", 0)
	}
	e.wantValues = hasPercentile(a.funcs[e.policy])
	return i
}

func (a *Aggregator) rule(fam []byte) (int32, bool) {
	if a.opt.Policies.FoldCase && bytes.ContainsFunc(fam, unicode.IsUpper) {
		fam = bytes.ToLower(fam) // once per new series, and only for names with capitals
	}
	// path.Match keeps nothing of its arguments: viewing the bytes as a string is safe and
	// saves an allocation per new series.
	_, i, ok := a.opt.Policies.matchIndex(unsafe.String(unsafe.SliceData(fam), len(fam)))
	return int32(3 + i), ok
}

func (a *Aggregator) newEntry(cls class, h uint64, key []byte) int32 {
	i := int32(len(a.entries))
	off := len(a.keys)
	a.keys = append(a.keys, key...)
	next := int32(-1)
	if head, ok := a.index[h]; ok {
		next = head
	}
	a.index[h] = i
	a.entries = append(a.entries, entry{
		hash: h, next: next, class: cls, key: span{int32(off), int32(len(key))},
		hist: -1, prevBucket: -1,
	})
	return i
}

// appendComponent appends name sanitised and bounded as one path component, "_" if empty.
func (a *Aggregator) appendComponent(dst, name []byte) []byte {
	n := len(dst)
	dst, _ = a.names.Append(dst, name)
	if len(dst) == n {
		dst = append(dst, '_')
	}
	return dst
}

// appendName appends a sample name: one component, or with DottedNames one per dotted part.
func (a *Aggregator) appendName(dst, name []byte) []byte {
	if !a.opt.DottedNames {
		return a.appendComponent(dst, name)
	}
	for i := 0; ; i++ {
		part, rest, more := bytes.Cut(name, []byte{'.'})
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = a.appendComponent(dst, part)
		if !more {
			return dst
		}
		name = rest
	}
}

// render stores the path part (and, in tags mode, the tags) of e. pseudo is "le" or
// "quantile" when the bound is part of the series.
func (a *Aggregator) render(e *entry, name []byte, labels []sample.Label, pseudo string, bound float64) {
	start := len(a.text)
	a.text = a.appendName(a.text, name)
	if !a.opt.GraphiteTags {
		for _, i := range a.order {
			a.text = append(a.text, '.')
			a.text = a.appendComponent(a.text, labels[i].Name)
			a.text = append(a.text, '.')
			a.text = a.appendComponent(a.text, labels[i].Value)
		}
		if pseudo != "" {
			a.text = append(a.text, '.')
			a.text = append(a.text, pseudo...)
			a.text = append(a.text, '.')
			a.tmp = metric.AppendFloat(a.tmp[:0], bound)
			a.text = a.appendComponent(a.text, a.tmp)
		}
		e.path = span{int32(start), int32(len(a.text) - start)}
		return
	}
	e.path = span{int32(start), int32(len(a.text) - start)}
	// tags: render names and values after the path, sort by the rendered name, then write
	a.tagList = a.tagList[:0]
	for _, i := range a.order {
		a.tagList = append(a.tagList, a.renderTag(labels[i].Name, labels[i].Value))
	}
	if pseudo != "" {
		a.tmp = metric.AppendFloat(a.tmp[:0], bound)
		a.tagList = append(a.tagList, a.renderTag([]byte(pseudo), a.tmp))
	}
	slices.SortStableFunc(a.tagList, func(x, y tagSpan) int {
		return bytes.Compare(a.spanBytes(x.name), a.spanBytes(y.name))
	})
	scratchEnd := len(a.text)
	for _, t := range a.tagList {
		if bytes.Compare(a.spanBytes(t.name), []byte("instance")) < 0 {
			e.tagSplit += t.name.len + t.value.len + 2
		}
		a.text = append(a.text, ';')
		a.text = append(a.text, a.spanBytes(t.name)...)
		a.text = append(a.text, '=')
		a.text = append(a.text, a.spanBytes(t.value)...)
	}
	// move the tags over the scratch renderings
	n := copy(a.text[e.path.off+e.path.len:], a.text[scratchEnd:])
	a.text = a.text[:int(e.path.off+e.path.len)+n]
	e.tags = span{e.path.off + e.path.len, int32(n)}
}

func (a *Aggregator) spanBytes(s span) []byte { return a.text[s.off : s.off+s.len] }

// Graphite reserves the tag "name" for the series' path, and the per-instance lines use
// "instance": labels with these names are written as "_name" and "_instance".
func (a *Aggregator) renderTag(name, value []byte) tagSpan {
	off := len(a.text)
	switch string(name) {
	case "name", "instance":
		a.text = append(a.text, '_')
	}
	a.text = a.appendComponent(a.text, name)
	ns := span{int32(off), int32(len(a.text) - off)}
	off = len(a.text)
	a.text = a.appendTagValue(a.text, value)
	return tagSpan{ns, span{int32(off), int32(len(a.text) - off)}}
}

// appendTagValue appends a Graphite tag value: no ';', white space, control characters,
// non-printable runes or invalid UTF-8 (each becomes '_'), not starting with '~', at least one
// byte. Unlike path components, '.', '/' and printable UTF-8 are kept. A value longer than
// MaxLength is bounded as a path component is (strict rule, hashed end).
func (a *Aggregator) appendTagValue(dst, v []byte) []byte {
	if len(v) > a.names.MaxLength {
		return a.appendComponent(dst, v)
	}
	start := len(dst)
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == ';' {
				c = '_'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			dst = append(dst, '_')
		} else {
			dst = append(dst, v[i:i+size]...)
		}
		i += size
	}
	if len(dst) == start {
		dst = append(dst, '_')
	} else if dst[start] == '~' {
		dst[start] = '_'
	}
	return dst
}
