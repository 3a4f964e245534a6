// Package scope is the Weave Scope plugin source kind (`type = scope`): every round, the
// plugins found in socket-dir (each `<socket-dir>/<id>/<id>.sock`, Scope's layout; plugins
// come and go) are asked for their report (GET /report?api_version=1 over the UNIX socket,
// with Scope's 500 ms budget and 50 MB cap), each report checked as it streams in and kept as
// it was received, with the names of this host's processes it mentions. stats-process then
// feeds every node of every topology to the aggregation engine as one instance, the Process
// nodes under the name of their program, so that a plugin's per-process metrics come out per
// program (the sum across its PIDs, and percentiles or spread across them on request).
//
// README.md in this folder documents the options, the paths, the host rule and a worked
// example.
package scope

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
)

// Kind is the `type` of the kind's source sections.
const Kind = "scope"

const (
	// DefaultSocketDir is Scope's probe default (-probe.plugins.root).
	DefaultSocketDir = "/var/run/scope/plugins"
	// MaxBodySize is Scope's cap on a report ("response must be shorter than 50MB").
	MaxBodySize = 50 << 20
	// maxDirEntries bounds what one round reads of socket-dir and of each of its directories.
	maxDirEntries = 4096
)

var processHalf = httpsource.Kind{Name: Kind, NewParser: func() httpsource.Parser { return &parser{} }, DottedNames: true}

var ownOptions = []config.SourceOption{
	{Name: "socket-dir", Default: DefaultSocketDir, HasDefault: true,
		Doc: "where plugins put their sockets: <socket-dir>/<id>/<id>.sock (and <socket-dir>/<id>.sock), listed every round"},
	{Name: "timeout", Default: "0.5", HasDefault: true, Doc: "seconds for one plugin's whole request, body included (Scope's budget)"},
	{Name: "max-body-size", Default: "52428800", HasDefault: true, Doc: "bytes of one report (Scope's 50 MB cap); a longer one fails the plugin"},
	{Name: "max-plugins", Default: "64", HasDefault: true, Doc: "plugins per round; more sockets than this fail the source for the round"},
	{Name: "host-id", Doc: "the host part of this host's Process node IDs (<host>;<pid>); default: the hostname (os.Hostname), as Scope and its plugins use"},
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
	socketDir  string
	timeout    time.Duration
	maxBody    int64
	maxPlugins int
	hostID     string
	process    httpsource.Process
}

func (p pullSettings) ProcessSettings() httpsource.Process { return p.process }

func checkPull(s *config.Source) error {
	var st pullSettings
	var err error
	st.socketDir = s.String("socket-dir")
	if st.socketDir == "" {
		return s.Fail("socket-dir", "must not be empty")
	}
	if st.timeout, err = s.Seconds("timeout", time.Millisecond); err != nil {
		return err
	}
	if st.maxBody, err = s.Int("max-body-size", 4096, 16<<30); err != nil {
		return err
	}
	n, err := s.Int("max-plugins", 1, httpsource.MaxInstances)
	if err != nil {
		return err
	}
	st.maxPlugins = int(n)
	st.hostID = s.String("host-id")
	if st.hostID == "" {
		if st.hostID, err = os.Hostname(); err != nil {
			return s.Fail("host-id", "not set, and the hostname is unknown: "+err.Error())
		}
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
	info := sources.Info(src)
	info.EmptyOK = true // plugins come and go: a round without one is no failure
	return &provider{info: info, st: st, log: log, clients: map[string]*pluginClient{}}, nil
}
