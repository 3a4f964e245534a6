package testrig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PeerMode is what a FaultPeer does with its connections.
type PeerMode int

const (
	// PeerRead reads every byte at once and records every line, like a healthy carbon.
	PeerRead PeerMode = iota
	// PeerBlackHole accepts connections and never reads: what is sent fills the kernel's
	// receive buffer, is acknowledged by TCP, and is never seen by the application.
	PeerBlackHole
	// PeerNoAccept never calls accept(2): connections complete the handshake in the listen
	// backlog (and can be written to) until it is full; after that SYNs are dropped.
	// A connection accepted just before the switch is held unread, as the backlog would.
	PeerNoAccept
	// PeerSlow reads each connection at PeerBehaviour.Rate bytes per second.
	PeerSlow
	// PeerResetAfterBytes resets (RST) each connection once it has read ResetBytes from it;
	// whatever its kernel still held is discarded.
	PeerResetAfterBytes
	// PeerResetAfterTime resets each connection ResetAfter after it was accepted.
	PeerResetAfterTime
)

func (m PeerMode) String() string {
	switch m {
	case PeerRead:
		return "read"
	case PeerBlackHole:
		return "black hole"
	case PeerNoAccept:
		return "no accept"
	case PeerSlow:
		return "slow"
	case PeerResetAfterBytes:
		return "reset after bytes"
	case PeerResetAfterTime:
		return "reset after time"
	}
	return fmt.Sprintf("PeerMode(%d)", int(m))
}

// PeerBehaviour is switched at run time with FaultPeer.Set (live connections follow) or
// FaultPeer.Restart (the peer "process" dies and comes back).
type PeerBehaviour struct {
	Mode       PeerMode
	Rate       int           // PeerSlow: bytes per second, per connection (≥ 1)
	ResetBytes int64         // PeerResetAfterBytes: bytes read on a connection before its reset
	ResetAfter time.Duration // PeerResetAfterTime: age of a connection at its reset
	// MaxLine, in every reading mode: a line longer than this many bytes ('\n' excluded)
	// drops the connection, and nothing after it on that connection is read, as carbon's line
	// receiver does at 16384 (twisted LineOnlyReceiver.MAX_LENGTH). 0 means a bound of 1 MiB.
	MaxLine int
}

// CarbonMaxLine is carbon-cache's line length limit (twisted LineOnlyReceiver.MAX_LENGTH).
const CarbonMaxLine = 16384

// FaultPeerOptions are fixed for the life of a FaultPeer.
type FaultPeerOptions struct {
	// Backlog is the listen(2) backlog; 0 means the system's maximum. Linux keeps Backlog+1
	// completed connections waiting for accept.
	Backlog int
	// ReadBuffer is SO_RCVBUF of the accepted connections (set on the listener, so that the
	// window scale is chosen for it); 0 leaves the kernel's default and autotuning.
	ReadBuffer int
}

// PeerLine is one complete line received (without '\n') and the connection it came on
// (1 for the first connection accepted).
type PeerLine struct {
	Text string
	Conn int
}

// PeerStats counts what the peer saw.
type PeerStats struct {
	Accepted   int   // connections accepted
	Open       int   // connections open now
	PeerResets int   // connections the client reset (ECONNRESET on read)
	PeerCloses int   // connections the client closed cleanly (EOF)
	OurResets  int   // connections this peer reset (reset modes, Restart, Close)
	Dropped    int   // connections dropped because of a line over MaxLine
	Restarts   int   // calls of Restart
	BytesRead  int64 // every byte read, partial lines included
	Lines      int   // complete lines received, duplicates included
	// MaxAcceptsPerSecond is the most connections accepted within any one-second window.
	MaxAcceptsPerSecond int
	// Unrecorded is how many lines were counted but left out of Lines() (the log is bounded).
	Unrecorded int
}

// maxRecordedLines bounds the per-line log; counts and Counts() keep going beyond it.
const maxRecordedLines = 1 << 19

// maxPending bounds the partial line kept per connection when MaxLine is 0.
const maxPending = 1 << 20

// FaultPeer is a fake Graphite plaintext receiver on 127.0.0.1 for fault tests: its behaviour
// can be switched at run time, and it records every complete line with the connection it came
// on and counts connections, resets and bytes. A partial last line of a connection is dropped,
// as carbon does.
type FaultPeer struct {
	opts FaultPeerOptions
	port int

	mu       sync.Mutex
	b        PeerBehaviour
	changed  chan struct{} // closed and replaced at every change, to wake waiting goroutines
	ln       *net.TCPListener
	conns    map[int]*peerConn
	nextConn int
	stats    PeerStats
	accepts  []time.Time
	counts   map[string]int
	lines    []PeerLine
	closed   bool
	wg       sync.WaitGroup
}

type peerConn struct {
	id       int
	c        *net.TCPConn
	accepted time.Time
	read     int64         // bytes read on this connection
	killed   chan struct{} // closed when the peer resets or closes it
	once     sync.Once

	slowSince time.Time // start of the current PeerSlow period
	slowRead  int64     // bytes read since slowSince
}

