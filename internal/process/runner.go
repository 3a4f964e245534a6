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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/lograte"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/status"
)

// Format parses and aggregates one part of a snapshot into lines stamped ts, handing them to
// flush in chunks: dir is the snapshot itself for its top-level (HAProxy) files, or a named
// source's directory in it (see spool.Parts). One Format value serves one worker, so it may
// keep buffers between calls. The runner owns the snapshot's chunk sequence: the chunks of
// every part are renumbered into one sequence, and only the snapshot's final chunk is Last.
//
// Process may return an error implementing dispatch.Rejected after flushing every line it could
// use (for example one line longer than max-line-length was left out): the snapshot is then
// delivered without it and quarantined with the reason, never retried.
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
	SrcDir string
	// StatusDir is where stats-process's status file is kept (default SrcDir): the central
	// tier, which has no spool, keeps it in its work-dir.
	StatusDir string
	Workers   int
	// NewFormats is called once per worker; the function it returns gives that worker's Format
	// of a kind, or false for a kind this program cannot process.
	NewFormats func() func(kind string) (Format, bool)
	// NewFormat, when NewFormats is nil, serves every kind (tests).
	NewFormat   func() Format
	Dispatchers []dispatch.Dispatcher
	Log         *slog.Logger
	// RescanInterval is how often src-dir is listed again besides inotify events; it also
	// re-queues snapshots whose delivery failed. 0 disables the periodic rescan.
	RescanInterval time.Duration
	// DrainTimeout bounds how long a stop waits for queued chunks to be delivered; whatever is
	// not delivered by then stays on disk and is processed at the next start.
	DrainTimeout time.Duration
	// OnceTimeout makes Once give up when no dispatcher acknowledged anything for that long
	// (0: never). See Once.
	OnceTimeout time.Duration
	// LogEvery is the least time between two warnings about the same ongoing fault (a
	// dispatcher failing snapshot after snapshot); the ones in between are counted and the
	// count is logged with the next one. Default 30 s.
	LogEvery time.Duration
	// DeliveryLog is the level of the line logged for each delivered snapshot (its lines,
	// bytes and time, and each dispatcher's time); the zero value is Info.
	DeliveryLog slog.Level
	// Metrics counts snapshots (self-metrics); nil counts nothing.
	Metrics *selfmetrics.Process
	// NewSelfPart, when set, is called once per worker; the Format it returns writes one more
	// part, built in (no files), at the end of every snapshot's chunk sequence: the
	// self-metrics lines, stamped with the snapshot's timestamp.
	NewSelfPart func() Format
}

// Summary counts what a run did.
type Summary struct {
	Delivered   int64
	Quarantined int64
	Failed      int64 // attempts kept on disk: delivery failed or the run was stopped
	// Left is, after Once, the number of the snapshots it listed that are still in src-dir
	// (not delivered, whether tried or not).
	Left int64
	// Listed is, during and after Once, the number of snapshots it found.
	Listed int64
	// Lines and Bytes are those of the snapshots delivered.
	Lines, Bytes int64
}

// Runner processes snapshots until stopped.
type Runner struct {
	o     Options
	log   *slog.Logger
	queue *queue
	limit *logLimiter

	watcher  atomic.Pointer[watcher]
	inflight sync.WaitGroup // snapshots whose delivery is not settled yet
	// closeMu orders Deliver's inflight.Add before Close's Wait: a retry timer may fire while
	// the central tier stops, and a delivery begun after Close is refused (ErrClosed).
	closeMu sync.Mutex
	closed  bool
	sum     struct{ delivered, quarantined, failed, left, listed, lines, bytes atomic.Int64 }
	// lastDelivered is the name of the snapshot delivered last.
	lastDelivered atomic.Pointer[string]

	// lastProgress (unix nanoseconds) is when a dispatcher last acknowledged a chunk or a
	// snapshot was settled; Once gives up when it is older than OnceTimeout.
	lastProgress atomic.Int64
	// keptHook, when set (by Once), is called whenever a snapshot is kept on disk because a
	// dispatcher gave up on it.
	keptHook func()

	records records

	status *status.ProcessRecorder // stats-process's status file, for the freshness check

	// Deliver's formats, one set per worker (made at the first call).
	deliverOnce sync.Once
	formats     chan func(kind string) (Format, bool)
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
	if o.LogEvery <= 0 {
		o.LogEvery = 30 * time.Second
	}
	r := &Runner{o: o, log: o.Log, queue: newQueue(), limit: newLogLimiter(o.Log, o.LogEvery, time.Now)}
	r.records.byName = map[string]*record{}
	statusDir := o.StatusDir
	if statusDir == "" {
		statusDir = o.SrcDir
	}
	r.status = status.NewProcessRecorder(statusDir, o.Log) // status hook: see settle and outcome
	return r, nil
}

