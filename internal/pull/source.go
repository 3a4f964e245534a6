// Package pull is the pulling half of statspipe: sources that write raw statistics into a
// snapshot, a registry of source kinds, and the loop that runs them on a phase-locked schedule
// and publishes the snapshots through the spool (see package spool for the contract).
//
// Each configured source is a Provider, built by its kind (package sources holds the registry
// of kinds); its instances are Sources. The loop only sees Providers and Sources; it never looks
// at a kind or a source name to decide anything.
package pull

import (
	"context"
	"io"

	"github.com/statspipe/statspipe/internal/spool"
)

// Source is one instance of a configured source that contributes files to a snapshot, e.g. one
// HAProxy stats socket or one /metrics URL.
type Source interface {
	// Name identifies the instance in logs and in a partial snapshot's record. It is unique
	// among the instances of its Provider in one round.
	Name() string
	// Pull writes the source's files into the snapshot being built and returns when they are
	// all committed, or with an error (its files are then removed by the loop). It must return
	// promptly once ctx is done (pull-timeout or shutdown), and must not use snap afterwards.
	Pull(ctx context.Context, snap SnapshotWriter) error
}

// SnapshotWriter is the snapshot being built, as one source sees it. It is safe for concurrent
// use by the goroutines of that source.
type SnapshotWriter interface {
	// Create adds a file. Write its content, then Commit it. Files that are not committed when
	// Pull returns make the source fail.
	Create(name string) (SnapshotFile, error)
}

// SnapshotFile is one file of the snapshot being built. Writes are not buffered.
type SnapshotFile interface {
	io.Writer
	// Commit closes the file, complete. The snapshot is published only once every committed
	// file is durable (spool: one sync of the snapshot, or an fsync per file at Commit).
	Commit() error
}

// Discarder is a SnapshotFile that can also be removed from the snapshot, committed or not;
// the loop's files are. A source that learns a file should not be published (the HAProxy worker
// that exited between two requests) discards it; the source then no longer has it.
type Discarder interface {
	Discard() error
}

// Provider yields the instances of one configured source for one round (the HAProxy source of
// [pull], or one [source.<name>] section). It is asked at the start of every round, so it can
// follow instances that come and go (sockets appearing in socket-dir).
type Provider interface {
	// Info describes the source; it does not change between rounds.
	Info() ProviderInfo
	// Sources lists this round's instances. An error means instances may be missing: the
	// source is failed for the round (recorded under its name).
	Sources(ctx context.Context) ([]Source, error)
}

// ProviderInfo describes a configured source to the loop.
type ProviderInfo struct {
	// Source is the source name (config.Source.Name) and Kind its kind.
	Source, Kind string
	// TopLevel puts the source's files at the top of the snapshot, as haproxystats did (the
	// HAProxy source of [pull]); its instances are named in the partial record by their own
	// names. Any other source writes into the directory <Source>/ of the snapshot, with a
	// spool.SourceInfoFile, and its failed instances are recorded as <Source>/<instance>.
	TopLevel bool
	// AllowPartial keeps the instances that answered when others failed; otherwise one failed
	// instance leaves the whole source out of the round (its files are removed).
	AllowPartial bool
	// Options are recorded in the SourceInfoFile (the source's processing options).
	Options []spool.Option
	// EmptyOK: a round in which the source lists no instance is normal (plugins that come and
	// go), not a failure to record; the source just has no part in that snapshot.
	EmptyOK bool
	// Late sources are pulled once every other source of the round returned and was counted
	// (self-metrics: the values as of the round's end), only when some other source is kept:
	// they never make a round publish by themselves, and their failure fails only them.
	Late bool
}
