package graphite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
)

// testConfig has short waits so that outages in tests last milliseconds.
func testConfig(addr string) config.Graphite {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		panic(err)
	}
	p, _ := strconv.Atoi(port)
	return config.Graphite{
		Server:         host,
		Port:           p,
		Retries:        2,
		Interval:       5 * time.Millisecond,
		Backoff:        2,
		Delay:          20 * time.Millisecond,
		ConnectTimeout: time.Second,
		WriteTimeout:   time.Second,
		StallTimeout:   5 * time.Second,
		QueueBytes:     1 << 30,
		QueueSize:      1_000_000,
		Enabled:        true,
	}
}

// sink is a carbon stand-in: it accepts connections and records every byte per connection.
type sink struct {
	t    testing.TB
	addr string
	// rcvbuf, when > 0, is set on the listening socket (accepted sockets inherit it).
	rcvbuf int

	mu    sync.Mutex
	ln    net.Listener
	conns []*sinkConn
	gate  chan struct{} // readers wait for it to be closed; replaced by pause
	wg    sync.WaitGroup
	// newConn receives the index of each accepted connection (non-blocking).
	newConn chan int
	// pauseAt > 0 pauses every reader once that many bytes were read in all.
	pauseAt int
	total   int
}

type sinkConn struct {
	conn   net.Conn
	data   []byte
	closed bool // EOF or error seen
}

func newSink(t testing.TB, addr string) *sink {
	s := &sink{t: t, addr: addr, gate: make(chan struct{}), newConn: make(chan int, 100)}
	close(s.gate)
	return s
}

// startSink listens on addr ("127.0.0.1:0" picks a port; the chosen one is kept for restarts).
func startSink(t testing.TB, addr string) *sink {
	s := newSink(t, addr)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *sink) start() {
	lc := net.ListenConfig{}
	if s.rcvbuf > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, s.rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var ln net.Listener
	var err error
	// The port of a just-closed listener can be briefly busy; retry a bounded number of times.
	for range 100 {
		ln, err = lc.Listen(context.Background(), "tcp", s.addr)
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("sink listen %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
}

func (s *sink) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		sc := &sinkConn{conn: c}
		s.conns = append(s.conns, sc)
		idx := len(s.conns) - 1
		s.mu.Unlock()
		select {
		case s.newConn <- idx:
		default:
		}
		s.wg.Add(1)
		go s.read(sc)
	}
}

func (s *sink) read(sc *sinkConn) {
	defer s.wg.Done()
	buf := make([]byte, 256<<10)
	for {
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		<-gate
		n, err := sc.conn.Read(buf)
		s.mu.Lock()
		sc.data = append(sc.data, buf[:n]...)
		s.total += n
		if s.pauseAt > 0 && s.total >= s.pauseAt {
			s.gate, s.pauseAt = make(chan struct{}), 0
		}
		if err != nil {
			sc.closed = true
		}
		s.mu.Unlock()
		if err != nil {
			// Like carbon: the end of the stream closes the connection (a drain's proof).
			_ = sc.conn.Close()
			return
		}
	}
}

// pause stops all readers before their next read.
func (s *sink) pause() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *sink) resume() {
	s.mu.Lock()
	select {
	case <-s.gate:
	default:
		close(s.gate)
	}
	s.mu.Unlock()
}

// growReadBuffers lifts the small rcvbuf of open connections, so that a test that needed a
// nearly full peer can finish quickly.
func (s *sink) growReadBuffers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 20)
	}
}

// closeListener stops accepting (connections are refused) but leaves open connections alone.
func (s *sink) closeListener() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
}

// stop closes the listener and every connection, and waits for the readers.
func (s *sink) stop() {
	s.closeListener()
	s.resume()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// received returns a copy of the bytes of each connection, in accept order.
func (s *sink) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.conns))
	for i, c := range s.conns {
		out[i] = bytes.Clone(c.data)
	}
	return out
}

func (s *sink) totalBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		n += len(c.data)
	}
	return n
}

// connClosed reports whether connection i has seen EOF (its sender closed it).
func (s *sink) connClosed(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return i < len(s.conns) && s.conns[i].closed
}

