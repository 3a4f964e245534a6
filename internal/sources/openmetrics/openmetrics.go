// Package openmetrics is the OpenMetrics/Prometheus source kind (`type = openmetrics`): the
// /metrics endpoints of N instances of one application, pulled every round into the
// snapshot's <source>/ directory (one body per instance, as received, decompressed, with its
// metadata), and aggregated across the instances by the generic engine (package aggregate):
// one Graphite series per metric for the whole set, with percentiles and spread across
// instances, histograms merged by bucket, and per-instance series on request.
//
// README.md in this folder documents the options, the paths and a worked example; the main
// README mirrors it.
package openmetrics

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/sources"
)

// Kind is the `type` of the kind's source sections.
const Kind = "openmetrics"

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      Options,
			CheckPull:    checkPull,
			CheckProcess: checkProcess,
		},
		NewProvider: newProvider,
		NewFormat:   newFormat,
	})
}

// Options are the options of a [source.<name>] section of this kind.
var Options = []config.SourceOption{
	{Name: "urls", Doc: "instances: URL or name=URL, separated by whitespace or commas (continuation lines allowed)"},
	{Name: "timeout", Default: "2", HasDefault: true, Doc: "seconds for one instance's whole request, body included (the round's pull-timeout also applies)"},
	{Name: "max-body-size", Default: "67108864", HasDefault: true, Doc: "bytes of one instance's body, decompressed; a longer body fails the instance"},
	{Name: "header", Family: true, Doc: "header.<Name> = <value>: an extra request header"},
	{Name: "basic-auth-user"},
	{Name: "basic-auth-password-file", Doc: "read at every round"},
	{Name: "bearer-token-file", Doc: "read at every round; sent as Authorization: Bearer"},
	{Name: "tls-ca-file"},
	{Name: "tls-cert-file"},
	{Name: "tls-key-file"},
	{Name: "tls-server-name"},
	{Name: "tls-skip-verify", Default: "false", HasDefault: true},
	// What stats-process needs, recorded in every snapshot:
	{Name: "aggregate", Default: "sum", HasDefault: true, Family: true, Process: true,
		Doc: "functions across instances (sum avg min max count stddev pNN, or none); aggregate.<glob> per metric name, first match wins"},
	{Name: "histogram-quantiles", Default: "p50 p90 p99", HasDefault: true, Process: true},
	{Name: "histogram-buckets", Default: "false", HasDefault: true, Process: true},
	{Name: "per-instance-metrics", Default: "false", HasDefault: true, Process: true},
	{Name: "graphite-tags", Default: "false", HasDefault: true, Process: true},
	{Name: "max-series", Default: "1000000", HasDefault: true, Process: true, Doc: "distinct series per snapshot; beyond it series are dropped, counted and logged"},
}

// pullSettings are the typed pull options of a source.
type pullSettings struct {
	targets []httpfetch.Target
	fetch   httpfetch.Options
	process processSettings
}

// processSettings are the typed processing options of a source.
type processSettings struct {
	policies    aggregate.Policies
	quantiles   []int
	buckets     bool
	perInstance bool
	tags        bool
	maxSeries   int
}

