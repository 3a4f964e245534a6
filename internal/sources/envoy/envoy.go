// Package envoy is the Envoy source kind (`type = envoy`): the admin endpoint of N Envoy
// instances (sidecars, edge proxies), pulled every round into the snapshot's <source>/
// directory (one body per instance, as received, decompressed), and aggregated across the
// instances by the generic engine (package aggregate) under Envoy's own dotted names
// (`cluster.<name>.upstream_rq_2xx`, `http.<stat_prefix>.…`, `listener.<address>.…`,
// `server.…`). The pulling and the processing are those of package httpsource; this kind
// adds the URL rules, the two parsers and the default policies.
//
// By default it reads /stats/prometheus (promtext, then the names mapped back to Envoy's
// dotted layout: promnames.go), whose histograms have real buckets that merge across
// instances; `format = text` reads plain /stats (text.go), whose histograms are quantiles
// and are kept per instance only.
//
// README.md in this folder documents the options, the paths and a worked example.
package envoy

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
	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// Kind is the `type` of the kind's source sections.
const Kind = "envoy"

// The admin paths of the two forms.
const (
	PrometheusPath = "/stats/prometheus"
	TextPath       = "/stats"
)

// Accept headers: Envoy serves text 0.0.4 at /stats/prometheus, plain text at /stats.
const (
	acceptPrometheus = "text/plain;version=0.0.4"
	acceptText       = "text/plain"
)

var processHalf = httpsource.Kind{Name: Kind, NewParser: func() httpsource.Parser { return newParser() }, DottedNames: true}

var ownOptions = []config.SourceOption{
	{Name: "format", Default: "prometheus", HasDefault: true, Doc: "prometheus (GET /stats/prometheus: tag-extracted names, histogram buckets) or text (GET /stats)"},
	{Name: "filter", Doc: "Envoy's filter query parameter: an RE2 regular expression on stat names"},
	{Name: "usedonly", Default: "false", HasDefault: true, Doc: "send usedonly: only stats Envoy has updated"},
}

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      httpsource.Options(ownOptions...),
			CheckPull:    checkPull,
			CheckProcess: httpsource.CheckProcess(DefaultRules...),
		},
		NewProvider: httpsource.Provider(check),
		NewFormat:   processHalf.NewFormat,
	})
}

// DefaultRules are tried after the source's own `aggregate.<glob>` rules: Envoy gauges whose
// sum across instances means nothing, and the text form's histogram quantiles (per instance
// only). The globs match the dotted family names (lower-cased).
var DefaultRules = func() []aggregate.Rule {
	var out []aggregate.Rule
	for _, r := range [][2]string{
		{HistogramFamilyPrefix + "*", "none"},
		{"server.uptime", "min"},
		{"server.version", "max"},
		{"server.days_until_first_cert_expiring", "min"},
		{"server.seconds_until_first_ocsp_response_expiring", "min"},
		{"server.hot_restart_epoch", "max"},
		{"server.hot_restart_generation", "max"},
		{"server.state", "max"},
		{"server.live", "sum min"},
		{"server.concurrency", "sum max"},
		{"cluster.*.membership_healthy", "min max"},
		{"cluster.*.membership_degraded", "min max"},
		{"cluster.*.membership_excluded", "min max"},
		{"cluster.*.membership_total", "min max"},
		{"cluster.*.max_host_weight", "max"},
		{"cluster.*.version", "none"},
		{"cluster_manager.active_clusters", "min max"},
		{"cluster_manager.warming_clusters", "sum max"},
		{"listener_manager.total_listeners_active", "min max"},
		{"listener_manager.total_listeners_warming", "sum max"},
		{"listener_manager.total_listeners_draining", "sum max"},
		{"runtime.num_keys", "min max"},
		{"runtime.num_layers", "min max"},
	} {
		funcs, err := aggregate.ParseFuncs(r[1])
		if err != nil {
			panic(err)
		}
		out = append(out, aggregate.Rule{Glob: r[0], Funcs: funcs})
	}
	return out
}()

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
	form := s.String("format")
	if form != "prometheus" && form != "text" {
		return s.Fail("format", "must be prometheus or text")
	}
	usedOnly, err := s.Bool("usedonly")
	if err != nil {
		return err
	}
	accept := acceptPrometheus
	if form == "text" {
		accept = acceptText
	}
	if st.fetch, err = httpsource.ReadFetch(s, accept); err != nil {
		return err
	}
	for i := range st.fetch.Targets {
		t := &st.fetch.Targets[i]
		u, err := AdminURL(t.URL, form == "prometheus", usedOnly, s.String("filter"))
		if err != nil {
			return s.Fail("urls", fmt.Sprintf("%s: %v", t.URL, err))
		}
		t.URL = u
	}
	if st.process, err = httpsource.ReadProcess(s, DefaultRules...); err != nil {
		return err
	}
	s.Settings = st
	return nil
}

