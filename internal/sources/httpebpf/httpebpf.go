// Package httpebpf is the HTTP statistics source kind (`type = http-ebpf`): per process,
// HTTP/1.x requests by method and responses by status code on accepted TCP sockets, counted
// in the kernel by the bundled eBPF program (bpf/http_stats.bpf.c), which the separate loader
// stats-http-ebpf attaches with CAP_BPF+CAP_PERFMON and whose maps it pins. stats-pull only
// reads the pinned maps (the ebpf-maps reader, with the program's declared types, so it needs
// no capability); stats-process writes per program (the sum across its PIDs, and the engine's
// functions across them) requests, requests by method, responses by code (Scope's list, the
// rest as "other") and by class, and optionally per-second rates.
//
// README.md in this folder documents the options, the loader, the paths and the overhead.
package httpebpf

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/ebpfmaps"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
)

// Kind is the `type` of the kind's source sections.
const Kind = "http-ebpf"

// DefaultPinDir is where stats-http-ebpf pins the maps by default.
const DefaultPinDir = "/sys/fs/bpf/statspipe/http"

const rateOption = "rate"

// DefaultRules: the spread of request counts across a program's processes (are its workers
// balanced?), besides the sum.
var DefaultRules = aggregate.MustRules([][2]string{
	{"*.requests", "sum min max avg p50 p90 p99 stddev"},
	{"*.requests.rate", "sum min max avg p50 p90 p99 stddev"},
})

var ownOptions = []config.SourceOption{
	{Name: "pin-dir", Default: DefaultPinDir, HasDefault: true, Doc: "the bpffs directory where stats-http-ebpf pins the maps (its --pin-dir)"},
	{Name: "max-entries", Default: "100000", HasDefault: true, Doc: "entries read per map and round; the rest are counted and logged"},
	{Name: rateOption, Default: "false", HasDefault: true, Process: true,
		Doc: "also write each counter's per-second rate (<name>.rate) from the previous snapshot this stats-process processed"},
}

var processHalf = httpsource.Kind{Name: Kind, NewParser: func() httpsource.Parser { return &parser{} }, DottedNames: true}

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      append(append([]config.SourceOption(nil), ownOptions...), httpsource.ProcessOptions...),
			CheckPull:    checkPull,
			CheckProcess: checkProcess,
		},
		NewProvider: newProvider,
		NewFormat:   processHalf.NewFormat,
	})
}

type processSettings struct {
	process httpsource.Process
	rate    bool
}

func (p processSettings) ProcessSettings() httpsource.Process { return p.process }

type pullSettings struct {
	processSettings
	pinDir     string
	maxEntries int
}

func readProcess(s *config.Source) (processSettings, error) {
	var st processSettings
	var err error
	if st.process, err = httpsource.ReadProcess(s, DefaultRules...); err != nil {
		return st, err
	}
	if st.rate, err = s.Bool(rateOption); err != nil {
		return st, err
	}
	return st, nil
}

func checkProcess(s *config.Source) error {
	st, err := readProcess(s)
	if err != nil {
		return err
	}
	s.Settings = st
	return nil
}

func checkPull(s *config.Source) error {
	var st pullSettings
	var err error
	st.pinDir = s.String("pin-dir")
	if !filepath.IsAbs(st.pinDir) {
		return s.Fail("pin-dir", "must be an absolute path (a directory on a bpffs)")
	}
	n, err := s.Int("max-entries", 1, 10_000_000)
	if err != nil {
		return err
	}
	st.maxEntries = int(n)
	if st.processSettings, err = readProcess(s); err != nil {
		return err
	}
	s.Settings = st
	return nil
}

// Maps are the pinned maps read, in the order of the snapshot's instances.
var Maps = []string{bpf.DropsMap, bpf.RequestsMap, bpf.ResponsesMap}

func newProvider(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	st, ok := src.Settings.(pullSettings)
	if !ok {
		return nil, errors.New("source was not validated for stats-pull")
	}
	types, err := bpf.MapTypes()
	if err != nil {
		return nil, err
	}
	o := ebpfmaps.ReaderOptions{GroupBy: "pid", MaxEntries: st.maxEntries, Declared: map[string]ebpfmaps.Declared{},
		Missing: fmt.Sprintf("is stats-http-ebpf running with --pin-dir %s? README: http-ebpf, \"The loader\"", st.pinDir)}
	for _, m := range Maps {
		o.Pins = append(o.Pins, filepath.Join(st.pinDir, m))
		o.Declared[m] = ebpfmaps.Declared{Key: types[m].Key, Value: types[m].Value}
	}
	return ebpfmaps.NewReader(sources.Info(src), o, log), nil
}
