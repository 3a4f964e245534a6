// Command stats-pull pulls raw statistics from HAProxy stats sockets every pull-interval and
// publishes them as snapshot directories in a filesystem spool, for stats-process. It is a
// drop-in successor of haproxystats-pull; the spool contract is in package spool.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/sources"
	_ "github.com/statspipe/statspipe/internal/sources/all" // registers every source kind
	"github.com/statspipe/statspipe/internal/spool"
)

const usage = `Pull statistics (HAProxy stats sockets, named sources) into snapshot directories for
stats-process.

Usage:
    stats-pull [-f <file>] [-p | -P] [--once]
    stats-pull [-f <file>] --check
    stats-pull (-h | --help)
    stats-pull (-v | --version)

Options:
    -f, --file <file>  configuration file with settings (default: /etc/haproxystats.conf;
                       when that default is missing the built-in defaults apply)
    -p, --print        show default settings
    -P, --print-conf   show the effective configuration, even when invalid: what
                       the check below finds goes to stderr, and the exit status is then 1
    --check            check the configuration as a start would, and the directories and
                       sockets it names, without changing anything; print every problem,
                       or "configuration OK: <file>"; exit status 1 when there is a problem
    --once             pull one round now, publish it, print its path and exit (exit
                       status 1 when nothing was published; the log says why)
    -h, --help         show this screen
    -v, --version      show version
`

func main() { os.Exit(run(os.Args[1:])) }

func run(argv []string) int {
	args, code, ok := cli.ParseArgs(usage, argv)
	if !ok {
		return code
	}
	req := args.ConfigRequest(config.PullProgram)
	cfg, loaded, code := cli.LoadConfig(req, os.Stdout, os.Stderr)
	if cfg == nil {
		return code
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Pull.Loglevel)
	log := cli.Logger(level, "stats-pull", loaded)
	setUpSelfMetrics(cfg)

	if args.Bool("--once") {
		// Signals are caught from here on, so one that arrives during start-up still exits 0.
		ctx, stop := cli.SignalContext(log)
		defer stop()
		p, err := newPuller(cfg, nil, log)
		if err != nil {
			log.Error(err.Error())
			return 1
		}
		defer p.w.Close()
		path := p.loop.Once(ctx)
		if path == "" {
			return 1
		}
		fmt.Println(path)
		return 0
	}

	ctx, stop, reload := cli.Signals(log)
	defer stop()
	p, err := newPuller(cfg, nil, log)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer func() { p.w.Close() }()
	srv, err := serveSelfMetrics(cfg.Pull.Listen, log)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer func() { srv.Close() }()
	log.Info("started", "version", cli.Version, "sources", p.names(), "dst-dir", p.w.DstDir(), "tmp-dst-dir", p.w.TmpDir(),
		"pull-interval", cfg.Pull.PullInterval, "pull-timeout", cfg.Pull.PullTimeout,
		"queue-size", cfg.Pull.QueueSize, "allow-partial", cfg.Pull.AllowPartial)
	var cur atomic.Pointer[puller]
	cur.Store(p)
	sd := cli.NewSystemd(log)
	sd.Ready(ctx, p.status(), func() bool { return cur.Load().loop.Alive() })
	stopStatus := sd.StatusUpdates(ctx, func() string { return cur.Load().status() })
	defer stopStatus()
	for {
		reloading, err := p.loop.RunUntil(ctx, reload)
		if err != nil {
			sd.Stopping()
			log.Error("stopping", "error", err)
			return 1
		}
		if !reloading {
			break
		}
		// Between rounds: the last one is published, the next starts with the new settings.
		sd.Reloading()
		next, nextLoaded, err := cli.Reload(req)
		var np *puller
		if err == nil {
			np, err = newPuller(next, p, log)
		}
		if err != nil {
			log.Error("reload rejected: the running configuration stays", "error", err)
			sd.Reloaded("reload rejected, running the previous configuration: " + err.Error())
			continue
		}
		for _, w := range nextLoaded.Warnings {
			log.Warn(w)
		}
		level.Set(next.Pull.Loglevel)
		p = np
		cur.Store(p)
		selfMetrics.dstDir.Store(&next.Pull.DstDir)
		selfMetrics.pull.SetSchedule(next.Pull.PullInterval, next.Pull.PullTimeout)
		if next.Pull.Listen != cfg.Pull.Listen {
			srv.Close()
			if srv, err = serveSelfMetrics(next.Pull.Listen, log); err != nil {
				log.Error("reloaded without /metrics and /healthz: "+err.Error(), "listen", next.Pull.Listen)
			}
		}
		cfg = next
		log.Info("reloaded", "sources", p.names(), "dst-dir", p.w.DstDir(), "pull-interval", next.Pull.PullInterval,
			"pull-timeout", next.Pull.PullTimeout, "queue-size", next.Pull.QueueSize)
		sd.Reloaded(p.status())
	}
	sd.Stopping()
	log.Info("stopped")
	return 0
}