func checkPull(s *config.Source) error {
	var st pullSettings
	targets, err := httpfetch.ParseURLs(s.String("urls"))
	if err != nil {
		return s.Fail("urls", strings.TrimPrefix(err.Error(), "urls: "))
	}
	if len(targets) > maxInstances {
		return s.Fail("urls", fmt.Sprintf("%d instances, at most %d are allowed per source", len(targets), maxInstances))
	}
	st.targets = targets
	o := &st.fetch
	if o.Timeout, err = s.Seconds("timeout", minTimeout); err != nil {
		return err
	}
	size, err := s.Int("max-body-size", 4096, 16<<30)
	if err != nil {
		return err
	}
	o.MaxBodySize = size
	for _, h := range s.Family("header") {
		name := strings.TrimPrefix(h.Key, "header.")
		if name == h.Key || name == "" {
			return s.Fail(h.Key, "write header.<Name> = <value>")
		}
		o.Headers = append(o.Headers, [2]string{name, h.Value})
	}
	o.BasicAuthUser = s.String("basic-auth-user")
	o.BasicAuthPasswordFile = s.String("basic-auth-password-file")
	o.BearerTokenFile = s.String("bearer-token-file")
	o.TLSCAFile = s.String("tls-ca-file")
	o.TLSCertFile = s.String("tls-cert-file")
	o.TLSKeyFile = s.String("tls-key-file")
	o.TLSServerName = s.String("tls-server-name")
	if o.TLSSkipVerify, err = s.Bool("tls-skip-verify"); err != nil {
		return err
	}
	o.Accept = acceptHeader
	// New checks what only it can: files, and options that do not go together.
	if _, err := httpfetch.New(*o); err != nil {
		return s.Fail(optionOf(err.Error()), err.Error())
	}
	if st.process, err = readProcess(s); err != nil {
		return err
	}
	s.Settings = st
	return nil
}

func checkProcess(s *config.Source) error {
	st, err := readProcess(s)
	if err != nil {
		return err
	}
	s.Settings = st
	return nil
}

func readProcess(s *config.Source) (processSettings, error) {
	var st processSettings
	var opts [][2]string
	for _, kv := range s.Family("aggregate") {
		opts = append(opts, [2]string{kv.Key, kv.Value})
	}
	p, err := aggregate.ParsePolicies(opts)
	if err != nil {
		key := "aggregate"
		if k, _, found := strings.Cut(strings.TrimPrefix(err.Error(), "option "), ":"); found {
			key = k
		}
		return st, s.Fail(key, err.Error())
	}
	p.FoldCase = true // option names, globs included, are lower-cased by the INI reader
	st.policies = p
	q, err := parseQuantiles(s.String("histogram-quantiles"))
	if err != nil {
		return st, s.Fail("histogram-quantiles", err.Error())
	}
	st.quantiles = q
	if st.buckets, err = s.Bool("histogram-buckets"); err != nil {
		return st, err
	}
	if st.perInstance, err = s.Bool("per-instance-metrics"); err != nil {
		return st, err
	}
	if st.tags, err = s.Bool("graphite-tags"); err != nil {
		return st, err
	}
	n, err := s.Int("max-series", 1, 100_000_000)
	if err != nil {
		return st, err
	}
	st.maxSeries = int(n)
	return st, nil
}

// parseQuantiles reads `p50 p90 p99` (or `none`) into [50 90 99].
func parseQuantiles(v string) ([]int, error) {
	words := strings.Fields(v)
	if len(words) == 1 && words[0] == "none" {
		return []int{}, nil
	}
	out := []int{}
	for _, w := range words {
		n, err := strconv.Atoi(strings.TrimPrefix(w, "p"))
		if !strings.HasPrefix(w, "p") || err != nil || n < 1 || n > 99 {
			return nil, fmt.Errorf("%q is not a percentile: want pNN with NN 1 to 99 (p50 p90 p99), or none", w)
		}
		for _, seen := range out {
			if seen == n {
				return nil, fmt.Errorf("%s given twice", w)
			}
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no quantile given: want pNN words (p50 p90 p99), or none")
	}
	return out, nil
}

// optionOf finds the option an httpfetch.New error names (it names them as the file does).
func optionOf(msg string) string {
	for _, o := range Options {
		if strings.HasPrefix(msg, o.Name) {
			return o.Name
		}
	}
	return "urls"
}

const (
	// maxInstances bounds the instances of one source: each is a goroutine, a connection and
	// a file per round.
	maxInstances = 4096
	minTimeout   = time.Millisecond
)

// acceptHeader lists only the formats the parser reads (formats.md §5.2).
const acceptHeader = promtext.Accept
