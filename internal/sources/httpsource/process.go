package httpsource

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/spool"
)

// The process half: a source directory of a snapshot → one Aggregator fed every instance's
// body in instance-name order → lines. The processing options come from the configuration's
// [source.<name>] section when it has one of the kind, else from the options the snapshot
// recorded (source.json), so a snapshot moved to a host without pull-side configuration is
// processed the same way.

// Parser turns one instance's body into samples. One Parser serves one worker.
type Parser interface {
	Parse(meta spool.InstanceMeta, body io.Reader, fn sample.Func) error
}

// MultiParser is a Parser whose body holds several aggregation instances (a Weave Scope
// plugin's report: one per process). Instead of Parse, the format calls ParseMulti, which
// starts and ends each instance itself, under names that are unique within the source.
type MultiParser interface {
	Parser
	ParseMulti(meta spool.InstanceMeta, body io.Reader, in Instances) error
}

// Configurable is a Parser with options of its kind's own (Mesos' elected-only): before each
// source directory, Configure gets what the kind's checks stored for that source, from the
// configuration's section or the snapshot's recorded options, as the other processing options.
type Configurable interface {
	Configure(ProcessSettings)
}

// SnapshotParser is a Parser that keeps state from one snapshot to the next (http-ebpf's
// per-second rates): BeginSnapshot names the source and the snapshot's timestamp before its
// instances are parsed.
type SnapshotParser interface {
	BeginSnapshot(source string, ts int64)
}

// Instances receives the instances of a MultiParser's body.
type Instances interface {
	Begin(name string)
	Add(s *sample.Sample)
	// End ends the instance begun last; keep=false drops what it added.
	End(keep bool)
}

// Kind describes a kind's process half.
type Kind struct {
	Name      string
	NewParser func() Parser
	// DottedNames: the parser's sample names are dotted paths (aggregate.Options.DottedNames).
	DottedNames bool
}

// NewFormat is the kind's sources.Kind.NewFormat.
func (k Kind) NewFormat(cfg *config.Config, log *slog.Logger) (func() process.Format, error) {
	g := cfg.Graphite
	prefix := metric.HostPrefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN)
	warned := &sync.Map{}
	return func() process.Format {
		return &format{kind: k, cfg: cfg, log: log, prefix: prefix,
			names:  metric.Names{MaxLength: cfg.Process.MaxComponentLength, Strict: true},
			parser: k.NewParser(), ch: metric.NewChunker(0),
			aggs: map[string]*aggregator{}, warned: warned}
	}, nil
}

type format struct {
	kind   Kind
	cfg    *config.Config
	log    *slog.Logger
	prefix string // "<namespace>[.<host>]"
	names  metric.Names
	parser Parser
	ch     *metric.Chunker
	aggs   map[string]*aggregator // by source name and options
	warned *sync.Map              // recorded-option warnings already logged (shared by workers)
}

type aggregator struct {
	key string
	a   *aggregate.Aggregator
}

// maxAggregators bounds the aggregators a worker keeps (one per source and options).
const maxAggregators = 64

func (f *format) Process(dir string, ts int64, flush metric.FlushFunc) error {
	info, err := spool.ReadSourceInfo(dir)
	if err != nil {
		return process.UnusableError(err)
	}
	kindSettings, optsKey, err := f.settings(info)
	if err != nil {
		return process.UnusableError(fmt.Errorf("source %s: %w", info.Source, err))
	}
	st := kindSettings.ProcessSettings()
	if c, ok := f.parser.(Configurable); ok {
		c.Configure(kindSettings)
	}
	if sp, ok := f.parser.(SnapshotParser); ok {
		sp.BeginSnapshot(info.Source, ts)
	}
	instances, err := listInstances(dir)
	if err != nil {
		return err
	}
	if len(instances) == 0 {
		return process.UnusableError(fmt.Errorf("source %s: no instance (no *%s file)", info.Source, spool.MetaSuffix))
	}
	agg, err := f.aggregator(info.Source, optsKey, st)
	if err != nil {
		return process.UnusableError(fmt.Errorf("source %s: %w", info.Source, err))
	}
	agg.Reset(f.prefix + "." + metric.StrictComponent(info.Source))
	// Each instance's own lines are written as it ends, so that only the values percentiles
	// need are kept until the aggregates are: memory follows one instance's body, not them all.
	f.ch.Reset(flush, dir, ts)
	agg.StreamInstances(f.ch)
	var bad []string
	used := 0
	for _, name := range instances {
		if err := f.instance(agg, dir, name); err != nil {
			f.log.Error("instance left out of the aggregation", "source", info.Source, "instance", name, "dir", dir, "error", err)
			bad = append(bad, "instance "+name+": "+err.Error())
			continue
		}
		used++
	}
	if used == 0 {
		// No instance was kept, so nothing was written.
		return process.UnusableError(fmt.Errorf("source %s: no instance could be used: %s", info.Source, strings.Join(bad, "; ")))
	}
	agg.Emit(f.ch)
	if err := f.ch.Close(); err != nil {
		return err
	}
	if n := agg.Dropped(); n > 0 {
		f.log.Warn("series over max-series were left out", "source", info.Source, "dropped_samples", n, "max_series", st.MaxSeries)
	}
	if n := agg.LongLines(); n > 0 {
		bad = append(bad, fmt.Sprintf("%d lines longer than max-line-length %d left out", n, f.cfg.Process.MaxLineLength))
	}
	if len(bad) > 0 {
		return rejected(strings.Join(bad, "; "))
	}
	return nil
}

