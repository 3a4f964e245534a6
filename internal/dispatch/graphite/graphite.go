package graphite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/lograte"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

const (
	// maxWriteBytes bounds one writev(2): large enough to amortise the system call over
	// several 256 KiB chunks, small enough that the peer's window follows the data closely.
	maxWriteBytes = 1 << 20
	// maxWriteChunks stays under the kernel's IOV_MAX (1024) so that one call stays one call.
	maxWriteChunks = 1000
	// The writer polls the peer's acknowledgements and window (there is no event for them)
	// starting at minAckPoll and backing off to maxAckPoll while nothing changes.
	minAckPoll = 200 * time.Microsecond
	maxAckPoll = 20 * time.Millisecond
	// keepAliveIdle makes the peer's kernel answer a probe, with its current window, after
	// this much silence: the window a quiet connection shows would otherwise be stale (Linux
	// sends a window update of its own only when the window at least doubles).
	keepAliveIdle = time.Second
	// lineProbeMax bounds the prefix of a line quoted in logs and errors.
	lineProbeMax = 64
)

// Variables only so that tests can shorten them.
var (
	// drainHold is how long a drain waits after the peer acknowledged everything before it
	// half-closes the connection.
	drainHold = 5 * time.Millisecond
	// strictHold replaces it in careful mode, or when a line longer than carbon's 16 KiB limit
	// was written last: a receiver that drops the connection because of a line it read does
	// so once it has processed that read, and its close must not be taken for the answer to
	// our end of stream. 50 ms proved too short for a test peer under the race detector.
	strictHold = 500 * time.Millisecond
	// replayHold and replayBudget: a chunk proven read is still kept (and sent again if the
	// connection ends) until the peer application showed life replayHold after its proof,
	// within replayBudget bytes (QueueBytes/4): carbon-cache keeps what it read in memory for
	// about a second before it writes it, and loses that when it is stopped or killed.
	replayHold = 2 * time.Second
	// drainQuiet: when the window never reopens fully (the peer shrank its buffer), the drain
	// starts anyway once the window's right edge stood still this long (at most half the
	// stall-timeout).
	drainQuiet = 2 * time.Second
	// lossLogEvery rate-limits the log lines of one ongoing fault.
	lossLogEvery = time.Minute
)

var errPeerClosed = errors.New("connection closed by peer")

var newline = []byte{'\n'}

// ErrGaveUp is wrapped by the errors of a NewOnce dispatcher once it gave up.
var ErrGaveUp = errors.New("graphite: gave up")

// Stats are cumulative counters for logs and self-metrics.
type Stats struct {
	Lines       uint64 // lines proven read by the peer, each counted once
	Bytes       uint64 // bytes proven read, each counted once
	Reconnects  uint64 // connections established after the first one
	Drains      uint64 // connections closed by statspipe to prove the peer read everything
	ResentBytes uint64 // bytes written again because an earlier connection did not prove them
	// WrittenBytes counts every byte written, on all connections.
	WrittenBytes uint64
	Rejected     uint64 // lines skipped because the peer kept dropping the connection on them
	Losses       uint64 // connections that failed or were given up (not drains)
	// ConnectFailures counts failed connect attempts.
	ConnectFailures uint64
	// QueuedLines and QueuedBytes are accepted but not yet proven read (queued, in flight, or
	// waiting for proof).
	QueuedLines int
	QueuedBytes int
	// HeldBytes are proven read and kept for the replay hold (at most QueueBytes/4).
	HeldBytes int
	Connected bool
}

type item struct {
	b    *metric.Batch
	done func(error)
	// skip: bytes at the start of b.Data already proven read (careful mode sends a chunk in
	// pieces), never sent again.
	skip int
	// rejected: lines of this chunk that were skipped (careful mode); done gets a RejectedError.
	rejected []rejectedLine
	// sentBefore: some of it was written on an earlier connection (for the resent counter).
	sentBefore bool
	// replayed: it was proven and held, and is sent again after a loss; a second proof
	// releases it at once.
	replayed bool
}

type rejectedLine struct {
	offset, length int
	prefix         string
}

// RejectedError is passed to done for a chunk in which the peer kept dropping the connection
// on one or more lines; every other line of the chunk was delivered. It implements
// dispatch.Rejected.
type RejectedError struct {
	Addr   string
	Source string
	Seq    int
	Lines  []string // "<length> bytes at byte <offset>: <first bytes>" per skipped line
	reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("graphite %s: chunk %d of %s: %s", e.Addr, e.Seq, e.Source, e.reason)
}

// Rejected implements dispatch.Rejected.
func (e *RejectedError) Rejected() string { return e.Error() }

