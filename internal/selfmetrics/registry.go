// Package selfmetrics is statspipe's own instrumentation: a small registry of counters and
// gauges that the pull loop, the process runner and the dispatchers update with one-line calls,
// written as Graphite lines through the normal dispatch path (below
// `<namespace>[.<host>].statspipe.`) and served, optionally, as OpenMetrics text on /metrics
// with a /healthz check (see Serve).
//
// A Registry is created once per program, in main, so that its counters survive a reload
// (a new pull.Loop or process.Runner per configuration). Updates are atomic and allocate
// nothing; every method of *Series is a no-op on a nil receiver, so a component without a
// registry (tests) needs no special case. Labelled families (per source, per dispatcher) hold at
// most MaxSeries label values each; further values are not recorded (Dropped counts them).
package selfmetrics

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
)

// Kind is a family's type.
type Kind uint8

const (
	Counter Kind = iota
	Gauge
)

// MaxSeries bounds the label values of one family: sources are at most 257 (256 [source.*]
// sections and HAProxy), dispatchers two.
const MaxSeries = 512

// Registry holds one program's families, in registration order.
type Registry struct {
	program string // "pull" or "process": the first component below statspipe

	mu       sync.Mutex
	families []*Family
	byName   map[string]*Family
	before   []func() // run at the start of every collection (process stats, queue)
	dropped  atomic.Uint64
}

// New returns an empty registry for program ("pull" or "process").
func New(program string) *Registry {
	return &Registry{program: program, byName: map[string]*Family{}}
}

// Program is the registry's program name.
func (r *Registry) Program() string { return r.program }

// Dropped counts label values not recorded because their family held MaxSeries already.
func (r *Registry) Dropped() uint64 { return r.dropped.Load() }

// Family is a named metric, either a single series (no label) or one series per value of its
// label. Its Graphite path is `<program>.<name>`, or `<program>.<label>.<value>.<name>` for a
// labelled one; its OpenMetrics name is `statspipe_<program>_[<label>_]<name>`.
type Family struct {
	reg   *Registry
	name  string
	label string // "" for a single series
	help  string
	kind  Kind

	mu      sync.Mutex
	series  []*Series // in order of first use
	byValue map[string]*Series
	single  *Series
}

// Series is one time series: a float64 updated atomically.
type Series struct {
	label string
	bits  atomic.Uint64
}

func (r *Registry) family(name, label, help string, kind Kind) *Family {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := label + "." + name
	if f := r.byName[key]; f != nil {
		if f.kind != kind {
			panic("selfmetrics: " + key + " registered twice with different types")
		}
		return f
	}
	f := &Family{reg: r, name: name, label: label, help: help, kind: kind}
	if label == "" {
		f.single = &Series{}
	} else {
		f.byValue = map[string]*Series{}
	}
	r.families = append(r.families, f)
	r.byName[key] = f
	return f
}

// Counter returns the counter name (registering it on first use; the same name gives the
// same series, so that components rebuilt by a reload keep counting).
func (r *Registry) Counter(name, help string) *Series {
	return r.family(name, "", help, Counter).single
}

// Gauge returns the gauge name.
func (r *Registry) Gauge(name, help string) *Series {
	return r.family(name, "", help, Gauge).single
}

// CounterVec returns the family of counters name labelled by label.
func (r *Registry) CounterVec(label, name, help string) *Family {
	return r.family(name, label, help, Counter)
}

// GaugeVec returns the family of gauges name labelled by label.
func (r *Registry) GaugeVec(label, name, help string) *Family {
	return r.family(name, label, help, Gauge)
}

// Before adds fn to what every collection runs first (to refresh gauges that are read, not
// updated: process stats, the queue).
func (r *Registry) Before(fn func()) {
	r.mu.Lock()
	r.before = append(r.before, fn)
	r.mu.Unlock()
}

// With returns the series of label value v (created on first use; nil, a no-op, once the
// family holds MaxSeries values). Nil-safe.
func (f *Family) With(v string) *Series {
	if f == nil {
		return nil
	}
	if f.single != nil {
		return f.single
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.byValue[v]; s != nil {
		return s
	}
	if len(f.series) >= MaxSeries {
		f.reg.dropped.Add(1)
		return nil
	}
	s := &Series{label: v}
	f.series = append(f.series, s)
	f.byValue[v] = s
	return s
}

// Add adds d (a counter never goes down: negative d is ignored for counters by convention of
// the callers). Nil-safe.
func (s *Series) Add(d float64) {
	if s == nil || d == 0 {
		return
	}
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds 1. Nil-safe.
func (s *Series) Inc() { s.Add(1) }

// Set sets the value (gauges). Nil-safe.
func (s *Series) Set(v float64) {
	if s != nil {
		s.bits.Store(math.Float64bits(v))
	}
}

// Value is the current value (0 for nil).
func (s *Series) Value() float64 {
	if s == nil {
		return 0
	}
	return math.Float64frombits(s.bits.Load())
}

// Sample is one series' value at a collection.
type Sample struct {
	Family *Family
	Label  string // the label's value ("" for a single series)
	Value  float64
}

// Name, Label, Help and Kind describe the family.
func (f *Family) Name() string      { return f.name }
func (f *Family) LabelName() string { return f.label }
func (f *Family) Help() string      { return f.help }
func (f *Family) Kind() Kind        { return f.kind }

// Collect runs the Before functions and returns every series' value: families in registration
// order, label values sorted within a family.
func (r *Registry) Collect() []Sample {
	r.mu.Lock()
	before := append([]func(){}, r.before...)
	families := append([]*Family{}, r.families...)
	r.mu.Unlock()
	for _, fn := range before {
		fn()
	}
	var out []Sample
	for _, f := range families {
		if f.single != nil {
			out = append(out, Sample{f, "", f.single.Value()})
			continue
		}
		f.mu.Lock()
		series := append([]*Series{}, f.series...)
		f.mu.Unlock()
		sort.Slice(series, func(i, j int) bool { return series[i].label < series[j].label })
		for _, s := range series {
			out = append(out, Sample{f, s.label, s.Value()})
		}
	}
	return out
}

// Get is the value of the series at Graphite path (below the program; "snapshots_published",
// "source.apps.bytes"), for tests and status lines; false when there is none.
func (r *Registry) Get(path string) (float64, bool) {
	for _, s := range r.Collect() {
		if s.Family.graphitePath(s.Label) == path {
			return s.Value, true
		}
	}
	return 0, false
}

func (f *Family) graphitePath(label string) string {
	if f.label == "" {
		return f.name
	}
	return f.label + "." + label + "." + f.name
}

var (
	stdMu sync.Mutex
	std   *Registry
)

// SetDefault makes r the registry of this program, for the parts that are built from a
// registration rather than by main (the statspipe source kind). main calls it once.
func SetDefault(r *Registry) {
	stdMu.Lock()
	std = r
	stdMu.Unlock()
}

// Default is the registry SetDefault set (nil before).
func Default() *Registry {
	stdMu.Lock()
	defer stdMu.Unlock()
	return std
}