// puller is what one configuration runs: the spool writer, the sources and the loop.
type puller struct {
	w         *spool.Writer
	providers []pull.Provider
	loop      *pull.Loop
}

// newPuller sets up cfg. On a reload, old is the running puller: its spool writer is kept
// when the spool directories are the same (its lock cannot be taken twice), else released
// for the new one, and taken back when the new configuration fails.
func newPuller(cfg *config.Config, old *puller, log *slog.Logger) (*puller, error) {
	p := &puller{}
	var err error
	switch {
	case old != nil && old.w.DstDir() == filepath.Clean(cfg.Pull.DstDir) && old.w.TmpDir() == filepath.Clean(cfg.Pull.TmpDstDir):
		p.w = old.w
	case old != nil:
		old.w.Close()
		if p.w, err = spool.NewWriter(cfg.Pull.DstDir, cfg.Pull.TmpDstDir, log); err != nil {
			w, rerr := spool.NewWriter(old.w.DstDir(), old.w.TmpDir(), log)
			if rerr != nil {
				return nil, fmt.Errorf("cannot use the new spool (%v) nor the old one again: %w", err, rerr)
			}
			*old.w = *w // the running loop holds old.w: it gets the lock back
			return nil, fmt.Errorf("cannot use the spool: %w", err)
		}
	default:
		if p.w, err = spool.NewWriter(cfg.Pull.DstDir, cfg.Pull.TmpDstDir, log); err != nil {
			return nil, fmt.Errorf("cannot use the spool: %w", err)
		}
	}
	fail := func(err error) (*puller, error) {
		if p.w != nil && (old == nil || p.w != old.w) {
			p.w.Close()
		}
		return nil, err
	}
	if p.providers, err = sources.Providers(cfg, log); err != nil {
		return fail(fmt.Errorf("cannot set up the sources: %w", err))
	}
	opt := pull.OptionsFrom(cfg.Pull)
	opt.Metrics = selfMetrics.pull
	if p.loop, err = pull.NewLoop(p.w, p.providers, opt, log); err != nil {
		return fail(fmt.Errorf("invalid settings: %w", err))
	}
	return p, nil
}

func (p *puller) names() string {
	var names []string
	for _, pr := range p.providers {
		names = append(names, pr.Info().Source)
	}
	return strings.Join(names, ",")
}

// status is the unit's STATUS=: where it pulls to, the queue and the last snapshot.
func (p *puller) status() string {
	s := "pulling " + p.names() + " into " + p.w.DstDir()
	if entries, err := spool.List(p.w.DstDir()); err == nil {
		s += fmt.Sprintf("; queue %d", len(entries))
	}
	if last := p.loop.LastPublished(); last != "" {
		s += "; last snapshot " + filepath.Base(last)
	}
	return s
}

// selfMetrics is the program's self-metrics registry: made once, so that its counters survive
// reloads (a new loop per configuration).
var selfMetrics struct {
	reg    *selfmetrics.Registry
	pull   *selfmetrics.Pull
	dstDir atomic.Pointer[string]
}

func setUpSelfMetrics(cfg *config.Config) {
	reg := selfmetrics.New("pull")
	selfMetrics.reg = reg
	selfMetrics.pull = selfmetrics.NewPull(reg)
	selfMetrics.pull.SetSchedule(cfg.Pull.PullInterval, cfg.Pull.PullTimeout)
	selfMetrics.dstDir.Store(&cfg.Pull.DstDir)
	reg.AddQueue(func() string { return *selfMetrics.dstDir.Load() })
	reg.AddProcessStats()
	selfmetrics.SetDefault(reg) // for the statspipe source kind ([pull] self-metrics)
}

// serveSelfMetrics serves /metrics and /healthz on listen (nil, nil when it is empty).
func serveSelfMetrics(listen string, log *slog.Logger) (*selfmetrics.Server, error) {
	if listen == "" {
		return nil, nil
	}
	srv, err := selfmetrics.Serve(listen, selfMetrics.reg, selfMetrics.pull.Health, log)
	if err != nil {
		return nil, fmt.Errorf("cannot serve /metrics and /healthz ([pull] listen = %s): %w", listen, err)
	}
	return srv, nil
}
