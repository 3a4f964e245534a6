package selfmetrics

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Pull is what stats-pull counts. Every method is a no-op on a nil *Pull.
type Pull struct {
	published, without        *Series
	duration, bytes, failures *Family
	start, lastPublished      atomic.Int64 // unix nanoseconds
	suspended, allFailed      atomic.Bool
	lastFailures              atomic.Int64
	interval, timeout         atomic.Int64 // the schedule, for Health
}

// NewPull registers stats-pull's families in r (program "pull").
func NewPull(r *Registry) *Pull {
	m := &Pull{
		published: r.Counter("snapshots_published", "snapshots published into dst-dir (before the one carrying this value)"),
		without:   r.Counter("rounds_without_snapshot", "pull rounds that published nothing (every source failed, none found, name clash, spool error)"),
		duration:  r.GaugeVec("source", "duration_seconds", "how long the source took in the last round it was pulled, in seconds"),
		bytes:     r.CounterVec("source", "bytes", "bytes the source wrote into snapshots"),
		failures:  r.CounterVec("source", "failures", "instances of the source that failed a round (or listing them failed)"),
	}
	m.start.Store(time.Now().UnixNano())
	return m
}

// SetSchedule records pull-interval and pull-timeout (at start and at every reload).
func (m *Pull) SetSchedule(interval, timeout time.Duration) {
	if m == nil {
		return
	}
	m.interval.Store(int64(interval))
	m.timeout.Store(int64(timeout))
}

// Source records one source's round: how long it took, the bytes its instances wrote and how
// many of them failed.
func (m *Pull) Source(name string, d time.Duration, bytes int64, failures int) {
	if m == nil {
		return
	}
	m.duration.With(name).Set(d.Seconds())
	m.bytes.With(name).Add(float64(bytes))
	m.failures.With(name).Add(float64(failures))
}

// Round records the end of a round that pulled: published or not, and whether every source
// failed (failures is the number of failed instances or sources).
func (m *Pull) Round(published, everySourceFailed bool, failures int) {
	if m == nil {
		return
	}
	m.suspended.Store(false)
	m.allFailed.Store(everySourceFailed)
	m.lastFailures.Store(int64(failures))
	if published {
		m.published.Inc()
		m.lastPublished.Store(time.Now().UnixNano())
		return
	}
	m.without.Inc()
}

// Suspended records a round skipped because the queue is full (not counted as a round
// without snapshot: pulling is suspended, which the queue check reports).
func (m *Pull) Suspended() {
	if m != nil {
		m.suspended.Store(true)
	}
}

// Health says whether stats-pull is healthy: a snapshot was published within 3 pull-intervals
// plus pull-timeout (unless pulling is suspended on a full queue), and the last round did not
// see every source fail. The reason says what is wrong.
func (m *Pull) Health() (bool, string) {
	if m == nil {
		return true, ""
	}
	if m.allFailed.Load() {
		if n := m.lastFailures.Load(); n > 0 {
			return false, fmt.Sprintf("every source failed in the last pull round (%d failed)", n)
		}
		return false, "the last pull round found no source to pull from (no socket in socket-dir?)"
	}
	if m.suspended.Load() {
		return true, ""
	}
	bound := 3*time.Duration(m.interval.Load()) + time.Duration(m.timeout.Load())
	last := m.lastPublished.Load()
	since := "start"
	if last == 0 {
		last = m.start.Load()
	} else {
		since = "the last one"
	}
	if bound > 0 {
		if quiet := time.Since(time.Unix(0, last)); quiet > bound {
			return false, fmt.Sprintf("no snapshot published for %s since %s (more than 3 pull-intervals + pull-timeout = %s)",
				quiet.Round(time.Millisecond), since, bound)
		}
	}
	return true, ""
}

// Process is what stats-process counts. Every method is a no-op on a nil *Process.
type Process struct {
	reg                                        *Registry
	processed, delivered, quarantined, failed  *Series
	delay                                      *Series
	lines, bytes, errors, reconnects, replayed *Family
	lastSettled                                atomic.Int64
}

