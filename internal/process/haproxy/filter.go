package haproxy

import (
	"bytes"
	"regexp"
)

// Cardinality controls ([process] *-include, *-exclude, skip-maint-servers; a statspipe
// extension, README "Cardinality controls"). They apply before aggregation, beside the
// haproxystats exclude files (exclude.go), which keep their own behaviour:
//
//   - frontend-*: FRONTEND rows, by raw pxname. A dropped frontend is not interned and has no
//     line.
//   - backend-*: BACKEND rows and server rows, by raw pxname. A dropped backend takes its
//     servers with it, out of the server.* aggregates too (unlike exclude-backends, which
//     keeps haproxystats' server.* quirk).
//   - server-*: server rows, by "<raw pxname>/<raw svname>". A dropped server has no line, and
//     counts neither in TotalServers, nor in the state counts (server-states), nor in the
//     server.* aggregates (aggr-server-metrics).
//   - skip-maint-servers: a server row whose status starts with MAINT (MAINT, MAINT (via …),
//     MAINT (resolution)) is dropped like a filtered server, row by row: a server in MAINT in
//     every *_stat file of the snapshot disappears; one in MAINT in some files only is
//     aggregated over the others.
//   - metric-*: the metric name of a data line, the last component as written after the
//     entity's path ("scur", "TotalServers", "ServersUp", "status_code", "CpuUsagePct",
//     "ConnPercentage"…), for frontends, backends, servers, server.* aggregates and the
//     daemon. The haproxystats.* self-metrics are never dropped; the Metrics* counts count
//     the lines of the metrics kept.
//
// An unset include keeps everything; an exclude wins over an include. The BACKEND row's own
// values are HAProxy's and are not recomputed from the servers kept.
//
// Names are matched once: the decision is kept with the row in the row cache (stat.go), which
// compares the raw names of each row with the same row of the previous snapshot, so a
// repeated row costs no match (except a row with a name longer than max-component-length,
// which the row cache never keeps: it is looked up, and matched, in every snapshot). Metric
// names are matched when the Processor is built.

// Filters are the cardinality controls (nil patterns: unset).
type Filters struct {
	FrontendInclude, FrontendExclude *regexp.Regexp
	BackendInclude, BackendExclude   *regexp.Regexp
	// ServerInclude and ServerExclude are matched against "<backend>/<server>".
	ServerInclude, ServerExclude *regexp.Regexp
	MetricInclude, MetricExclude *regexp.Regexp
	// SkipMaintServers drops the server rows whose status is MAINT….
	SkipMaintServers bool
}

// kept reports whether name passes an include/exclude pair.
func kept(include, exclude *regexp.Regexp, name []byte) bool {
	if exclude != nil && exclude.Match(name) {
		return false
	}
	return include == nil || include.Match(name)
}

func keptString(include, exclude *regexp.Regexp, name string) bool {
	if exclude != nil && exclude.MatchString(name) {
		return false
	}
	return include == nil || include.MatchString(name)
}

// filterState is what the Processor keeps for the filters.
type filterState struct {
	names   bool // some frontend, backend or server pattern is set
	metrics bool // some metric pattern is set
	// the last backend name matched (its server rows follow it) and the result
	lastBe     []byte
	lastBeKeep bool
	lastBeOK   bool
	srvName    []byte // "<backend>/<server>" being matched (reused)
	// per metric name (emitted form), for the names emitted by the lists; built once
	metricKept map[string]bool
	// the fixed names written per backend and per server
	keepTotalServers bool
	keepCounts       [nCounts]bool
	keepStates       [nStates]bool
	nCountsKept      int
	// matched counts the names matched against the patterns (the tests check that rows
	// repeated from the snapshot before are not matched again)
	matched int
}

