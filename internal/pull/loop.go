package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/spool"
)

// stragglerGrace is how long the loop waits, after the pull deadline, for sources that do not
// return. A source that takes longer is abandoned (failed, its files removed) so that neither a
// round nor a shutdown can hang on it.
const stragglerGrace = 200 * time.Millisecond

// Options are the loop's settings from [pull].
type Options struct {
	// Interval is pull-interval. Rounds start on ticks phase-locked to the start of Run.
	Interval time.Duration
	// Timeout is pull-timeout, the deadline of a whole round; fractions are honoured. ≤ 0
	// means Interval.
	Timeout time.Duration
	// QueueSize suspends pulling while dst-dir holds this many snapshots or more. ≤ 0 means no
	// limit.
	QueueSize int
	// Metrics counts rounds and sources (self-metrics); nil counts nothing.
	Metrics *selfmetrics.Pull
}

// OptionsFrom takes the loop's options from the [pull] section. Whether a source's failed
// instances discard it is the source's own setting (ProviderInfo.AllowPartial).
func OptionsFrom(cfg config.Pull) Options {
	return Options{
		Interval:  cfg.PullInterval,
		Timeout:   cfg.PullTimeout,
		QueueSize: cfg.QueueSize,
	}
}

// Loop pulls every source once per tick into a new snapshot and publishes it.
type Loop struct {
	spool     *spool.Writer
	providers []Provider
	opt       Options
	log       *slog.Logger

	suspended bool         // queue full; logged once when it starts and once when it ends
	status    *roundStatus // stats-pull's status file, for the freshness check (status.go)
	heartbeat atomic.Int64 // UnixNano of the last sign of progress, for Alive
	published atomic.Pointer[string]
	// snapshotName turns a tick into the snapshot name; tests shrink seconds to milliseconds.
	snapshotName func(tick time.Time) int64
}

// NewLoop checks the options and returns a loop ready to Run.
func NewLoop(w *spool.Writer, providers []Provider, opt Options, log *slog.Logger) (*Loop, error) {
	if opt.Interval <= 0 {
		return nil, fmt.Errorf("pull-interval must be positive, got %s", opt.Interval)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = opt.Interval
	}
	l := &Loop{
		spool: w, providers: providers, opt: opt, log: log,
		snapshotName: func(tick time.Time) int64 { return tick.Unix() },
	}
	l.log, l.status = withStatus(w.DstDir(), log) // status hook (status.go): the status file, and the rounds' errors
	return l, nil
}

// Run pulls until ctx is done, then returns nil after removing the snapshot being built, if
// any. It returns promptly in every state: pulling, sleeping or suspended on a full queue.
//
// Schedule (haproxystats §3.2): with start_offset = start mod pull-interval, the rounds start at
// the instants t with t mod pull-interval = start_offset. A round that overruns skips to the
// next such tick, with a warning: there is no catch-up and no overlap. A snapshot is named after
// its tick's epoch second, so consecutive snapshots are exactly pull-interval apart even when a
// timer wake-up jitters across a second boundary.
func (l *Loop) Run(ctx context.Context) error {
	_, err := l.RunUntil(ctx, nil)
	return err
}

// RunUntil is Run that also returns, with reloading true, when reload receives: between
// rounds, so that a round in progress is finished and published first.
func (l *Loop) RunUntil(ctx context.Context, reload <-chan struct{}) (reloading bool, err error) {
	interval := l.opt.Interval
	tick := time.Now()
	offset := tick.UnixNano() % int64(interval)
	for {
		l.heartbeat.Store(time.Now().UnixNano())
		if path := l.round(ctx, tick); path != "" {
			l.published.Store(&path)
		}
		if ctx.Err() != nil {
			return false, nil
		}
		now := time.Now()
		l.heartbeat.Store(now.UnixNano())
		next := nextTick(now, offset, interval)
		if missed := int(math.Round(float64(next.Sub(tick))/float64(interval))) - 1; missed > 0 {
			l.log.Warn("pull round took longer than pull-interval, skipping to the next tick",
				"took", now.Sub(tick).Round(time.Millisecond), "pull-interval", interval, "skipped_ticks", missed)
		}
		timer := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, nil
		case <-reload:
			timer.Stop()
			return true, nil
		case <-timer.C:
		}
		tick = next
	}
}