// LastDelivered is the name of the snapshot delivered last ("" none yet).
func (r *Runner) LastDelivered() string {
	if p := r.lastDelivered.Load(); p != nil {
		return *p
	}
	return ""
}

// Summary returns the counts so far.
func (r *Runner) Summary() Summary {
	return Summary{
		Delivered:   r.sum.delivered.Load(),
		Quarantined: r.sum.quarantined.Load(),
		Failed:      r.sum.failed.Load(),
		Left:        r.sum.left.Load(),
		Listed:      r.sum.listed.Load(),
		Lines:       r.sum.lines.Load(),
		Bytes:       r.sum.bytes.Load(),
	}
}

// Run watches SrcDir and processes snapshots until ctx ends, then stops taking new snapshots,
// lets the dispatchers deliver for up to DrainTimeout and returns. It returns an error only if
// SrcDir cannot be watched; what was not delivered stays on disk (see Summary). ready is called once the
// watch is in place and the backlog is listed (its settled part queued; see watcher).
func (r *Runner) Run(ctx context.Context, ready func()) error {
	r.removeLeftovers()
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
	r.work(ctx, context.Background())
	stopWatch()
	<-watchDone
	return nil
}

// Alive reports whether the spool watcher's event loop turned within the last 10 seconds, for
// the systemd watchdog. Workers waiting on a dispatcher (back-pressure while Graphite is down)
// are healthy and do not count.
func (r *Runner) Alive() bool {
	w := r.watcher.Load()
	return w == nil || time.Since(time.Unix(0, w.beat.Load())) < 10*time.Second
}

// removeLeftovers deletes what a removal cut short by a crash left (see spool.Remove).
func (r *Runner) removeLeftovers() {
	if err := spool.RemoveLeftovers(r.o.SrcDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("cannot delete what an earlier removal left in src-dir", "dir", r.o.SrcDir, "error", err)
	}
}

// maxLeftNames bounds the snapshot names Once logs as left in the spool.
const maxLeftNames = 20

// Once processes every snapshot present in SrcDir, oldest first, waits until each one is
// delivered, quarantined or kept, and returns. It never waits for new snapshots.
//
// It gives up early, leaving the snapshots not delivered in the spool, when a dispatcher gives
// up on a snapshot (the remaining ones are not started; those in flight get DrainTimeout) or
// when no dispatcher acknowledged anything for OnceTimeout (everything still held is given up
// at once). It then logs which snapshots were left; Summary().Left counts them.
func (r *Runner) Once(ctx context.Context) error {
	r.removeLeftovers()
	entries, err := spool.List(r.o.SrcDir)
	if err != nil {
		return fmt.Errorf("process: listing %s: %w", r.o.SrcDir, err)
	}
	for _, e := range entries {
		r.queue.push(e)
	}
	r.sum.listed.Store(int64(len(entries)))
	r.queue.close()

	intake, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	hard, stopHard := context.WithCancel(context.Background())
	defer stopHard()
	var gaveUp sync.Once
	r.keptHook = func() {
		gaveUp.Do(func() {
			if intake.Err() == nil {
				r.log.Error("--once: a snapshot could not be delivered; giving up: the snapshots not started yet stay in the spool")
			}
			stopIntake()
		})
	}
	r.lastProgress.Store(time.Now().UnixNano())
	if r.o.OnceTimeout > 0 {
		stopIdle := r.giveUpWhenIdle(r.o.OnceTimeout, func() {
			r.log.Error("--once: giving up: nothing was delivered for the --once timeout",
				"once_timeout", r.o.OnceTimeout)
			stopIntake()
			stopHard()
		})
		defer stopIdle()
	}
	r.work(intake, hard)

	var left []string
	for _, e := range entries {
		if _, statErr := os.Lstat(e.Path); statErr == nil {
			left = append(left, e.Name)
		}
	}
	r.sum.left.Store(int64(len(left)))
	if len(left) > 0 {
		shown := left[:min(len(left), maxLeftNames)]
		r.log.Error("--once: snapshots left in the spool, not delivered", "dir", r.o.SrcDir,
			"count", len(left), "snapshots", strings.Join(shown, " "), "not_shown", len(left)-len(shown))
	}
	return nil
}

