// Command stats-process aggregates the snapshots that stats-pull publishes (HAProxy and the
// named sources) into Graphite plaintext lines and delivers them to Graphite and/or the local
// store.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/graphite"
	"github.com/statspipe/statspipe/internal/dispatch/kafka"
	"github.com/statspipe/statspipe/internal/dispatch/localstore"
	"github.com/statspipe/statspipe/internal/dispatch/ship"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/sources"
	_ "github.com/statspipe/statspipe/internal/sources/all" // registers every source kind
	"github.com/statspipe/statspipe/internal/spool"
)

const usage = `Aggregate the snapshots of stats-pull (HAProxy and named sources) and send the lines to
Graphite, a local store or Kafka, or ship the raw snapshots to Kafka ([ship]). With a [central]
section it is the central tier instead: it consumes shipped snapshots and per-host lines from
Kafka and aggregates across hosts.

Usage:
    stats-process [-f <file>] [-d <dir>] [-p | -P] [--once [--once-timeout <seconds>]]
    stats-process [-f <file>] [-d <dir>] --check
    stats-process (-h | --help)
    stats-process (-v | --version)

Options:
    -f, --file <file>  configuration file with settings (default: /etc/haproxystats.conf;
                       when that default is missing the built-in defaults apply)
    -d, --dir <dir>    directory with additional configuration files (*.conf, read in
                       sorted order after the main file; later files win)
    -p, --print        show default settings
    -P, --print-conf   show the effective configuration, even when invalid: what
                       the check below finds goes to stderr, and the exit status is then 1
    --check            check the configuration as a start would, and the directories and
                       files it names, without changing anything; print every problem, or
                       "configuration OK: <file>"; exit status 1 when there is a problem
    --once             process every snapshot present in src-dir, oldest first, then exit
                       (exit status 1 if any snapshot was quarantined or not delivered; those
                       not delivered stay in src-dir and are listed in the log). Graphite gets
                       one round of connection attempts (retries + 1) and one stall-timeout
    --once-timeout <seconds>
                       with --once: give up when no dispatcher delivered anything for this
                       long, e.g. while Graphite is unreachable [default: 60]
    -h, --help         show this screen
    -v, --version      show version
`

func main() { os.Exit(run(os.Args[1:])) }

