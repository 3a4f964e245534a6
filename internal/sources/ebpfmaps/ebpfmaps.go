// Package ebpfmaps is the pinned eBPF maps source kind (`type = ebpf-maps`): every round, the
// maps pinned at the configured paths (pin files, or bpffs directories walked; links, programs
// and other non-map pins skipped) are read with cilium/ebpf, read-only, and their entries
// decoded through the map's BTF (or a configured layout for a map without BTF) into a
// self-describing form kept in the snapshot with the raw bytes, so that stats-process needs
// no BTF. stats-process then writes each numeric value field of each entry under
// <map>.<key field>.<key value>….<value field>; with group-by, the entries of one process
// (the key field's value, a PID, named by /proc/<pid>/comm on the pull side) are one
// aggregation instance, so that the engine sums (or takes percentiles, stddev…) across the
// processes of one program.
//
// README.md in this folder documents the options, the snapshot form and the paths.
package ebpfmaps

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
)

// Kind is the `type` of the kind's source sections.
const Kind = "ebpf-maps"

const (
	// maxPins bounds the pins one round considers (all paths together).
	maxPins = 4096
	// maxWalkEntries bounds the directory entries one round's walk visits.
	maxWalkEntries = 65536
)

var processHalf = httpsource.Kind{Name: Kind, NewParser: func() httpsource.Parser { return &parser{} }, DottedNames: true}

var ownOptions = []config.SourceOption{
	{Name: "pins", Doc: "map pins: pin files or bpffs directories (walked recursively), separated by whitespace or commas"},
	{Name: "per-cpu", Default: "false", HasDefault: true, Doc: "per-CPU maps: write each CPU's values (…​.cpu.<n>.<value field>) instead of their sum"},
	{Name: "group-by", Doc: "a key field (e.g. pid) whose values are PIDs: each PID is one aggregation instance, named by its program (/proc/<pid>/comm)"},
	{Name: "max-entries", Default: "100000", HasDefault: true, Doc: "entries read per map and round; the rest are counted and logged"},
	{Name: "layout", Family: true, Doc: "layout.<map> = key=u32:pid,u16:code value=u64:count: the layout of a map without BTF"},
}

func init() {
	sources.Register(sources.Kind{
		Name: Kind,
		Config: &config.SourceKind{
			Options:      append(append([]config.SourceOption(nil), ownOptions...), httpsource.ProcessOptions...),
			CheckPull:    checkPull,
			CheckProcess: httpsource.CheckProcess(),
		},
		NewProvider: newProvider,
		NewFormat:   processHalf.NewFormat,
	})
}

// pullSettings are the typed options of a source, for stats-pull.
type pullSettings struct {
	pins       []string
	perCPU     bool
	groupBy    string
	maxEntries int
	layouts    map[string]Layout   // by map (instance) name
	declared   map[string]Declared // by instance name (NewReader)
	missing    string              // a hint for a pin that does not exist (NewReader)
	process    httpsource.Process
}

func (p pullSettings) ProcessSettings() httpsource.Process { return p.process }

func checkPull(s *config.Source) error {
	var st pullSettings
	var err error
	st.pins = strings.FieldsFunc(s.String("pins"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(st.pins) == 0 {
		return s.Fail("pins", "must name at least one pin file or bpffs directory")
	}
	if len(st.pins) > maxPins {
		return s.Fail("pins", "too many paths")
	}
	if st.perCPU, err = s.Bool("per-cpu"); err != nil {
		return err
	}
	st.groupBy = s.String("group-by")
	if strings.ContainsAny(st.groupBy, " \t") {
		return s.Fail("group-by", "one key field name")
	}
	n, err := s.Int("max-entries", 1, 10_000_000)
	if err != nil {
		return err
	}
	st.maxEntries = int(n)
	st.layouts = map[string]Layout{}
	for _, o := range s.Family("layout") {
		name, ok := strings.CutPrefix(o.Key, "layout.")
		if !ok || name == "" {
			return s.Fail(o.Key, "want layout.<map>")
		}
		l, err := ParseLayout(o.Value)
		if err != nil {
			return s.Fail(o.Key, err.Error())
		}
		st.layouts[name] = l
	}
	if st.process, err = httpsource.ReadProcess(s); err != nil {
		return err
	}
	s.Settings = st
	return nil
}

func newProvider(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	st, ok := src.Settings.(pullSettings)
	if !ok {
		return nil, errors.New("source was not validated for stats-pull")
	}
	return &provider{info: sources.Info(src), st: st, log: log}, nil
}
