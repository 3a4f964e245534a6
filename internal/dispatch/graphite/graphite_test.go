package graphite

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

var _ dispatch.Dispatcher = (*Dispatcher)(nil)

const ts = 1700000000

func newLogger() (*slog.Logger, *logRecorder) {
	rec := &logRecorder{}
	return slog.New(rec), rec
}

// submitAll submits the chunks in order and fails the test on a Submit error.
func submitAll(t testing.TB, d *Dispatcher, rec *doneRecorder, chunks []*metric.Batch) {
	t.Helper()
	for _, b := range chunks {
		if err := d.Submit(context.Background(), b, rec.fn(b)); err != nil {
			t.Errorf("Submit chunk %d of %s: %v", b.Seq, b.Source, err)
			return
		}
	}
}

func waitAllDone(t testing.TB, rec *doneRecorder, snaps [][]*metric.Batch) {
	t.Helper()
	total := 0
	for _, s := range snaps {
		total += len(s)
	}
	waitFor(t, 20*time.Second, "every chunk's done", func() bool { return rec.count() == total })
	for _, s := range snaps {
		for _, b := range s {
			errs, _ := rec.result(b)
			if errs[0] != nil {
				t.Fatalf("chunk %d of %s: done(%v)", b.Seq, b.Source, errs[0])
			}
		}
	}
}

func closeOK(t testing.TB, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestDeliversEveryChunkWholeAndInOrderFromSeveralGoroutines(t *testing.T) {
	s := startSink(t, "127.0.0.1:0")
	log, logs := newLogger()
	d := New(testConfig(s.addr), log)
	rec := newDoneRecorder(t)

	var snaps [][]*metric.Batch
	lines, size := 0, 0
	for i := range 6 {
		snap := makeSnapshot(i, 20, 300, ts+int64(i))
		snaps = append(snaps, snap)
		for _, b := range snap {
			lines += b.Lines
			size += len(b.Data)
		}
	}
	var wg sync.WaitGroup
	for _, snap := range snaps {
		wg.Go(func() { submitAll(t, d, rec, snap) })
	}
	wg.Wait()
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	s.waitReceived(t, size)

	// Connections end only by drains (which lose nothing): the stream is exact.
	got := s.received()
	checkExactStream(t, bytes.Join(got, nil), snaps, false)
	st := d.Stats()
	// Every connection that carried lines but the first came from a reconnection after a drain,
	// and a drain is followed by one reconnection at most. The one after the last drain races
	// Close and the sink's bookkeeping: counted or not, recorded by the sink or not.
	carried := 0
	for _, c := range got {
		if len(c) > 0 {
			carried++
		}
	}
	if st.Lines != uint64(lines) || st.Bytes != uint64(size) || st.ResentBytes != 0 || st.QueuedLines != 0 ||
		st.Drains < 1 || int(st.Reconnects) < carried-1 || st.Reconnects > st.Drains {
		t.Errorf("Stats = %+v, want %d lines, %d bytes, nothing re-sent, nothing queued, a reconnection per drain (%d connections, %d with lines)",
			st, lines, size, len(got), carried)
	}
	if n := logs.count("INFO graphite connected"); n != 1 {
		t.Errorf("%d 'connected' log lines, want 1: %q", n, logs.messages())
	}
}

func TestIPv6Literal(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := startSink(t, addr)
	cfg := testConfig(s.addr)
	if cfg.Server != "::1" {
		t.Fatalf("server %q", cfg.Server)
	}
	d := New(cfg, nil)
	if d.Addr() != s.addr {
		t.Fatalf("Addr() = %q, want %q", d.Addr(), s.addr)
	}
	rec := newDoneRecorder(t)
	snaps := [][]*metric.Batch{makeSnapshot(0, 3, 10, ts)}
	submitAll(t, d, rec, snaps[0])
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snaps...))
	checkExactStream(t, bytes.Join(s.received(), nil), snaps, true)
}