// giveUpWhenIdle calls giveUp once lastProgress is older than idle. The returned func stops it.
func (r *Runner) giveUpWhenIdle(idle time.Duration, giveUp func()) (stop func()) {
	t := time.NewTimer(idle)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			quiet := time.Since(time.Unix(0, r.lastProgress.Load()))
			if quiet >= idle {
				giveUp()
				return
			}
			t.Reset(idle - quiet)
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}

func (r *Runner) noteProgress() { r.lastProgress.Store(time.Now().UnixNano()) }

// work runs the workers until intake ends (or the queue is closed and empty), then closes the
// dispatchers and waits until every snapshot's delivery is settled. What was not delivered is
// kept on disk and counted in Summary, not an error of the run. Chunk hand-overs and the
// final delivery get DrainTimeout after intake ends, and end at once when hard ends.
func (r *Runner) work(intake, hard context.Context) {
	submit, cancelSubmit := context.WithCancel(context.Background())
	defer cancelSubmit()
	stopHard := context.AfterFunc(hard, cancelSubmit)
	defer stopHard()
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
			format := r.newFormats()
			var self Format
			if r.o.NewSelfPart != nil {
				self = r.o.NewSelfPart()
			}
			for {
				s, ok := r.queue.pop(intake)
				if !ok {
					return
				}
				r.handle(submit, format, self, s)
			}
		}()
	}
	workers.Wait()

	for _, d := range r.o.Dispatchers {
		if err := d.Close(submit); err != nil {
			// Not a failure of the run: the snapshots concerned are kept (and counted as such).
			r.log.Info("stopped with lines not delivered; their snapshots stay in the spool",
				"dispatcher", d.Name(), "error", err)
		}
	}
	r.inflight.Wait()
	r.limit.flush()
}

// handle processes one snapshot. Its directory is removed later, by the delivery callback, once
// every dispatcher acknowledged every chunk. A dispatcher that already delivered the snapshot
// in an earlier attempt (see records) is not sent it again.
func (r *Runner) handle(ctx context.Context, format func(kind string) (Format, bool), self Format, s snapshot) {
	log := r.log.With("snapshot", s.Path)
	// Not a real directory of regular files (a symlink, a FIFO…): quarantined, never followed or
	// opened. Gone (removed by hand or by another processor) or unreadable: nothing to deliver.
	if err := spool.CheckSnapshot(s.Path); err != nil {
		if unsafe := (*spool.UnsafeError)(nil); errors.As(err, &unsafe) {
			r.quarantine(s, unsafe.Reason)
		} else {
			log.Warn("snapshot disappeared or is unreadable before processing", "error", err)
		}
		r.records.forget(s.Name)
		r.queue.done(s.Name)
		return
	}
	if !s.valid {
		r.quarantine(s, fmt.Sprintf("directory name %q is not an integer epoch timestamp", s.Name))
		r.queue.done(s.Name)
		return
	}
	if missing, err := spool.PartialSources(s.Path); err != nil {
		r.limit.warn("partial-record", log, "cannot read the partial-snapshot record", "error", err)
	} else if len(missing) > 0 && r.records.get(s.Name) == nil {
		// Logged at the first attempt only: a retry is not news.
		log.Warn("partial snapshot: some sources failed during the pull; aggregates cover the others",
			"missing", len(missing), "sources", missing)
	}

	rec := r.records.getOrAdd(s, len(r.o.Dispatchers), r.queue)
	targets, indexes := r.undelivered(rec)
	if len(targets) == 0 {
		// Every dispatcher has it already; an earlier removal or quarantine failed.
		r.settle(s, rec, deliveryDone{}, nil, time.Now())
		r.queue.done(s.Name)
		return
	}

	started := time.Now()
	r.inflight.Add(1)
	d := newDelivery(len(targets), func(res deliveryDone) {
		defer r.inflight.Done()
		defer r.queue.done(s.Name)
		r.settle(s, rec, res, indexes, started)
	}, r.noteProgress)
	flush := func(b *metric.Batch) error { return d.submit(ctx, targets, b) }
	if shipsOnly(targets) {
		// Only raw snapshots are sent: nothing to parse.
		seq := sequencer{flush: flush, ts: s.ts, source: s.Path}
		d.finish(seq.close())
		return
	}
	d.finish(r.produce(log, format, self, s, flush))
}

