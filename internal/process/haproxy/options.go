// Package haproxy turns one snapshot directory of raw HAProxy `show info` / `show stat` replies
// into the Graphite lines haproxystats 0.5.2 wrote for it: the same paths, the same values, the
// same order (haproxystats.md §5, §6), minus the upstream bugs listed in the project README
// ("Differences from haproxystats").
//
// It is built for large snapshots: the CSV is scanned in place from one reused read buffer,
// rows are aggregated into flat per-entity slices keyed by interned names, and lines are
// appended straight into metric.Batch chunks, so processing does not allocate per row or per
// line.
package haproxy

import (
	"fmt"
	"regexp"

	"github.com/statspipe/statspipe/internal/aggregate"
)

// Options is the part of the configuration that shapes the output.
type Options struct {
	// Prefix is "<namespace>[.<host>].haproxy", as built by metric.Prefix.
	Prefix string

	PerProcessMetrics    bool
	CalculatePercentages bool
	AggrServerMetrics    bool
	// ServerStates also emits every server's status, check_status and agent_status as codes
	// (status_code, …) and per backend the count of servers in each state beside
	// TotalServers (ServersUp, …; see states.go). A statspipe extension: off, the output is
	// haproxystats'.
	ServerStates bool
	// Filters are the cardinality controls (filter.go): patterns for the names of frontends,
	// backends, servers and metrics, and skip-maint-servers. A statspipe extension; the zero
	// value filters nothing.
	Filters Filters
	// AllMetrics also emits every numeric field of every row type (frontend, backend,
	// server, listener) and of show info, aggregated across the processes by its nature
	// (natures.go, allmetrics.go); AllMetricsAggregate adds functions per field, the globs
	// matching "<kind>.<field>" lower-cased, the first match winning. A statspipe extension:
	// haproxystats' lines stay as they are.
	AllMetrics          bool
	AllMetricsAggregate []aggregate.Rule

	// User metric lists (nil = the built-in lists). Names of averaged metrics (act, bck,
	// weight, throttle and the response times) are emitted once, with their averaged meaning.
	FrontendMetrics []string
	BackendMetrics  []string
	ServerMetrics   []string

	// Files with one name per line ("" = none). They are re-read for every snapshot so that
	// edits apply without a restart. A file that is not a regular file, or is larger than
	// MaxExcludeFileSize, is logged and excludes nothing.
	ExcludeFrontends string
	ExcludeBackends  string
	// ExcludeReports, shared by the Processors of one program, makes a problem with an
	// exclude file logged once in all rather than once per worker (nil: once per Processor).
	ExcludeReports *ExcludeReports

	// GroupNamespace enables the *Groups patterns; DoubleWrites writes each grouped datapoint
	// on the group path and then on the default path.
	GroupNamespace string
	DoubleWrites   bool
	FrontendGroups []Group
	BackendGroups  []Group
	ServerGroups   []Group

	// ChunkSize is the size in bytes of one metric.Batch (0 = metric.DefaultChunkSize). A
	// chunk is cut after the entity (≤ 40-odd lines) that fills it.
	ChunkSize int

	// MaxComponentLength bounds every path component in bytes (0 =
	// metric.DefaultMaxComponentLength, carbon's file-name limit). A longer proxy or server
	// name is shortened once per entity (metric.Names: its start + "-" + a hash of the whole
	// name), so neither a line nor the memory of a snapshot grows with the name.
	MaxComponentLength int
	// MaxLineLength bounds a line, '\n' excluded (0 = metric.DefaultMaxLineLength, below
	// carbon's 16 KiB). A longer line (a long namespace with long names) is not written; the
	// rest of the snapshot is, and Process returns *LinesTooLongError.
	MaxLineLength int
}

// Group is one `<name> = <regex>` of a *-groups section. The pattern is searched for anywhere
// in the sanitised name; the first matching group wins.
type Group struct {
	Name    string
	Pattern *regexp.Regexp
}

// Stats describes what Process did with one snapshot.
type Stats struct {
	Lines        int // lines emitted
	FilesUsed    int // *_info and *_stat files that contributed
	FilesSkipped int // *_info and *_stat files rejected as a whole
	// Problems is one line per rejected file or bad cell (cells are capped per file).
	Problems []string
	// ShortenedNames counts the entities (frontends, backends, servers in a backend, server.*
	// aggregates) whose name was longer than MaxComponentLength.
	ShortenedNames int
	// LongLines counts the lines not written because they were longer than MaxLineLength.
	LongLines int
}

// UnusableError means that nothing in the snapshot directory could be used: it holds no
// *_info or *_stat file, or every one of them was rejected. No chunk was flushed; the caller
// should quarantine the snapshot.
type UnusableError struct {
	Dir    string
	Reason string
}

func (e *UnusableError) Error() string {
	return fmt.Sprintf("snapshot %s is unusable: %s", e.Dir, e.Reason)
}

// LinesTooLongError means that some lines of the snapshot were longer than MaxLineLength and
// were not written (carbon would drop the connection on them, and everything behind them);
// every other line was flushed, the final chunk included. It implements dispatch.Rejected: the
// snapshot cannot be delivered whole however often it is sent, so the caller quarantines it
// once the rest is delivered.
type LinesTooLongError struct {
	Dir     string
	Lines   int    // lines not written
	Limit   int    // MaxLineLength
	Example string // the start of one such line
}

func (e *LinesTooLongError) Error() string {
	return fmt.Sprintf("snapshot %s: %d lines longer than max-line-length (%d bytes) were not written, e.g. %s",
		e.Dir, e.Lines, e.Limit, e.Example)
}

// Rejected names the snapshot and the problem (dispatch.Rejected).
func (e *LinesTooLongError) Rejected() string { return e.Error() }
