// Package central aggregates the lines of many edge hosts into cluster lines: per time bucket,
// every path of every host, with the host component removed, is one series whose value per
// host is one aggregation instance, so the aggregation engine's functions (sum, avg, min, max,
// pNN, stddev, by path glob) run across hosts and write <namespace>.<cluster>.<rest>.
//
// Buckets close by event time: a bucket [start, start+bucket) is written once a snapshot
// whose timestamp is at least start + bucket + lateness has been seen (from any host), so
// that the result depends only on what arrived, not on when the tier processed it. A snapshot
// of a bucket that is already written is late: its own per-host lines are unaffected (the
// caller writes them as usual), it is left out of the cluster lines, counted (Late) and
// reported to the caller, which logs it. That is the documented rule for what arrives after
// the window.
package central

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sample"
)

// DefaultRules are the central tier's default policies, tried after the operator's own
// aggregate.<glob> rules: a host's line that is already a mean, a percentile, a time, a ratio
// or a limit must not be summed across hosts (a cluster "rtime" of 800 ms from eight hosts of
// 100 ms each would be wrong); counts, rates and sizes are (the `aggregate` default, sum).
var DefaultRules = aggregate.MustRules([][2]string{
	// haproxystats' daemon lines: percentiles and spread of CPU across processes, and times.
	{"haproxy.daemon.*PercentileCpuUsagePct", "max avg"},
	{"haproxy.daemon.StdCpuUsagePct", "max avg"},
	{"haproxy.daemon.Idle_pct", "min avg"},
	{"haproxy.daemon.Uptime_sec", "min max"},
	{"haproxy.daemon.*Limit", "min max"},
	{"haproxy.daemon.Maxconn", "min max"},
	{"haproxy.daemon.Ulimit-n", "min max"},
	{"haproxy.*WallClockTime*", "max avg"},
	// Frontend, backend and server times (ms, averages over the last 1024 requests), weights
	// and rate limits.
	{"haproxy.*.rtime", "avg max"},
	{"haproxy.*.ctime", "avg max"},
	{"haproxy.*.qtime", "avg max"},
	{"haproxy.*.ttime", "avg max"},
	{"haproxy.*.throttle", "avg max"},
	{"haproxy.*.downtime", "max"},
	{"haproxy.*.rate_lim", "min max"},
	{"haproxy.*.slim", "min max"},
	// The engine kinds' own functions, written per host: a percentile, a mean, an extreme.
	{"*.p[0-9]*", "max avg"},
	{"*.avg", "avg max"},
	{"*.max", "max"},
	{"*.min", "min"},
	{"*.stddev", "max avg"},
})

// Options configure an Aggregator.
type Options struct {
	Namespace string // the edges' namespace: lines are <namespace>.<host>.<rest>
	Cluster   string // the component written instead of the host
	Bucket    int64  // seconds; a snapshot's timestamp is rounded down to a multiple of it
	Lateness  int64  // seconds after a bucket's end during which its snapshots still count
	// Policies are the functions across hosts by path glob; DefaultRules are appended to their
	// rules (the operator's come first).
	Policies aggregate.Policies
	// MaxBuckets bounds the open buckets; MaxHosts the hosts of one bucket; MaxSeries the
	// series of one bucket.
	MaxBuckets, MaxHosts, MaxSeries int
	// MaxAhead bounds how far ahead of Now a snapshot's timestamp may be (default 300 s): a
	// host whose clock runs ahead must not close every bucket of the others. Now defaults to
	// the wall clock.
	MaxAhead int64
	Now      func() int64
}

// Aggregator keeps the open buckets. It is not safe for concurrent use.
type Aggregator struct {
	o       Options
	agg     *aggregate.Aggregator
	buckets map[int64]*bucket
	closed  int64 // every bucket before this start is written (0: none yet)
	newest  int64 // the newest snapshot timestamp seen
	late    int
	s       sample.Sample
	nsDot   []byte // "<namespace>."
	oldest  int64  // the start of the oldest open bucket (when there is one)
	// last is the bucket of the previous line (lastStart), kept to spare a map lookup.
	last      *bucket
	lastStart int64
}

// bucket holds, per host, the values of its snapshots in the bucket (several snapshots of one
// host in one bucket: the newest value of a path wins, as in Graphite). The paths are interned
// once per bucket, so a line costs a map lookup, not an allocation.
type bucket struct {
	index map[string]int32     // rest of the path → its number
	names []string             // by number
	hosts map[string][]float64 // host → value by path number (NaN: none)
	ts    map[string]int64     // host → timestamp of its newest snapshot in the bucket
}

// Errors of Add.
var (
	ErrLate       = errors.New("the snapshot's bucket was already written (later than the lateness window)")
	ErrTooFarAway = errors.New("the snapshot's timestamp is too far ahead of this host's clock, or beyond the open buckets' bound")
)

