// Package statspipe registers the statspipe source kind: stats-pull's own metrics. With
// [pull] self-metrics = true, stats-pull writes, at the end of every round that publishes, a
// part statspipe/ holding source.json and pull.body, one `<name> <value>` line per self-metric
// (values as of the end of the round, before the snapshot is published); stats-process turns it
// into `<namespace>[.<host>].statspipe.<name> <value> <timestamp>` lines. The source name
// statspipe is reserved (config.SelfMetricsSourceName); the kind has no [source.*] sections.
package statspipe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

// BodyFile is the part's one data file.
const BodyFile = "pull" + spool.BodySuffix

// maxBody bounds what the process half reads of BodyFile: the registry holds at most a few
// thousand series.
const maxBody = 4 << 20

func init() {
	sources.Register(sources.Kind{
		Name:        config.SelfMetricsSourceName,
		NewProvider: newProvider,
		NewFormat:   newFormat,
	})
}

func newProvider(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	reg := selfmetrics.Default()
	if reg == nil {
		// A program that set up no registry (a configuration check, a test) writes an
		// empty body: there is nothing counted to write.
		reg = selfmetrics.New("pull")
	}
	return provider{reg}, nil
}

type provider struct{ reg *selfmetrics.Registry }

func (p provider) Info() pull.ProviderInfo {
	return pull.ProviderInfo{Source: config.SelfMetricsSourceName, Kind: config.SelfMetricsSourceName, Late: true}
}

func (p provider) Sources(context.Context) ([]pull.Source, error) {
	return []pull.Source{source(p)}, nil
}

type source provider

func (s source) Name() string { return "pull" }

func (s source) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	f, err := snap.Create(BodyFile)
	if err != nil {
		return err
	}
	if _, err := f.Write(s.reg.AppendBody(nil)); err != nil {
		return err
	}
	return f.Commit()
}

func newFormat(cfg *config.Config, log *slog.Logger) (func() process.Format, error) {
	g := cfg.Graphite
	prefix := metric.HostPrefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN) + "." + config.SelfMetricsSourceName + "."
	return func() process.Format { return &format{prefix: prefix, chunker: metric.NewChunker(0)} }, nil
}

type format struct {
	prefix  string
	chunker *metric.Chunker
}

// Process writes one line per `<name> <value>` line of BodyFile. A malformed line is left out
// and named in the returned (Rejected) error, after the others were flushed.
func (f *format) Process(dir string, ts int64, flush metric.FlushFunc) error {
	body, err := spool.OpenSnapshotFile(filepath.Join(dir, BodyFile))
	if err != nil {
		return process.UnusableError(fmt.Errorf("statspipe: %w", err))
	}
	defer body.Close()
	c := f.chunker
	c.Reset(flush, dir, ts)
	sc := bufio.NewScanner(io.LimitReader(body, maxBody))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var bad []string
	for n := 1; sc.Scan(); n++ {
		name, value, ok := parseLine(sc.Bytes())
		if !ok {
			if len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("line %d: %.80q", n, sc.Text()))
			}
			continue
		}
		b := c.Start()
		b = append(b, f.prefix...)
		b = append(b, name...)
		b = append(b, ' ')
		b = metric.AppendFloat(b, value)
		c.End(b)
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, err.Error())
	}
	if err := c.Close(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return rejected("statspipe " + BodyFile + ": not `<name> <value>`: " + strings.Join(bad, "; "))
	}
	return nil
}

// parseLine splits `<name> <value>`: a dotted name of path-safe components and a number.
func parseLine(line []byte) ([]byte, float64, bool) {
	i := bytes.IndexByte(line, ' ')
	if i <= 0 {
		return nil, 0, false
	}
	name, val := line[:i], line[i+1:]
	v, err := strconv.ParseFloat(string(val), 64)
	if err != nil {
		return nil, 0, false
	}
	for j, part := range bytes.Split(name, []byte{'.'}) {
		if len(part) == 0 || j == 0 && string(part) != "pull" {
			return nil, 0, false
		}
		for _, c := range part {
			if c <= ' ' || c == 0x7f || c == '/' || c == ';' {
				return nil, 0, false
			}
		}
	}
	return name, v, true
}

type rejected string

func (r rejected) Error() string    { return string(r) }
func (r rejected) Rejected() string { return string(r) }