var _ dispatch.Rejected = (*RejectedError)(nil)

// Dispatcher sends chunks to one carbon server. It implements dispatch.Dispatcher.
type Dispatcher struct {
	cfg  config.Graphite
	addr string
	log  *slog.Logger
	// once: give up (fail everything, refuse new chunks) after one failed connect round or a
	// stall, for stats-process --once.
	once bool

	// The package's timing knobs, copied at construction (tests change the variables).
	drainHold, strictHold, replayHold, drainQuiet, lossLogEvery time.Duration

	// Replaced by tests to count attempts and requested sleeps without waiting.
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	sleep  func(ctx context.Context, d time.Duration) bool
	jitter func(time.Duration) time.Duration

	mu sync.Mutex
	// queue: chunks not yet done, oldest first; only the writer removes. It starts with the
	// writer's held chunks (proven, kept for the replay hold), then the unproven ones.
	queue []item
	// Lines and bytes of the unproven chunks (back-pressure), and bytes of the held ones.
	queuedLines int
	queuedBytes int
	heldBytes   int
	closing     bool
	failed      error         // set when a NewOnce dispatcher gave up: Submit fails fast
	waiters     int           // Submit calls blocked on space
	space       chan struct{} // closed (and replaced) when chunks leave the queue and waiters > 0
	conn        net.Conn      // the writer's current connection, so that Close can interrupt a write

	wake      chan struct{} // capacity 1: new chunk or Close
	abortCtx  context.Context
	abort     context.CancelCauseFunc
	exited    chan struct{}
	closeOnce sync.Once
	closeErr  error

	lines, bytes, reconnects, drains, resent, written, rejected, losses, connectFailures atomic.Uint64
	connected                                                                            atomic.Bool
	// sm: the self-metrics counters (SetMetrics); nil counts nothing.
	sm atomic.Pointer[selfmetrics.Dispatcher]

	w writerState // owned by the writer goroutine
}

// writerState belongs to the writer goroutine alone.
type writerState struct {
	conn     net.Conn
	peerDead chan error // the connection's reader saw EOF or an error
	fd       uintptr    // for TCP_INFO; valid while conn is open
	hasInfo  bool

	// Offsets on the current connection: bytes written, and what TCP_INFO says.
	sent      int64
	ackBase   int64 // tcpi_bytes_acked at connect (the SYN counts as one)
	acked     int64
	right     int64 // acked + the peer's advertised window: the window's right edge
	maxWindow int64 // the largest window the peer advertised on this connection
	// lastProgress: last time acked or the right edge advanced (or nothing was outstanding).
	lastProgress time.Time
	lastWrite    time.Time
	// queue[:held] are proven and held (heldAt: when proven; lastAppLife: the last sign that
	// the peer application is alive: its window moved, or it answered our half-close).
	held        int
	heldAt      []time.Time
	lastAppLife time.Time
	// queue[held:held+written] were written on this connection; ends are their end offsets.
	// With piece set, the last of them was written only up to pieceEnd (an offset in its Data).
	written  int
	ends     []int64
	piece    bool
	pieceEnd int
	// Drain: readyAt is when the peer first showed it had read everything written; finSent
	// once we half-closed the connection, after which its EOF proves everything written.
	readyAt      time.Time
	finSent      bool
	provenOnConn int
	// provenBytes: bytes proven on this connection; provenEnd: the offset they reach.
	provenBytes int
	provenEnd   int64
	connectedAt time.Time

	attempts      int  // failed attempts in the current connect round
	lossWait      bool // wait interval before the next attempt: a working connection was lost
	lastErr       error
	everConnected bool
	lostAt        time.Time
	lossLogged    bool // the last loss was logged, so its reconnection is too
	afterLoss     bool // the next connection follows a loss (not a drain): a reconnect

	care careful
	// rejectAtLeast (bytes, '\n' included; 0: none yet) is the length of the shortest line over
	// carbon's 16 KiB limit that the receiver rejected: lines at least that long are skipped
	// without being tried again (see skipKnownRejectedLocked). It lasts as long as the process.
	rejectAtLeast int

	lossLog, connectLog lograte.Window

	batch []item
	iov   [][]byte
	ready []item
	timer *time.Timer
}

// New starts a dispatcher for cfg.Server:cfg.Port. It connects in the background at once.
func New(cfg config.Graphite, log *slog.Logger) *Dispatcher {
	d := newDispatcher(cfg, log, nil, nil)
	d.start()
	return d
}