// New checks o and returns an Aggregator.
func New(o Options) (*Aggregator, error) {
	if o.Namespace == "" || o.Cluster == "" {
		return nil, errors.New("central: namespace and cluster must be set")
	}
	if o.Bucket <= 0 || o.Lateness < 0 {
		return nil, errors.New("central: bucket must be positive and lateness not negative")
	}
	if o.MaxBuckets <= 0 {
		o.MaxBuckets = 64
	}
	if o.MaxHosts <= 0 {
		o.MaxHosts = 10000
	}
	if o.MaxAhead <= 0 {
		o.MaxAhead = 300
	}
	if o.Now == nil {
		o.Now = func() int64 { return time.Now().Unix() }
	}
	o.Policies.Rules = append(append([]aggregate.Rule(nil), o.Policies.Rules...), DefaultRules...)
	agg, err := aggregate.New(aggregate.Options{Policies: o.Policies, MaxSeries: o.MaxSeries, DottedNames: true})
	if err != nil {
		return nil, err
	}
	return &Aggregator{o: o, agg: agg, buckets: map[int64]*bucket{}, nsDot: []byte(o.Namespace + ".")}, nil
}

// Late is the number of snapshots left out because they came after their bucket's window.
func (a *Aggregator) Late() int { return a.late }

func (a *Aggregator) start(ts int64) int64 { return ts - ((ts%a.o.Bucket)+a.o.Bucket)%a.o.Bucket }

// Add takes the lines of one host's snapshot of timestamp ts (what the host's processing
// wrote: "<namespace>.<host>.<rest> <value> <ts>\n" lines; others are ignored). It returns
// ErrLate for a snapshot whose bucket is already written.
func (a *Aggregator) Add(host string, ts int64, lines []byte) error {
	b, vals, _, err := a.bucketOf([]byte(host), ts)
	if err != nil {
		return err
	}
	newer := ts >= b.ts[host]
	if newer {
		b.ts[host] = ts
	}
	prefix := []byte(a.o.Namespace + "." + host + ".")
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		name, v, _, ok := parseRest(rest)
		if !ok {
			continue
		}
		vals = a.put(b, vals, name, v, newer)
	}
	b.hosts[host] = vals
	a.saw(ts)
	return nil
}

// AddLine takes one line "<namespace>.<host>.<rest> <value> <ts>" (a record of the central
// tier's line-topic, keyed by series) and returns the start of its bucket. Lines of one
// series of one host arrive in the order they were produced, so a later one replaces an
// earlier one in the same bucket. A line of another namespace or without a valid value and
// timestamp is ErrNotALine; ErrLate and ErrTooFarAway as for Add.
func (a *Aggregator) AddLine(line []byte) (int64, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	rest, ok := bytes.CutPrefix(line, a.nsDot)
	dot := bytes.IndexByte(rest, '.')
	if !ok || dot <= 0 {
		return 0, ErrNotALine
	}
	host := rest[:dot]
	name, v, ts, ok := parseRest(rest[dot+1:])
	if !ok {
		return 0, ErrNotALine
	}
	b, old, known, err := a.bucketOf(host, ts)
	if err != nil {
		return a.start(ts), err
	}
	if vals := a.put(b, old, name, v, true); !known || len(vals) != len(old) {
		b.hosts[string(host)] = vals // grown (appending is what reallocates)
	}
	a.saw(ts)
	return a.start(ts), nil
}

// Ready reports whether Flush would write a bucket (its window has passed), cheaply.
func (a *Aggregator) Ready() bool {
	return len(a.buckets) > 0 && a.oldest+a.o.Bucket+a.o.Lateness <= a.newest
}

// ErrNotALine is AddLine's error for what is not a line of the namespace.
var ErrNotALine = errors.New("not a Graphite line \"<namespace>.<host>.<rest> <value> <timestamp>\" of this namespace")

// bucketOf returns the open bucket of ts for host, made if needed, or why there is none.
func (a *Aggregator) bucketOf(host []byte, ts int64) (*bucket, []float64, bool, error) {
	if ts > a.o.Now()+a.o.MaxAhead {
		return nil, nil, false, ErrTooFarAway
	}
	start := a.start(ts)
	if a.closed != 0 && start < a.closed {
		a.late++
		return nil, nil, false, ErrLate
	}
	b := a.last
	if b == nil || a.lastStart != start {
		b = a.buckets[start]
	}
	if b == nil {
		if len(a.buckets) >= a.o.MaxBuckets {
			return nil, nil, false, ErrTooFarAway
		}
		b = &bucket{index: map[string]int32{}, hosts: map[string][]float64{}, ts: map[string]int64{}}
		a.buckets[start] = b
		if len(a.buckets) == 1 || start < a.oldest {
			a.oldest = start
		}
	}
	a.last, a.lastStart = b, start
	vals, known := b.hosts[string(host)]
	if !known && len(b.hosts) >= a.o.MaxHosts {
		return nil, nil, false, fmt.Errorf("central: more than %d hosts in one bucket", a.o.MaxHosts)
	}
	return b, vals, known, nil
}