// shipsOnly reports whether every dispatcher of ds ships raw snapshots (dispatch.SnapshotShipper).
func shipsOnly(ds []dispatch.Dispatcher) bool {
	for _, d := range ds {
		if _, ok := d.(dispatch.SnapshotShipper); !ok {
			return false
		}
	}
	return len(ds) > 0
}

// Deliver is the central tier's way in, without the spool: it processes the snapshot directory
// dir, received from an edge and unpacked by the caller, stamped ts, as Run processes a spool
// snapshot — every part through its kind's Format — passes each chunk through rewrite (nil:
// unchanged; the central tier writes the edge's host name there), and hands it to every
// dispatcher. No self-metrics part is added. Deliver returns once every chunk is handed over
// (it blocks on the dispatchers' back-pressure, and while Workers deliveries are producing);
// done is called once, from any goroutine: nil when every dispatcher acknowledged every chunk;
// otherwise an error that is Unusable (nothing in dir could be used), Rejected (everything
// else was delivered), or anything else (deliver it again). The caller owns dir: it may remove
// it once done is called. Use Deliver or Run on a Runner, not both; Close ends it.
func (r *Runner) Deliver(ctx context.Context, dir string, ts int64, rewrite func(*metric.Batch) *metric.Batch, done func(error)) {
	r.deliverOnce.Do(func() {
		r.formats = make(chan func(kind string) (Format, bool), r.o.Workers)
		for range r.o.Workers {
			r.formats <- r.newFormats()
		}
	})
	if !r.begin() {
		done(ErrClosed)
		return
	}
	var format func(kind string) (Format, bool)
	select {
	case format = <-r.formats:
	case <-ctx.Done():
		r.inflight.Done()
		done(ctx.Err())
		return
	}
	defer func() { r.formats <- format }()
	s := snapshot{Entry: spool.Entry{Name: filepath.Base(dir), Path: dir}, ts: ts, valid: true}
	started := time.Now()
	d := newDelivery(len(r.o.Dispatchers), func(res deliveryDone) {
		defer r.inflight.Done()
		done(r.outcome(s, res, started))
	}, r.noteProgress)
	d.finish(r.produce(r.log.With("snapshot", dir), format, nil, s, func(b *metric.Batch) error {
		if rewrite != nil {
			b = rewrite(b)
		}
		return d.submit(ctx, r.o.Dispatchers, b)
	}))
}

// outcome is Deliver's verdict on one attempt: the Format's Unusable error, a Rejected error
// joining every rejection, nil, or the failure.
func (r *Runner) outcome(s snapshot, res deliveryDone, started time.Time) error {
	var unusable Unusable
	if errors.As(res.produce, &unusable) {
		r.o.Metrics.Quarantined()
		return res.produce
	}
	var rejected dispatch.Rejected
	produced := (res.produce == nil || errors.As(res.produce, &rejected)) && !res.refused
	var failure error
	var reasons []string
	if rejected != nil {
		reasons = append(reasons, "format: "+rejected.Rejected())
	}
	for i, result := range res.results {
		if result.err != nil {
			failure = errors.Join(failure, fmt.Errorf("%s: %w", r.o.Dispatchers[i].Name(), result.err))
		}
		for _, reason := range result.rejected {
			reasons = append(reasons, r.o.Dispatchers[i].Name()+": "+reason)
		}
	}
	if !produced {
		failure = errors.Join(res.produce, failure)
		if failure == nil {
			failure = errors.New("a chunk was not handed over to every dispatcher")
		}
	}
	if failure != nil {
		r.sum.failed.Add(1)
		r.o.Metrics.Failed()
		return failure
	}
	if len(reasons) > 0 {
		r.sum.quarantined.Add(1)
		r.o.Metrics.Quarantined()
		return partsRejected("lines rejected, the rest was delivered: " + strings.Join(reasons, "; "))
	}
	r.sum.delivered.Add(1)
	r.status.Delivered(s.Name, time.Since(started)) // status hook (internal/status)
	r.sum.lines.Add(int64(res.lines))
	r.sum.bytes.Add(int64(res.bytes))
	r.o.Metrics.Delivered(s.ts)
	r.lastDelivered.Store(&s.Name)
	if r.log.Enabled(context.Background(), r.o.DeliveryLog) {
		r.log.Log(context.Background(), r.o.DeliveryLog, "snapshot delivered", "snapshot", s.Path,
			"lines", res.lines, "bytes", res.bytes, "seconds", roundSeconds(time.Since(started)))
	}
	return nil
}

