// Command stats-pull pulls raw statistics from HAProxy stats sockets every pull-interval and
// publishes them as snapshot directories in a filesystem spool, for stats-process. It is a
// drop-in successor of haproxystats-pull; the spool contract is in package spool.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
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
	cfg, loaded, code := cli.LoadConfig(args.ConfigRequest(config.PullProgram), os.Stdout, os.Stderr)
	if cfg == nil {
		return code
	}
	log := cli.Logger(cfg.Pull.Loglevel, "stats-pull", loaded)
	// Signals are caught from here on, so one that arrives during start-up still exits 0.
	ctx, stop := cli.SignalContext(log)
	defer stop()

	w, err := spool.NewWriter(cfg.Pull.DstDir, cfg.Pull.TmpDstDir, log)
	if err != nil {
		log.Error("cannot use the spool", "error", err)
		return 1
	}
	defer w.Close()
	providers, err := sources.Providers(cfg, log)
	if err != nil {
		log.Error("cannot set up the sources", "error", err)
		return 1
	}
	loop, err := pull.NewLoop(w, providers, pull.OptionsFrom(cfg.Pull), log)
	if err != nil {
		log.Error("invalid settings", "error", err)
		return 1
	}

	if args.Bool("--once") {
		path := loop.Once(ctx)
		if path == "" {
			return 1
		}
		fmt.Println(path)
		return 0
	}

	var names []string
	for _, p := range providers {
		names = append(names, p.Info().Source)
	}
	log.Info("started", "version", cli.Version, "sources", strings.Join(names, ","), "dst-dir", w.DstDir(), "tmp-dst-dir", w.TmpDir(),
		"pull-interval", cfg.Pull.PullInterval, "pull-timeout", cfg.Pull.PullTimeout,
		"queue-size", cfg.Pull.QueueSize, "allow-partial", cfg.Pull.AllowPartial)
	sd := cli.NewSystemd(log)
	sd.Ready(ctx, "pulling into "+w.DstDir(), loop.Alive)
	err = loop.Run(ctx)
	sd.Stopping()
	if err != nil {
		log.Error("stopping", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
