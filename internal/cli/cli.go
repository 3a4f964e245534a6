// Package cli holds what both mains share: loading and printing the configuration the way
// haproxystats did, logging, signals and the systemd notify protocol.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/statspipe/statspipe/internal/config"
)

// Version is set at build time with -ldflags "-X github.com/statspipe/statspipe/internal/cli.Version=…".
var Version = "dev"

// ConfigRequest is what the command line asked for.
type ConfigRequest struct {
	Program       config.Program
	File          string // "" = the default path
	Dir           string // -d, "" = none
	PrintDefaults bool   // -p
	PrintConfig   bool   // -P
	Check         bool   // --check
}

// LoadConfig loads and validates the configuration, or prints it for -p / -P, or checks it for
// --check. It returns a nil Config when the program should exit with the returned code (0 after
// printing, 1 on an error, which has been written to stderr as one line).
//
// --check writes every problem to stderr, one line each, then "configuration invalid: …" and
// returns 1, or writes "configuration OK: <files>" to stdout and returns 0. -P prints the
// configuration even when it is invalid, then writes what --check finds to stderr and returns 1
// when it found a problem: the output stays usable, and a script sees that it would not start.
func LoadConfig(req ConfigRequest, stdout, stderr io.Writer) (*config.Config, *config.Loaded, int) {
	if req.PrintDefaults {
		config.PrintDefaults(stdout, req.Program)
		return nil, nil, 0
	}
	file, explicit := req.File, req.File != ""
	if !explicit {
		file = config.DefaultFile
	}
	loaded, err := config.Load(file, explicit, req.Dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, 1
	}
	if req.Check {
		return nil, nil, check(loaded, req.Program).report(loaded, stdout, stderr, false)
	}
	if req.PrintConfig {
		if err := loaded.Print(stdout, req.Program); err != nil {
			fmt.Fprintln(stderr, err)
			return nil, nil, 1
		}
		return nil, nil, check(loaded, req.Program).report(loaded, stdout, stderr, true)
	}
	cfg, err := loaded.Config(req.Program)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, 1
	}
	return cfg, loaded, 0
}

// Logger returns a text logger on stderr at level, and logs the loader's notices and warnings.
func Logger(level slog.Leveler, program string, loaded *config.Loaded) *slog.Logger {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	log = log.With("program", program)
	if loaded != nil {
		for _, n := range loaded.Notices {
			log.Info(n)
		}
		for _, w := range loaded.Warnings {
			log.Warn(w)
		}
	}
	return log
}

// SignalContext ends when SIGTERM, SIGINT or SIGHUP arrives: for --once runs, where there is
// nothing to reload (the daemons use Signals).
func SignalContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			log.Info("stopping", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
		signal.Stop(sigs)
	}()
	return ctx, cancel
}

// Systemd speaks the sd_notify protocol when NOTIFY_SOCKET is set and does nothing otherwise.
type Systemd struct {
	log *slog.Logger
}

// NewSystemd returns a notifier.
func NewSystemd(log *slog.Logger) *Systemd { return &Systemd{log: log} }

// Ready reports start-up done and, when the unit has WatchdogSec, pings the watchdog at half
// the interval while alive() says the program is making progress, until ctx ends.
func (s *Systemd) Ready(ctx context.Context, status string, alive func() bool) {
	s.notify(daemon.SdNotifyReady + "\nSTATUS=" + status)
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if alive == nil || alive() {
					s.notify(daemon.SdNotifyWatchdog)
				} else {
					s.log.Error("not pinging the systemd watchdog: the main loop is stuck")
				}
			}
		}
	}()
}

// Status updates the unit's status text.
func (s *Systemd) Status(status string) { s.notify("STATUS=" + status) }

// Stopping reports that shutdown began.
func (s *Systemd) Stopping() { s.notify(daemon.SdNotifyStopping) }

func (s *Systemd) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		s.log.Warn("sd_notify failed", "error", err)
	}
}