func TestBackPressureBlocksSubmitUntilSpaceOrContextEnd(t *testing.T) {
	s := newSink(t, "127.0.0.1:0")
	s.rcvbuf = 4096 // the kernel may hold only a few KB for the paused reader
	s.pause()
	s.start()
	t.Cleanup(s.stop)
	cfg := testConfig(s.addr)
	cfg.QueueSize = 3000
	cfg.StallTimeout = time.Hour // a paused reader must not look like a dead one here
	d := newSmallBufferDispatcher(t, cfg, nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 100, 1000, ts) // 100 chunks of ~38 KB: far more than socket buffers

	accepted := 0
	for accepted < len(snap) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := d.Submit(ctx, snap[accepted], rec.fn(snap[accepted]))
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Submit: %v, want context.DeadlineExceeded", err)
			}
			break
		}
		accepted++
	}
	if accepted == len(snap) {
		t.Fatalf("Submit never blocked: all %d chunks accepted while the sink was not reading", accepted)
	}
	if st := d.Stats(); st.QueuedLines+1000 <= cfg.QueueSize {
		t.Fatalf("Submit blocked with only %d lines queued (queue-size %d)", st.QueuedLines, cfg.QueueSize)
	}
	t.Logf("Submit blocked after %d chunks", accepted)

	// Cancellation from another goroutine ends a blocked Submit too.
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- d.Submit(ctx, snap[accepted], rec.fn(snap[accepted])) }()
	waitFor(t, 10*time.Second, "Submit to block", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.waiters == 1
	})
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit after cancel: %v, want context.Canceled", err)
	}
	if _, called := rec.result(snap[accepted]); called {
		t.Fatal("done was called for a chunk whose Submit returned an error")
	}

	// Once the sink reads again, blocked Submits go through and everything arrives in order.
	snap = snap[:accepted+20] // the rest only bounded the loop above
	s.growReadBuffers()
	s.resume()
	submitAll(t, d, rec, snap[accepted:])
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snap))
	checkExactStream(t, bytes.Join(s.received(), nil), [][]*metric.Batch{snap}, true)
}

func TestChunkLargerThanQueueIsAcceptedWhenQueueIsEmpty(t *testing.T) {
	s := startSink(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.QueueSize = 10
	d := New(cfg, nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 4, 100, ts)
	for i, b := range snap {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := d.Submit(ctx, b, rec.fn(b)); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		cancel()
		// The queue held at most this chunk unproven: every earlier one was proven first.
		if st := d.Stats(); st.QueuedLines > b.Lines {
			t.Fatalf("chunk %d accepted with %d lines unproven (queue-size 10)", i, st.QueuedLines)
		}
	}
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snap))
	checkExactStream(t, bytes.Join(s.received(), nil), [][]*metric.Batch{snap}, true)
}

// reservePort returns a loopback address nobody listens on (yet).
func reservePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// countingDial wraps the real dialer and counts attempts.
type countingDial struct {
	mu sync.Mutex
	n  int
	d  net.Dialer
}

func (c *countingDial) dial(ctx context.Context, addr string) (net.Conn, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.d.DialContext(ctx, "tcp", addr)
}

func (c *countingDial) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestSinkDownAtStartNothingLostOldestFirst(t *testing.T) {
	addr := reservePort(t)
	log, logs := newLogger()
	dialer := &countingDial{d: net.Dialer{Timeout: time.Second}}
	d := newDispatcher(testConfig(addr), log, dialer.dial, nil)
	d.start()
	rec := newDoneRecorder(t)
	var snaps [][]*metric.Batch
	for i := range 3 {
		snap := makeSnapshot(i, 5, 100, ts+int64(i))
		snaps = append(snaps, snap)
		submitAll(t, d, rec, snap)
	}
	// retries = 2: three attempts per round; wait for two rounds to fail.
	waitFor(t, 10*time.Second, "two failed connect rounds", func() bool { return dialer.count() >= 6 })
	if rec.count() != 0 {
		t.Fatal("done called while nothing listened")
	}
	if n := logs.count("ERROR graphite: cannot connect"); n < 1 {
		t.Fatalf("no 'cannot connect' error logged: %q", logs.messages())
	}
	for _, m := range logs.messages() {
		if strings.HasPrefix(m, "ERROR graphite: cannot connect") && !strings.Contains(m, "address="+addr) {
			t.Errorf("the error does not name the address %s: %q", addr, m)
		}
	}
	s := startSink(t, addr)
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snaps...))
	checkExactStream(t, bytes.Join(s.received(), nil), snaps, true)
	if n := logs.count("INFO graphite connected"); n != 1 {
		t.Errorf("%d 'connected' lines: %q", n, logs.messages())
	}
}