// initFilters prepares the filters of p.opts.Filters; the metric names of the layout and the
// fixed names are matched here, once.
func (p *Processor) initFilters() {
	f := &p.opts.Filters
	fs := &p.filt
	fs.names = f.FrontendInclude != nil || f.FrontendExclude != nil || f.BackendInclude != nil ||
		f.BackendExclude != nil || f.ServerInclude != nil || f.ServerExclude != nil
	fs.metrics = f.MetricInclude != nil || f.MetricExclude != nil
	fs.keepTotalServers = p.keepMetric("TotalServers")
	fs.nCountsKept = 0
	for c, name := range countNames {
		fs.keepCounts[c] = p.keepMetric(name)
		if fs.keepCounts[c] {
			fs.nCountsKept++
		}
	}
	for k, name := range stateNames {
		fs.keepStates[k] = p.keepMetric(name)
	}
	if !fs.metrics {
		return
	}
	fs.metricKept = map[string]bool{}
	lay := &p.lay
	for _, list := range [][]string{lay.feNames, lay.beSumNames, lay.beAvgNames, lay.beTimeNames, lay.srvSumNames,
		lay.srvAvgNames, lay.srvTimeNames, lay.aggrSumNames, DaemonMetrics, DaemonAvgMetrics,
		{"CpuUsagePct", "StdCpuUsagePct"}} {
		for _, name := range list {
			fs.metricKept[name] = keptString(f.MetricInclude, f.MetricExclude, name)
		}
	}
	for _, pc := range percentiles {
		fs.metricKept[pc.name] = keptString(f.MetricInclude, f.MetricExclude, pc.name)
	}
	for _, pm := range percentageMetrics {
		fs.metricKept[pm.title] = keptString(f.MetricInclude, f.MetricExclude, pm.title)
	}
}

// keepMetric reports whether the data lines of metric name (as emitted) are written.
func (p *Processor) keepMetric(name string) bool {
	fs := &p.filt
	if !fs.metrics {
		return true
	}
	if k, ok := fs.metricKept[name]; ok {
		return k
	}
	return keptString(p.opts.Filters.MetricInclude, p.opts.Filters.MetricExclude, name)
}

// keptCols removes from cols (positions in names) the metrics that are not kept, in place.
func (p *Processor) keptCols(cols []int, names []string) []int {
	if !p.filt.metrics {
		return cols
	}
	out := cols[:0]
	for _, i := range cols {
		if p.keepMetric(names[i]) {
			out = append(out, i)
		}
	}
	return out
}

// keepFrontend reports whether the FRONTEND row of raw pxname px is kept.
func (p *Processor) keepFrontend(px []byte) bool {
	f := &p.opts.Filters
	p.filt.matched++
	return kept(f.FrontendInclude, f.FrontendExclude, px)
}

// keepBackend reports whether the rows of backend px (raw pxname) are kept; the result for
// the last name is remembered, since a backend's server rows follow one another.
func (p *Processor) keepBackend(px []byte) bool {
	fs := &p.filt
	if fs.lastBeOK && bytes.Equal(px, fs.lastBe) {
		return fs.lastBeKeep
	}
	f := &p.opts.Filters
	fs.matched++
	k := kept(f.BackendInclude, f.BackendExclude, px)
	// a name longer than the component bound is not copied (see entitiesOf)
	fs.lastBeOK = len(px) <= p.maxComponent
	if fs.lastBeOK {
		fs.lastBe = append(fs.lastBe[:0], px...)
		fs.lastBeKeep = k
	}
	return k
}

// keepServer reports whether the row of server sv (raw svname) of backend px is kept by name.
func (p *Processor) keepServer(px, sv []byte) bool {
	f := &p.opts.Filters
	if f.ServerInclude == nil && f.ServerExclude == nil {
		return true
	}
	fs := &p.filt
	fs.matched++
	fs.srvName = append(append(append(fs.srvName[:0], px...), '/'), sv...)
	k := kept(f.ServerInclude, f.ServerExclude, fs.srvName)
	if cap(fs.srvName) > 4<<10 {
		fs.srvName = nil // a megabyte-long name is not kept for the worker's life
	}
	return k
}

// maintRow reports whether the current server row's status is MAINT… (skip-maint-servers).
func (p *Processor) maintRow(base []byte) bool {
	s, e := p.stateS[stateStatus], p.stateE[stateStatus]
	return e-s >= 5 && string(base[s:s+5]) == "MAINT"
}

// wantStatus reports whether state cell k of server rows is needed: all of them for
// server-states, the status for skip-maint-servers.
func (p *Processor) wantStatus(k int) bool {
	return p.opts.ServerStates || k == stateStatus && p.opts.Filters.SkipMaintServers
}

// wantStates reports whether any state cell of server rows is needed.
func (p *Processor) wantStates() bool {
	return p.opts.ServerStates || p.opts.Filters.SkipMaintServers
}