// DeliverLines hands chunks that are lines already (the central tier's cluster lines) to every
// dispatcher as one sequence; done is called once, as for Deliver.
func (r *Runner) DeliverLines(ctx context.Context, name string, ts int64, chunks []*metric.Batch, done func(error)) {
	if !r.begin() {
		for _, b := range chunks {
			metric.Recycle(b)
		}
		done(ErrClosed)
		return
	}
	s := snapshot{Entry: spool.Entry{Name: name, Path: name}, ts: ts, valid: true}
	started := time.Now()
	d := newDelivery(len(r.o.Dispatchers), func(res deliveryDone) {
		defer r.inflight.Done()
		done(r.outcome(s, res, started))
	}, r.noteProgress)
	seq := sequencer{flush: func(b *metric.Batch) error { return d.submit(ctx, r.o.Dispatchers, b) }, ts: ts, source: name}
	var err error
	for i, b := range chunks {
		if err = seq.add(b); err != nil {
			for _, rest := range chunks[i+1:] {
				metric.Recycle(rest)
			}
			break
		}
	}
	if err == nil {
		err = seq.close()
	}
	d.finish(err)
}

// Close ends a Runner used through Deliver: the dispatchers deliver what they hold until ctx
// ends, then every pending done is called; it returns once all of them were.
func (r *Runner) Close(ctx context.Context) {
	r.closeMu.Lock()
	r.closed = true
	r.closeMu.Unlock()
	for _, d := range r.o.Dispatchers {
		if err := d.Close(ctx); err != nil {
			r.log.Info("stopped with lines not delivered; they are consumed again from Kafka",
				"dispatcher", d.Name(), "error", err)
		}
	}
	r.inflight.Wait()
	r.limit.flush()
}

// ErrClosed is what Deliver and DeliverLines report once Close was called: nothing was sent,
// so the caller keeps the data (the central tier leaves its offsets uncommitted).
var ErrClosed = errors.New("process: the runner is closed")

// begin counts one more delivery unless the Runner is closed.
func (r *Runner) begin() bool {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return false
	}
	r.inflight.Add(1)
	return true
}

func (r *Runner) newFormats() func(kind string) (Format, bool) {
	if r.o.NewFormats != nil {
		return r.o.NewFormats()
	}
	f := r.o.NewFormat()
	return func(string) (Format, bool) { return f, true }
}

