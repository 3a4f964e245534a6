package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/process"
)

// --once on a terminal: a progress line, rewritten every second, of the snapshots done out of
// those listed, the lines per second and the time left at that pace. Not on a pipe or a file
// (systemd, cron, a test): the log then has the summary only.

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// showProgress writes the progress line to w every interval until stop is called, then clears
// it.
func showProgress(w io.Writer, summary func() process.Summary, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(w, "\r\033[K"+progressLine(summary(), time.Since(start)))
			}
		}
	}()
	return func() { cancel(); <-done }
}

// progressLine is "120/500 snapshots (2 quarantined), 45000 lines/s, ETA 1m20s".
func progressLine(s process.Summary, elapsed time.Duration) string {
	done := s.Delivered + s.Quarantined + s.Failed
	line := fmt.Sprintf("%d/%d snapshots", done, s.Listed)
	if s.Quarantined > 0 || s.Failed > 0 {
		line += fmt.Sprintf(" (%d quarantined, %d kept)", s.Quarantined, s.Failed)
	}
	secs := elapsed.Seconds()
	if secs > 0 {
		line += fmt.Sprintf(", %.0f lines/s", float64(s.Lines)/secs)
	}
	if done > 0 && s.Listed > done {
		eta := time.Duration(float64(elapsed) / float64(done) * float64(s.Listed-done))
		line += ", ETA " + eta.Round(time.Second).String()
	}
	return line
}
