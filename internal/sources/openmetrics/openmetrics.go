// Package openmetrics is the OpenMetrics/Prometheus source kind (`type = openmetrics`): the
// /metrics endpoints of N instances of one application, pulled every round into the
// snapshot's <source>/ directory (one body per instance, as received, decompressed, with its
// metadata), and aggregated across the instances by the generic engine (package aggregate):
// one Graphite series per metric for the whole set, with percentiles and spread across
// instances, histograms merged by bucket, and per-instance series on request. The pulling and
// the processing are those of package httpsource; this kind adds the parser (promtext).
//
// README.md in this folder documents the options, the paths and a worked example; the main
// README mirrors it.
package openmetrics

import (
	"fmt"
	"io"
	"sync"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// Kind is the `type` of the kind's source sections.
const Kind = "openmetrics"

var processHalf = httpsource.Kind{Name: Kind, NewParser: func() httpsource.Parser { return &parser{p: promtext.NewParser(0)} }}

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      httpsource.Options(),
			CheckPull:    checkPull,
			CheckProcess: httpsource.CheckProcess(),
		},
		NewProvider: httpsource.Provider(check),
		NewFormat:   processHalf.NewFormat,
	})
}

// pullSettings are the typed options of a source, for stats-pull.
// FetchSettings implements httpsource.FetchSettings.
func (p pullSettings) FetchSettings() httpsource.Fetch { return p.fetch }

type pullSettings struct {
	fetch   httpsource.Fetch
	process httpsource.Process
}

func (p pullSettings) ProcessSettings() httpsource.Process { return p.process }

func checkPull(s *config.Source) error {
	var st pullSettings
	var err error
	if st.fetch, err = httpsource.ReadFetch(s, promtext.Accept); err != nil {
		return err
	}
	if st.process, err = httpsource.ReadProcess(s); err != nil {
		return err
	}
	s.Settings = st
	return nil
}

// check parses a body as it is pulled, in the format its media type names: a body that does
// not parse (an OpenMetrics body without its final "# EOF" is a truncated one) fails its
// instance.
func check(res httpfetch.Result) (func(io.Reader) error, error) {
	f, err := promtext.FormatOf(res.ContentType)
	if err != nil {
		return nil, err
	}
	return func(body io.Reader) error {
		p := parsers.Get().(*promtext.Parser)
		defer parsers.Put(p)
		if err := p.Parse(body, f, func(*sample.Sample) error { return nil }); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		return nil
	}, nil
}

// parsers are reused across instances and rounds: a parser owns a read buffer and its tables.
var parsers = sync.Pool{New: func() any { return promtext.NewParser(0) }}

// parser is the process half's: the format follows the content type the instance answered with.
type parser struct{ p *promtext.Parser }

func (p *parser) Parse(meta spool.InstanceMeta, body io.Reader, fn sample.Func) error {
	f, err := promtext.FormatOf(meta.ContentType)
	if err != nil {
		return err
	}
	return p.p.Parse(body, f, fn)
}