func run(argv []string) int {
	args, code, ok := cli.ParseArgs(usage, argv)
	if !ok {
		return code
	}
	once := args.Bool("--once")
	onceTimeout, err := parseOnceTimeout(args.String("--once-timeout"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats-process:", err)
		return 1
	}
	req := args.ConfigRequest(config.ProcessProgram)
	cfg, loaded, code := cli.LoadConfig(req, os.Stdout, os.Stderr)
	if cfg == nil {
		return code
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Process.Loglevel)
	log := cli.Logger(level, "stats-process", loaded)
	setUpSelfMetrics(cfg)

	if cfg.Central != nil {
		if once {
			fmt.Fprintln(os.Stderr, "stats-process: --once does not apply with [central]: the central tier consumes from Kafka until stopped")
			return 2
		}
		return runCentral(cfg, req, level, log)
	}
	if once {
		runner, err := newRunner(cfg, true, onceTimeout, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "stats-process:", err)
			return 1
		}
		ctx, stop := cli.SignalContext(log)
		defer stop()
		log.Info("started", "version", cli.Version, "src-dir", cfg.Process.SrcDir, "workers", cfg.Process.Workers, "once", once)
		start := time.Now()
		stopProgress := func() {}
		if isTerminal(os.Stderr) {
			stopProgress = showProgress(os.Stderr, runner.Summary, time.Second)
		}
		err = runner.Once(ctx)
		stopProgress()
		sum := runner.Summary()
		elapsed := time.Since(start)
		log.Info("done", "listed", sum.Listed, "delivered", sum.Delivered, "quarantined", sum.Quarantined, "kept", sum.Failed,
			"left", sum.Left, "lines", sum.Lines, "bytes", sum.Bytes, "seconds", elapsed.Round(time.Millisecond).Seconds(),
			"lines_per_second", int64(float64(sum.Lines)/max(elapsed.Seconds(), 1e-3)))
		if err != nil {
			log.Error("stopping", "error", err)
			return 1
		}
		if sum.Quarantined > 0 || sum.Failed > 0 || sum.Left > 0 {
			return 1
		}
		return 0
	}

	runner, err := newRunner(cfg, false, 0, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats-process:", err)
		return 1
	}
	ctx, stop, reload := cli.Signals(log)
	defer stop()
	log.Info("started", "version", cli.Version, "src-dir", cfg.Process.SrcDir, "workers", cfg.Process.Workers, "once", once)
	sd := cli.NewSystemd(log)
	type running struct {
		runner *process.Runner
		srcDir string
	}
	var cur atomic.Pointer[running]
	cur.Store(&running{runner, cfg.Process.SrcDir})
	status := func() string { c := cur.Load(); return processStatus(c.srcDir, c.runner) }
	srv, err := serveSelfMetrics(cfg.Process.Listen, func() bool { return cur.Load().runner.Alive() }, log)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer func() { srv.Close() }()
	var total process.Summary
	started := false
	for {
		// One runner per configuration. A reload stops it the way SIGTERM does — no new
		// snapshot taken, those in flight delivered (or kept in the spool) — and starts the
		// next, which finds the queue where it was.
		runCtx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func(r *process.Runner, first bool) {
			done <- r.Run(runCtx, func() {
				if first {
					sd.Ready(ctx, status(), func() bool { return cur.Load().runner.Alive() })
					sd.StatusUpdates(ctx, status)
				} else {
					sd.Reloaded(status())
				}
			})
		}(runner, !started)
		started = true
		var next *process.Runner
		for next == nil {
			select {
			case err := <-done:
				stopRun()
				sd.Stopping()
				add(&total, runner.Summary())
				log.Info("stopped", "delivered", total.Delivered, "quarantined", total.Quarantined, "kept", total.Failed)
				if err != nil {
					log.Error("stopping", "error", err)
					return 1
				}
				return 0
			case <-reload:
				sd.Reloading()
				ncfg, nloaded, err := cli.Reload(req)
				if err == nil {
					next, err = newRunner(ncfg, false, 0, log)
				}
				if err != nil {
					log.Error("reload rejected: the running configuration stays", "error", err)
					sd.Reloaded("reload rejected, running the previous configuration: " + err.Error())
					continue
				}
				for _, w := range nloaded.Warnings {
					log.Warn(w)
				}
				stopRun()
				if err := <-done; err != nil {
					log.Error("the previous configuration's runner stopped with an error", "error", err)
				}
				add(&total, runner.Summary())
				level.Set(ncfg.Process.Loglevel)
				runner = next
				cur.Store(&running{runner, ncfg.Process.SrcDir})
				selfMetrics.srcDir.Store(&ncfg.Process.SrcDir)
				if ncfg.Process.Listen != cfg.Process.Listen {
					srv.Close()
					srv, err = serveSelfMetrics(ncfg.Process.Listen, func() bool { return cur.Load().runner.Alive() }, log)
					if err != nil {
						log.Error("reloaded without /metrics and /healthz: "+err.Error(), "listen", ncfg.Process.Listen)
					}
				}
				cfg = ncfg
				log.Info("reloaded", "src-dir", ncfg.Process.SrcDir, "workers", ncfg.Process.Workers, "sources", len(ncfg.Sources))
			}
		}
	}
}

// newRunner sets up the dispatchers, the sources' formats and the runner of cfg.
func newRunner(cfg *config.Config, once bool, onceTimeout time.Duration, log *slog.Logger) (*process.Runner, error) {
	formats, err := sources.Formats(cfg, log)
	if err != nil {
		return nil, err
	}
	var dispatchers []dispatch.Dispatcher
	if cfg.Graphite.Enabled {
		metric.SetFreeChunks((cfg.Graphite.QueueBytes*5/4)/metric.DefaultChunkSize + 2*cfg.Process.Workers + 2)
		newGraphite := graphite.New
		if once {
			newGraphite = graphite.NewOnce
		}
		g := newGraphite(cfg.Graphite, log.With("dispatcher", "graphite"))
		g.SetMetrics(selfMetrics.process.Dispatcher(g.Name()))
		dispatchers = append(dispatchers, g)
	}
	if cfg.LocalStore != nil {
		ls := localstore.New(*cfg.LocalStore, log.With("dispatcher", "local-store"))
		ls.SetMetrics(selfMetrics.process.Dispatcher(ls.Name()))
		dispatchers = append(dispatchers, ls)
	}
	if cfg.Ship != nil {
		g := cfg.Graphite
		prefix := metric.HostPrefix(g.Namespace, g.Hostname, true, g.FQDN)
		sh, err := ship.New(*cfg.Ship, ship.Options{Host: strings.TrimPrefix(prefix, metric.Namespace(g.Namespace)+".")},
			log.With("dispatcher", "ship"))
		if err != nil {
			closeAll(dispatchers)
			return nil, err
		}
		sh.SetMetrics(selfMetrics.process.Dispatcher(sh.Name()))
		dispatchers = append(dispatchers, sh)
	}
	if cfg.Kafka != nil {
		g := cfg.Graphite
		k, err := kafka.New(*cfg.Kafka, kafka.Options{HostKey: metric.HostPrefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN),
			Namespace: seriesNamespace(g)},
			log.With("dispatcher", "kafka"))
		if err != nil {
			closeAll(dispatchers)
			return nil, err
		}
		k.SetMetrics(selfMetrics.process.Dispatcher(k.Name()))
		dispatchers = append(dispatchers, k)
	}
	var selfPart func() process.Format
	if cfg.Process.SelfMetrics {
		g := cfg.Graphite
		prefix := metric.HostPrefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN)
		selfPart = func() process.Format { return selfmetrics.NewLineWriter(selfMetrics.reg, prefix) }
	}
	statusDir := cfg.Process.SrcDir
	if cfg.Central != nil {
		statusDir = cfg.Central.WorkDir // no spool: the freshness check reads it there
	}
	runner, err := process.New(process.Options{
		SrcDir:         cfg.Process.SrcDir,
		StatusDir:      statusDir,
		Workers:        cfg.Process.Workers,
		NewFormats:     formats,
		Dispatchers:    dispatchers,
		Log:            log,
		RescanInterval: cfg.Process.LivenessCheckInterval,
		OnceTimeout:    onceTimeout,
		DeliveryLog:    deliveryLog(cfg.Process.LogDeliveries),
		Metrics:        selfMetrics.process,
		NewSelfPart:    selfPart,
	})
	if err != nil {
		closeAll(dispatchers)
		return nil, err
	}
	return runner, nil
}

