package graphite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

const (
	// maxWriteBytes bounds one writev(2): large enough to amortise the system call over
	// several 256 KiB chunks, small enough that acknowledgements follow the data closely.
	maxWriteBytes = 1 << 20
	// maxWriteChunks stays under the kernel's IOV_MAX (1024) so that one call stays one call.
	maxWriteChunks = 1000
	// The writer polls the peer's acknowledgements of written data (there is no event for
	// them) starting at minAckPoll and backing off to maxAckPoll while nothing changes.
	minAckPoll = 200 * time.Microsecond
	maxAckPoll = 20 * time.Millisecond
)

// replayWindow is how long a chunk the peer's TCP stack acknowledged is kept before it counts
// as delivered. If the connection ends within that time the chunk is sent again on the next
// one: carbon-cache 1.1 loses the points it received during the last second or so before it
// stops (its writer thread exits without draining its cache), and a stop is exactly what ends
// the connection. See the package documentation. A variable only so that tests can shorten it.
var replayWindow = 3 * time.Second

// replayBytes bounds the chunks held for the replay window (about 80,000 lines): held chunks
// keep their snapshot's memory from being recycled, and a huge snapshot should not double the
// dispatcher's memory for the sake of its last second.
const replayBytes = 8 << 20

var errPeerClosed = errors.New("connection closed by peer")

// Stats are cumulative counters for logs and self-metrics.
type Stats struct {
	Lines      uint64 // lines delivered (acknowledged), each counted once
	Bytes      uint64 // bytes delivered, each counted once
	Reconnects uint64 // connections established after the first one
	// QueuedLines are accepted but not yet delivered (queued, written and unacknowledged, or
	// acknowledged within the replay window).
	QueuedLines int
	Connected   bool
}

type item struct {
	b    *metric.Batch
	done func(error)
}

// Dispatcher sends chunks to one carbon server. It implements dispatch.Dispatcher.
type Dispatcher struct {
	cfg  config.Graphite
	addr string
	log  *slog.Logger

	// Replaced by tests to count attempts and requested sleeps without waiting.
	dial  func(ctx context.Context, addr string) (net.Conn, error)
	sleep func(ctx context.Context, d time.Duration) bool
	// replay is replayWindow; tests shorten it.
	replay time.Duration

	mu          sync.Mutex
	queue       []item // unacknowledged chunks, oldest first; only the writer removes
	queuedLines int
	closing     bool
	waiters     int           // Submit calls blocked on space
	space       chan struct{} // closed (and replaced) when lines leave the queue and waiters > 0
	conn        net.Conn      // the writer's current connection, so that Close can interrupt a write

	wake      chan struct{} // capacity 1: new chunk or Close
	abortCtx  context.Context
	abort     context.CancelCauseFunc
	exited    chan struct{}
	closeOnce sync.Once
	closeErr  error

	lines, bytes, reconnects atomic.Uint64
	connected                atomic.Bool

	w writerState // owned by the writer goroutine
}

// writerState belongs to the writer goroutine alone.
type writerState struct {
	conn     net.Conn
	peerDead chan error // the connection's reader saw EOF or an error
	fd       uintptr    // for the acknowledged-bytes query; valid while conn is open
	hasFD    bool

	// Offsets on the current connection: bytes written, and bytes the peer acknowledged.
	sent, delivered int64
	lastProgress    time.Time // last time delivered advanced, or nothing was outstanding
	// The queue starts with `held` chunks the peer acknowledged less than the replay window
	// ago (heldAt: when), then `written` chunks written but not yet acknowledged (ends: their
	// end offsets on this connection), then chunks not written yet.
	held    int
	heldAt  []time.Time
	written int
	ends    []int64
	// ackedOnConn counts chunks delivered over the current connection.
	ackedOnConn int
	connectedAt time.Time

	attempts      int // failed attempts in the current connect round
	lastErr       error
	everConnected bool
	lostAt        time.Time

	batch []item
	iov   [][]byte
	acked []item
	timer *time.Timer
}

// New starts a dispatcher for cfg.Server:cfg.Port. It connects in the background at once.
func New(cfg config.Graphite, log *slog.Logger) *Dispatcher {
	d := newDispatcher(cfg, log, nil, nil)
	d.start()
	return d
}