// The sink reads everything, then goes away between two snapshots. The next snapshot is
// written into the dead connection before the dispatcher notices; since the peer never
// acknowledges those bytes, they are not reported delivered, and they are sent again once the
// sink is back.
func TestPeerGoneBetweenSnapshotsNothingReportedDeliveredUntilBack(t *testing.T) {
	s := startSink(t, "127.0.0.1:0")
	log, logs := newLogger()
	d := New(testConfig(s.addr), log)
	rec := newDoneRecorder(t)
	a := makeSnapshot(0, 5, 200, ts)
	b := makeSnapshot(1, 5, 200, ts+10)
	submitAll(t, d, rec, a)
	waitAllDone(t, rec, [][]*metric.Batch{a})
	size := 0
	for _, c := range a {
		size += len(c.Data)
	}
	waitFor(t, 10*time.Second, "the sink to read snapshot A", func() bool { return s.totalBytes() == size })

	s.stop() // listener and connection closed; nothing was left unread
	submitAll(t, d, rec, b)
	// The dispatcher reconnects at once after proving A; the peer's end is then noticed as the
	// loss of that idle connection, or, when the peer went before the reconnect, as a refused
	// connect. Either way nothing of B may be reported delivered.
	waitFor(t, 10*time.Second, "the peer's end to be noticed", func() bool {
		st := d.Stats()
		return st.Losses > 0 || st.ConnectFailures > 0
	})
	waitFor(t, 10*time.Second, "a few refused reconnects", func() bool { return d.Stats().ConnectFailures >= 3 })
	for _, c := range b {
		if _, called := rec.result(c); called {
			t.Fatalf("chunk %d of B reported done while the sink was down", c.Seq)
		}
	}
	s.start()
	waitAllDone(t, rec, [][]*metric.Batch{a, b})
	closeOK(t, d)
	s.waitReceived(t, snapBytes(a, b))
	dupes, _ := checkAtLeastOnce(t, s.received(), [][]*metric.Batch{a, b})
	t.Logf("%d lines arrived twice", dupes)
	st := d.Stats()
	if st.Reconnects < 1 {
		t.Errorf("Stats().Reconnects = %d", st.Reconnects)
	}
	switch {
	case st.Losses > 0: // the idle connection after A was lost
		if logs.count("WARN graphite connection lost") < 1 || logs.count("INFO graphite reconnected") != 1 {
			t.Errorf("want one loss and one reconnection logged: %q", logs.messages())
		}
	case logs.count("ERROR graphite: cannot connect") < 1: // the sink went before the reconnect
		t.Errorf("no loss and no refused connect logged: %q", logs.messages())
	}
}

