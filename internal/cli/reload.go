package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/config"
)

// Signals ends ctx when SIGTERM or SIGINT arrives, and sends on reload for each SIGHUP (one
// pending at most: HUPs that arrive while one waits are one reload). haproxystats stopped on
// SIGHUP; the daemons re-read their configuration instead (systemctl reload).
func Signals(log *slog.Logger) (ctx context.Context, stop context.CancelFunc, reload <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	hup := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(sigs)
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					log.Info("reloading the configuration", "signal", s.String())
					select {
					case hup <- struct{}{}:
					default:
					}
					continue
				}
				log.Info("stopping", "signal", s.String())
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, cancel, hup
}

// Reload loads and validates the configuration of req again, printing nothing: the caller
// keeps its running configuration when it returns an error.
func Reload(req ConfigRequest) (*config.Config, *config.Loaded, error) {
	file, explicit := req.File, req.File != ""
	if !explicit {
		file = config.DefaultFile
	}
	loaded, err := config.Load(file, explicit, req.Dir)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loaded.Config(req.Program)
	if err != nil {
		return nil, nil, err
	}
	return cfg, loaded, nil
}

// Reloading reports that a reload began (RELOADING=1 with the monotonic time systemd's
// Type=notify-reload wants; Type=notify accepts it too).
func (s *Systemd) Reloading() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		s.notify("RELOADING=1")
		return
	}
	now := ts.Sec*1e6 + ts.Nsec/1e3
	s.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", now))
}

// Reloaded reports that the program runs again, with the new configuration or, after a
// rejected reload, the old one (status says which).
func (s *Systemd) Reloaded(status string) { s.notify("READY=1\nSTATUS=" + status) }

// StatusUpdates refreshes STATUS= from status every few seconds when it changed, until ctx
// ends or stop is called.
func (s *Systemd) StatusUpdates(ctx context.Context, status func() string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(StatusInterval)
		defer t.Stop()
		last := status()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if st := status(); st != last {
					s.Status(st)
					last = st
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// StatusInterval is how often StatusUpdates looks at the status.
var StatusInterval = 5 * time.Second