func newDispatcher(cfg config.Graphite, log *slog.Logger,
	dial func(context.Context, string) (net.Conn, error),
	sleep func(context.Context, time.Duration) bool) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		cfg:    cfg,
		addr:   net.JoinHostPort(cfg.Server, strconv.Itoa(cfg.Port)),
		log:    log,
		dial:   dial,
		sleep:  sleep,
		space:  make(chan struct{}),
		wake:   make(chan struct{}, 1),
		exited: make(chan struct{}),
		replay: replayWindow,
	}
	d.abortCtx, d.abort = context.WithCancelCause(context.Background())
	if d.dial == nil {
		dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
		d.dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}
	}
	if d.sleep == nil {
		d.sleep = sleepCtx
	}
	return d
}

func (d *Dispatcher) start() { go d.run() }

// Name implements dispatch.Dispatcher.
func (d *Dispatcher) Name() string { return "graphite" }

// Addr is the host:port the dispatcher sends to.
func (d *Dispatcher) Addr() string { return d.addr }

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	queued := d.queuedLines
	d.mu.Unlock()
	return Stats{
		Lines:       d.lines.Load(),
		Bytes:       d.bytes.Load(),
		Reconnects:  d.reconnects.Load(),
		QueuedLines: queued,
		Connected:   d.connected.Load(),
	}
}

// Submit implements dispatch.Dispatcher. It blocks while the dispatcher holds queue-size
// lines, unless the queue is empty.
func (d *Dispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	for {
		if d.closing {
			d.mu.Unlock()
			return dispatch.ErrClosed
		}
		if len(d.queue) == 0 || d.queuedLines+b.Lines <= d.cfg.QueueSize {
			break
		}
		space := d.space
		d.waiters++
		d.mu.Unlock()
		d.signal() // the writer gives up the replay window of held chunks to make space
		var err error
		select {
		case <-space:
		case <-ctx.Done():
			err = ctx.Err()
		}
		d.mu.Lock()
		d.waiters--
		if err != nil {
			d.mu.Unlock()
			return err
		}
	}
	d.queue = append(d.queue, item{b: b, done: done})
	d.queuedLines += b.Lines
	d.mu.Unlock()
	d.signal()
	return nil
}

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close implements dispatch.Dispatcher: it stops accepting chunks, delivers what is queued
// while ctx allows (reconnecting if needed), then fails the rest and closes the connection.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closing = true
		empty := len(d.queue) == 0
		if d.waiters > 0 {
			close(d.space)
			d.space = make(chan struct{})
		}
		d.mu.Unlock()
		if empty {
			// Nothing to deliver: don't wait for a connect attempt or a retry sleep.
			d.abort(dispatch.ErrClosed)
		}
		d.signal()
		select {
		case <-d.exited:
		case <-ctx.Done():
			d.abort(ctx.Err())
			d.mu.Lock()
			if d.conn != nil {
				// Interrupt a write in progress; the writer checks abortCtx before each write.
				_ = d.conn.SetWriteDeadline(time.Unix(1, 0))
			}
			d.mu.Unlock()
			<-d.exited
		}
	})
	<-d.exited
	return d.closeErr
}

func (d *Dispatcher) run() {
	defer close(d.exited)
	for d.abortCtx.Err() == nil {
		if d.w.conn == nil {
			if !d.connect() {
				break
			}
		}
		if !d.step() {
			break
		}
	}
	d.shutdown()
}