// Once runs one round now, named after the current second, and returns the published
// snapshot's path ("" when nothing was published; the reason is logged).
func (l *Loop) Once(ctx context.Context) string {
	return l.round(ctx, time.Now())
}

// LastPublished is the path of the last snapshot Run published ("" none yet).
func (l *Loop) LastPublished() string {
	if p := l.published.Load(); p != nil {
		return *p
	}
	return ""
}

// Alive reports whether Run is making progress, for a watchdog: it has passed a round boundary
// within twice the longest legitimate gap (a sleep of pull-interval plus a round of
// pull-timeout) plus 5 s for slow disks. True before Run starts, which follows immediately.
func (l *Loop) Alive() bool {
	last := l.heartbeat.Load()
	if last == 0 {
		return true
	}
	limit := 2*(l.opt.Interval+l.opt.Timeout+stragglerGrace) + 5*time.Second
	return time.Since(time.Unix(0, last)) <= limit
}

// nextTick is the first instant after now whose phase within interval is offset.
func nextTick(now time.Time, offset int64, interval time.Duration) time.Time {
	sleep := offset - now.UnixNano()%int64(interval)
	if sleep <= 0 {
		sleep += int64(interval)
	}
	return now.Add(time.Duration(sleep))
}

// round runs one pull: queue check, build, publish. It returns the published snapshot's path,
// or "" when nothing was published. Every failure is logged here; none stops the loop.
func (l *Loop) round(ctx context.Context, tick time.Time) (path string) {
	var failed []spool.FailedSource
	defer func() { l.status.done(ctx, path, failed, l.suspended) }() // status hook (status.go)
	m := l.opt.Metrics
	if !l.queueHasRoom() {
		if l.suspended {
			m.Suspended()
		} else {
			m.Round(false, false, 0)
		}
		return ""
	}
	start := time.Now()
	b, err := l.spool.Begin(l.snapshotName(tick))
	if errors.Is(err, spool.ErrExists) {
		l.log.Warn("snapshot name already taken (two rounds in one second?); skipping this round", "error", err)
		m.Round(false, false, 0)
		return ""
	}
	if err != nil {
		l.log.Error("cannot start a snapshot; skipping this round", "error", err)
		m.Round(false, false, 0)
		return ""
	}
	defer func() {
		if err := b.Abort(); err != nil {
			l.log.Error("cannot remove unpublished snapshot", "error", err)
		}
	}()

	pullCtx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	var sources []Source
	var owner []int // sources[i] is an instance of l.providers[owner[i]]
	infos := make([]ProviderInfo, len(l.providers))
	listFailed := make([]bool, len(l.providers))
	var late []int // providers pulled after the others (ProviderInfo.Late)
	regular := 0
	for _, p := range l.providers {
		if !p.Info().Late {
			regular++
		}
	}
	for i, p := range l.providers {
		infos[i] = p.Info()
		if infos[i].Late {
			late = append(late, i)
			continue
		}
		ss, err := p.Sources(pullCtx)
		if err != nil {
			l.log.Error("cannot list the instances of a source", "source", infos[i].Source, "kind", infos[i].Kind, "error", err)
			failed = append(failed, spool.FailedSource{Name: infos[i].Source, Err: err.Error()})
			listFailed[i] = true
		} else if len(ss) == 0 && infos[i].EmptyOK {
			l.log.Debug("no instance to pull from this round", "source", infos[i].Source, "kind", infos[i].Kind)
		} else if len(ss) == 0 && regular > 1 {
			// With one source this is the round's "zero sources" error below.
			l.log.Error("found zero instances to pull from", "source", infos[i].Source, "kind", infos[i].Kind)
			failed = append(failed, spool.FailedSource{Name: infos[i].Source, Err: "found zero instances to pull from"})
			listFailed[i] = true
		}
		for _, s := range ss {
			sources = append(sources, s)
			owner = append(owner, i)
		}
	}
	if len(sources) == 0 {
		l.log.Error("found zero sources to pull from; nothing published this round", "snapshot", b.Name())
		for p, info := range infos {
			if listFailed[p] {
				m.Source(info.Source, time.Since(start), 0, 1)
			}
		}
		m.Round(false, true, len(failed))
		return ""
	}

	dirs := make([]string, len(sources))
	for i := range sources {
		if !infos[owner[i]].TopLevel {
			dirs[i] = infos[owner[i]].Source
		}
	}
	errs, views, took := l.pullAll(pullCtx, b, sources, dirs)
	if ctx.Err() != nil {
		l.log.Info("shutting down: discarding the snapshot being built", "snapshot", b.Path())
		return ""
	}
	succeeded := make([]int, len(l.providers))
	failures := make([]int, len(l.providers))
	for i, err := range errs {
		p := owner[i]
		if err == nil {
			succeeded[p]++
			continue
		}
		failures[p]++
		if errors.Is(err, context.DeadlineExceeded) && pullCtx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("pull-timeout of %s reached: %w", l.opt.Timeout, err)
		}
		name := sources[i].Name()
		if !infos[p].TopLevel {
			name = infos[p].Source + "/" + name
		}
		l.log.Error("source failed", "source", name, "error", err)
		failed = append(failed, spool.FailedSource{Name: name, Err: err.Error()})
	}
	kept, keptInstances := 0, 0
	for p, info := range infos {
		if succeeded[p]+failures[p] == 0 && !listFailed[p] {
			continue // no instance this round (EmptyOK), or a Late source
		}
		l.countSource(p, info, owner, views, took, failures[p], listFailed[p])
		keep := succeeded[p] > 0 && (info.AllowPartial || failures[p] == 0 && !listFailed[p])
		if !keep {
			if succeeded[p] > 0 {
				l.log.Error("source left out of this round: not every instance answered", "source", info.Source,
					"failed", failures[p], "instances", succeeded[p]+failures[p], "allow_partial", info.AllowPartial)
			}
			l.dropSource(b, p, info, owner, views)
			continue
		}
		if !info.TopLevel {
			if err := writeSourceInfo(b, info); err != nil {
				l.log.Error("cannot write the source's description; leaving it out of this round", "source", info.Source, "error", err)
				failed = append(failed, spool.FailedSource{Name: info.Source, Err: err.Error()})
				l.dropSource(b, p, info, owner, views)
				continue
			}
		}
		kept++
		keptInstances += succeeded[p]
	}
	elapsed := time.Since(start).Round(time.Microsecond)
	l.log.Debug("task report", "sources", len(sources), "succeeded", keptInstances, "failed", len(failed), "elapsed", elapsed)
	if kept == 0 {
		l.log.Error("failed to pull stats; nothing published this round",
			"failed", len(failed), "sources", len(sources), "elapsed", elapsed)
		m.Round(false, true, len(failed))
		return ""
	}
	l.pullLate(ctx, b, late, infos)
	path, err = b.Publish(failed)
	if errors.Is(err, spool.ErrExists) {
		l.log.Warn("snapshot name already taken (two rounds in one second?); skipping this round", "error", err)
		m.Round(false, false, len(failed))
		return ""
	}
	if err != nil {
		l.log.Error("cannot publish snapshot", "error", err)
		m.Round(false, false, len(failed))
		return ""
	}
	m.Round(true, false, len(failed))
	if len(failed) > 0 {
		l.log.Warn("partial statistics are stored in "+path, "missing", len(failed), "elapsed", elapsed)
		return path
	}
	l.log.Info("statistics are stored in "+path, "sources", len(sources), "elapsed", elapsed)
	return path
}