// NewProcess registers stats-process's families in r (program "process").
func NewProcess(r *Registry) *Process {
	m := &Process{
		reg:         r,
		processed:   r.Counter("snapshots_processed", "snapshots whose parts were all turned into lines (every attempt)"),
		delivered:   r.Counter("snapshots_delivered", "snapshots delivered to every dispatcher and removed from the spool"),
		quarantined: r.Counter("snapshots_quarantined", "snapshots moved to the quarantine"),
		failed:      r.Counter("snapshots_failed", "attempts that kept a snapshot on disk for a retry"),
		delay:       r.Gauge("delay_seconds", "now minus the snapshot's timestamp at the last delivery, in seconds"),
		lines:       r.CounterVec("dispatcher", "lines", "lines the dispatcher delivered (graphite: proven read by the peer)"),
		bytes:       r.CounterVec("dispatcher", "bytes", "bytes of lines the dispatcher delivered"),
		errors:      r.CounterVec("dispatcher", "errors", "dispatch errors: write failures (local-store), lost connections and failed connects (graphite)"),
		reconnects:  r.CounterVec("dispatcher", "reconnects", "connections made again after a lost one (graphite)"),
		replayed:    r.CounterVec("dispatcher", "replayed_lines", "lines written again on a new connection after a loss (graphite)"),
	}
	m.lastSettled.Store(time.Now().UnixNano())
	return m
}

// Processed counts a snapshot whose parts were produced.
func (m *Process) Processed() {
	if m != nil {
		m.processed.Inc()
	}
}

// Delivered counts a delivered snapshot of timestamp ts.
func (m *Process) Delivered(ts int64) {
	if m == nil {
		return
	}
	m.delivered.Inc()
	m.delay.Set(float64(time.Now().UnixNano()-ts*int64(time.Second)) / 1e9)
	m.lastSettled.Store(time.Now().UnixNano())
}

// Quarantined counts a quarantined snapshot.
func (m *Process) Quarantined() {
	if m == nil {
		return
	}
	m.quarantined.Inc()
	m.lastSettled.Store(time.Now().UnixNano())
}

// Failed counts an attempt that kept its snapshot on disk.
func (m *Process) Failed() {
	if m != nil {
		m.failed.Inc()
	}
}

// Dispatcher returns the counters of the dispatcher name (the same ones after a reload).
func (m *Process) Dispatcher(name string) *Dispatcher {
	if m == nil {
		return nil
	}
	return &Dispatcher{
		lines: m.lines.With(name), bytes: m.bytes.With(name), errors: m.errors.With(name),
		reconnects: m.reconnects.With(name), replayed: m.replayed.With(name),
	}
}

// Dispatcher is one dispatcher's counters. Every method is a no-op on a nil *Dispatcher.
type Dispatcher struct {
	lines, bytes, errors, reconnects, replayed *Series
}

// Delivered counts lines and bytes delivered.
func (d *Dispatcher) Delivered(lines, bytes int) {
	if d != nil {
		d.lines.Add(float64(lines))
		d.bytes.Add(float64(bytes))
	}
}

// Error counts a dispatch error.
func (d *Dispatcher) Error() {
	if d != nil {
		d.errors.Inc()
	}
}

// Reconnect counts a connection made again after a loss.
func (d *Dispatcher) Reconnect() {
	if d != nil {
		d.reconnects.Inc()
	}
}

// Replayed counts lines written again after a loss.
func (d *Dispatcher) Replayed(lines int) {
	if d != nil {
		d.replayed.Add(float64(lines))
	}
}

// StuckAfter is how long snapshots may wait with no snapshot settled (delivered or
// quarantined) before stats-process's health check fails.
var StuckAfter = 60 * time.Second

// Health says whether stats-process is healthy: alive() (the spool watcher turns), and some
// snapshot was settled within StuckAfter whenever the oldest waiting one is older than that.
// queue gives the snapshots waiting and the oldest one's age.
func (m *Process) Health(alive func() bool, queue func() (int, time.Duration)) (bool, string) {
	if alive != nil && !alive() {
		return false, "the spool watcher is not running (no turn for 10 s)"
	}
	if m == nil || queue == nil {
		return true, ""
	}
	n, oldest := queue()
	quiet := time.Since(time.Unix(0, m.lastSettled.Load()))
	if n > 0 && oldest > StuckAfter && quiet > StuckAfter {
		return false, fmt.Sprintf("no snapshot delivered for %s while %d wait (the oldest for %s, more than %s)",
			quiet.Round(time.Second), n, oldest.Round(time.Second), StuckAfter)
	}
	return true, ""
}
