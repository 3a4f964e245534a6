package graphite

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/metric"
)

// fakePeer is a misbehaving carbon stand-in. handle runs for each accepted connection; what
// it hands to process counts as read by the application, line by line.
type fakePeer struct {
	t      testing.TB
	ln     net.Listener
	addr   string
	handle func(p *fakePeer, c *net.TCPConn, idx int)
	// accept is closed when the listener may accept (a never-accepting listener waits).
	accept chan struct{}
	// healthy is closed when every connection, current and future, should read normally.
	healthy chan struct{}
	once    sync.Once

	mu       sync.Mutex
	seen     map[string]int       // complete lines processed, with their count
	seenAt   map[string]time.Time // when each line was first processed (with timeSeen)
	timeSeen bool
	conns    []*net.TCPConn
	accepted []time.Time
	bytesIn  int64 // bytes read by handlers (processed or not)
	wg       sync.WaitGroup
	closed   bool
}

// startPeer listens on loopback. rcvbuf and mss > 0 are set on the listening socket (accepted
// sockets inherit them): a small MSS makes a slow reader's window reopen in small steps (on
// loopback the MSS is 64 KiB, and a receiver shows a zero window until an MSS is free).
// With neverAccept, connections stay in the listen backlog until makeHealthy.
func startPeer(t testing.TB, rcvbuf, mss int, handle func(p *fakePeer, c *net.TCPConn, idx int), neverAccept ...bool) *fakePeer {
	p := &fakePeer{t: t, handle: handle, accept: make(chan struct{}), healthy: make(chan struct{}),
		seen: map[string]int{}}
	if len(neverAccept) == 0 || !neverAccept[0] {
		close(p.accept)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if rcvbuf > 0 {
				serr = errors.Join(serr, syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf))
			}
			if mss > 0 {
				serr = errors.Join(serr, syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss))
			}
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.stop)
	return p
}

func (p *fakePeer) acceptLoop() {
	defer p.wg.Done()
	select {
	case <-p.accept:
	case <-p.healthy:
	}
	for i := 0; ; i++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		tc := c.(*net.TCPConn)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.conns = append(p.conns, tc)
		p.accepted = append(p.accepted, time.Now())
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(p, tc, i)
		}()
	}
}

// makeHealthy turns every handler into a normal reader (the fault is over).
func (p *fakePeer) makeHealthy() { p.once.Do(func() { close(p.healthy) }) }

func (p *fakePeer) isHealthy() bool {
	select {
	case <-p.healthy:
		return true
	default:
		return false
	}
}

func (p *fakePeer) stop() {
	p.makeHealthy()
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// process records complete lines as read by the application.
func (p *fakePeer) process(lines []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		p.seen[string(lines[:i])]++
		if p.timeSeen {
			if _, ok := p.seenAt[string(lines[:i])]; !ok {
				p.seenAt[string(lines[:i])] = time.Now()
			}
		}
		lines = lines[i+1:]
	}
}

func (p *fakePeer) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// lineReader reads like carbon's line receiver: up to 64 KiB per read, complete lines are
// processed, an unterminated tail waits for the next read (and dies with the connection).
// Before each read it calls gate (nil: none); gate returning false ends the connection with
// a reset.
type lineReader struct {
	p       *fakePeer
	c       *net.TCPConn
	buf     []byte
	pending []byte
	read    int64 // bytes read on this connection
}

func newLineReader(p *fakePeer, c *net.TCPConn, bufSize int) *lineReader {
	return &lineReader{p: p, c: c, buf: make([]byte, bufSize)}
}

// next reads once; it returns false at EOF or error (the connection is then closed).
func (r *lineReader) next(maxLine int) bool {
	n, err := r.c.Read(r.buf)
	r.read += int64(n)
	r.p.mu.Lock()
	r.p.bytesIn += int64(n)
	r.p.mu.Unlock()
	data := append(r.pending, r.buf[:n]...)
	end := bytes.LastIndexByte(data, '\n') + 1
	complete := data[:end]
	if maxLine > 0 {
		// carbon: lines before a too long one are processed, then the connection is dropped
		// and the rest of what was read is lost.
		for pos := 0; pos < len(complete); {
			i := bytes.IndexByte(complete[pos:], '\n')
			if i > maxLine {
				r.p.process(complete[:pos])
				_ = r.c.Close()
				return false
			}
			pos += i + 1
		}
		if len(data)-end > maxLine {
			r.p.process(complete)
			_ = r.c.Close()
			return false
		}
	}
	r.p.process(complete)
	r.pending = append(r.pending[:0], data[end:]...)
	if err != nil {
		_ = r.c.Close() // EOF answered by our close, like carbon
		return false
	}
	return true
}

