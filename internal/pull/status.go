package pull

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/status"
)

// roundStatus records every round in stats-pull's status file (internal/status), for the
// freshness check: the snapshot published, or why nothing was. The reason of a round that
// published nothing is the last warning or error the loop logged during it (its message and
// error), the same text the journal shows: every path that skips a round logs why.
type roundStatus struct {
	rec *status.PullRecorder
	mu  sync.Mutex
	why string // the last warning or error logged in the current round
}

// withStatus returns the loop's logger, which also notes the round's warnings and errors, and
// the status of the loop's rounds, written to dstDir.
func withStatus(dstDir string, log *slog.Logger) (*slog.Logger, *roundStatus) {
	s := &roundStatus{}
	s.rec = status.NewPullRecorder(dstDir, log)
	return slog.New(noteHandler{inner: log.Handler(), s: s}), s
}

// done records the round that published path ("" for nothing) with the sources failed.
func (s *roundStatus) done(ctx context.Context, path string, failed []spool.FailedSource, suspended bool) {
	s.mu.Lock()
	why := s.why
	s.why = ""
	s.mu.Unlock()
	fs := make([]status.Failure, len(failed))
	for i, f := range failed {
		fs[i] = status.Failure{Name: f.Name, Err: f.Err}
	}
	switch {
	case ctx.Err() != nil:
		// Stopping: the round was cut short, not failed.
	case path != "":
		s.rec.Published(filepath.Base(path), fs)
	case why != "":
		s.rec.Failed(why, fs)
	case suspended:
		s.rec.Failed("pulling suspended: the queue is full (queue-size); stats-process is not taking snapshots", nil)
	default:
		s.rec.Failed("nothing published this round", fs)
	}
}

func (s *roundStatus) note(r slog.Record) {
	why := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			why += ": " + a.Value.String()
			return false
		}
		return true
	})
	s.mu.Lock()
	s.why = why
	s.mu.Unlock()
}

// noteHandler passes records on to inner and notes those at warning level and above.
type noteHandler struct {
	inner slog.Handler
	s     *roundStatus
}

func (h noteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h noteHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.s.note(r)
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h noteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return noteHandler{inner: h.inner.WithAttrs(as), s: h.s}
}

func (h noteHandler) WithGroup(name string) slog.Handler {
	return noteHandler{inner: h.inner.WithGroup(name), s: h.s}
}
