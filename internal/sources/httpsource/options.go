// Package httpsource is the library of the source kinds that fetch one HTTP body per instance
// (OpenMetrics, Envoy, Mesos): the options every such kind has, the pull half that streams each
// instance's body into <source>/<instance>.body (checked on the way by the kind's parser) with
// its <instance>.meta.json, and the process half that feeds every body, in instance-name order,
// through the kind's parser into the aggregation engine. A kind supplies its parser, its extra
// options and its default policies; everything else is here, once.
package httpsource

import (
	"fmt"
	"strings"
	"time"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
)

// FetchOptions are the pull options of every HTTP kind. A kind lists them with its own
// (Options builds the whole list).
var FetchOptions = []config.SourceOption{
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
}

// ProcessOptions are the processing options of every kind that uses the aggregation engine;
// stats-pull records them in each snapshot.
var ProcessOptions = []config.SourceOption{
	{Name: "aggregate", Default: "sum", HasDefault: true, Family: true, Process: true,
		Doc: "functions across instances (sum avg min max count stddev pNN, or none); aggregate.<glob> per metric name, first match wins"},
	{Name: "histogram-quantiles", Default: "p50 p90 p99", HasDefault: true, Process: true},
	{Name: "histogram-buckets", Default: "false", HasDefault: true, Process: true},
	{Name: "per-instance-metrics", Default: "false", HasDefault: true, Process: true},
	{Name: "graphite-tags", Default: "false", HasDefault: true, Process: true},
	{Name: "max-series", Default: "1000000", HasDefault: true, Process: true, Doc: "distinct series per snapshot; beyond it series are dropped, counted and logged"},
}

// Options returns FetchOptions, then the kind's own, then ProcessOptions.
func Options(own ...config.SourceOption) []config.SourceOption {
	out := append([]config.SourceOption(nil), FetchOptions...)
	out = append(out, own...)
	return append(out, ProcessOptions...)
}

// MaxInstances bounds the instances of one source: each is a goroutine, a connection and a
// file per round.
const MaxInstances = 4096

// Fetch is what the pull half needs: the instances and the client's options.
type Fetch struct {
	Targets []httpfetch.Target
	Client  httpfetch.Options
}

// ReadFetch reads FetchOptions. accept is the Accept header the kind sends.
func ReadFetch(s *config.Source, accept string) (Fetch, error) {
	var f Fetch
	targets, err := httpfetch.ParseURLs(s.String("urls"))
	if err != nil {
		return f, s.Fail("urls", strings.TrimPrefix(err.Error(), "urls: "))
	}
	if len(targets) > MaxInstances {
		return f, s.Fail("urls", fmt.Sprintf("%d instances, at most %d are allowed per source", len(targets), MaxInstances))
	}
	f.Targets = targets
	o := &f.Client
	if o.Timeout, err = s.Seconds("timeout", time.Millisecond); err != nil {
		return f, err
	}
	if o.MaxBodySize, err = s.Int("max-body-size", 4096, 16<<30); err != nil {
		return f, err
	}
	for _, h := range s.Family("header") {
		name := strings.TrimPrefix(h.Key, "header.")
		if name == h.Key || name == "" {
			return f, s.Fail(h.Key, "write header.<Name> = <value>")
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
		return f, err
	}
	o.Accept = accept
	// New checks what only it can: files, and options that do not go together.
	if _, err := httpfetch.New(*o); err != nil {
		return f, s.Fail(optionOf(err.Error()), err.Error())
	}
	return f, nil
}

// optionOf finds the option an httpfetch.New error names (it names them as the file does).
func optionOf(msg string) string {
	for _, o := range FetchOptions {
		if strings.HasPrefix(msg, o.Name) {
			return o.Name
		}
	}
	return "urls"
}

// Process are the typed processing options.
type Process struct {
	Policies    aggregate.Policies
	Quantiles   []int
	Buckets     bool
	PerInstance bool
	Tags        bool
	MaxSeries   int
}

// ProcessSettings is implemented by what a kind's checks store in config.Source.Settings.
type ProcessSettings interface {
	ProcessSettings() Process
}

// ProcessSettings makes Process its own settings (the stats-process side of a kind).
func (p Process) ProcessSettings() Process { return p }

// ReadProcess reads ProcessOptions. defaults are the kind's default rules, tried after the
// source's own `aggregate.<glob>` rules (so an operator's rule always wins).
func ReadProcess(s *config.Source, defaults ...aggregate.Rule) (Process, error) {
	var st Process
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
	p.Rules = append(p.Rules, defaults...)
	st.Policies = p
	if st.Quantiles, err = ParseQuantiles(s.String("histogram-quantiles")); err != nil {
		return st, s.Fail("histogram-quantiles", err.Error())
	}
	if st.Buckets, err = s.Bool("histogram-buckets"); err != nil {
		return st, err
	}
	if st.PerInstance, err = s.Bool("per-instance-metrics"); err != nil {
		return st, err
	}
	if st.Tags, err = s.Bool("graphite-tags"); err != nil {
		return st, err
	}
	n, err := s.Int("max-series", 1, 100_000_000)
	if err != nil {
		return st, err
	}
	st.MaxSeries = int(n)
	return st, nil
}

// ParseQuantiles reads `p50 p90 p99` (or `none`) into [50 90 99].
func ParseQuantiles(v string) ([]int, error) {
	words := strings.Fields(v)
	if len(words) == 1 && words[0] == "none" {
		return []int{}, nil
	}
	out := []int{}
	for _, w := range words {
		f, ok := parsePercentile(w)
		if !ok {
			return nil, fmt.Errorf("%q is not a percentile: want pNN with NN 1 to 99 (p50 p90 p99), or none", w)
		}
		for _, seen := range out {
			if seen == f {
				return nil, fmt.Errorf("%s given twice", w)
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no quantile given: want pNN words (p50 p90 p99), or none")
	}
	return out, nil
}

func parsePercentile(w string) (int, bool) {
	fs, err := aggregate.ParseFuncs(w)
	if err != nil || len(fs) != 1 || fs[0].Op != aggregate.Percentile {
		return 0, false
	}
	return fs[0].P, true
}

// CheckProcess returns the config.SourceKind.CheckProcess of a kind whose processing options
// are ProcessOptions only, with its default rules.
func CheckProcess(defaults ...aggregate.Rule) func(*config.Source) error {
	return func(s *config.Source) error {
		st, err := ReadProcess(s, defaults...)
		if err != nil {
			return err
		}
		s.Settings = st
		return nil
	}
}