// countSource hands provider p's round to the self-metrics: the time until its last instance
// returned, the bytes its instances wrote and its failures.
func (l *Loop) countSource(p int, info ProviderInfo, owner []int, views []*sourceView, took []time.Duration, failures int, listFailed bool) {
	if l.opt.Metrics == nil {
		return
	}
	var d time.Duration
	var bytes int64
	for i, v := range views {
		if owner[i] == p {
			d = max(d, took[i])
			bytes += v.bytes.Load()
		}
	}
	if listFailed {
		failures++
	}
	l.opt.Metrics.Source(info.Source, d, bytes, failures)
}

// pullLate pulls the Late providers once the round's other sources are settled, each within
// its own short deadline. A late source that fails is logged and left out; it never fails the
// round.
func (l *Loop) pullLate(ctx context.Context, b *spool.Building, late []int, infos []ProviderInfo) {
	for _, p := range late {
		info := infos[p]
		lateCtx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
		ss, err := l.providers[p].Sources(lateCtx)
		if err == nil && len(ss) > 0 {
			dirs := make([]string, len(ss))
			for i := range dirs {
				if !info.TopLevel {
					dirs[i] = info.Source
				}
			}
			var errs []error
			errs, _, _ = l.pullAll(lateCtx, b, ss, dirs)
			err = errors.Join(errs...)
		}
		if err == nil && len(ss) > 0 && !info.TopLevel {
			err = writeSourceInfo(b, info)
		}
		cancel()
		if err != nil {
			l.log.Error("source left out of this round", "source", info.Source, "error", err)
			if !info.TopLevel && b.HasPart(info.Source) {
				if rerr := b.RemovePart(info.Source); rerr != nil {
					l.log.Error("cannot remove the directory of a source left out", "source", info.Source, "error", rerr)
				}
			}
		}
	}
}

