// Package pull is the pulling half of statspipe: sources that write raw statistics into a
// snapshot, a registry of source kinds, and the loop that runs them on a phase-locked schedule
// and publishes the snapshots through the spool (see package spool for the contract).
//
// A source kind (HAProxy stats sockets today; HTTP endpoints or eBPF maps later) registers a
// constructor with Register from its package's init. The program imports the kind's package
// for that side effect and builds every configured kind with NewProviders. The loop only sees
// Providers and Sources; it never looks at a kind or a source name to decide anything.
package pull

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/statspipe/statspipe/internal/config"
)

// Source is one endpoint that contributes files to a snapshot, e.g. one HAProxy stats socket.
type Source interface {
	// Name identifies the source in logs and in a partial snapshot's record. It is unique among
	// the sources of one round.
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
	// Commit makes the file durable and closes it.
	Commit() error
}

// Provider yields the sources of one kind for one round. It is asked at the start of every
// round, so it can follow endpoints that come and go (sockets appearing in socket-dir).
type Provider interface {
	// Kind is the registered kind name, used when Sources itself fails.
	Kind() string
	// Sources lists this round's sources. An error means sources may be missing: the round
	// is failed like a failed source (recorded under Kind with allow-partial).
	Sources(ctx context.Context) ([]Source, error)
}

// NewProviderFunc builds a kind's Provider from the [pull] configuration. It returns nil, nil
// when the configuration does not use the kind.
type NewProviderFunc func(cfg config.Pull, log *slog.Logger) (Provider, error)

var (
	registryMu sync.Mutex
	registry   = map[string]NewProviderFunc{}
)

// Register makes a source kind available to NewProviders. It is meant to be called from the
// kind package's init and panics on a duplicate name.
func Register(kind string, fn NewProviderFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[kind]; dup {
		panic("pull: source kind registered twice: " + kind)
	}
	registry[kind] = fn
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	kinds := make([]string, 0, len(registry))
	for k := range registry {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// NewProviders builds the provider of every registered kind that the configuration uses, in
// kind order. Each provider logs with a "kind" attribute.
func NewProviders(cfg config.Pull, log *slog.Logger) ([]Provider, error) {
	var out []Provider
	for _, kind := range Kinds() {
		registryMu.Lock()
		fn := registry[kind]
		registryMu.Unlock()
		p, err := fn(cfg, log.With("kind", kind))
		if err != nil {
			return nil, fmt.Errorf("source kind %s: %w", kind, err)
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}