// step does one unit of work on the open connection: write what is queued, collect the peer's
// acknowledgements, or wait. It returns false when the writer must stop.
func (d *Dispatcher) step() bool {
	w := &d.w
	select {
	case err := <-w.peerDead:
		d.dropConn(err)
		return true
	default:
	}

	d.mu.Lock()
	w.batch = w.batch[:0]
	size := 0
	for _, it := range d.queue[w.held+w.written:] {
		if len(w.batch) > 0 && (size+len(it.b.Data) > maxWriteBytes || len(w.batch) == maxWriteChunks) {
			break
		}
		w.batch = append(w.batch, it)
		size += len(it.b.Data)
	}
	closing := d.closing
	d.mu.Unlock()

	if len(w.batch) > 0 {
		err := d.write(w.batch)
		clear(w.batch)
		if d.abortCtx.Err() != nil {
			return false
		}
		// Chunks the peer acknowledged before a failure are delivered all the same.
		d.collectAcks()
		if err == nil {
			err = d.ackStalled()
		}
		if err != nil {
			d.dropConn(err)
		}
		return true
	}

	if w.written > 0 {
		// Everything is written; wait for the peer to acknowledge it.
		d.collectAcks()
		if w.written == 0 {
			return true
		}
		if err := d.ackStalled(); err != nil {
			d.dropConn(err)
			return true
		}
		return d.waitAck()
	}

	if closing {
		d.release(true)
		return false // everything delivered
	}
	d.release(false)
	var replayEnd <-chan time.Time
	if w.held > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(time.Until(w.heldAt[0].Add(d.replay)))
		} else {
			w.timer.Reset(time.Until(w.heldAt[0].Add(d.replay)))
		}
		replayEnd = w.timer.C
	}
	select {
	case <-d.wake:
	case <-replayEnd:
	case err := <-w.peerDead:
		d.dropConn(err)
	case <-d.abortCtx.Done():
		return false
	}
	if w.timer != nil && replayEnd != nil {
		w.timer.Stop()
	}
	return true
}

// ackStalled says why the connection is dead when written bytes have been waiting for the
// peer's acknowledgement for longer than write-timeout (a peer that vanished without a reset).
func (d *Dispatcher) ackStalled() error {
	w := &d.w
	if d.cfg.WriteTimeout <= 0 || w.sent == w.delivered || time.Since(w.lastProgress) <= d.cfg.WriteTimeout {
		return nil
	}
	return fmt.Errorf("peer acknowledged none of %d bytes for %v", w.sent-w.delivered, d.cfg.WriteTimeout)
}

// waitAck sleeps until the next acknowledgement poll, new data, a dead peer or abort.
func (d *Dispatcher) waitAck() bool {
	w := &d.w
	// Poll soon after progress, less often as the wait gets longer.
	poll := time.Since(w.lastProgress) / 4
	poll = min(max(poll, minAckPoll), maxAckPoll)
	if w.timer == nil {
		w.timer = time.NewTimer(poll)
	} else {
		w.timer.Reset(poll)
	}
	select {
	case <-w.timer.C:
	case <-d.wake:
		w.timer.Stop()
	case err := <-w.peerDead:
		w.timer.Stop()
		d.dropConn(err)
	case <-d.abortCtx.Done():
		w.timer.Stop()
		return false
	}
	return true
}