// NewOnce is New for a single pass (stats-process --once): after one failed connect round
// (retries+1 attempts; with retries = -1, the backoff up to delay) or a stall-timeout, it
// fails every queued chunk with done(err) and every later Submit at once.
func NewOnce(cfg config.Graphite, log *slog.Logger) *Dispatcher {
	d := newDispatcher(cfg, log, nil, nil)
	d.once = true
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
		jitter: jitter,
		space:  make(chan struct{}),
		wake:   make(chan struct{}, 1),
		exited: make(chan struct{}),

		drainHold: drainHold, strictHold: strictHold, replayHold: replayHold,
		drainQuiet: drainQuiet, lossLogEvery: lossLogEvery,
	}
	if d.cfg.QueueBytes <= 0 {
		d.cfg.QueueBytes = 4 << 20
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

// jitter spreads reconnections: a wait d becomes a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func (d *Dispatcher) start() { go d.run() }

// Name implements dispatch.Dispatcher.
func (d *Dispatcher) Name() string { return "graphite" }

// SetMetrics makes the dispatcher count lines and bytes delivered, errors (lost connections
// and failed connects), reconnections after a loss and lines replayed in m.
func (d *Dispatcher) SetMetrics(m *selfmetrics.Dispatcher) { d.sm.Store(m) }

// Addr is the host:port the dispatcher sends to.
func (d *Dispatcher) Addr() string { return d.addr }

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	lines, size, held := d.queuedLines, d.queuedBytes, d.heldBytes
	d.mu.Unlock()
	return Stats{
		Lines:           d.lines.Load(),
		Bytes:           d.bytes.Load(),
		Reconnects:      d.reconnects.Load(),
		Drains:          d.drains.Load(),
		ResentBytes:     d.resent.Load(),
		WrittenBytes:    d.written.Load(),
		Rejected:        d.rejected.Load(),
		Losses:          d.losses.Load(),
		ConnectFailures: d.connectFailures.Load(),
		QueuedLines:     lines,
		QueuedBytes:     size,
		HeldBytes:       held,
		Connected:       d.connected.Load(),
	}
}

// sndBuf is the socket send buffer statspipe asks for: QueueBytes/8 within [64 KiB, 4 MiB].
// Linux doubles it. A small buffer keeps the bytes in flight, and so the bytes waiting for
// proof, small; 4 MiB still fills a 40 ms path at 100 MB/s.
func (d *Dispatcher) sndBuf() int { return min(max(d.cfg.QueueBytes/8, 64<<10), 4<<20) }

