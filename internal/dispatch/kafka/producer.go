package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/lograte"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// What the [kafka] dispatcher (a chunk → records) and the snapshot shipper (dispatch/ship: a
// snapshot → fragment records) share: the reconnect counter, the bound on failure logs, and
// the units of a Submit: admitted, answered exactly once when all their records settled or
// their timer fired, and waited for when closing.

// ReconnectHook is a kgo hook that counts, in the self-metrics metrics returns (nil: none),
// the connections made again to a broker after one was closed.
type ReconnectHook struct {
	metrics func() *selfmetrics.Dispatcher
	mu      sync.Mutex
	lost    map[int32]bool
}

var (
	_ kgo.HookBrokerConnect    = (*ReconnectHook)(nil)
	_ kgo.HookBrokerDisconnect = (*ReconnectHook)(nil)
)

// NewReconnectHook returns a hook counting reconnects into metrics().
func NewReconnectHook(metrics func() *selfmetrics.Dispatcher) *ReconnectHook {
	return &ReconnectHook{metrics: metrics, lost: map[int32]bool{}}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *ReconnectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		return
	}
	h.mu.Lock()
	again := h.lost[meta.NodeID]
	delete(h.lost, meta.NodeID)
	h.mu.Unlock()
	if again {
		h.metrics().Reconnect()
	}
}

// OnBrokerDisconnect implements kgo.HookBrokerDisconnect.
func (h *ReconnectHook) OnBrokerDisconnect(meta kgo.BrokerMetadata, _ net.Conn) {
	h.mu.Lock()
	h.lost[meta.NodeID] = true
	h.mu.Unlock()
}

// FailureLog lets through one log line of a failing delivery per minute (an outage fails
// every chunk or snapshot), counting the ones held back. Its zero value is ready.
type FailureLog struct {
	mu sync.Mutex
	w  lograte.Window
}

// Allow reports whether to log now, and how many lines were held back before.
func (l *FailureLog) Allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Allow(time.Now(), time.Minute)
}

// Units is a dispatcher's bookkeeping of its units (chunks, snapshots): whether Close began,
// the units admitted and not yet settled, how many were answered with an error, and the
// self-metrics to count in. Its zero value is ready.
type Units struct {
	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup // units admitted and not yet settled
	failed  atomic.Int64   // units answered with an error
	sm      atomic.Pointer[selfmetrics.Dispatcher]
}

// SetMetrics makes the units count in m (nil: nowhere).
func (u *Units) SetMetrics(m *selfmetrics.Dispatcher) { u.sm.Store(m) }

// Metrics returns what SetMetrics stored; a nil one counts nothing.
func (u *Units) Metrics() *selfmetrics.Dispatcher { return u.sm.Load() }

// Admit admits one unit unless ctx ended or Close began (dispatch.ErrClosed). An admitted
// unit ends with the last Settle of its Unit, or with Done when it needs no Unit.
func (u *Units) Admit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return dispatch.ErrClosed
	}
	u.pending.Add(1)
	return nil
}

// Done ends an admitted unit answered without a Unit.
func (u *Units) Done() { u.pending.Done() }

// Failed counts a unit answered with an error.
func (u *Units) Failed() {
	u.failed.Add(1)
	u.Metrics().Error()
}

// Close makes Admit refuse, flushes what cl holds until ctx ends, closes it (failing whatever
// is still buffered with kgo.ErrClientClosed), waits until every admitted unit is answered,
// and returns how many units failed since the close began. A second Close returns (0, nil).
func (u *Units) Close(ctx context.Context, cl *kgo.Client) (int64, error) {
	u.mu.Lock()
	again := u.closed
	u.closed = true
	u.mu.Unlock()
	if again {
		return 0, nil
	}
	before := u.failed.Load()
	flushErr := cl.Flush(ctx)
	cl.Close()
	u.pending.Wait()
	return u.failed.Load() - before, flushErr
}

// Owner is what a dispatcher's unit decides for its Unit.
type Owner interface {
	// Release is called once franz-go holds none of the unit's records (buffer reuse).
	Release()
	// Delivered counts in m a unit Kafka acknowledged whole, before done(nil).
	Delivered(m *selfmetrics.Dispatcher)
	// Describe turns the first record error into the error passed to done.
	Describe(err error) error
	// Expired is the error passed to done when the unit's timer fires.
	Expired() error
	// LogFailure logs an error passed to done.
	LogFailure(err error)
}