// write sends the chunks in batch (which follow queue[:written]) with as few system calls as
// possible, and records which of them were written completely.
func (d *Dispatcher) write(batch []item) error {
	w := &d.w
	if w.sent == w.delivered {
		w.lastProgress = time.Now()
	}
	w.iov = w.iov[:0]
	for _, it := range batch {
		w.iov = append(w.iov, it.b.Data)
	}
	bufs := net.Buffers(w.iov)
	var total int64
	var err error
	for {
		if d.cfg.WriteTimeout > 0 {
			err = w.conn.SetWriteDeadline(time.Now().Add(d.cfg.WriteTimeout))
		} else {
			err = w.conn.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			break
		}
		if d.abortCtx.Err() != nil {
			err = context.Cause(d.abortCtx)
			break
		}
		var n int64
		n, err = bufs.WriteTo(w.conn)
		total += n
		if err == nil || len(bufs) == 0 {
			err = nil
			break
		}
		// A timeout after some progress means a slow peer, not a dead one: carry on.
		var ne net.Error
		if n == 0 || !errors.As(err, &ne) || !ne.Timeout() {
			break
		}
	}
	clear(w.iov)

	pos := w.sent
	for _, it := range batch {
		end := pos + int64(len(it.b.Data))
		if end > w.sent+total {
			break
		}
		w.ends = append(w.ends, end)
		w.written++
		pos = end
	}
	w.sent += total
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// collectAcks moves the written chunks the peer has received completely to the held ones, and
// releases the held chunks that are due.
func (d *Dispatcher) collectAcks() {
	w := &d.w
	delivered := w.sent
	if w.hasFD {
		if unacked, ok := unackedBytes(w.fd); ok {
			delivered = w.sent - int64(unacked)
		}
	}
	now := time.Now()
	if delivered > w.delivered {
		w.delivered = delivered
		w.lastProgress = now
	}
	k := 0
	for k < w.written && w.ends[k] <= w.delivered {
		k++
	}
	if k > 0 {
		w.ackedOnConn += k
		w.attempts = 0
		w.written -= k
		w.ends = w.ends[:copy(w.ends, w.ends[k:])]
		w.held += k
		for range k {
			w.heldAt = append(w.heldAt, now)
		}
	}
	d.release(false)
}

// release reports held chunks delivered: those acknowledged at least the replay window ago,
// all of them when force is set (the dispatcher is closing) or when Submit waits for space
// (the replay window never slows the pipeline down).
func (d *Dispatcher) release(force bool) {
	w := &d.w
	if w.held == 0 {
		return
	}
	d.mu.Lock()
	if d.waiters > 0 {
		force = true
	}
	k := w.held
	if !force {
		k = 0
		due := time.Now().Add(-d.replay)
		for k < w.held && !w.heldAt[k].After(due) {
			k++
		}
		heldBytes := 0
		for _, it := range d.queue[k:w.held] {
			heldBytes += len(it.b.Data)
		}
		for k < w.held && heldBytes > replayBytes {
			heldBytes -= len(d.queue[k].b.Data)
			k++
		}
	}
	if k == 0 {
		d.mu.Unlock()
		return
	}
	w.acked = append(w.acked[:0], d.queue[:k]...)
	d.mu.Unlock()
	w.held -= k
	w.heldAt = w.heldAt[:copy(w.heldAt, w.heldAt[k:])]
	// Counters and done callbacks run before the space is released, so that a Submit
	// unblocked by this space sees them done.
	var lines, bytes int
	for _, it := range w.acked {
		lines += it.b.Lines
		bytes += len(it.b.Data)
	}
	d.lines.Add(uint64(lines))
	d.bytes.Add(uint64(bytes))
	for _, it := range w.acked {
		it.done(nil)
	}
	clear(w.acked)

	d.mu.Lock()
	clear(d.queue[:k])
	d.queue = d.queue[k:]
	d.queuedLines -= lines
	if d.waiters > 0 {
		close(d.space)
		d.space = make(chan struct{})
	}
	d.mu.Unlock()
}

// dropConn closes a failed connection; its unacknowledged chunks stay queued for the next one.
func (d *Dispatcher) dropConn(cause error) {
	w := &d.w
	// Reset rather than close: what is still in our send buffer will be sent again on the
	// next connection, and a peer that is only slow should not get it twice.
	if tc, ok := w.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = w.conn.Close()
	d.connected.Store(false)
	d.mu.Lock()
	d.conn = nil
	unacked := d.queuedLines
	d.mu.Unlock()

	if w.ackedOnConn > 0 || time.Since(w.connectedAt) >= d.cfg.Delay {
		w.attempts = 0
	} else {
		// A connection that delivered nothing and did not even last `delay` counts as a
		// failed connect attempt, so that a peer accepting and closing every connection
		// cannot make the writer spin.
		w.attempts++
	}
	w.lastErr = cause
	w.conn, w.peerDead, w.hasFD = nil, nil, false
	d.mu.Lock()
	replayed := 0
	for _, it := range d.queue[:w.held] {
		replayed += it.b.Lines
	}
	d.mu.Unlock()
	// Held chunks go out again first: the peer may have lost them with the connection.
	w.held, w.heldAt = 0, w.heldAt[:0]
	w.sent, w.delivered, w.written, w.ackedOnConn = 0, 0, 0, 0
	w.ends = w.ends[:0]
	w.lostAt = time.Now()
	d.log.Warn("graphite connection lost", "address", d.addr, "error", cause,
		"unacknowledged_lines", unacked-replayed, "replayed_lines", replayed)
}

// connect opens a connection, retrying in rounds until it succeeds. It returns false when the
// writer must stop (Close gave up, or was called with nothing to deliver).
func (d *Dispatcher) connect() bool {
	w := &d.w
	for {
		if w.attempts > 0 {
			wait, roundOver := d.retryWait(w.attempts)
			if roundOver {
				d.mu.Lock()
				waiting := d.queuedLines
				d.mu.Unlock()
				d.log.Error("graphite: cannot connect", "address", d.addr, "attempts", w.attempts,
					"error", w.lastErr, "retry_in", wait, "waiting_lines", waiting)
				if d.cfg.Retries >= 0 {
					w.attempts = 0
				}
			}
			if !d.sleep(d.abortCtx, wait) {
				return false
			}
		}
		conn, err := d.dial(d.abortCtx, d.addr)
		if d.abortCtx.Err() != nil {
			if conn != nil {
				_ = conn.Close()
			}
			return false
		}
		if err != nil {
			w.attempts++
			w.lastErr = err
			continue
		}
		d.attach(conn)
		return true
	}
}

// retryWait is the sleep before the next attempt after `failed` failed attempts of a round,
// and whether that ends a round (which is then logged).
func (d *Dispatcher) retryWait(failed int) (time.Duration, bool) {
	ceiling := max(d.cfg.Delay, d.cfg.Interval)
	if d.cfg.Retries >= 0 && failed >= d.cfg.Retries+1 {
		return d.cfg.Delay, true
	}
	wait := float64(d.cfg.Interval) * math.Pow(d.cfg.Backoff, float64(failed-1))
	if math.IsNaN(wait) || wait >= float64(ceiling) {
		// An unbounded round is logged on its first failure and whenever the wait has
		// reached its ceiling, i.e. at most once per delay.
		return ceiling, d.cfg.Retries < 0
	}
	return time.Duration(wait), d.cfg.Retries < 0 && failed == 1
}

func (d *Dispatcher) attach(conn net.Conn) {
	w := &d.w
	w.conn = conn
	w.peerDead = make(chan error, 1)
	w.fd, w.hasFD = connFD(conn)
	w.sent, w.delivered, w.written, w.ackedOnConn = 0, 0, 0, 0
	w.connectedAt = time.Now()
	w.lastProgress = w.connectedAt
	go watchPeer(conn, w.peerDead)

	d.mu.Lock()
	d.conn = conn
	waiting := d.queuedLines
	d.mu.Unlock()
	d.connected.Store(true)
	if !w.everConnected {
		w.everConnected = true
		d.log.Info("graphite connected", "address", d.addr, "waiting_lines", waiting)
	} else {
		d.reconnects.Add(1)
		d.log.Info("graphite reconnected", "address", d.addr,
			"after", time.Since(w.lostAt).Round(time.Millisecond), "waiting_lines", waiting)
	}
}

// watchPeer notices a peer that closed or reset the connection while we had nothing to write
// (carbon-c-relay drops idle clients), so that the next chunk does not go into a dead socket.
// Carbon never sends anything on this connection; whatever arrives is discarded.
func watchPeer(conn net.Conn, dead chan<- error) {
	var buf [512]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = errPeerClosed
			}
			dead <- err
			return
		}
	}
}