// waitFor polls cond every few milliseconds for at most limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// makeSnapshot builds the chunks of snapshot `snap`: every line is unique and says where it
// comes from ("test.s<snap>.c<chunk>.l<line>").
func makeSnapshot(snap, chunks, linesPerChunk int, ts int64) []*metric.Batch {
	out := make([]*metric.Batch, chunks)
	for c := range chunks {
		buf := make([]byte, 0, linesPerChunk*40)
		for l := range linesPerChunk {
			buf = append(buf, "test.s"...)
			buf = appendPadded(buf, snap, 3)
			buf = append(buf, ".c"...)
			buf = appendPadded(buf, c, 4)
			buf = append(buf, ".l"...)
			buf = appendPadded(buf, l, 5)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(snap*1000+c*10+l%10), 10)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, ts, 10)
			buf = append(buf, '\n')
		}
		out[c] = &metric.Batch{
			Timestamp: ts,
			Source:    fmt.Sprintf("/spool/%d", ts),
			Seq:       c,
			Last:      c == chunks-1,
			Data:      buf,
			Lines:     linesPerChunk,
		}
	}
	return out
}

func appendPadded(buf []byte, v, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(v), 10)
	for range width - len(d) {
		buf = append(buf, '0')
	}
	return append(buf, d...)
}

type lineID struct{ snap, chunk, line int }

// parseID reads "test.s%03d.c%04d.l%05d" (fmt.Sscanf is too slow for millions of lines).
func parseID(path string) (lineID, error) {
	var id lineID
	if len(path) != 22 || path[:6] != "test.s" || path[9:11] != ".c" || path[15:17] != ".l" {
		return id, fmt.Errorf("unexpected path %q", path)
	}
	var err1, err2, err3 error
	id.snap, err1 = strconv.Atoi(path[6:9])
	id.chunk, err2 = strconv.Atoi(path[11:15])
	id.line, err3 = strconv.Atoi(path[17:22])
	if err := errors.Join(err1, err2, err3); err != nil {
		return id, fmt.Errorf("path %q: %w", path, err)
	}
	return id, nil
}

// carbonLines splits what one connection carried the way carbon's line receiver does: complete
// lines only; an unterminated tail (a write cut by a failure) is returned separately and
// dropped. Every complete line must have exactly 3 whitespace-separated fields.
func carbonLines(t testing.TB, data []byte) (lines [][]byte, partial []byte) {
	t.Helper()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return lines, data
		}
		line := data[:i]
		if n := countFields(line); n != 3 {
			t.Fatalf("line %q has %d fields, want 3", line, n)
		}
		lines = append(lines, line)
		data = data[i+1:]
	}
	return lines, nil
}

func countFields(line []byte) int {
	n, inField := 0, false
	for _, c := range line {
		space := c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		if !space && !inField {
			n++
		}
		inField = !space
	}
	return n
}

// checkExactStream checks that stream is every chunk of every snapshot exactly once, byte for
// byte, each chunk contiguous, the chunks of one snapshot in Seq order. With sequential, the
// snapshots must also follow each other in order (one submitter).
func checkExactStream(t testing.TB, stream []byte, snaps [][]*metric.Batch, sequential bool) {
	t.Helper()
	next := make([]int, len(snaps))
	current := 0
	for pos := 0; pos < len(stream); {
		end := bytes.IndexByte(stream[pos:], ' ')
		if end < 0 {
			t.Fatalf("offset %d: no complete line in %q", pos, stream[pos:min(len(stream), pos+100)])
		}
		id, err := parseID(string(stream[pos : pos+end]))
		if err != nil {
			t.Fatalf("offset %d: %v", pos, err)
		}
		if sequential && id.snap != current {
			if id.snap != current+1 || next[current] != len(snaps[current]) {
				t.Fatalf("offset %d: snapshot %d starts before snapshot %d is complete", pos, id.snap, current)
			}
			current = id.snap
		}
		if id.chunk != next[id.snap] || id.line != 0 {
			t.Fatalf("offset %d: got snapshot %d chunk %d line %d, want chunk %d line 0",
				pos, id.snap, id.chunk, id.line, next[id.snap])
		}
		want := snaps[id.snap][id.chunk].Data
		if !bytes.HasPrefix(stream[pos:], want) {
			i := 0
			for i < len(want) && pos+i < len(stream) && stream[pos+i] == want[i] {
				i++
			}
			t.Fatalf("offset %d: snapshot %d chunk %d differs from what was submitted at its byte %d of %d: got %q, want %q",
				pos, id.snap, id.chunk, i, len(want), stream[pos+max(0, i-60):min(len(stream), pos+i+60)], want[max(0, i-60):min(len(want), i+60)])
		}
		pos += len(want)
		next[id.snap]++
	}
	for s, n := range next {
		if n != len(snaps[s]) {
			t.Fatalf("snapshot %d: %d of %d chunks arrived", s, n, len(snaps[s]))
		}
	}
}