// parseRest splits "<name> <value> <timestamp>".
func parseRest(rest []byte) (name []byte, v float64, ts int64, ok bool) {
	sp := bytes.IndexByte(rest, ' ')
	last := bytes.LastIndexByte(rest, ' ')
	if sp <= 0 || last <= sp+1 {
		return nil, 0, 0, false
	}
	v, ok = parseValue(rest[sp+1 : last])
	if !ok {
		return nil, 0, 0, false
	}
	digits := rest[last+1:]
	if len(digits) == 0 || len(digits) > 18 {
		return nil, 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, 0, 0, false
		}
		ts = ts*10 + int64(c-'0')
	}
	return rest[:sp], v, ts, true
}

// exact10 are the powers of ten a float64 holds exactly.
var exact10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseValue reads a Graphite value. Plain decimals of at most 15 digits ("12", "-0.375"),
// nearly every value, are read without strconv (and its string): the integer of their digits
// and the power of ten are exact in a float64, so one division is the correctly rounded value
// strconv.ParseFloat gives. Anything else goes to strconv; NaN is refused.
func parseValue(b []byte) (float64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	var m uint64
	n, frac, dot := 0, 0, false
	for _, c := range digits {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			n++
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			n = 99 // not a plain decimal
		}
	}
	if n > 0 && n <= 15 && !(dot && frac == 0) {
		v := float64(m) / exact10[frac]
		if neg {
			v = -v
		}
		return v, true
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil && !math.IsNaN(v)
}

// put stores v for name in a host's values vals of bucket b (an older snapshot's value does
// not replace a newer one's) and returns vals, grown if needed.
func (a *Aggregator) put(b *bucket, vals []float64, name []byte, v float64, newer bool) []float64 {
	idx, ok := b.index[string(name)]
	if !ok {
		if a.o.MaxSeries > 0 && len(b.names) >= a.o.MaxSeries {
			return vals
		}
		idx = int32(len(b.names))
		n := string(name)
		b.names = append(b.names, n)
		b.index[n] = idx
	}
	for int(idx) >= len(vals) {
		vals = append(vals, math.NaN())
	}
	if math.IsNaN(vals[idx]) || newer {
		vals[idx] = v
	}
	return vals
}

// saw notes the newest timestamp seen, which closes buckets (event time).
func (a *Aggregator) saw(ts int64) {
	if ts > a.newest {
		a.newest = ts
	}
}

// Flush writes, oldest first, every bucket whose window has passed (a snapshot at least
// bucket end + lateness was seen), each with the bucket's start as timestamp, through flush;
// with all, every open bucket (at shutdown). It returns the buckets written.
func (a *Aggregator) Flush(flush metric.FlushFunc, all bool) ([]int64, error) {
	var ready []int64
	for start := range a.buckets {
		if all || start+a.o.Bucket+a.o.Lateness <= a.newest {
			ready = append(ready, start)
		}
	}
	slices.Sort(ready)
	if len(ready) == 0 {
		return nil, nil
	}
	defer func() { // the oldest of the buckets left open
		first := true
		for start := range a.buckets {
			if first || start < a.oldest {
				a.oldest, first = start, false
			}
		}
	}()
	ch := metric.NewChunker(0)
	for _, start := range ready {
		b := a.buckets[start]
		delete(a.buckets, start)
		if a.last == b {
			a.last = nil
		}
		if start+a.o.Bucket > a.closed {
			a.closed = start + a.o.Bucket
		}
		hosts := make([]string, 0, len(b.hosts))
		for h := range b.hosts {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		a.agg.Reset(a.o.Namespace + "." + a.o.Cluster)
		for _, h := range hosts {
			a.agg.BeginInstance(h)
			for idx, v := range b.hosts[h] {
				if math.IsNaN(v) {
					continue
				}
				name := unsafe.Slice(unsafe.StringData(b.names[idx]), len(b.names[idx])) // read only
				a.s = sample.Sample{Family: name, Name: name, Kind: sample.Gauge, Value: v}
				a.agg.Add(&a.s)
			}
			a.agg.EndInstance(true)
		}
		ch.Reset(flush, fmt.Sprintf("cluster %s bucket %d", a.o.Cluster, start), start)
		a.agg.Emit(ch)
		if err := ch.Close(); err != nil {
			return ready, err
		}
	}
	return ready, nil
}
