// Package haproxy registers the HAProxy source kind: stats sockets configured in [pull]
// (socket-dir, servers), pulled by internal/pull/haproxy into the top of each snapshot, and
// aggregated by the tuned haproxystats processor of internal/process/haproxy. It has no
// [source.*] sections: its options are haproxystats' own.
package haproxy

import (
	"errors"
	"log/slog"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	prochaproxy "github.com/statspipe/statspipe/internal/process/haproxy"
	"github.com/statspipe/statspipe/internal/pull"
	pullhaproxy "github.com/statspipe/statspipe/internal/pull/haproxy"
	"github.com/statspipe/statspipe/internal/sources"
)

func init() {
	sources.Register(sources.Kind{
		Name:        config.LegacySourceName,
		NewProvider: newProvider,
		NewFormat:   newFormat,
	})
}

func newProvider(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	if p := pullhaproxy.FromConfig(cfg.Pull, log); p != nil {
		return p, nil
	}
	return nil, nil
}

// newFormat returns one haproxystats aggregator per worker, configured like haproxystats-process.
func newFormat(cfg *config.Config, log *slog.Logger) (func() process.Format, error) {
	g := cfg.Graphite
	opts := prochaproxy.Options{
		Prefix:               metric.Prefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN),
		PerProcessMetrics:    cfg.Process.PerProcessMetrics,
		CalculatePercentages: cfg.Process.CalculatePercentages,
		AggrServerMetrics:    cfg.Process.AggrServerMetrics,
		ServerStates:         cfg.Process.ServerStates,
		Filters: prochaproxy.Filters{
			FrontendInclude:  cfg.Process.FrontendInclude,
			FrontendExclude:  cfg.Process.FrontendExclude,
			BackendInclude:   cfg.Process.BackendInclude,
			BackendExclude:   cfg.Process.BackendExclude,
			ServerInclude:    cfg.Process.ServerInclude,
			ServerExclude:    cfg.Process.ServerExclude,
			MetricInclude:    cfg.Process.MetricInclude,
			MetricExclude:    cfg.Process.MetricExclude,
			SkipMaintServers: cfg.Process.SkipMaintServers,
		},
		AllMetrics:          cfg.Process.AllMetrics,
		AllMetricsAggregate: cfg.Process.AllMetricsAggregate,
		FrontendMetrics:     cfg.Process.FrontendMetrics,
		BackendMetrics:      cfg.Process.BackendMetrics,
		ServerMetrics:       cfg.Process.ServerMetrics,
		ExcludeFrontends:    cfg.Process.ExcludeFrontends,
		ExcludeBackends:     cfg.Process.ExcludeBackends,
		ExcludeReports:      &prochaproxy.ExcludeReports{}, // shared: a broken file is logged once, not once per worker
		GroupNamespace:      g.GroupNamespace,
		DoubleWrites:        g.GroupNamespaceDoubleWrites,
		FrontendGroups:      groups(cfg.FrontendGroups),
		BackendGroups:       groups(cfg.BackendGroups),
		ServerGroups:        groups(cfg.ServerGroups),
		MaxComponentLength:  cfg.Process.MaxComponentLength,
		MaxLineLength:       cfg.Process.MaxLineLength,
	}
	return func() process.Format {
		return format{prochaproxy.NewProcessor(opts, log)}
	}, nil
}

func groups(in []config.Group) []prochaproxy.Group {
	out := make([]prochaproxy.Group, len(in))
	for i, g := range in {
		out[i] = prochaproxy.Group{Name: g.Name, Pattern: g.Pattern}
	}
	return out
}

type format struct{ p *prochaproxy.Processor }

func (f format) Process(dir string, ts int64, flush metric.FlushFunc) error {
	_, err := f.p.Process(dir, ts, flush)
	var unusable *prochaproxy.UnusableError
	if errors.As(err, &unusable) {
		return process.UnusableError(unusable)
	}
	return err
}