// doneRecorder counts done calls per chunk and fails the test on a second call.
type doneRecorder struct {
	t    testing.TB
	mu   sync.Mutex
	errs map[*metric.Batch][]error
}

func newDoneRecorder(t testing.TB) *doneRecorder {
	return &doneRecorder{t: t, errs: map[*metric.Batch][]error{}}
}

func (r *doneRecorder) fn(b *metric.Batch) func(error) {
	return func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.errs[b] = append(r.errs[b], err)
		if len(r.errs[b]) > 1 {
			r.t.Errorf("done called %d times for chunk %d of %s", len(r.errs[b]), b.Seq, b.Source)
		}
	}
}

func (r *doneRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

func (r *doneRecorder) result(b *metric.Batch) ([]error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.errs[b]
	return e, ok
}

// logRecorder keeps log records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// messages returns "LEVEL message key=value…" for each record.
func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

func (l *logRecorder) count(prefix string) int {
	n := 0
	for _, m := range l.messages() {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// discardSink accepts connections and throws the data away as fast as it can.
func discardSink(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// checkAtLeastOnce parses what each connection carried like carbon does and checks that every
// submitted line arrived whole and unchanged at least once, and that first arrivals follow
// submission order (snapshots submitted one after the other, numbered 0, 1, …). It returns how
// many lines arrived more than once and how many connections ended with a cut line.
func checkAtLeastOnce(t testing.TB, conns [][]byte, snaps [][]*metric.Batch) (dupes, cut int) {
	t.Helper()
	// The expected lines, by (snapshot, chunk, line).
	want := make([][][][]byte, len(snaps))
	total := 0
	for s, chunks := range snaps {
		want[s] = make([][][]byte, len(chunks))
		for c, b := range chunks {
			lines, partial := carbonLines(t, b.Data)
			if partial != nil {
				t.Fatalf("test data has a partial line")
			}
			want[s][c] = lines
			total += len(lines)
		}
	}
	seen := make([][][]bool, len(snaps))
	for s := range want {
		seen[s] = make([][]bool, len(want[s]))
		for c := range want[s] {
			seen[s][c] = make([]bool, len(want[s][c]))
		}
	}
	var last lineID
	first, arrived := true, 0
	for i, data := range conns {
		lines, partial := carbonLines(t, data)
		if partial != nil {
			cut++
			if i == len(conns)-1 {
				t.Fatalf("the last connection, still open, ends with a partial line %q", partial)
			}
		}
		for _, l := range lines {
			id, err := parseID(string(l[:bytes.IndexByte(l, ' ')]))
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			if id.snap >= len(want) || id.chunk >= len(want[id.snap]) || id.line >= len(want[id.snap][id.chunk]) {
				t.Fatalf("connection %d: line %q was never submitted", i, l)
			}
			if w := want[id.snap][id.chunk][id.line]; !bytes.Equal(w, l) {
				t.Fatalf("connection %d: line %q differs from the submitted %q", i, l, w)
			}
			if seen[id.snap][id.chunk][id.line] {
				dupes++
				continue
			}
			seen[id.snap][id.chunk][id.line] = true
			arrived++
			if !first && !less(last, id) {
				t.Fatalf("connection %d: line %+v arrived first after %+v", i, id, last)
			}
			last, first = id, false
		}
	}
	if arrived != total {
		t.Fatalf("%d of %d lines arrived", arrived, total)
	}
	return dupes, cut
}

func less(a, b lineID) bool {
	if a.snap != b.snap {
		return a.snap < b.snap
	}
	if a.chunk != b.chunk {
		return a.chunk < b.chunk
	}
	return a.line < b.line
}

// fakeConn accepts `limit` bytes (−1: unlimited) and then fails every write, like a connection
// that broke in the middle of a write. It has no socket, so chunks count as delivered once
// written.
type fakeConn struct {
	mu     sync.Mutex
	data   []byte
	limit  int
	closed chan struct{}
	once   sync.Once
	// finished is closed by CloseWrite.
	finished chan struct{}
	finOnce  sync.Once
}

func newFakeConn(limit int) *fakeConn {
	return &fakeConn{limit: limit, closed: make(chan struct{}), finished: make(chan struct{})}
}

func (c *fakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.finished:
		return 0, syscall.EPIPE
	default:
	}
	if c.limit < 0 {
		c.data = append(c.data, p...)
		return len(p), nil
	}
	n := min(len(p), c.limit-len(c.data))
	c.data = append(c.data, p[:n]...)
	if n < len(p) {
		return n, syscall.EPIPE
	}
	return n, nil
}

// Read blocks until the connection is closed, or until the dispatcher half-closes it: the
// fake peer then has read everything and closes its side (EOF).
func (c *fakeConn) Read([]byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.finished:
		return 0, io.EOF
	}
}

// CloseWrite is the dispatcher's half-close (drain).
func (c *fakeConn) CloseWrite() error {
	c.finOnce.Do(func() { close(c.finished) })
	return nil
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.data)
}

func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// scriptedNet plays a list of dial outcomes (an error, or a fakeConn) and records the sleeps
// the dispatcher asks for, without sleeping.
// Once the script is played, every dial gets a healthy idle connection (the dispatcher
// reconnects after each drain); those dials are not counted.
type scriptedNet struct {
	mu     sync.Mutex
	script []func() (net.Conn, error)
	dials  int
	sleeps []time.Duration
	extra  []*fakeConn // the connections handed out after the script
}

// extraBytes is what the connections after the script carried, in order.
func (n *scriptedNet) extraBytes() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []byte
	for _, c := range n.extra {
		out = append(out, c.bytes()...)
	}
	return out
}