// The sink stops reading and stops listening in the middle of a large snapshot: the write stalls,
// stall-timeout gives the connection up, reconnects are refused, then the sink comes back.
// Every line arrives whole at least once, first arrivals in order.
func TestSinkStallsAndDisappearsMidStream(t *testing.T) {
	s := newSink(t, "127.0.0.1:0")
	s.rcvbuf = 64 << 10
	s.pauseAt = 200 << 10
	s.start()
	t.Cleanup(s.stop)
	cfg := testConfig(s.addr)
	cfg.StallTimeout = 100 * time.Millisecond
	log, logs := newLogger()
	d := newSmallBufferDispatcher(t, cfg, log)
	rec := newDoneRecorder(t)
	// Far more than 200 KB plus the socket buffers, so that a write stalls.
	snaps := [][]*metric.Batch{makeSnapshot(0, 40, 1000, ts), makeSnapshot(1, 10, 1000, ts+10)}
	go submitAll(t, d, rec, snaps[0])

	waitFor(t, 10*time.Second, "the first 200 KB", func() bool { return s.totalBytes() >= 200<<10 })
	s.closeListener() // the sink paused itself there
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stats %+v, log %q", d.Stats(), logs.messages())
		}
	})
	waitFor(t, 10*time.Second, "the stall to be detected", func() bool { return d.Stats().Losses > 0 })
	s.resume() // drain the dead connection to its end
	waitFor(t, 10*time.Second, "the dead connection to end", func() bool { return s.connClosed(0) })
	s.start()
	waitFor(t, 20*time.Second, "snapshot 0", func() bool { return rec.count() == len(snaps[0]) })
	submitAll(t, d, rec, snaps[1])
	waitAllDone(t, rec, snaps)
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snaps...))

	dupes, cut := checkAtLeastOnce(t, s.received(), snaps)
	t.Logf("%d connections, %d lines re-sent, %d connections ended with a cut line",
		len(s.received()), dupes, cut)
	if d.Stats().Reconnects < 1 {
		t.Errorf("no reconnection counted")
	}
	if logs.count("WARN graphite connection lost") < 1 {
		t.Errorf("the loss was not logged: %q", logs.messages())
	}
}

// A connection that breaks in the middle of a chunk proved nothing (the fake connection has no
// TCP_INFO, and it never got to the drain): the next connection carries every chunk again,
// whole, from its first byte, after a backoff wait; each chunk is reported delivered once.
func TestWriteErrorMidChunkResendsEverythingUnproven(t *testing.T) {
	snap := makeSnapshot(0, 5, 10, ts)
	cut := len(snap[0].Data) + len(snap[1].Data) + 7
	first, second := newFakeConn(cut), newFakeConn(-1)
	fake := &scriptedNet{script: []func() (net.Conn, error){
		func() (net.Conn, error) { return first, nil },
		func() (net.Conn, error) { return second, nil },
	}}
	log, logs := newLogger()
	cfg := testConfig("127.0.0.1:1")
	d := newDispatcher(cfg, log, fake.dial, fake.sleep)
	d.jitter = noJitter
	rec := newDoneRecorder(t)
	submitAll(t, d, rec, snap) // before the writer starts: one write of everything
	d.start()
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)

	all := slices.Concat(snap[0].Data, snap[1].Data, snap[2].Data, snap[3].Data, snap[4].Data)
	if got := first.bytes(); !bytes.Equal(got, all[:cut]) {
		t.Fatalf("first connection carried %q, want %q", got, all[:cut])
	}
	// After a loss the next connections carry a bounded amount each, proven by a drain.
	if got := append(second.bytes(), fake.extraBytes()...); !bytes.Equal(got, all) {
		t.Fatalf("the later connections carried %q, want every chunk whole", got)
	}
	if dials, sleeps := fake.recorded(); dials != 2 || !slices.Equal(sleeps, []time.Duration{cfg.Interval}) {
		t.Errorf("%d dials and sleeps %v; want 2 dials and one wait of interval", dials, sleeps)
	}
	if st := d.Stats(); st.Lines != 50 || st.Reconnects < 1 || st.ResentBytes != uint64(len(snap[0].Data)+len(snap[1].Data)+len(snap[2].Data)) || st.Drains < 1 {
		t.Errorf("Stats = %+v, want 50 lines (none counted twice), a reconnection, chunks 0–2 re-sent, a drain", st)
	}
	if logs.count("WARN graphite connection lost") != 1 || logs.count("INFO graphite reconnected") != 1 {
		t.Errorf("logs: %q", logs.messages())
	}
}