// seriesNamespace is the namespace whose next component record-key = series leaves out of a
// line's key: none without host names.
func seriesNamespace(g config.Graphite) string {
	if !g.PrefixHostname {
		return ""
	}
	return metric.Namespace(g.Namespace)
}

// closeAll closes dispatchers to which nothing was submitted.
func closeAll(dispatchers []dispatch.Dispatcher) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, d := range dispatchers {
		d.Close(ctx)
	}
}

// deliveryLog is the level of the line per delivered snapshot.
func deliveryLog(on bool) slog.Level {
	if on {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func add(total *process.Summary, s process.Summary) {
	total.Delivered += s.Delivered
	total.Quarantined += s.Quarantined
	total.Failed += s.Failed
}

// processStatus is the unit's STATUS=: the queue and what was delivered.
func processStatus(srcDir string, r *process.Runner) string {
	s := "watching " + srcDir
	if entries, err := spool.List(srcDir); err == nil {
		s += fmt.Sprintf("; queue %d", len(entries))
		if len(entries) > 0 {
			s += " (oldest " + entries[0].Name + ")"
		}
	}
	sum := r.Summary()
	s += fmt.Sprintf("; delivered %d, quarantined %d", sum.Delivered, sum.Quarantined)
	if last := r.LastDelivered(); last != "" {
		s += "; last snapshot " + last
	}
	return s
}

const maxOnceTimeout = 7 * 24 * time.Hour

// parseOnceTimeout reads --once-timeout: seconds, fractions allowed, more than 0.
func parseOnceTimeout(s string) (time.Duration, error) {
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) || secs <= 0 || secs > maxOnceTimeout.Seconds() {
		return 0, fmt.Errorf("--once-timeout %q: want a number of seconds greater than 0 and at most %d",
			s, int(maxOnceTimeout.Seconds()))
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// selfMetrics is the program's self-metrics registry: made once, so that its counters survive
// reloads (a new runner and new dispatchers per configuration).
var selfMetrics struct {
	reg     *selfmetrics.Registry
	process *selfmetrics.Process
	srcDir  atomic.Pointer[string]
}

func setUpSelfMetrics(cfg *config.Config) {
	reg := selfmetrics.New("process")
	selfMetrics.reg = reg
	selfMetrics.process = selfmetrics.NewProcess(reg)
	selfMetrics.srcDir.Store(&cfg.Process.SrcDir)
	reg.AddQueue(func() string { return *selfMetrics.srcDir.Load() })
	reg.AddProcessStats()
	selfmetrics.SetDefault(reg)
}

// serveSelfMetrics serves /metrics and /healthz on listen (nil, nil when it is empty); alive is
// the running runner's watcher check.
func serveSelfMetrics(listen string, alive func() bool, log *slog.Logger) (*selfmetrics.Server, error) {
	if listen == "" {
		return nil, nil
	}
	health := func() (bool, string) {
		return selfMetrics.process.Health(alive, func() (int, time.Duration) {
			entries, err := spool.List(*selfMetrics.srcDir.Load())
			if err != nil || len(entries) == 0 {
				return 0, 0
			}
			ts, ok := spool.TimestampOf(entries[0].Name)
			if !ok {
				return len(entries), 0
			}
			return len(entries), time.Since(time.Unix(ts, 0))
		})
	}
	srv, err := selfmetrics.Serve(listen, selfMetrics.reg, health, log)
	if err != nil {
		return nil, fmt.Errorf("cannot serve /metrics and /healthz ([process] listen = %s): %w", listen, err)
	}
	return srv, nil
}