// dropSource removes the files of every instance of provider p (a source left out of the round).
func (l *Loop) dropSource(b *spool.Building, p int, info ProviderInfo, owner []int, views []*sourceView) {
	for i, v := range views {
		if owner[i] != p {
			continue
		}
		if err := v.discard(); err != nil {
			l.log.Error("cannot remove the files of a source left out", "source", info.Source, "error", err)
		}
	}
	if !info.TopLevel && b.HasPart(info.Source) {
		if err := b.RemovePart(info.Source); err != nil {
			l.log.Error("cannot remove the directory of a source left out", "source", info.Source, "error", err)
		}
	}
}

// writeSourceInfo writes a named source's spool.SourceInfoFile.
func writeSourceInfo(b *spool.Building, info ProviderInfo) error {
	f, err := b.Create(info.Source + "/" + spool.SourceInfoFile)
	if err != nil {
		return err
	}
	if err := spool.WriteJSON(f, spool.NewSourceInfo(info.Kind, info.Source, info.Options)); err != nil {
		f.Discard()
		return err
	}
	if err := f.Commit(); err != nil {
		f.Discard()
		return err
	}
	return nil
}

// queueHasRoom recreates a vanished dst-dir and applies queue-size.
func (l *Loop) queueHasRoom() bool {
	recreated, err := l.spool.EnsureDst()
	if err != nil {
		l.log.Error("dst-dir is unusable; skipping this round", "error", err)
		return false
	}
	if recreated {
		l.log.Warn("dst-dir had disappeared and was recreated", "dir", l.spool.DstDir())
		return true
	}
	if l.opt.QueueSize <= 0 {
		return true
	}
	n, err := spool.QueueLen(l.spool.DstDir())
	if err != nil {
		l.log.Error("cannot count queued snapshots; skipping this round", "error", err)
		return false
	}
	if n >= l.opt.QueueSize {
		if !l.suspended {
			l.log.Warn(fmt.Sprintf("queue reached max size of %d, pulling statistics is suspended", l.opt.QueueSize),
				"dir", l.spool.DstDir(), "queued", n)
			l.suspended = true
		}
		return false
	}
	if l.suspended {
		l.log.Info("queue is below its max size again, pulling statistics is resumed",
			"dir", l.spool.DstDir(), "queued", n, "queue_size", l.opt.QueueSize)
		l.suspended = false
	}
	return true
}

