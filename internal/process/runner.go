// Package process turns published snapshots into delivered metric lines: it watches the spool,
// hands snapshots oldest-first to workers, lets a format parse and aggregate each one into
// chunks of lines, hands the chunks to every dispatcher and removes a snapshot only once all of
// them acknowledged it. A snapshot that cannot be used at all is quarantined, never deleted.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// Format parses and aggregates one snapshot directory into lines stamped ts, handing them to
// flush in chunks. One Format value serves one worker, so it may keep buffers between calls.
type Format interface {
	Process(dir string, ts int64, flush metric.FlushFunc) error
}

// Unusable is implemented by the error a Format returns when nothing in a snapshot can be used;
// such a snapshot is quarantined instead of retried forever.
type Unusable interface {
	error
	Unusable() string
}

// Options configure a Runner.
type Options struct {
	SrcDir      string
	Workers     int
	NewFormat   func() Format // called once per worker
	Dispatchers []dispatch.Dispatcher
	Log         *slog.Logger
	// RescanInterval is how often src-dir is listed again besides inotify events; it also
	// re-queues snapshots whose delivery failed. 0 disables the periodic rescan.
	RescanInterval time.Duration
	// DrainTimeout bounds how long a stop waits for queued chunks to be delivered; whatever is
	// not delivered by then stays on disk and is processed at the next start.
	DrainTimeout time.Duration
}

// Summary counts what a run did.
type Summary struct {
	Delivered   int64
	Quarantined int64
	Failed      int64 // kept on disk: delivery failed or the run was stopped
}

// Runner processes snapshots until stopped.
type Runner struct {
	o     Options
	log   *slog.Logger
	queue *queue

	watcher  atomic.Pointer[watcher]
	inflight sync.WaitGroup // snapshots whose delivery is not settled yet
	sum      struct{ delivered, quarantined, failed atomic.Int64 }
}

// New checks o and returns a Runner.
func New(o Options) (*Runner, error) {
	if o.Workers < 1 {
		return nil, fmt.Errorf("process: workers must be at least 1, got %d", o.Workers)
	}
	if len(o.Dispatchers) == 0 {
		return nil, errors.New("process: no dispatcher is enabled: configure [graphite] or [local-store]")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	return &Runner{o: o, log: o.Log, queue: newQueue()}, nil
}

// Summary returns the counts so far.
func (r *Runner) Summary() Summary {
	return Summary{
		Delivered:   r.sum.delivered.Load(),
		Quarantined: r.sum.quarantined.Load(),
		Failed:      r.sum.failed.Load(),
	}
}

// Run watches SrcDir and processes snapshots until ctx ends, then stops taking new snapshots,
// lets the dispatchers deliver for up to DrainTimeout and returns. ready is called once the
// watch is in place and the backlog is listed (its settled part queued; see watcher).
func (r *Runner) Run(ctx context.Context, ready func()) error {
	w, err := newWatcher(r.o.SrcDir, r.queue, r.log, r.o.RescanInterval)
	if err != nil {
		return err
	}
	r.watcher.Store(w)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); w.run(watchCtx) }()
	if ready != nil {
		ready()
	}
	err = r.work(ctx)
	stopWatch()
	<-watchDone
	return err
}

// Alive reports whether the spool watcher's event loop turned within the last 10 seconds, for
// the systemd watchdog. Workers waiting on a dispatcher (back-pressure while Graphite is down)
// are healthy and do not count.
func (r *Runner) Alive() bool {
	w := r.watcher.Load()
	return w == nil || time.Since(time.Unix(0, w.beat.Load())) < 10*time.Second
}

// Once processes every snapshot present in SrcDir, oldest first, waits until each one is
// delivered, quarantined or kept, and returns. It never waits for new snapshots.
func (r *Runner) Once(ctx context.Context) error {
	entries, err := spool.List(r.o.SrcDir)
	if err != nil {
		return fmt.Errorf("process: listing %s: %w", r.o.SrcDir, err)
	}
	for _, e := range entries {
		r.queue.push(e)
	}
	r.queue.close()
	return r.work(ctx)
}