// shutdown fails whatever is still queued and releases the connection.
func (d *Dispatcher) shutdown() {
	w := &d.w
	wasConnected := w.conn != nil
	if w.conn != nil {
		// What the peer acknowledged before Close gave up is delivered, not failed.
		d.collectAcks()
		d.release(true)
		_ = w.conn.Close()
		w.conn = nil
		d.connected.Store(false)
	}
	cause := context.Cause(d.abortCtx)
	if cause == nil {
		cause = dispatch.ErrClosed
	}
	d.mu.Lock()
	d.conn = nil
	d.closing = true
	left := d.queue
	d.queue = nil
	d.queuedLines = 0
	if d.waiters > 0 {
		close(d.space)
		d.space = make(chan struct{})
	}
	d.mu.Unlock()
	if len(left) == 0 {
		return
	}
	lines := 0
	for _, it := range left {
		lines += it.b.Lines
		var err error
		if w.lastErr != nil && !wasConnected {
			err = fmt.Errorf("graphite %s: chunk %d of %s not delivered at shutdown (last error: %v): %w",
				d.addr, it.b.Seq, it.b.Source, w.lastErr, cause)
		} else {
			err = fmt.Errorf("graphite %s: chunk %d of %s not delivered at shutdown: %w",
				d.addr, it.b.Seq, it.b.Source, cause)
		}
		it.done(err)
	}
	d.closeErr = fmt.Errorf("graphite %s: %d chunks (%d lines) not delivered at shutdown: %w",
		d.addr, len(left), lines, cause)
	d.log.Error("graphite: giving up at shutdown", "address", d.addr, "chunks", len(left),
		"lines", lines, "error", cause)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