func (r *lineReader) reset() {
	_ = r.c.SetLinger(0)
	_ = r.c.Close()
}

// readAll reads normally until the connection ends.
func readAll(p *fakePeer, c *net.TCPConn) {
	r := newLineReader(p, c, 64<<10)
	for r.next(0) {
	}
}

// blackHoleThenRead holds the connection without reading until the peer is made healthy.
func blackHoleThenRead(p *fakePeer, c *net.TCPConn, _ int) {
	<-p.healthy
	readAll(p, c)
}

// slowReader reads `rate` bytes per second in small reads.
func slowReader(rate int) func(p *fakePeer, c *net.TCPConn, _ int) {
	return func(p *fakePeer, c *net.TCPConn, _ int) {
		const step = 256
		r := newLineReader(p, c, step)
		start := time.Now()
		for r.next(0) {
			// Pace: the peer's own clock, not a test assertion.
			if ahead := time.Duration(r.read)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
}

// resetAfterBytes processes n bytes of each connection, then resets it (until healthy).
func resetAfterBytes(n int64) func(p *fakePeer, c *net.TCPConn, _ int) {
	return func(p *fakePeer, c *net.TCPConn, _ int) {
		r := newLineReader(p, c, 4<<10)
		for r.next(0) {
			if r.read >= n && !p.isHealthy() {
				r.reset()
				return
			}
		}
	}
}

// resetAfter processes each connection for d at `rate` bytes per second, then resets it
// (until healthy).
func resetAfter(d time.Duration, rate int) func(p *fakePeer, c *net.TCPConn, _ int) {
	return func(p *fakePeer, c *net.TCPConn, _ int) {
		r := newLineReader(p, c, 64<<10)
		start := time.Now()
		for r.next(0) {
			if time.Since(start) > d && !p.isHealthy() {
				r.reset()
				return
			}
			if ahead := time.Duration(r.read)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead) // the peer's pace
			}
		}
	}
}

// carbonLineLimit drops the connection on any line longer than limit, like carbon's
// LineOnlyReceiver (MAX_LENGTH 16384).
func carbonLineLimit(limit int) func(p *fakePeer, c *net.TCPConn, _ int) {
	return func(p *fakePeer, c *net.TCPConn, _ int) {
		r := newLineReader(p, c, 64<<10)
		for r.next(limit) {
		}
	}
}

// provenChecker is a done callback factory that fails the test when a chunk is reported
// delivered while one of its lines was not yet processed by the peer application.
type provenChecker struct {
	t        testing.TB
	p        *fakePeer
	rec      *doneRecorder
	mu       sync.Mutex
	early    int
	rejected []error
}

func (pc *provenChecker) fn(b *metric.Batch) func(error) {
	inner := pc.rec.fn(b)
	return func(err error) {
		var rej interface{ Rejected() string }
		if err == nil || errors.As(err, &rej) {
			missing := 0
			pc.p.mu.Lock()
			for data := b.Data; len(data) > 0; {
				i := bytes.IndexByte(data, '\n')
				if pc.p.seen[string(data[:i])] == 0 {
					missing++
				}
				data = data[i+1:]
			}
			pc.p.mu.Unlock()
			if err != nil {
				var re *RejectedError
				if errors.As(err, &re) {
					missing -= len(re.Lines) // the rejected lines
				} else {
					missing--
				}
				pc.mu.Lock()
				pc.rejected = append(pc.rejected, err)
				pc.mu.Unlock()
			}
			if missing > 0 {
				pc.mu.Lock()
				pc.early++
				pc.mu.Unlock()
				pc.t.Errorf("chunk %d of %s reported delivered with %d lines the peer never read", b.Seq, b.Source, missing)
			}
		}
		inner(err)
	}
}