// pullAll runs every source in parallel and returns their errors and views, index for index.
// Sources that fail, or that do not return within stragglerGrace of the deadline, have their
// files removed; the successful ones are left fully committed. dirs[i] is the snapshot
// directory of source i's files ("" for the top).
func (l *Loop) pullAll(ctx context.Context, b *spool.Building, sources []Source, dirs []string) ([]error, []*sourceView, []time.Duration) {
	type outcome struct {
		i   int
		err error
	}
	start := time.Now()
	took := make([]time.Duration, len(sources))
	results := make(chan outcome, len(sources))
	views := make([]*sourceView, len(sources))
	for i, s := range sources {
		v := &sourceView{b: b, dir: dirs[i]}
		views[i] = v
		go func() {
			err := s.Pull(ctx, v)
			if err == nil {
				err = v.uncommitted()
			}
			results <- outcome{i, err}
		}()
	}
	errs := make([]error, len(sources))
	returned := make([]bool, len(sources))
	deadline := ctx.Done()
	var grace <-chan time.Time
	var graceTimer *time.Timer
	defer func() {
		if graceTimer != nil {
			graceTimer.Stop()
		}
	}()
	for pending := len(sources); pending > 0; {
		select {
		case o := <-results:
			errs[o.i], returned[o.i] = o.err, true
			took[o.i] = time.Since(start)
			pending--
		case <-deadline:
			deadline = nil
			graceTimer = time.NewTimer(stragglerGrace)
			grace = graceTimer.C
		case <-grace:
			for i := range sources {
				if !returned[i] {
					errs[i] = fmt.Errorf("source did not stop within %s of the deadline; abandoned", stragglerGrace)
					took[i] = time.Since(start)
				}
			}
			pending = 0
		}
	}
	for i, v := range views {
		if errs[i] != nil {
			if err := v.discard(); err != nil {
				l.log.Error("cannot remove the files of a failed source", "source", sources[i].Name(), "error", err)
			}
		}
	}
	return errs, views, took
}

// sourceView is a source's window on the snapshot: it remembers the source's files so that a
// failed source leaves none behind, and cuts an abandoned source off.
type sourceView struct {
	b      *spool.Building
	dir    string // "" or the source's directory in the snapshot
	mu     sync.Mutex
	files  []*spool.File
	closed bool
	bytes  atomic.Int64 // written by the source, for self-metrics
}

func (v *sourceView) Create(name string) (SnapshotFile, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, errors.New("source was abandoned; its round is over")
	}
	if v.dir != "" {
		if strings.Contains(name, "/") {
			return nil, fmt.Errorf("invalid snapshot file name %q", name)
		}
		name = v.dir + "/" + name
	}
	f, err := v.b.Create(name)
	if err != nil {
		return nil, err
	}
	v.files = append(v.files, f)
	return countingFile{f, v}, nil
}

// countingFile counts the bytes written to a snapshot file.
type countingFile struct {
	*spool.File
	v *sourceView
}

func (c countingFile) Write(p []byte) (int, error) {
	n, err := c.File.Write(p)
	c.v.bytes.Add(int64(n))
	return n, err
}

// Discard removes the file from the snapshot and from the source's files (Discarder).
func (c countingFile) Discard() error {
	c.v.mu.Lock()
	if c.v.closed {
		c.v.mu.Unlock()
		return nil // discard() removes it
	}
	c.v.files = slices.DeleteFunc(c.v.files, func(f *spool.File) bool { return f == c.File })
	c.v.mu.Unlock()
	return c.File.Discard()
}

func (v *sourceView) uncommitted() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, f := range v.files {
		if !f.Committed() {
			return fmt.Errorf("source returned without committing file %s", f.Name())
		}
	}
	return nil
}

func (v *sourceView) discard() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	var first error
	for _, f := range v.files {
		if err := f.Discard(); err != nil && first == nil {
			first = err
		}
	}
	v.files = nil
	return first
}