// Submit implements dispatch.Dispatcher. It blocks while the dispatcher holds queue-size
// lines or queue-bytes bytes, unless the queue is empty.
func (d *Dispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	for {
		if d.failed != nil {
			d.mu.Unlock()
			return d.failed
		}
		if d.closing {
			d.mu.Unlock()
			return dispatch.ErrClosed
		}
		if (d.queuedLines == 0 && d.queuedBytes == 0) || (d.queuedLines+b.Lines <= d.cfg.QueueSize &&
			d.queuedBytes+len(b.Data) <= d.cfg.QueueBytes) {
			break
		}
		space := d.space
		d.waiters++
		d.mu.Unlock()
		d.signal() // the writer proves what it holds without waiting for more data
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
	d.queuedBytes += len(b.Data)
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
		d.wakeWaitersLocked()
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

func (d *Dispatcher) wakeWaitersLocked() {
	if d.waiters > 0 {
		close(d.space)
		d.space = make(chan struct{})
	}
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

// step does one unit of work on the open connection: write what is queued, collect the
// peer's progress, drain, or wait. It returns false when the writer must stop.
func (d *Dispatcher) step() bool {
	w := &d.w
	select {
	case err := <-w.peerDead:
		d.peerEnded(err)
		return true
	default:
	}

	d.mu.Lock()
	w.batch = w.batch[:0]
	size := 0
	pieceEnd := -1
	if !w.finSent && !w.piece { // a piece ends what a careful connection carries
		limit := maxWriteBytes
		if w.care.on {
			limit = max(0, w.care.budget-int(w.sent))
		}
		for i, it := range d.queue[w.held+w.written:] {
			rest := len(it.b.Data) - it.skip
			if w.care.on && w.written+i == 0 {
				stop := d.skipKnownRejectedLocked(&d.queue[w.held+w.written+i])
				it = d.queue[w.held+w.written+i]
				rest = len(it.b.Data) - it.skip
				if end := min(w.care.pieceEnd(it), stop); end < len(it.b.Data) {
					w.batch = append(w.batch, it)
					pieceEnd = end
					break
				}
			}
			if len(w.batch) > 0 && (size+rest > limit || len(w.batch) == maxWriteChunks) {
				break
			}
			if w.care.on && size+rest > limit {
				break // a later chunk on its own connection
			}
			w.batch = append(w.batch, it)
			size += rest
		}
	}
	closing := d.closing
	d.mu.Unlock()

	if len(w.batch) > 0 {
		err := d.write(w.batch, pieceEnd)
		clear(w.batch)
		if d.abortCtx.Err() != nil {
			return false
		}
		// What the peer proved before a failure is delivered all the same.
		d.collect()
		if err == nil {
			err = d.stalled()
		}
		if err != nil {
			d.lose(err)
		}
		return true
	}

	if w.written > 0 || w.finSent {
		// Everything that may be written is written; wait for proof.
		d.collect()
		if w.written == 0 && !w.finSent {
			return true
		}
		if err := d.stalled(); err != nil {
			d.lose(err)
			return true
		}
		d.maybeDrain()
		return d.waitProgress()
	}

	if closing {
		d.releaseHeld(true)
		return false // everything delivered
	}
	var holdEnd <-chan time.Time
	if w.held > 0 {
		due := w.heldAt[0].Add(d.replayHold)
		if !time.Now().Before(due) {
			d.releaseHeld(false)
			if w.held > 0 && w.heldAt[0].Add(d.replayHold).Before(time.Now()) {
				// Held chunks are due but the application showed no life since: ask it,
				// by a drain of this idle connection.
				d.halfClose()
				return true
			}
			return true
		}
		if w.timer == nil {
			w.timer = time.NewTimer(time.Until(due))
		} else {
			w.timer.Reset(time.Until(due))
		}
		holdEnd = w.timer.C
	}
	select {
	case <-holdEnd:
	case <-d.wake:
	case err := <-w.peerDead:
		d.peerEnded(err)
	case <-d.abortCtx.Done():
		return false
	}
	return true
}

// stalled says why the connection is given up when the peer showed no progress (nothing
// acknowledged, no window reopened) for stall-timeout while we waited for it.
func (d *Dispatcher) stalled() error {
	w := &d.w
	if d.cfg.StallTimeout <= 0 || time.Since(w.lastProgress) <= d.cfg.StallTimeout {
		return nil
	}
	if !w.finSent && w.hasInfo && w.acked == w.sent && w.written > 0 {
		return nil // everything acknowledged: the wait before our drain is ours, not the peer's
	}
	if w.finSent {
		return &stallError{fmt.Sprintf("peer did not answer our end of stream within %v (%d bytes to prove)",
			d.cfg.StallTimeout, w.sent)}
	}
	return &stallError{fmt.Sprintf("peer made no progress for %v (%d of %d bytes written on this connection unacknowledged)",
		d.cfg.StallTimeout, w.sent-w.acked, w.sent)}
}

// stallError: we gave the connection up; the peer did not end it.
type stallError struct{ msg string }

func (e *stallError) Error() string { return e.msg }

// maybeDrain half-closes the connection once nothing more is to be written on it and the peer
// has evidently read everything written: the peer's EOF will prove it.
func (d *Dispatcher) maybeDrain() {
	w := &d.w
	if w.finSent {
		return
	}
	now := time.Now()
	ready, hold := true, d.drainHold
	if w.hasInfo {
		ready = w.acked == w.sent
		if ready && (w.care.on || d.longLineNearEnd()) {
			hold = d.strictHold
			// The peer may drop the connection on a line it reads last: wait for its window
			// to show that it read everything (or to stand still) before the hold.
			window := w.right - w.acked
			quiet := d.drainQuiet
			if d.cfg.StallTimeout > 0 {
				quiet = min(quiet, d.cfg.StallTimeout/2)
			}
			ready = window >= w.maxWindow || now.Sub(w.lastProgress) >= quiet
		}
	} else {
		ready = now.Sub(w.lastWrite) >= d.strictHold
	}
	if !ready {
		w.readyAt = time.Time{}
		return
	}
	if w.readyAt.IsZero() {
		w.readyAt = now
	}
	if now.Sub(w.readyAt) < hold {
		return
	}
	d.halfClose()
}

// halfClose sends our end of stream (FIN). The peer application reads it only after every
// byte before it, and a Linux peer that closes with unread data resets instead of closing;
// so its EOF proves that it read everything.
func (d *Dispatcher) halfClose() {
	w := &d.w
	cw, ok := w.conn.(interface{ CloseWrite() error })
	if !ok {
		d.drained() // no half-close on this kind of connection: written counts as read
		return
	}
	if err := cw.CloseWrite(); err != nil {
		d.lose(fmt.Errorf("half-close: %w", err))
		return
	}
	w.finSent = true
	w.lastProgress = time.Now() // the EOF is the progress awaited now
}

// waitProgress sleeps until the next poll, new data, a dead peer or abort.
func (d *Dispatcher) waitProgress() bool {
	w := &d.w
	if w.conn == nil {
		return true
	}
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
		d.peerEnded(err)
	case <-d.abortCtx.Done():
		w.timer.Stop()
		return false
	}
	return true
}

// write sends the chunks in batch (which follow queue[:written]) with one writev, and records
// which of them were written completely. pieceEnd ≥ 0 means only batch[0].b.Data[:pieceEnd]
// may be written. A timeout is no error: a blocked write is only a slow peer, judged by
// stall-timeout.
func (d *Dispatcher) write(batch []item, pieceEnd int) error {
	w := &d.w
	if w.written == 0 && w.sent == w.acked {
		w.lastProgress = time.Now()
	}
	base := w.held
	w.iov = w.iov[:0]
	for i, it := range batch {
		end := len(it.b.Data)
		if i == 0 && pieceEnd >= 0 {
			end = pieceEnd
		}
		w.iov = append(w.iov, it.b.Data[it.skip:end])
	}
	bufs := net.Buffers(w.iov)
	var err error
	if d.cfg.WriteTimeout > 0 {
		err = w.conn.SetWriteDeadline(time.Now().Add(d.cfg.WriteTimeout))
	} else {
		err = w.conn.SetWriteDeadline(time.Time{})
	}
	var total int64
	if err == nil {
		if d.abortCtx.Err() != nil {
			err = context.Cause(d.abortCtx)
		} else {
			total, err = bufs.WriteTo(w.conn)
		}
	}
	clear(w.iov)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && d.abortCtx.Err() == nil {
		err = nil
	}
	if total > 0 {
		d.written.Add(uint64(total))
		w.lastWrite = time.Now()
		w.readyAt = time.Time{}
	}

	pos := w.sent
	d.mu.Lock()
	for i, it := range batch {
		end := len(it.b.Data)
		if i == 0 && pieceEnd >= 0 {
			end = pieceEnd
		}
		if pos+int64(end-it.skip) > w.sent+total {
			break
		}
		pos += int64(end - it.skip)
		q := &d.queue[base+w.written]
		if q.sentBefore {
			d.resent.Add(uint64(end - it.skip))
			d.sm.Load().Replayed(bytes.Count(it.b.Data[it.skip:end], newline))
		}
		q.sentBefore = true
		w.ends = append(w.ends, pos)
		w.written++
		if end < len(it.b.Data) {
			w.piece, w.pieceEnd = true, end
		}
	}
	if pos < w.sent+total {
		d.queue[base+w.written].sentBefore = true // cut by the failure: a part went out
	}
	d.mu.Unlock()
	w.sent += total
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// collect reads the peer's progress from TCP_INFO: the bytes it acknowledged and its window's
// right edge (acknowledged + advertised window), which moves as the application frees buffer
// space. Progress keeps the connection from being given up, but proves nothing: a receiver
// whose buffer autotunes upward while it stays full moves the edge without reading what we
// count on (TestPeerResettingAfterOneSecondDoesNotLivelock under -race caught a rule "edge ≥
// end + 2 × largest window" reporting unread lines delivered). Only a drain proves.
func (d *Dispatcher) collect() {
	w := &d.w
	if w.conn == nil || !w.hasInfo {
		return
	}
	acked, window, ok := peerWindow(w.fd)
	if !ok {
		return
	}
	acked = min(acked-w.ackBase, w.sent) // our FIN counts as one more byte
	now := time.Now()
	if acked > w.acked || acked+window > w.right {
		w.lastProgress = now
	}
	if acked+window > w.right {
		w.lastAppLife = now // the application read something
	}
	w.acked = max(w.acked, acked)
	w.right = max(w.right, acked+window)
	w.maxWindow = max(w.maxWindow, window)
	d.releaseHeld(false)
}

// prove moves the first k chunks written on this connection, proven read, to the held ones.
func (d *Dispatcher) prove(k int) {
	w := &d.w
	w.provenOnConn += k
	w.provenBytes += int(w.ends[k-1] - w.provenEnd)
	w.provenEnd = w.ends[k-1]
	w.attempts = 0
	w.written -= k
	w.ends = w.ends[:copy(w.ends, w.ends[k:])]
	now := time.Now()
	d.mu.Lock()
	for _, it := range d.queue[w.held : w.held+k] {
		d.queuedLines -= it.b.Lines
		d.queuedBytes -= len(it.b.Data)
		d.heldBytes += len(it.b.Data)
	}
	d.wakeWaitersLocked()
	d.mu.Unlock()
	w.held += k
	for range k {
		w.heldAt = append(w.heldAt, now)
	}
}

// releaseHeld reports held chunks delivered: those proven d.replayHold ago if the application
// showed life since, the oldest beyond replayBudget, all of them with force (Close).
func (d *Dispatcher) releaseHeld(force bool) {
	w := &d.w
	if w.held == 0 {
		return
	}
	budget := d.cfg.QueueBytes / 4
	d.mu.Lock()
	k := w.held
	if !force {
		k = 0
		for k < w.held {
			due := w.heldAt[k].Add(d.replayHold)
			if !d.queue[k].replayed && (time.Now().Before(due) || w.lastAppLife.Before(due)) {
				break
			}
			k++
		}
		over := d.heldBytes
		for _, it := range d.queue[:k] {
			over -= len(it.b.Data)
		}
		for k < w.held && over > budget {
			over -= len(d.queue[k].b.Data)
			k++
		}
	}
	if k == 0 {
		d.mu.Unlock()
		return
	}
	ready := append(w.ready[:0], d.queue[:k]...)
	w.ready = ready
	d.mu.Unlock()
	w.held -= k
	w.heldAt = w.heldAt[:copy(w.heldAt, w.heldAt[k:])]
	var lines, size int
	for _, it := range ready {
		lines += it.b.Lines - len(it.rejected)
		size += len(it.b.Data)
	}
	d.lines.Add(uint64(lines))
	d.bytes.Add(uint64(size))
	d.sm.Load().Delivered(lines, size)
	// done callbacks run before the space is released, so that a Submit unblocked by this
	// space sees them done.
	for _, it := range ready {
		if len(it.rejected) > 0 {
			it.done(d.rejectedError(it))
		} else {
			it.done(nil)
		}
	}
	clear(ready)
	d.mu.Lock()
	d.heldBytes -= size
	clear(d.queue[:k])
	d.queue = d.queue[k:]
	d.wakeWaitersLocked()
	d.mu.Unlock()
}

func (d *Dispatcher) rejectedError(it item) error {
	e := &RejectedError{Addr: d.addr, Source: it.b.Source, Seq: it.b.Seq}
	for _, r := range it.rejected {
		e.Lines = append(e.Lines, fmt.Sprintf("%d bytes at byte %d: %q", r.length, r.offset, r.prefix))
	}
	e.reason = fmt.Sprintf("the receiver dropped the connection on %d line(s) every time, skipped: %s",
		len(e.Lines), joinLimited(e.Lines, 3))
	return e
}

func joinLimited(s []string, n int) string {
	var b bytes.Buffer
	for i, x := range s {
		if i == n {
			fmt.Fprintf(&b, "; and %d more", len(s)-n)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(x)
	}
	return b.String()
}

// peerEnded handles the end of the connection seen by its reader: after our half-close, a
// clean EOF proves that the peer application read everything (it read our end of stream,
// and a Linux peer that closes with unread data resets instead); anything else is a loss.
func (d *Dispatcher) peerEnded(err error) {
	w := &d.w
	if w.finSent && errors.Is(err, errPeerClosed) {
		d.drained()
		return
	}
	d.collect()
	d.lose(err)
}

// drained: everything written on this connection is proven read.
func (d *Dispatcher) drained() {
	w := &d.w
	if w.piece {
		// The careful piece: its bytes are proven, the chunk stays first in the queue.
		d.mu.Lock()
		d.queue[w.held+w.written-1].skip = w.pieceEnd
		d.mu.Unlock()
		w.written--
		w.ends = w.ends[:w.written]
		w.piece = false
		w.provenOnConn++
		if w.care.hasSuspect && w.pieceEnd == w.care.suspect+w.care.suspectLen {
			w.care.hasSuspect = false // the suspect was innocent
		}
	}
	if w.written > 0 {
		d.prove(w.written)
	}
	w.lastAppLife = time.Now() // the application answered: alive now, after these proofs
	d.releaseHeld(false)
	d.drains.Add(1)
	if w.care.on {
		w.care.budget *= 2
		if w.care.budget >= d.cfg.QueueBytes {
			w.care = careful{}
		}
	}
	w.attempts = 0
	d.closeConn()
	w.lostAt = time.Now()
	w.lossLogged = false
}

// closeConn closes the connection gracefully (FIN): what the peer's kernel holds can still
// be read by the peer.
func (d *Dispatcher) closeConn() {
	w := &d.w
	_ = w.conn.Close()
	d.connected.Store(false)
	d.mu.Lock()
	d.conn = nil
	d.mu.Unlock()
	w.conn, w.peerDead, w.hasInfo = nil, nil, false
	w.written, w.piece, w.finSent = 0, false, false
	w.ends = w.ends[:0]
	w.sent, w.acked, w.right, w.maxWindow, w.provenOnConn = 0, 0, 0, 0, 0
	w.provenBytes, w.provenEnd = 0, 0
	w.readyAt = time.Time{}
}

// lose ends a connection that failed or stalled. Its unproven chunks stay queued and go out
// again, first, on the next one.
func (d *Dispatcher) lose(cause error) {
	w := &d.w
	proved := w.provenOnConn > 0
	provenBytes := w.provenBytes
	var stall *stallError
	stalled := errors.As(cause, &stall)
	// Only a connection the peer ended says something about the place in the stream.
	wrote := w.sent > 0 && !stalled
	d.losses.Add(1)
	d.sm.Load().Error()
	w.afterLoss = true
	triedPiece, triedFrom, triedTo := w.care.on && w.written > 0, 0, 0
	d.mu.Lock()
	unproven := d.queuedLines
	var first *metric.Batch
	firstSkip := 0
	if len(d.queue) > w.held {
		q := d.queue[w.held]
		first, firstSkip = q.b, q.skip
		triedFrom = firstSkip
		triedTo = len(first.Data)
		if w.piece && w.written == 1 {
			triedTo = w.pieceEnd
		}
	}
	d.mu.Unlock()
	d.closeConn()

	if proved {
		// Progress, then a loss: wait interval (jittered) before reconnecting, so that a
		// peer that resets every connection after a while cannot make us spin.
		w.attempts, w.lossWait = 0, true
	} else {
		w.attempts++
	}
	if first != nil && wrote {
		// The peer ended a connection that carried unproven data: from now on each
		// connection carries a bounded amount and proves it by a drain (careful mode).
		c := &w.care
		switch {
		case !c.on:
			*c = careful{on: true, budget: max(2*provenBytes, len(first.Data)-firstSkip)}
		case proved:
			c.budget = max(2*provenBytes, len(first.Data)-firstSkip)
		default:
			d.carefulAfterLoss(first, triedPiece, triedFrom, triedTo)
		}
	}
	if w.held > 0 {
		// The peer may have lost what it read last (carbon-cache loses its cache when it
		// stops): the held chunks go out again, first, once.
		d.mu.Lock()
		for i := range d.queue[:w.held] {
			it := &d.queue[i]
			it.replayed = true
			d.queuedLines += it.b.Lines
			d.queuedBytes += len(it.b.Data)
			d.heldBytes -= len(it.b.Data)
		}
		d.mu.Unlock()
		w.held, w.heldAt = 0, w.heldAt[:0]
	}
	w.lastErr = cause
	w.lostAt = time.Now()
	w.lossLogged = false
	if ok, suppressed := w.lossLog.Allow(w.lostAt, d.lossLogEvery); ok {
		w.lossLogged = true
		d.log.Warn("graphite connection lost", "address", d.addr, "error", cause,
			"unproven_lines", unproven, "suppressed", suppressed)
	}
	if d.once && stalled {
		d.giveUp(fmt.Errorf("%w: %s: %v", ErrGaveUp, d.addr, cause))
	}
}

// connect opens a connection, retrying in rounds until it succeeds. It returns false when the
// writer must stop (Close gave up, or was called with nothing to deliver, or a NewOnce
// dispatcher gave up).
func (d *Dispatcher) connect() bool {
	w := &d.w
	if w.lossWait {
		w.lossWait = false
		if !d.sleep(d.abortCtx, d.jitter(d.cfg.Interval)) {
			return false
		}
	}
	for {
		if w.attempts > 0 {
			wait, roundOver, ceiling := d.retryWait(w.attempts)
			if roundOver {
				d.mu.Lock()
				waiting := d.queuedLines
				d.mu.Unlock()
				if ok, suppressed := w.connectLog.Allow(time.Now(), d.lossLogEvery); ok {
					d.log.Error("graphite: cannot connect", "address", d.addr, "attempts", w.attempts,
						"error", w.lastErr, "retry_in", wait, "waiting_lines", waiting, "suppressed", suppressed)
				}
			}
			if d.once && (roundOver && d.cfg.Retries >= 0 || ceiling) {
				d.giveUp(fmt.Errorf("%w: cannot connect to %s after %d attempts: %v", ErrGaveUp, d.addr, w.attempts, w.lastErr))
				return false
			}
			if roundOver && d.cfg.Retries >= 0 {
				w.attempts = 0
			}
			if !d.sleep(d.abortCtx, d.jitter(wait)) {
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
			d.connectFailures.Add(1)
			d.sm.Load().Error()
			w.afterLoss = w.afterLoss || w.everConnected // an outage: the next connection is a reconnect
			continue
		}
		d.attach(conn)
		return true
	}
}

// giveUp ends a NewOnce dispatcher: every queued chunk fails with err, and so does every later
// Submit.
func (d *Dispatcher) giveUp(err error) {
	d.mu.Lock()
	d.failed = err
	d.wakeWaitersLocked()
	d.mu.Unlock()
	d.abort(err)
}

// retryWait is the sleep before the next attempt after `failed` failed attempts of a round,
// whether that ends a round (which is then logged), and whether the wait reached its ceiling.
func (d *Dispatcher) retryWait(failed int) (time.Duration, bool, bool) {
	ceiling := max(d.cfg.Delay, d.cfg.Interval)
	if d.cfg.Retries >= 0 && failed >= d.cfg.Retries+1 {
		return d.cfg.Delay, true, false
	}
	wait := float64(d.cfg.Interval) * math.Pow(d.cfg.Backoff, float64(failed-1))
	if math.IsNaN(wait) || wait >= float64(ceiling) {
		// An unbounded round is logged on its first failure and whenever the wait has
		// reached its ceiling, i.e. at most once per delay.
		return ceiling, d.cfg.Retries < 0, true
	}
	return time.Duration(wait), d.cfg.Retries < 0 && failed == 1, false
}

func (d *Dispatcher) attach(conn net.Conn) {
	w := &d.w
	w.conn = conn
	w.peerDead = make(chan error, 1)
	w.hasInfo = false
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle,
			Interval: keepAliveIdle, Count: max(3, int(d.cfg.StallTimeout/keepAliveIdle))})
		_ = tc.SetWriteBuffer(d.sndBuf())
		if fd, ok := connFD(tc); ok {
			if acked, window, ok := peerWindow(fd); ok {
				w.fd, w.hasInfo = fd, true
				w.ackBase, w.maxWindow = acked, window
				w.right = window
			}
		}
	}
	w.sent, w.acked, w.written, w.provenOnConn = 0, 0, 0, 0
	w.connectedAt = time.Now()
	w.lastProgress = w.connectedAt
	w.lastWrite = w.connectedAt
	go watchPeer(conn, w.peerDead)

	d.mu.Lock()
	d.conn = conn
	waiting := d.queuedLines
	d.mu.Unlock()
	d.connected.Store(true)
	if w.afterLoss {
		w.afterLoss = false
		d.sm.Load().Reconnect()
	}
	switch {
	case !w.everConnected:
		w.everConnected = true
		d.log.Info("graphite connected", "address", d.addr, "waiting_lines", waiting)
	case w.lossLogged:
		d.reconnects.Add(1)
		w.lossLogged = false
		d.log.Info("graphite reconnected", "address", d.addr,
			"after", time.Since(w.lostAt).Round(time.Millisecond), "waiting_lines", waiting)
	default:
		d.reconnects.Add(1)
	}
}

// watchPeer notices a peer that closed or reset the connection while we had nothing to write
// (carbon-c-relay drops idle clients), and the EOF that answers our half-close. Carbon never
// sends anything on this connection; whatever arrives is discarded.
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
		d.collect() // what the peer proved before Close gave up is delivered, not failed
		d.closeConn()
	}
	d.releaseHeld(true)
	cause := context.Cause(d.abortCtx)
	if cause == nil {
		cause = dispatch.ErrClosed
	}
	d.mu.Lock()
	d.conn = nil
	d.closing = true
	left := d.queue
	d.queue = nil
	d.queuedLines, d.queuedBytes, d.heldBytes = 0, 0, 0
	d.wakeWaitersLocked()
	d.mu.Unlock()
	if len(left) == 0 {
		return
	}
	lines := 0
	for _, it := range left {
		lines += it.b.Lines
		var err error
		if w.lastErr != nil && !wasConnected && !errors.Is(cause, ErrGaveUp) {
			err = fmt.Errorf("graphite %s: chunk %d of %s not delivered at shutdown (last error: %v): %w",
				d.addr, it.b.Seq, it.b.Source, w.lastErr, cause)
		} else {
			err = fmt.Errorf("graphite %s: chunk %d of %s not delivered: %w",
				d.addr, it.b.Seq, it.b.Source, cause)
		}
		it.done(err)
	}
	d.closeErr = fmt.Errorf("graphite %s: %d chunks (%d lines) not delivered: %w",
		d.addr, len(left), lines, cause)
	d.log.Error("graphite: giving up", "address", d.addr, "chunks", len(left),
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
