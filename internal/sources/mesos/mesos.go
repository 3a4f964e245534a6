// Package mesos is the Apache Mesos source kind (`type = mesos`): the /metrics/snapshot
// endpoint of Mesos masters and agents, pulled every round into the snapshot's <source>/
// directory (one body per instance, as received, decompressed, with its metadata), and
// aggregated across the instances by the generic engine (package aggregate). A snapshot is a
// flat JSON object of numbers whose keys are slash paths; each key becomes a dotted Graphite
// path under the source. Timers are never summed, and with several masters only the elected
// one's cluster values (master/*) count. The pulling and the processing are those of package
// httpsource; this kind adds the streaming JSON parser, its default policies and the leader
// rule.
//
// README.md in this folder documents the options, the paths, the policies and a worked
// example; the main README mirrors it.
package mesos

import (
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"sync"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// Kind is the `type` of the kind's source sections.
const Kind = "mesos"

// DefaultPath is added to a URL that has no path of its own.
const DefaultPath = "/metrics/snapshot"

// Accept is the Accept header sent: Mesos answers JSON.
const Accept = "application/json"

// electedOnlyOption is the kind's own processing option.
const electedOnlyOption = "elected-only"

// DefaultRules are the kind's default policies, tried after the source's own aggregate.<glob>
// rules and before its `aggregate` default. Globs match the sample name: the key with '/'
// turned into '.' (README.md: Aggregation across instances).
var DefaultRules = aggregate.MustRules([][2]string{
	// Timers (<name>_ms plus /count /min /max /p50 … /p9999, over the timer's window) are each
	// instance's own statistics: a sum of percentiles means nothing, so the largest and the
	// mean are written. Counts of measurements add up.
	{"*_ms.count", "sum"},
	{"*_ms.min", "max avg"},
	{"*_ms.max", "max avg"},
	{"*_ms.p[0-9]*", "max avg"},
	{"*_ms", "max avg"},
	// Number of elected masters: 1 in a healthy cluster.
	{"master.elected", "sum"},
	// Ages: the youngest (a recent restart) and the oldest.
	{"master.uptime_secs", "min max"},
	{"slave.uptime_secs", "min max"},
	// Per-host load and per-agent shares are not additive.
	{"system.load_*", "avg max"},
	{"slave.*_percent", "avg max"},
	{"slave.executor_directory_max_allowed_age_secs", "min max"},
})

var ownOptions = []config.SourceOption{
	{Name: electedOnlyOption, Default: "true", HasDefault: true, Process: true,
		Doc: "with several masters, count a master's master/* keys only when its own master/elected is 1 (master/elected and master/uptime_secs always count)"},
}

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      httpsource.Options(ownOptions...),
			CheckPull:    checkPull,
			CheckProcess: checkProcess,
		},
		NewProvider: httpsource.Provider(check),
		NewFormat:   processHalf.NewFormat,
	})
}

// processSettings are the typed processing options.
type processSettings struct {
	process     httpsource.Process
	electedOnly bool
}

func (p processSettings) ProcessSettings() httpsource.Process { return p.process }

// pullSettings are the typed options of a source, for stats-pull.
// FetchSettings implements httpsource.FetchSettings.
func (p pullSettings) FetchSettings() httpsource.Fetch { return p.fetch }

type pullSettings struct {
	processSettings
	fetch httpsource.Fetch
}

func readProcess(s *config.Source) (processSettings, error) {
	var st processSettings
	var err error
	if st.process, err = httpsource.ReadProcess(s, DefaultRules...); err != nil {
		return st, err
	}
	if st.electedOnly, err = s.Bool(electedOnlyOption); err != nil {
		return st, err
	}
	return st, nil
}

func checkPull(s *config.Source) error {
	var st pullSettings
	var err error
	if st.fetch, err = httpsource.ReadFetch(s, Accept); err != nil {
		return err
	}
	for i := range st.fetch.Targets {
		u, err := WithDefaultPath(st.fetch.Targets[i].URL)
		if err != nil {
			return s.Fail("urls", err.Error())
		}
		st.fetch.Targets[i].URL = u
	}
	if st.processSettings, err = readProcess(s); err != nil {
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

// WithDefaultPath adds DefaultPath to a base URL (no path, or "/"); a URL with a path of its
// own is kept as it is (a proxy's prefix, ?timeout=…).
func WithDefaultPath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %v", raw, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = DefaultPath, ""
	}
	return u.String(), nil
}

// CheckMediaType accepts what Mesos and the proxies in front of it send: application/json
// (any +json type), text/plain, or no content type at all. Anything else (an HTML login
// page) fails the instance before its body is read.
func CheckMediaType(contentType string) error {
	if strings.TrimSpace(contentType) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %v", contentType, err)
	}
	if mt == "application/json" || mt == "text/plain" || mt == "text/json" ||
		strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
		return nil
	}
	return fmt.Errorf("content type %q is not JSON (want application/json)", contentType)
}

// check parses a body as it is pulled: one that does not parse (truncated, not a snapshot)
// fails its instance.
func check(res httpfetch.Result) (func(io.Reader) error, error) {
	if err := CheckMediaType(res.ContentType); err != nil {
		return nil, err
	}
	return func(body io.Reader) error {
		p := parsers.Get().(*Parser)
		defer parsers.Put(p)
		p.ElectedOnly = false // the check only reads
		return p.Parse(body, func(*sample.Sample) error { return nil })
	}, nil
}

// parsers are reused across instances and rounds: a parser owns a read buffer.
var parsers = sync.Pool{New: func() any { return NewParser() }}

// The process half is httpsource's Format with this parser; elected-only, an option of this
// kind, reaches the parser through httpsource.Configurable, from the same place as the other
// processing options (the configuration's [source.<name>] of this kind, else the snapshot's
// source.json).

type bodyParser struct{ p *Parser }

func (b *bodyParser) Parse(_ spool.InstanceMeta, body io.Reader, fn sample.Func) error {
	return b.p.Parse(body, fn)
}

// Configure implements httpsource.Configurable.
func (b *bodyParser) Configure(st httpsource.ProcessSettings) {
	b.p.ElectedOnly = true
	switch st := st.(type) {
	case processSettings:
		b.p.ElectedOnly = st.electedOnly
	case pullSettings:
		b.p.ElectedOnly = st.electedOnly
	}
}

var processHalf = httpsource.Kind{Name: Kind, DottedNames: true,
	NewParser: func() httpsource.Parser { return &bodyParser{NewParser()} }}