func TestConnectRoundsBackoffAndDelay(t *testing.T) {
	s, m := time.Second, time.Millisecond
	cases := []struct {
		name    string
		retries int
		delay   time.Duration
		fails   int
		sleeps  []time.Duration
		errLogs int
	}{
		{"retries 2", 2, 10 * s, 8, []time.Duration{s, 2 * s, 10 * s, s, 2 * s, 10 * s, s, 2 * s}, 2},
		{"retries 0", 0, 10 * s, 3, []time.Duration{10 * s, 10 * s, 10 * s}, 3},
		// An unbounded round waits at most max(delay, interval) and logs its first failure
		// and every failure once the wait has reached that ceiling.
		{"retries -1", -1, 5 * s, 7, []time.Duration{s, 2 * s, 4 * s, 5 * s, 5 * s, 5 * s, 5 * s}, 5},
		{"delay below interval", -1, 500 * m, 3, []time.Duration{s, s, s}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &scriptedNet{}
			for range tc.fails {
				fake.script = append(fake.script, refused)
			}
			conn := newFakeConn(-1)
			fake.script = append(fake.script, func() (net.Conn, error) { return conn, nil })
			cfg := testConfig("127.0.0.1:1")
			cfg.Retries, cfg.Interval, cfg.Backoff, cfg.Delay = tc.retries, s, 2, tc.delay
			log, logs := newLogger()
			logEvery(t, 0)
			d := newDispatcher(cfg, log, fake.dial, fake.sleep)
			d.jitter = noJitter
			d.start()
			rec := newDoneRecorder(t)
			snap := makeSnapshot(0, 1, 10, ts)
			submitAll(t, d, rec, snap)
			waitAllDone(t, rec, [][]*metric.Batch{snap})
			closeOK(t, d)
			dials, sleeps := fake.recorded()
			if dials != tc.fails+1 || !slices.Equal(sleeps, tc.sleeps) {
				t.Errorf("%d dials, sleeps %v; want %d dials, sleeps %v", dials, sleeps, tc.fails+1, tc.sleeps)
			}
			if n := logs.count("ERROR graphite: cannot connect"); n != tc.errLogs {
				t.Errorf("%d 'cannot connect' errors, want %d: %q", n, tc.errLogs, logs.messages())
			}
			if !bytes.Equal(conn.bytes(), snap[0].Data) {
				t.Errorf("the connection carried %q", conn.bytes())
			}
		})
	}
}

// A peer that accepts and then fails every connection before anything is delivered must not
// make the writer spin: each such connection is a failed attempt of the round.
func TestConnectionsFailingBeforeAnyDeliveryCountAsFailedAttempts(t *testing.T) {
	fake := &scriptedNet{}
	for range 4 {
		fake.script = append(fake.script, func() (net.Conn, error) { return newFakeConn(0), nil })
	}
	good := newFakeConn(-1)
	fake.script = append(fake.script, func() (net.Conn, error) { return good, nil })
	cfg := testConfig("127.0.0.1:1")
	cfg.Retries, cfg.Interval, cfg.Backoff, cfg.Delay = 2, time.Second, 2, 10*time.Second
	d := newDispatcher(cfg, nil, fake.dial, fake.sleep)
	d.jitter = noJitter
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 2, 10, ts)
	submitAll(t, d, rec, snap) // before the writer starts: one write of both
	d.start()
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)
	s := time.Second
	if dials, sleeps := fake.recorded(); dials != 5 || !slices.Equal(sleeps, []time.Duration{s, 2 * s, 10 * s, s}) {
		t.Errorf("%d dials, sleeps %v; want 5 dials, sleeps [1s 2s 10s 1s]", dials, sleeps)
	}
	if got, want := good.bytes(), slices.Concat(snap[0].Data, snap[1].Data); !bytes.Equal(got, want) {
		t.Errorf("the good connection carried %q", got)
	}
}

// Carbon-c-relay closes idle clients. The dispatcher notices on its own (not when the next
// chunk comes) and reconnects, so the next chunk goes into a live connection.
func TestIdleConnectionClosedByPeerIsReplacedBeforeNextChunk(t *testing.T) {
	s := startSink(t, "127.0.0.1:0")
	d := New(testConfig(s.addr), nil)
	select {
	case <-s.newConn:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	s.mu.Lock()
	_ = s.conns[0].conn.Close()
	s.mu.Unlock()
	waitFor(t, 10*time.Second, "a reconnection without data", func() bool {
		st := d.Stats()
		return st.Reconnects == 1 && st.Connected
	})
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 3, 10, ts)
	submitAll(t, d, rec, snap)
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snap))
	got := s.received()
	if len(got) < 2 || len(got[0]) != 0 {
		t.Fatalf("the first connection carried %d bytes; want the data on later ones only", len(got[0]))
	}
	checkExactStream(t, bytes.Join(got[1:], nil), [][]*metric.Batch{snap}, true)
}