// Unit is one admitted unit produced as records: done(nil) only once Kafka acknowledged every
// record, done(err) once one failed and all settled or once its timer fired, and never when
// Submit returned an error. Embed it in the unit's own struct (the Owner).
type Unit struct {
	units  *Units
	owner  Owner
	done   func(error)
	cancel context.CancelFunc
	stop   func() bool // ends tying the records' context to Submit's

	mu        sync.Mutex
	remaining int // records not yet settled, plus one while Submit is producing
	err       error
	abandoned bool // Submit returned an error: done is never called
	answered  bool // done was called already (by the timer)
	timer     *time.Timer
}

// Begin starts u for a unit units admitted, and returns the context to produce its records
// with: it ends only if ctx does while Submit waits for buffer space, as franz-go would
// otherwise also cancel records already buffered when ctx ends after Submit returned.
func (u *Unit) Begin(ctx context.Context, units *Units, owner Owner, done func(error)) context.Context {
	rctx, cancel := context.WithCancel(context.Background())
	u.units, u.owner, u.done, u.cancel, u.remaining = units, owner, done, cancel, 1
	u.stop = context.AfterFunc(ctx, cancel)
	return rctx
}

// Add counts one more record, to be produced with u.Settle as its promise.
func (u *Unit) Add() {
	u.mu.Lock()
	u.remaining++
	u.mu.Unlock()
}

// Failing reports whether a record of u failed already.
func (u *Unit) Failing() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err != nil
}

// End ends Submit's share of u once it produced the records, and returns Submit's error: ctx's
// when it ended meanwhile (u is then abandoned: done is never called). Otherwise u's timer
// starts: franz-go enforces its record timeout only when failing the records is safe for the
// idempotent sequence numbers, not after a request whose connection broke (a broker that went
// away), so the timer gives up on the unit anyway; records delivered later are duplicates of
// the unit sent again.
func (u *Unit) End(ctx context.Context, timeout time.Duration) error {
	canceled := !u.stop() || ctx.Err() != nil
	u.mu.Lock()
	if canceled {
		u.abandoned = true
	} else {
		u.timer = time.AfterFunc(timeout, u.expire)
	}
	u.mu.Unlock()
	u.Settle(nil, nil) // Submit's own share
	if !canceled {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Canceled
}

// Settle records one record's outcome (a kgo promise); the last one answers the unit.
func (u *Unit) Settle(_ *kgo.Record, err error) {
	u.mu.Lock()
	if err != nil && u.err == nil {
		u.err = err
	}
	u.remaining--
	last := u.remaining == 0
	answered := u.answered || u.abandoned
	u.answered = u.answered || last
	u.mu.Unlock()
	if !last {
		return
	}
	u.cancel()
	if u.timer != nil {
		u.timer.Stop()
	}
	u.owner.Release()
	defer u.units.Done() // after done: Close returns once every unit was answered
	if answered {
		return
	}
	if u.err != nil {
		u.fail(u.owner.Describe(u.err))
		return
	}
	u.owner.Delivered(u.units.Metrics())
	u.done(nil)
}

// expire fails a unit Kafka has not acknowledged within the timeout.
func (u *Unit) expire() {
	u.mu.Lock()
	if u.answered || u.abandoned || u.remaining == 0 {
		u.mu.Unlock()
		return
	}
	u.answered = true
	u.mu.Unlock()
	u.fail(u.owner.Expired())
}

func (u *Unit) fail(err error) {
	u.units.Failed()
	u.owner.LogFailure(err)
	u.done(err)
}

// rejected is a unit that sending again cannot help (dispatch.Rejected).
type rejected struct{ error }

func (r rejected) Rejected() string { return r.Error() }

// Reject marks err as one that sending the unit again cannot mend.
func Reject(err error) error { return rejected{err} }

// DescribeRecordError words a record error for done as "<refused|timedOut|other>: <err>":
// refused (Rejected) when Kafka refuses the record whatever the number of tries, timedOut
// when it was not acknowledged within delivery-timeout.
func DescribeRecordError(err error, refused, timedOut, other string) error {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge), errors.Is(err, kerr.InvalidRecord):
		return Reject(fmt.Errorf("%s: %w", refused, err))
	case errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("%s: %w", timedOut, err)
	}
	return fmt.Errorf("%s: %w", other, err)
}
