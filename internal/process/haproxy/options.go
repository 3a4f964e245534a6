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
)

// Options is the part of the configuration that shapes the output.
type Options struct {
	// Prefix is "<namespace>[.<host>].haproxy", as built by metric.Prefix.
	Prefix string

	PerProcessMetrics    bool
	CalculatePercentages bool
	AggrServerMetrics    bool

	// User metric lists (nil = the built-in lists). Names of averaged metrics (act, bck,
	// weight, throttle and the response times) are emitted once, with their averaged meaning.
	FrontendMetrics []string
	BackendMetrics  []string
	ServerMetrics   []string

	// Files with one name per line ("" = none). They are re-read for every snapshot so that
	// edits apply without a restart.
	ExcludeFrontends string
	ExcludeBackends  string

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