// StartFaultPeer listens on 127.0.0.1:0 with behaviour b; it is closed on cleanup.
func StartFaultPeer(t testing.TB, opts FaultPeerOptions, b PeerBehaviour) *FaultPeer {
	t.Helper()
	p := &FaultPeer{opts: opts, b: b, changed: make(chan struct{}), conns: map[int]*peerConn{},
		counts: map[string]int{}}
	ln, err := listenLoopback(0, opts)
	if err != nil {
		t.Fatalf("fault peer: %v", err)
	}
	p.ln = ln
	p.port = ln.Addr().(*net.TCPAddr).Port
	p.wg.Add(1)
	go p.acceptLoop(ln)
	t.Cleanup(p.Close)
	return p
}

// listenLoopback makes the listening socket by hand: net.Listen offers neither the backlog
// nor a receive buffer that accepted connections inherit.
func listenLoopback(port int, opts FaultPeerOptions) (*net.TCPListener, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*net.TCPListener, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s 127.0.0.1:%d: %w", what, port, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if opts.ReadBuffer > 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, opts.ReadBuffer); err != nil {
			return fail("SO_RCVBUF", err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind", err)
	}
	backlog := opts.Backlog
	if backlog <= 0 {
		backlog = 1 << 16 // the kernel caps it at net.core.somaxconn
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	f := os.NewFile(uintptr(fd), "faultpeer")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// Addr is "127.0.0.1:<port>"; the port stays the same across Restart.
func (p *FaultPeer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// Port is the listening port.
func (p *FaultPeer) Port() int { return p.port }

// Set switches the behaviour; open connections follow it (a black hole that becomes a reader
// reads what its kernel held).
func (p *FaultPeer) Set(b PeerBehaviour) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b = b
	p.notifyLocked()
}

func (p *FaultPeer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Behaviour is the current behaviour.
func (p *FaultPeer) Behaviour() PeerBehaviour {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b
}

// Restart plays the peer process dying and a fresh one taking over on the same port: every
// open connection is reset, with whatever its kernel held unread; so is every connection
// waiting in the listen backlog (the listener is closed); then a new listener with behaviour b
// accepts.
func (p *FaultPeer) Restart(t testing.TB, b PeerBehaviour) {
	t.Helper()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.ln.Close()
	for _, pc := range p.conns {
		p.resetLocked(pc)
	}
	p.b = b
	p.stats.Restarts++
	p.notifyLocked()
	p.mu.Unlock()

	var ln *net.TCPListener
	var err error
	for range 50 { // the old socket may take a moment to let go of the port
		if ln, err = listenLoopback(p.port, p.opts); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("fault peer restart: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ln.Close()
		return
	}
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop(ln)
}

// Close resets every connection and stops listening; it waits for the peer's goroutines.
func (p *FaultPeer) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ln.Close()
		for _, pc := range p.conns {
			p.resetLocked(pc)
		}
		p.notifyLocked()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Stats returns the counters so far.
func (p *FaultPeer) Stats() PeerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open = len(p.conns)
	for i, j := 0, 0; j < len(p.accepts); j++ {
		for p.accepts[j].Sub(p.accepts[i]) >= time.Second {
			i++
		}
		s.MaxAcceptsPerSecond = max(s.MaxAcceptsPerSecond, j-i+1)
	}
	return s
}

// Lines returns the complete lines received, in arrival order per connection (at most
// 524288; Stats().Unrecorded counts the rest).
func (p *FaultPeer) Lines() []PeerLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PeerLine(nil), p.lines...)
}

// Counts returns how many times each distinct complete line was received.
func (p *FaultPeer) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		m[k] = v
	}
	return m
}

// WaitIdle waits up to limit until no connection is open, and reports whether that happened.
func (p *FaultPeer) WaitIdle(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		open := len(p.conns)
		changed := p.changed
		p.mu.Unlock()
		if open == 0 {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		select {
		case <-changed:
		case <-time.After(min(left, 20*time.Millisecond)):
		}
	}
}

func (p *FaultPeer) current() (PeerBehaviour, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b, p.changed, p.closed
}

func (p *FaultPeer) acceptLoop(ln *net.TCPListener) {
	defer p.wg.Done()
	for {
		b, changed, closed := p.current()
		if closed {
			return
		}
		if b.Mode == PeerNoAccept {
			<-changed
			continue
		}
		// A short deadline, so that a switch to PeerNoAccept stops accepting within 20 ms.
		ln.SetDeadline(time.Now().Add(20 * time.Millisecond))
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return // closed by Restart or Close
		}
		p.mu.Lock()
		if p.closed || p.ln != ln {
			p.mu.Unlock()
			c.SetLinger(0)
			c.Close()
			return
		}
		p.nextConn++
		pc := &peerConn{id: p.nextConn, c: c, accepted: time.Now(), killed: make(chan struct{})}
		p.conns[pc.id] = pc
		p.stats.Accepted++
		if len(p.accepts) < 1<<20 {
			p.accepts = append(p.accepts, pc.accepted)
		}
		p.notifyLocked()
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc)
	}
}

