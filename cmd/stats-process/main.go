// Command stats-process aggregates the snapshots that stats-pull publishes (HAProxy and the
// named sources) into Graphite plaintext lines and delivers them to Graphite and/or the local
// store.
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/graphite"
	"github.com/statspipe/statspipe/internal/dispatch/localstore"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/sources"
	_ "github.com/statspipe/statspipe/internal/sources/all" // registers every source kind
)

const usage = `Aggregate the snapshots of stats-pull (HAProxy and named sources) and send the lines to
Graphite or a local store.

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
	cfg, loaded, code := cli.LoadConfig(args.ConfigRequest(config.ProcessProgram), os.Stdout, os.Stderr)
	if cfg == nil {
		return code
	}
	log := cli.Logger(cfg.Process.Loglevel, "stats-process", loaded)

	var dispatchers []dispatch.Dispatcher
	if cfg.Graphite.Enabled {
		// The Graphite dispatcher holds up to queue-bytes unproven plus a quarter of it in its
		// replay hold, and each worker one chunk in the making and one waiting to be accepted.
		metric.SetFreeChunks((cfg.Graphite.QueueBytes*5/4)/metric.DefaultChunkSize + 2*cfg.Process.Workers + 2)
		newGraphite := graphite.New
		if once {
			// Fails the queued chunks after one failed connect round (or a stall-timeout), so
			// that --once gives up then rather than at --once-timeout.
			newGraphite = graphite.NewOnce
		}
		dispatchers = append(dispatchers, newGraphite(cfg.Graphite, log.With("dispatcher", "graphite")))
	}
	if cfg.LocalStore != nil {
		dispatchers = append(dispatchers, localstore.New(*cfg.LocalStore, log.With("dispatcher", "local-store")))
	}
	formats, err := sources.Formats(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats-process:", err)
		return 1
	}
	runner, err := process.New(process.Options{
		SrcDir:         cfg.Process.SrcDir,
		Workers:        cfg.Process.Workers,
		NewFormats:     formats,
		Dispatchers:    dispatchers,
		Log:            log,
		RescanInterval: cfg.Process.LivenessCheckInterval,
		OnceTimeout:    onceTimeout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats-process:", err)
		return 1
	}

	ctx, stop := cli.SignalContext(log)
	defer stop()
	log.Info("started", "version", cli.Version, "src-dir", cfg.Process.SrcDir,
		"workers", cfg.Process.Workers, "once", once)
	if once {
		err = runner.Once(ctx)
		sum := runner.Summary()
		log.Info("done", "delivered", sum.Delivered, "quarantined", sum.Quarantined, "kept", sum.Failed,
			"left", sum.Left)
		if err != nil {
			log.Error("stopping", "error", err)
			return 1
		}
		if sum.Quarantined > 0 || sum.Failed > 0 || sum.Left > 0 {
			return 1
		}
		return 0
	}

	sd := cli.NewSystemd(log)
	err = runner.Run(ctx, func() {
		sd.Ready(ctx, "watching "+cfg.Process.SrcDir, runner.Alive)
	})
	sd.Stopping()
	sum := runner.Summary()
	log.Info("stopped", "delivered", sum.Delivered, "quarantined", sum.Quarantined, "kept", sum.Failed)
	if err != nil {
		log.Error("stopping", "error", err)
		return 1
	}
	return 0
}

// maxOnceTimeout bounds --once-timeout (a week) so that the duration cannot overflow.
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
