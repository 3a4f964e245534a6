// Package sources is the contract between the source kinds and the engines. A kind (HAProxy,
// OpenMetrics, …) is one folder under internal/sources/ holding its pull half, its process
// half, its README section, a sample configuration and testdata of real payloads; it registers
// itself from init with Register. The programs import internal/sources/all, which imports
// every kind, and build what the configuration asks for with Providers and Formats. Neither
// the pull loop, nor the process runner, nor the dispatchers ever name a kind.
package sources

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
)

// Kind is what a source kind registers.
type Kind struct {
	// Name is the `type` of its [source.<name>] sections and the kind recorded in snapshots.
	Name string
	// Config lists its options and checks them; its Name is Name. Leave it zero for a kind
	// without [source.*] sections (HAProxy, configured in [pull]).
	Config *config.SourceKind
	// NewProvider builds the pull half for one configured source; nil, nil when the
	// configuration does not really use it (the HAProxy source of [pull] without socket-dir or
	// servers).
	NewProvider func(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error)
	// NewFormat returns a constructor of the process half, called once per worker.
	NewFormat func(cfg *config.Config, log *slog.Logger) (func() process.Format, error)
}

var (
	mu    sync.Mutex
	kinds = map[string]Kind{}
)

// Register makes a kind available. It panics on a duplicate name, and registers the kind's
// options with the configuration.
func Register(k Kind) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := kinds[k.Name]; dup || k.Name == "" {
		panic("sources: kind registered twice or unnamed: " + k.Name)
	}
	if k.Config != nil {
		k.Config.Name = k.Name
		config.RegisterSourceKind(*k.Config)
	}
	kinds[k.Name] = k
}

// Names lists the registered kinds, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookup(name string) (Kind, bool) {
	mu.Lock()
	defer mu.Unlock()
	k, ok := kinds[name]
	return k, ok
}

// Providers builds the pull half of every configured source, in configuration order. Each
// provider logs with "source" and "kind" attributes.
func Providers(cfg *config.Config, log *slog.Logger) ([]pull.Provider, error) {
	var out []pull.Provider
	for i := range cfg.Sources {
		src := &cfg.Sources[i]
		k, ok := lookup(src.Kind)
		if !ok || k.NewProvider == nil {
			return nil, fmt.Errorf("source %s: kind %q has no pull half in this program (known: %s)",
				src.Name, src.Kind, strings.Join(Names(), ", "))
		}
		p, err := k.NewProvider(cfg, src, log.With("source", src.Name, "kind", src.Kind))
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Formats returns the process halves for the runner: for each worker, a function that gives
// the Format of a kind (built on first use), or false for a kind this program does not know.
func Formats(cfg *config.Config, log *slog.Logger) (func() func(kind string) (process.Format, bool), error) {
	ctors := map[string]func() process.Format{}
	for _, name := range Names() {
		k, _ := lookup(name)
		if k.NewFormat == nil {
			continue
		}
		ctor, err := k.NewFormat(cfg, log.With("kind", name))
		if err != nil {
			return nil, fmt.Errorf("source kind %s: %w", name, err)
		}
		ctors[name] = ctor
	}
	return func() func(string) (process.Format, bool) {
		made := map[string]process.Format{}
		return func(kind string) (process.Format, bool) {
			if f, ok := made[kind]; ok {
				return f, true
			}
			ctor, ok := ctors[kind]
			if !ok {
				return nil, false
			}
			f := ctor()
			made[kind] = f
			return f, true
		}
	}, nil
}

// Recorded returns the options recorded for a source in snapshots: its Process options.
func Recorded(src *config.Source) []spool.Option {
	var out []spool.Option
	for _, o := range src.ProcessOptions() {
		out = append(out, spool.Option{Key: o.Key, Value: o.Value})
	}
	return out
}

// Info is the ProviderInfo of a named source (not the top-level HAProxy source).
func Info(src *config.Source) pull.ProviderInfo {
	return pull.ProviderInfo{Source: src.Name, Kind: src.Kind, AllowPartial: src.AllowPartial, Options: Recorded(src)}
}