// A chunk the peer's TCP has not acknowledged is not reported delivered, even if the write
// call completed; when the peer resets the connection the chunk is sent again.
func TestChunkNotAcknowledgedByPeerIsNotDoneAndIsResent(t *testing.T) {
	s := newSink(t, "127.0.0.1:0")
	s.rcvbuf = 4096
	s.pause()
	s.start()
	t.Cleanup(s.stop)
	cfg := testConfig(s.addr)
	cfg.StallTimeout = time.Hour
	d := New(cfg, nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 1, 5000, ts) // ~190 KB, far more than the peer's receive buffer
	submitAll(t, d, rec, snap)
	var idx int
	select {
	case idx = <-s.newConn:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	// Our write filled the peer's 4 KiB buffer and then stalled: nothing can be proven.
	waitFor(t, 10*time.Second, "the write to stall", func() bool { return d.Stats().WrittenBytes > 4096 })
	if _, called := rec.result(snap[0]); called {
		t.Fatal("done called although the peer could not have received the chunk")
	}
	s.mu.Lock()
	tc := s.conns[idx].conn.(*net.TCPConn)
	_ = tc.SetLinger(0) // reset, discarding what the kernel holds
	_ = tc.Close()
	s.mu.Unlock()
	s.resume()
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	closeOK(t, d)
	s.waitReceived(t, snapBytes(snap))
	got := s.received()
	if later := bytes.Join(got[idx+1:], nil); !bytes.Equal(later, snap[0].Data) {
		t.Fatalf("the later connections carried %d bytes, want the chunk whole (%d bytes)", len(later), len(snap[0].Data))
	}
}

func TestSubmitAfterCloseIsRejected(t *testing.T) {
	s := startSink(t, "127.0.0.1:0")
	d := New(testConfig(s.addr), nil)
	closeOK(t, d)
	called := false
	err := d.Submit(context.Background(), makeSnapshot(0, 1, 1, ts)[0], func(error) { called = true })
	if !errors.Is(err, dispatch.ErrClosed) || called {
		t.Fatalf("Submit after Close: %v (done called: %v), want ErrClosed and no done", err, called)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseWithNothingQueuedDoesNotWaitForConnectRetries(t *testing.T) {
	cfg := testConfig(reservePort(t))
	cfg.Interval, cfg.Delay = time.Hour, time.Hour
	d := New(cfg, nil)
	waitFor(t, 10*time.Second, "the first attempt to fail", func() bool { return d.Stats().ConnectFailures >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Close waited for its context")
	}
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	s := newSink(t, "127.0.0.1:0")
	s.pause()
	s.start()
	t.Cleanup(s.stop)
	d := New(testConfig(s.addr), nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 50, 1000, ts)
	submitAll(t, d, rec, snap)
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res <- d.Close(ctx)
	}()
	waitFor(t, 10*time.Second, "Close to start", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.closing
	})
	s.resume()
	if err := <-res; err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitAllDone(t, rec, [][]*metric.Batch{snap})
	s.waitReceived(t, snapBytes(snap))
	checkExactStream(t, bytes.Join(s.received(), nil), [][]*metric.Batch{snap}, true)
	if d.Stats().Connected {
		t.Error("still connected after Close")
	}
}

func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	addr := reservePort(t)
	log, logs := newLogger()
	d := New(testConfig(addr), log)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 3, 10, ts)
	submitAll(t, d, rec, snap)
	waitFor(t, 10*time.Second, "a failed round", func() bool { return logs.count("ERROR graphite: cannot connect") > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := d.Close(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Close: %v; want a DeadlineExceeded naming %s", err, addr)
	}
	if !strings.Contains(err.Error(), "3 chunks (30 lines)") {
		t.Errorf("Close error does not say how much was lost: %v", err)
	}
	for _, b := range snap {
		errs, called := rec.result(b)
		if !called || errs[0] == nil || !errors.Is(errs[0], context.DeadlineExceeded) {
			t.Fatalf("chunk %d: done(%v), want a DeadlineExceeded error", b.Seq, errs)
		}
		if !strings.Contains(errs[0].Error(), "connection refused") {
			t.Errorf("chunk %d: the error does not carry the connection error: %v", b.Seq, errs[0])
		}
	}
}

func TestCloseInterruptsAStalledWriteAndReleasesBlockedSubmits(t *testing.T) {
	s := newSink(t, "127.0.0.1:0")
	s.rcvbuf = 4096
	s.pause()
	s.start()
	t.Cleanup(s.stop)
	cfg := testConfig(s.addr)
	cfg.StallTimeout = time.Hour // only Close can end this write
	cfg.QueueSize = 20_000
	d := newSmallBufferDispatcher(t, cfg, nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 40, 1000, ts) // ~1.5 MB: the write blocks, then Submit blocks
	submitted := make(chan int, 1)
	go func() {
		n := 0
		for _, b := range snap {
			if err := d.Submit(context.Background(), b, rec.fn(b)); err != nil {
				if !errors.Is(err, dispatch.ErrClosed) {
					t.Errorf("blocked Submit ended with %v, want ErrClosed", err)
				}
				break
			}
			n++
		}
		submitted <- n
	}()
	waitFor(t, 10*time.Second, "Submit to block", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.waiters == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := d.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want DeadlineExceeded", err)
	}
	var n int
	select {
	case n = <-submitted:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked Submit did not return after Close")
	}
	if n == len(snap) {
		t.Fatal("every Submit succeeded")
	}
	failed := 0
	for _, b := range snap[:n] {
		errs, called := rec.result(b)
		if !called {
			t.Fatalf("chunk %d: done not called by Close", b.Seq)
		}
		if errs[0] != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no chunk failed although the peer never read")
	}
	if c := rec.count(); c != n {
		t.Fatalf("%d done calls for %d accepted chunks", c, n)
	}
	if d.Stats().Connected {
		t.Error("still connected after Close")
	}
}

// carbon's line receiver splits on whitespace and needs exactly 3 tokens: the helper must
// reject anything else, or the tests above would prove nothing.
func TestCarbonLinesRejectsMalformedInput(t *testing.T) {
	ft := &fatalRecorder{}
	func() {
		defer func() { _ = recover() }()
		carbonLines(ft, []byte("a.b 1\n"))
	}()
	if !ft.failed {
		t.Fatal("a 2-field line was accepted")
	}
	lines, partial := carbonLines(t, []byte("a 1 2\nb 3 4\nc 5"))
	if len(lines) != 2 || string(lines[1]) != "b 3 4" || string(partial) != "c 5" {
		t.Fatalf("lines %q partial %q", lines, partial)
	}
}

type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}

// Proven chunks held for the replay stay within QueueBytes/4: older ones are reported
// delivered without waiting for the hold, so that their memory can be reused.
func TestHeldChunksStayWithinTheReplayBudget(t *testing.T) {
	shortReplayHold(t, time.Hour)
	s := startSink(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.QueueBytes = 4 << 20
	budget := cfg.QueueBytes / 4
	d := New(cfg, nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 48, 6000, ts) // 48 chunks of about 230 KB
	submitAll(t, d, rec, snap)
	waitFor(t, 20*time.Second, "everything proven", func() bool {
		st := d.Stats()
		return st.QueuedBytes == 0 && st.Drains > 0
	})
	n := rec.count()
	held := 0
	for _, c := range snap[n:] {
		held += len(c.Data)
	}
	if st := d.Stats(); held > budget || held <= budget-len(snap[0].Data) || st.HeldBytes != held {
		t.Errorf("%d chunks done, %d bytes held (Stats: %d); want just under %d", n, held, st.HeldBytes, budget)
	}
	closeOK(t, d)
	waitAllDone(t, rec, [][]*metric.Batch{snap})
}