// work runs the workers until intake ends (or the queue is closed and empty), then closes the
// dispatchers and waits until every snapshot's delivery is settled. Chunk hand-overs and the
// final delivery get DrainTimeout after intake ends.
func (r *Runner) work(intake context.Context) error {
	submit, cancelSubmit := context.WithCancel(context.Background())
	defer cancelSubmit()
	stopDrainTimer := context.AfterFunc(intake, func() {
		t := time.NewTimer(r.o.DrainTimeout)
		select {
		case <-t.C:
			cancelSubmit()
		case <-submit.Done():
			t.Stop()
		}
	})
	defer stopDrainTimer()

	var workers sync.WaitGroup
	for i := 0; i < r.o.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			format := r.o.NewFormat()
			for {
				s, ok := r.queue.pop(intake)
				if !ok {
					return
				}
				r.handle(submit, format, s)
			}
		}()
	}
	workers.Wait()

	var closeErr error
	for _, d := range r.o.Dispatchers {
		if err := d.Close(submit); err != nil {
			closeErr = errors.Join(closeErr, fmt.Errorf("closing %s: %w", d.Name(), err))
		}
	}
	r.inflight.Wait()
	return closeErr
}

// handle processes one snapshot. Its directory is removed later, by the delivery callback, once
// every dispatcher acknowledged every chunk.
func (r *Runner) handle(ctx context.Context, format Format, s snapshot) {
	log := r.log.With("snapshot", s.Path)
	// Not a real directory of regular files (a symlink, a FIFO…): quarantined, never followed or
	// opened. Gone (removed by hand or by another processor) or unreadable: nothing to deliver.
	if err := spool.CheckSnapshot(s.Path); err != nil {
		if unsafe := (*spool.UnsafeError)(nil); errors.As(err, &unsafe) {
			r.quarantine(s, unsafe.Reason)
		} else {
			log.Warn("snapshot disappeared or is unreadable before processing", "error", err)
		}
		r.queue.done(s.Name)
		return
	}
	if !s.valid {
		r.quarantine(s, fmt.Sprintf("directory name %q is not an integer epoch timestamp", s.Name))
		r.queue.done(s.Name)
		return
	}
	if missing, err := spool.PartialSources(s.Path); err != nil {
		log.Warn("cannot read the partial-snapshot record", "error", err)
	} else if len(missing) > 0 {
		log.Warn("partial snapshot: some sources failed during the pull; aggregates cover the others",
			"missing", len(missing), "sources", missing)
	}

	started := time.Now()
	r.inflight.Add(1)
	d := newDelivery(func(err error) {
		defer r.inflight.Done()
		defer r.queue.done(s.Name)
		var unusable Unusable
		if errors.As(err, &unusable) {
			// A Format flushes nothing before deciding that a snapshot is unusable.
			r.quarantine(s, unusable.Unusable())
			return
		}
		if err != nil {
			r.sum.failed.Add(1)
			log.Warn("snapshot kept on disk: not every line was delivered; it is retried later", "error", err)
			return
		}
		if err := spool.Remove(s.Path); err != nil {
			r.sum.failed.Add(1)
			log.Error("delivered, but removing the snapshot failed; it may be delivered again", "error", err)
			return
		}
		r.sum.delivered.Add(1)
		log.Debug("snapshot delivered and removed", "seconds", time.Since(started).Seconds())
	})
	err := format.Process(s.Path, s.ts, func(b *metric.Batch) error {
		return d.submit(ctx, r.o.Dispatchers, b)
	})
	d.finish(err)
}

func (r *Runner) quarantine(s snapshot, reason string) {
	dest, err := spool.Quarantine(r.o.SrcDir, s.Path, reason)
	if err != nil {
		r.sum.failed.Add(1)
		r.log.Error("cannot quarantine snapshot; it stays in place", "snapshot", s.Path, "reason", reason, "error", err)
		return
	}
	r.sum.quarantined.Add(1)
	r.log.Error("snapshot quarantined", "snapshot", s.Path, "to", dest, "reason", reason)
}