// produce hands every part of s to its kind's Format, in one chunk sequence. A part that cannot
// be used is logged and skipped: the others are delivered, then the snapshot is quarantined
// with the reason (nothing is lost). Only when no part is usable is the snapshot unusable.
func (r *Runner) produce(log *slog.Logger, format func(kind string) (Format, bool), self Format, s snapshot, flush metric.FlushFunc) error {
	parts, err := spool.Parts(s.Path)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		// No data file at the top and no source directory: the top-level format says why
		// (and the snapshot is quarantined as unusable).
		parts = []spool.Part{{Dir: s.Path, Source: spool.TopLevelSource, Kind: spool.TopLevelKind}}
	}
	seq := sequencer{flush: flush, ts: s.ts, source: s.Path}
	var bad, rejected []string
	usable := 0
	for _, part := range parts {
		var err error
		if part.Err != nil {
			err = unusableSnapshot{part.Err} // a directory that is no source's
		} else {
			if f, ok := format(part.Kind); ok {
				err = f.Process(part.Dir, s.ts, seq.add)
			} else {
				err = unusableSnapshot{fmt.Errorf("no processor for source kind %q in this stats-process", part.Kind)}
			}
		}
		var unusable Unusable
		var rej dispatch.Rejected
		switch {
		case err == nil:
			usable++
		case errors.As(err, &unusable):
			reason := unusable.Unusable()
			if len(parts) > 1 {
				reason = "source " + part.Source + ": " + reason
				log.Error("part of the snapshot unusable; the other parts are delivered", "source", part.Source,
					"kind", part.Kind, "reason", unusable.Unusable())
			}
			bad = append(bad, reason)
		case errors.As(err, &rej):
			usable++
			reason := rej.Rejected()
			if len(parts) > 1 {
				reason = "source " + part.Source + ": " + reason
			}
			rejected = append(rejected, reason)
		default:
			return err // a flush failed (shutdown) or a read error: the snapshot is retried
		}
	}
	if usable == 0 {
		// Unusable parts flush nothing, so nothing was handed over.
		return unusableSnapshot{errors.New(strings.Join(bad, "; "))}
	}
	if self != nil {
		if err := self.Process(s.Path, s.ts, seq.add); err != nil {
			return err
		}
	}
	if err := seq.close(); err != nil {
		return err
	}
	r.o.Metrics.Processed()
	if len(bad) > 0 || len(rejected) > 0 {
		reasons := rejected
		for _, b := range bad {
			reasons = append(reasons, "unusable: "+b)
		}
		return partsRejected(strings.Join(reasons, "; "))
	}
	return nil
}

// sequencer joins the chunk sequences of a snapshot's parts into one: Seq renumbered from 0,
// Last only on the final chunk. It holds each chunk back until the next one (or the end), so
// that the snapshot's last chunk can be marked Last without an extra empty one.
type sequencer struct {
	flush   metric.FlushFunc
	ts      int64
	source  string
	seq     int
	pending *metric.Batch
}

func (q *sequencer) add(b *metric.Batch) error {
	if b.Last && len(b.Data) == 0 && b.Lines == 0 {
		metric.Recycle(b) // a part's empty closing chunk
		return nil
	}
	b.Last = false
	if err := q.release(); err != nil {
		metric.Recycle(b)
		return err
	}
	q.pending = b
	return nil
}

func (q *sequencer) release() error {
	b := q.pending
	if b == nil {
		return nil
	}
	q.pending = nil
	b.Seq, b.Source, b.Timestamp = q.seq, q.source, q.ts
	q.seq++
	return q.flush(b)
}

func (q *sequencer) close() error {
	if q.pending == nil {
		q.pending = &metric.Batch{}
	}
	q.pending.Last = true
	return q.release()
}

// partsRejected is the Rejected error of a snapshot some of whose parts or lines could not be
// used: the rest is delivered, then the snapshot is quarantined with this reason.
type partsRejected string

func (p partsRejected) Error() string    { return string(p) }
func (p partsRejected) Rejected() string { return string(p) }

// undelivered returns the dispatchers that have not delivered rec's snapshot yet, and their
// indexes in Options.Dispatchers.
func (r *Runner) undelivered(rec *record) ([]dispatch.Dispatcher, []int) {
	if !rec.anySettled() {
		return r.o.Dispatchers, nil // nil indexes: all of them, in order
	}
	var targets []dispatch.Dispatcher
	var indexes []int
	for i, disp := range r.o.Dispatchers {
		if !rec.settled[i] {
			targets = append(targets, disp)
			indexes = append(indexes, i)
		}
	}
	return targets, indexes
}