// resetLocked ends pc with an RST: SO_LINGER 0 makes close(2) discard what the kernel holds.
func (p *FaultPeer) resetLocked(pc *peerConn) {
	pc.once.Do(func() {
		pc.c.SetLinger(0)
		pc.c.Close()
		close(pc.killed)
		p.stats.OurResets++
	})
}

// dropLocked closes pc as carbon does on an over-long line (loseConnection: a plain close;
// the kernel still sends an RST when unread data remains).
func (p *FaultPeer) dropLocked(pc *peerConn) {
	pc.once.Do(func() {
		pc.c.Close()
		close(pc.killed)
		p.stats.Dropped++
	})
}

func (p *FaultPeer) serve(pc *peerConn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		pc.once.Do(func() { pc.c.Close(); close(pc.killed) })
		delete(p.conns, pc.id)
		p.notifyLocked()
		p.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	var pending []byte
	for {
		b, changed, closed := p.current()
		if closed {
			return
		}
		select {
		case <-pc.killed:
			return
		default:
		}
		if b.Mode != PeerSlow {
			pc.slowSince = time.Time{}
		}
		n := len(buf)
		deadline := time.Now().Add(50 * time.Millisecond) // to notice behaviour changes
		switch b.Mode {
		case PeerBlackHole, PeerNoAccept:
			select {
			case <-changed:
			case <-pc.killed:
			}
			continue
		case PeerSlow:
			now := time.Now()
			if pc.slowSince.IsZero() {
				pc.slowSince, pc.slowRead = now, 0
			}
			rate := max(b.Rate, 1)
			allowed := int64(now.Sub(pc.slowSince).Seconds()*float64(rate)) - pc.slowRead
			if allowed <= 0 {
				select {
				case <-changed:
				case <-pc.killed:
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			n = int(min(int64(n), allowed, int64(max(rate/20, 1))))
		case PeerResetAfterBytes:
			left := b.ResetBytes - pc.read
			if left <= 0 {
				p.mu.Lock()
				p.resetLocked(pc)
				p.mu.Unlock()
				return
			}
			n = int(min(int64(n), left))
		case PeerResetAfterTime:
			end := pc.accepted.Add(b.ResetAfter)
			if !time.Now().Before(end) {
				p.mu.Lock()
				p.resetLocked(pc)
				p.mu.Unlock()
				return
			}
			if end.Before(deadline) {
				deadline = end
			}
		}
		pc.c.SetReadDeadline(deadline)
		k, err := pc.c.Read(buf[:n])
		if k > 0 {
			pc.read += int64(k)
			if b.Mode == PeerSlow {
				pc.slowRead += int64(k)
			}
			var ok bool
			pending, ok = p.take(pc, pending, buf[:k], b.MaxLine)
			if !ok {
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			p.mu.Lock()
			switch {
			case errors.Is(err, io.EOF):
				p.stats.PeerCloses++
			case errors.Is(err, syscall.ECONNRESET):
				p.stats.PeerResets++
			}
			p.mu.Unlock()
			return
		}
	}
}

// take records the complete lines of pending+data and returns the partial rest, or false
// when a line over the limit dropped the connection.
func (p *FaultPeer) take(pc *peerConn, pending, data []byte, maxLine int) ([]byte, bool) {
	limit := maxLine
	if limit <= 0 {
		limit = maxPending
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.BytesRead += int64(len(data))
	pending = append(pending, data...)
	start := 0
	for {
		i := bytes.IndexByte(pending[start:], '\n')
		if i < 0 {
			break
		}
		line := pending[start : start+i]
		if len(line) > limit {
			p.dropLocked(pc)
			return nil, false
		}
		text := string(line)
		p.counts[text]++
		p.stats.Lines++
		if len(p.lines) < maxRecordedLines {
			p.lines = append(p.lines, PeerLine{Text: text, Conn: pc.id})
		} else {
			p.stats.Unrecorded++
		}
		start += i + 1
	}
	rest := append(pending[:0:0], pending[start:]...)
	if len(rest) > limit {
		p.dropLocked(pc)
		return nil, false
	}
	return rest, true
}

// Freeze stops carbon-cache with SIGSTOP: its sockets stay open, their kernel buffers fill,
// nothing is read.
func (c *Carbon) Freeze(t testing.TB) { c.signal(t, syscall.SIGSTOP) }

// Thaw lets a frozen carbon-cache continue (SIGCONT).
func (c *Carbon) Thaw(t testing.TB) { c.signal(t, syscall.SIGCONT) }

func (c *Carbon) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.stopped {
		t.Fatalf("carbon-cache is not running (signal %v)", sig)
	}
	if err := syscall.Kill(-c.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("carbon-cache: %v: %v", sig, err)
	}
}