func (n *scriptedNet) dial(ctx context.Context, _ string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dials < len(n.script) {
		n.dials++
		return n.script[n.dials-1]()
	}
	c := newFakeConn(-1)
	n.extra = append(n.extra, c)
	return c, nil
}

func (n *scriptedNet) sleep(ctx context.Context, d time.Duration) bool {
	n.mu.Lock()
	n.sleeps = append(n.sleeps, d)
	n.mu.Unlock()
	return ctx.Err() == nil
}

func (n *scriptedNet) recorded() (int, []time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials, append([]time.Duration(nil), n.sleeps...)
}

func refused() (net.Conn, error) { return nil, syscall.ECONNREFUSED }

func snapBytes(snaps ...[]*metric.Batch) int {
	n := 0
	for _, s := range snaps {
		for _, b := range s {
			n += len(b.Data)
		}
	}
	return n
}

// waitReceived waits, after the dispatcher was closed, until the sink has read at least n bytes
// and every connection to its end: done(nil) only means the peer's kernel has the bytes.
func (s *sink) waitReceived(t testing.TB, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("the sink to read %d bytes and every connection to its end", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		total := 0
		for _, c := range s.conns {
			if !c.closed {
				return false
			}
			total += len(c.data)
		}
		return total >= n
	})
}

// newSmallBufferDispatcher connects with a small socket send buffer, so that a peer that stops
// reading stalls the writer after kilobytes instead of megabytes (less test data).
func newSmallBufferDispatcher(t testing.TB, cfg config.Graphite, log *slog.Logger) *Dispatcher {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			if err := conn.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
				t.Errorf("SetWriteBuffer: %v", err)
			}
		}
		return conn, err
	}
	d := newDispatcher(cfg, log, dial, nil)
	d.start()
	return d
}

// noJitter replaces the reconnection jitter in tests that check the exact waits.
func noJitter(d time.Duration) time.Duration { return d }

// logEvery sets the rate limit of fault log lines for one test.
func logEvery(t testing.TB, every time.Duration) {
	old := lossLogEvery
	lossLogEvery = every
	t.Cleanup(func() { lossLogEvery = old })
}