// settle records what an attempt at s achieved and removes, quarantines or keeps s: removed
// once every dispatcher delivered it, quarantined once every dispatcher settled it but lines
// were rejected (by the Format or a dispatcher), kept otherwise. indexes maps res.results to
// Options.Dispatchers (nil: the identity).
func (r *Runner) settle(s snapshot, rec *record, res deliveryDone, indexes []int, started time.Time) {
	r.noteProgress()
	log := r.log.With("snapshot", s.Path)
	var unusable Unusable
	if errors.As(res.produce, &unusable) {
		// A Format flushes nothing before deciding that a snapshot is unusable.
		r.quarantine(s, unusable.Unusable())
		return
	}
	var rejected dispatch.Rejected
	// The attempt counts for a dispatcher only if the Format handed over everything it had.
	produced := (res.produce == nil || errors.As(res.produce, &rejected)) && !res.refused
	if rejected != nil {
		rec.formatReason = rejected.Rejected()
	}
	var failed []string
	var failure error
	for k, result := range res.results {
		i := k
		if indexes != nil {
			i = indexes[k]
		}
		switch {
		case result.err != nil:
			failed = append(failed, r.o.Dispatchers[i].Name())
			failure = errors.Join(failure, result.err)
		case produced:
			// Every chunk was acknowledged or refused for good: not sent to it again.
			rec.settled[i] = true
			for _, reason := range result.rejected {
				rec.rejected = addReason(rec.rejected, r.o.Dispatchers[i].Name()+": "+reason)
			}
		}
	}
	if !produced {
		failure = errors.Join(res.produce, failure)
		if failure == nil { // the Format ignored a refused chunk
			failure = errors.New("a chunk was not handed over to every dispatcher")
		}
	}
	if failure != nil {
		r.sum.failed.Add(1)
		r.o.Metrics.Failed()
		r.limit.warn("kept "+strings.Join(failed, ","), log,
			"snapshot kept on disk: not every line was delivered; it is retried later",
			"failed", strings.Join(failed, ","), "error", failure)
		if r.keptHook != nil {
			r.keptHook()
		}
		return
	}
	if reasons := rec.reasons(); len(reasons) > 0 {
		r.quarantine(s, "lines rejected, the rest was delivered: "+strings.Join(reasons, "; "))
		return
	}
	if err := spool.Remove(s.Path); err != nil {
		r.sum.failed.Add(1)
		r.o.Metrics.Failed()
		r.limit.error("remove", log, "delivered, but removing the snapshot failed; it is tried again at the next rescan", "error", err)
		return
	}
	r.records.forget(s.Name)
	r.sum.delivered.Add(1)
	r.status.Delivered(s.Name, time.Since(started)) // status hook (internal/status)
	r.sum.lines.Add(int64(res.lines))
	r.sum.bytes.Add(int64(res.bytes))
	r.o.Metrics.Delivered(s.ts)
	r.lastDelivered.Store(&s.Name)
	if r.log.Enabled(context.Background(), r.o.DeliveryLog) {
		args := []any{"snapshot", s.Name, "lines", res.lines, "bytes", res.bytes,
			"seconds", roundSeconds(time.Since(started))}
		for k, result := range res.results {
			i := k
			if indexes != nil {
				i = indexes[k]
			}
			if !result.last.IsZero() {
				args = append(args, r.o.Dispatchers[i].Name()+"_seconds", roundSeconds(result.last.Sub(started)))
			}
		}
		r.log.Log(context.Background(), r.o.DeliveryLog, "snapshot delivered", args...)
	}
}

// roundSeconds is d in seconds, to the millisecond, for log lines.
func roundSeconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

func (r *Runner) quarantine(s snapshot, reason string) {
	dest, err := spool.Quarantine(r.o.SrcDir, s.Path, reason)
	if err != nil {
		r.sum.failed.Add(1)
		r.o.Metrics.Failed()
		r.limit.error("quarantine", r.log, "cannot quarantine snapshot; it stays in place",
			"snapshot", s.Path, "reason", reason, "error", err)
		return
	}
	r.records.forget(s.Name)
	r.sum.quarantined.Add(1)
	r.o.Metrics.Quarantined()
	r.log.Error("snapshot quarantined", "snapshot", s.Path, "to", dest, "reason", reason)
}

// records remembers, for each snapshot that an earlier attempt did not finish, which
// dispatchers delivered it already, so that a retry goes only to the others: a failing local
// store must not make Graphite receive every queued snapshot again at every rescan. It lives in
// memory only (after a restart every dispatcher gets the snapshot again) and holds snapshots in
// the spool: an entry is forgotten when its snapshot is removed or quarantined, or found gone,
// and entries of snapshots removed by hand are pruned as the map grows.
type records struct {
	mu      sync.Mutex
	byName  map[string]*record
	pruneAt int
}