// instance feeds one instance's body to agg; on a parse error everything it added is dropped.
func (f *format) instance(agg *aggregate.Aggregator, dir, name string) error {
	var meta spool.InstanceMeta
	if err := spool.ReadJSON(filepath.Join(dir, name+spool.MetaSuffix), &meta); err != nil {
		return err
	}
	body, err := spool.OpenSnapshotFile(filepath.Join(dir, name+spool.BodySuffix))
	if err != nil {
		return err
	}
	defer body.Close()
	if mp, ok := f.parser.(MultiParser); ok {
		// The instances ended before an error stay: the body was checked when it was pulled,
		// so an error here is a file spoiled in the spool, and it is reported.
		err = mp.ParseMulti(meta, body, aggInstances{agg})
		agg.EndInstance(err == nil) // an instance still open
	} else {
		agg.BeginInstance(name)
		err = f.parser.Parse(meta, body, func(s *sample.Sample) error { agg.Add(s); return nil })
		agg.EndInstance(err == nil)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, name+spool.BodySuffix), err)
	}
	return nil
}

type aggInstances struct{ a *aggregate.Aggregator }

func (i aggInstances) Begin(name string)    { i.a.BeginInstance(name) }
func (i aggInstances) Add(s *sample.Sample) { i.a.Add(s) }
func (i aggInstances) End(keep bool)        { i.a.EndInstance(keep) }

// settings returns the settings of the snapshot's source (the kind's, with its processing
// options), and a key that changes when they do.
func (f *format) settings(info spool.SourceInfo) (ProcessSettings, string, error) {
	for i := range f.cfg.Sources {
		src := &f.cfg.Sources[i]
		if src.Name == info.Source && src.Kind == info.Kind {
			st, ok := src.Settings.(ProcessSettings)
			if !ok {
				return nil, "", errors.New("the configuration's source was not validated for stats-process")
			}
			return st, "config", nil
		}
	}
	var opts []config.SourceValue
	var key strings.Builder
	key.WriteString("recorded")
	for _, o := range info.Options {
		opts = append(opts, config.SourceValue{Key: o.Key, Value: o.Value})
		fmt.Fprintf(&key, "\x00%s\x00%s", o.Key, o.Value)
	}
	src, warnings, err := config.RecordedSource(f.kind.Name, info.Source, opts)
	for _, w := range warnings {
		if _, seen := f.warned.LoadOrStore(info.Source+"\x00"+w, true); !seen {
			f.log.Warn("snapshot records an option this stats-process does not know", "source", info.Source, "warning", w)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("recorded options: %w", err)
	}
	st, ok := src.Settings.(ProcessSettings)
	if !ok {
		return nil, "", errors.New("the kind stored no processing settings")
	}
	return st, key.String(), nil
}

func (f *format) aggregator(source, optsKey string, st Process) (*aggregate.Aggregator, error) {
	if a, ok := f.aggs[source]; ok && a.key == optsKey {
		return a.a, nil
	}
	if len(f.aggs) >= maxAggregators {
		clear(f.aggs)
	}
	a, err := aggregate.New(aggregate.Options{
		Policies:           st.Policies,
		HistogramQuantiles: st.Quantiles,
		HistogramBuckets:   st.Buckets,
		PerInstance:        st.PerInstance,
		GraphiteTags:       st.Tags,
		Names:              f.names,
		MaxSeries:          st.MaxSeries,
		MaxLineLength:      f.cfg.Process.MaxLineLength,
		DottedNames:        f.kind.DottedNames,
	})
	if err != nil {
		return nil, err
	}
	f.aggs[source] = &aggregator{key: optsKey, a: a}
	return a, nil
}

// listInstances returns the instance names of a source directory (those with a metadata
// file), sorted: the aggregation order, so output order is stable.
func listInstances(dir string) ([]string, error) {
	entries, err := spool.ReadSnapshotDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), spool.MetaSuffix); ok && n != "" && !strings.HasPrefix(n, ".") && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	return names, nil
}

// rejected reports what was left out of a source's lines; the rest is delivered, then the
// snapshot is quarantined with this reason (see dispatch.Rejected).
type rejected string

func (r rejected) Error() string    { return string(r) }
func (r rejected) Rejected() string { return string(r) }