// AdminURL returns the URL fetched for one configured URL: an admin base URL (no path, or
// "/") gets /stats/prometheus or /stats; usedonly and filter are added to the query unless it
// has them. A full URL must be of the form asked for (IsPrometheusURL), since the process
// half tells the forms apart by the URL recorded with each body.
func AdminURL(raw string, prometheus, usedOnly bool, filter string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = TextPath, ""
		if prometheus {
			u.Path = PrometheusPath
		}
	}
	q := u.RawQuery
	add := func(kv string) {
		if q != "" {
			q += "&"
		}
		q += kv
	}
	has := func(key string) bool {
		for _, kv := range strings.Split(u.RawQuery, "&") {
			if k, _, _ := strings.Cut(kv, "="); k == key {
				return true
			}
		}
		return false
	}
	if usedOnly && !has("usedonly") {
		add("usedonly")
	}
	if filter != "" && !has("filter") {
		// %20, not '+', for a blank: Envoy decodes percent escapes only.
		add("filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20"))
	}
	u.RawQuery = q
	for _, kv := range strings.Split(q, "&") {
		if f, ok := strings.CutPrefix(kv, "format="); ok && f != "prometheus" {
			return "", fmt.Errorf("format=%s in the query: this kind reads the Prometheus or the plain text form only", f)
		}
	}
	if IsPrometheusURL(u) != prometheus {
		want := "text (GET /stats)"
		if prometheus {
			want = "prometheus (GET /stats/prometheus)"
		}
		return "", fmt.Errorf("the URL is not of the form of format = %s; give the admin base URL", want)
	}
	return u.String(), nil
}

// IsPrometheusURL tells the Prometheus form's URLs (/stats/prometheus, or format=prometheus
// in the query) from the text form's.
func IsPrometheusURL(u *url.URL) bool {
	if strings.HasSuffix(u.Path, "/prometheus") {
		return true
	}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		if kv == "format=prometheus" {
			return true
		}
	}
	return false
}

func isPrometheusBody(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && IsPrometheusURL(u)
}

// check parses a body as it is pulled: a body that does not parse, or that ends inside a line
// (truncated), fails its instance.
func check(res httpfetch.Result) (func(io.Reader) error, error) {
	prom := isPrometheusBody(res.URL)
	f, err := bodyFormat(prom, res.ContentType)
	if err != nil {
		return nil, err
	}
	return func(body io.Reader) error {
		p := parsers.Get().(*parser)
		defer parsers.Put(p)
		return p.parse(prom, f, body, nil)
	}, nil
}

// bodyFormat checks the media type: the Prometheus form as promtext reads it, the text form
// text/plain (or none).
func bodyFormat(prom bool, contentType string) (promtext.Format, error) {
	if prom {
		return promtext.FormatOf(contentType)
	}
	if contentType == "" {
		return 0, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "text/plain" {
		return 0, fmt.Errorf("media type %q is not Envoy's plain /stats text (text/plain)", contentType)
	}
	return 0, nil
}

// parsers are reused across instances and rounds: a parser owns read buffers and tables.
var parsers = sync.Pool{New: func() any { return newParser() }}

// parser is the process half's (and the check's): the form follows the URL the body came
// from.
type parser struct {
	prom *promtext.Parser
	text *textParser
	m    mapper
	nl   newlineTracker
}

func newParser() *parser {
	return &parser{prom: promtext.NewParser(0), text: newTextParser()}
}

func (p *parser) Parse(meta spool.InstanceMeta, body io.Reader, fn sample.Func) error {
	prom := isPrometheusBody(meta.URL)
	f, err := bodyFormat(prom, meta.ContentType)
	if err != nil {
		return err
	}
	return p.parse(prom, f, body, fn)
}

// parse reads one body; a nil fn only checks it (the names are then not mapped).
func (p *parser) parse(prom bool, f promtext.Format, body io.Reader, fn sample.Func) error {
	if fn == nil {
		fn = func(*sample.Sample) error { return nil }
		if prom {
			return p.check(f, body)
		}
	}
	if !prom {
		if err := p.text.Parse(body, fn); err != nil {
			return fmt.Errorf("envoy text: %w", err)
		}
		return nil
	}
	return p.parseProm(f, body, func(s *sample.Sample) error { return fn(p.m.Map(s)) })
}

func (p *parser) check(f promtext.Format, body io.Reader) error {
	return p.parseProm(f, body, func(*sample.Sample) error { return nil })
}

func (p *parser) parseProm(f promtext.Format, body io.Reader, fn sample.Func) error {
	p.nl = newlineTracker{r: body}
	err := p.prom.Parse(&p.nl, f, fn)
	p.nl.r = nil
	if err == nil && p.nl.n > 0 && p.nl.last != '\n' {
		err = errTruncated
	}
	if err != nil {
		return fmt.Errorf("envoy prometheus (%s): %w", f, err)
	}
	return nil
}

// newlineTracker remembers the last byte read: Envoy ends every line with a newline, so a body
// that does not end with one was cut (text 0.0.4 has no end marker).
type newlineTracker struct {
	r    io.Reader
	n    int64
	last byte
}

func (t *newlineTracker) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 {
		t.n += int64(n)
		t.last = b[n-1]
	}
	return n, err
}