// record is what the attempts at one snapshot achieved. Only one attempt at a snapshot runs at a
// time (the queue sees to that), so its fields need no lock.
type record struct {
	path         string
	settled      []bool   // by index in Options.Dispatchers: delivered (maybe with rejections)
	rejected     []string // dispatchers' rejection reasons, bounded (addReason)
	formatReason string   // the Format's rejection, the same at every attempt
}

// minPrune is the size of the records map below which it is never pruned.
const minPrune = 64

func (rec *record) anySettled() bool {
	for _, s := range rec.settled {
		if s {
			return true
		}
	}
	return false
}

func (rec *record) reasons() []string {
	if rec.formatReason == "" {
		return rec.rejected
	}
	return append([]string{"format: " + rec.formatReason}, rec.rejected...)
}

func (rs *records) get(name string) *record {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.byName[name]
}

// getOrAdd returns s's record, adding an empty one for n dispatchers if needed. When the map has
// doubled since the last prune it drops the records of snapshots no longer in the spool and not
// in the queue, so it stays bounded by the number of snapshots in the spool.
func (rs *records) getOrAdd(s snapshot, n int, q *queue) *record {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rec := rs.byName[s.Name]; rec != nil {
		return rec
	}
	if len(rs.byName) >= max(rs.pruneAt, minPrune) {
		for name, rec := range rs.byName {
			if _, err := os.Lstat(rec.path); errors.Is(err, os.ErrNotExist) && !q.knows(name) {
				delete(rs.byName, name)
			}
		}
		rs.pruneAt = 2 * len(rs.byName)
	}
	rec := &record{path: s.Path, settled: make([]bool, n)}
	rs.byName[s.Name] = rec
	return rec
}

func (rs *records) forget(name string) {
	rs.mu.Lock()
	delete(rs.byName, name)
	rs.mu.Unlock()
}

func (rs *records) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.byName)
}

// logLimiter keeps warnings about one ongoing fault (a dispatcher failing every snapshot at
// every rescan) from flooding the log: the first one of a kind is logged, then at most one per
// interval, carrying the number of those suppressed since the previous one. flush logs the
// counts still pending. Kinds are a few fixed strings (with dispatcher names), so the map stays
// small.
type logLimiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*limited
}

type limited struct {
	level  slog.Level
	msg    string
	window lograte.Window
}

func newLogLimiter(log *slog.Logger, every time.Duration, now func() time.Time) *logLimiter {
	return &logLimiter{log: log, every: every, now: now, kinds: map[string]*limited{}}
}

func (l *logLimiter) warn(kind string, log *slog.Logger, msg string, args ...any) {
	l.logAt(slog.LevelWarn, kind, log, msg, args...)
}

func (l *logLimiter) error(kind string, log *slog.Logger, msg string, args ...any) {
	l.logAt(slog.LevelError, kind, log, msg, args...)
}

func (l *logLimiter) logAt(level slog.Level, kind string, log *slog.Logger, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		k = &limited{level: level, msg: msg}
		l.kinds[kind] = k
	}
	ok, suppressed := k.window.Allow(now, l.every)
	l.mu.Unlock()
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "similar_suppressed", suppressed, "over", l.every)
	}
	log.Log(context.Background(), level, msg, args...)
}

// flush logs how many messages of each kind were suppressed since the last one logged.
func (l *logLimiter) flush() {
	l.mu.Lock()
	type pending struct {
		k *limited
		n int
	}
	var out []pending
	for _, k := range l.kinds {
		if n := k.window.TakePending(); n > 0 {
			out = append(out, pending{k, n})
		}
	}
	l.mu.Unlock()
	for _, p := range out {
		l.log.Log(context.Background(), p.k.level, p.k.msg+" (repeats not logged)", "similar_suppressed", p.n)
	}
}

// unusableSnapshot is the Unusable error of a part (or snapshot) that nothing can be made of.
type unusableSnapshot struct{ err error }

func (u unusableSnapshot) Error() string    { return u.err.Error() }
func (u unusableSnapshot) Unusable() string { return u.err.Error() }
func (u unusableSnapshot) Unwrap() error    { return u.err }

// UnusableError wraps err as an Unusable error: the part (or snapshot) is quarantined.
func UnusableError(err error) error { return unusableSnapshot{err} }
