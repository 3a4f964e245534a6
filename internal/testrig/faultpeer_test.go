package testrig

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func dialPeer(t *testing.T, p *FaultPeer) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// waitPeer polls the peer's counters (bounded) until cond holds.
func waitPeer(t *testing.T, p *FaultPeer, what string, cond func(PeerStats) bool) PeerStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault peer: timed out waiting for %s; stats %+v", what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fill writes to c until the write makes no progress for 300 ms (the peer's window and our
// send buffer are full) or limit bytes were written, and returns the bytes written.
func fill(c *net.TCPConn, limit int) int {
	n, _ := fillErr(c, limit)
	return n
}

// fillErr is fill that also returns the write error that stopped it.
func fillErr(c *net.TCPConn, limit int) (int, error) {
	chunk := bytes.Repeat([]byte("a.b.c 1 1700000000\n"), 1000)
	total := 0
	var werr error
	for total < limit {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(chunk)
		total += n
		if err != nil {
			werr = err
			break
		}
	}
	c.SetWriteDeadline(time.Time{})
	return total, werr
}

// A reader records each complete line with its connection, counts duplicates, drops a partial
// last line, and tells a client's reset from a clean close.
func TestFaultPeerReadRecordsLinesPerConnection(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{}, PeerBehaviour{Mode: PeerRead})
	c1 := dialPeer(t, p)
	c1.Write([]byte("a 1 10\nb 2 10\n"))
	waitPeer(t, p, "two lines", func(s PeerStats) bool { return s.Lines == 2 })
	c2 := dialPeer(t, p)
	c2.Write([]byte("a 1 10\nhalf a li"))
	waitPeer(t, p, "three lines", func(s PeerStats) bool { return s.Lines == 3 })
	c1.Close()
	c2.SetLinger(0)
	c2.Close()
	s := waitPeer(t, p, "both connections closed", func(s PeerStats) bool { return s.Open == 0 })
	want := []PeerLine{{"a 1 10", 1}, {"b 2 10", 1}, {"a 1 10", 2}}
	if got := p.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	if n := p.Counts()["a 1 10"]; n != 2 {
		t.Errorf(`"a 1 10" counted %d times, want 2`, n)
	}
	if s.Accepted != 2 || s.PeerCloses != 1 || s.PeerResets != 1 || s.OurResets != 0 || s.BytesRead != 14+16 {
		t.Errorf("stats %+v: want 2 accepted, 1 clean close, 1 reset by the client, 30 bytes", s)
	}
}

// A black hole holds what was sent without reading it; becoming a reader (Set) reads what its
// kernel held; Restart instead resets the connections and discards it.
func TestFaultPeerBlackHole(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{ReadBuffer: 32 << 10}, PeerBehaviour{Mode: PeerBlackHole})
	c := dialPeer(t, p)
	waitPeer(t, p, "the connection accepted", func(s PeerStats) bool { return s.Accepted == 1 })
	if n := fill(c, 64<<20); n == 64<<20 {
		t.Fatal("a black hole took 64 MiB without blocking the writer")
	}
	if s := p.Stats(); s.BytesRead != 0 || s.Lines != 0 {
		t.Fatalf("a black hole read something: %+v", s)
	}
	p.Set(PeerBehaviour{Mode: PeerRead})
	s := waitPeer(t, p, "the held bytes read", func(s PeerStats) bool { return s.Lines >= 1000 })
	t.Logf("black hole turned reader: %d lines read from what the kernel held", s.Lines)

	// A connection made while the peer is a black hole again is never read; Restart resets it
	// (and the first one) and discards what its kernel held.
	p.Set(PeerBehaviour{Mode: PeerBlackHole})
	c3 := dialPeer(t, p)
	waitPeer(t, p, "the second connection accepted", func(s PeerStats) bool { return s.Accepted == 2 })
	held := fill(c3, 64<<20)
	before := p.Stats().BytesRead
	p.Restart(t, PeerBehaviour{Mode: PeerRead})
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c3.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after Restart the client reads %v, want a reset", err)
	}
	s = waitPeer(t, p, "both connections gone", func(s PeerStats) bool { return s.Open == 0 })
	if s.OurResets != 2 || s.Restarts != 1 {
		t.Errorf("stats %+v: want 2 resets by the peer and 1 restart", s)
	}
	if s.BytesRead != before {
		t.Errorf("the black hole read %d of the %d bytes sent to it before Restart", s.BytesRead-before, held)
	}
	// The fresh listener on the same port reads.
	c2 := dialPeer(t, p)
	c2.Write([]byte("after 1 1\n"))
	waitPeer(t, p, "a line on the new listener", func(s PeerStats) bool { return p.Counts()["after 1 1"] == 1 })
}

// A listener that never accepts: with a backlog of 1, two connections complete in the kernel
// and can even be written to, then connection attempts time out; healing accepts the waiting
// ones and reads what they hold.
func TestFaultPeerNoAccept(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{Backlog: 1}, PeerBehaviour{Mode: PeerNoAccept})
	var queued []net.Conn
	timedOut := 0
	for range 4 {
		c, err := net.DialTimeout("tcp", p.Addr(), 300*time.Millisecond)
		if err != nil {
			timedOut++
			continue
		}
		defer c.Close()
		queued = append(queued, c)
	}
	if len(queued) != 2 || timedOut != 2 {
		t.Fatalf("%d connections completed and %d timed out; want 2 and 2 (backlog 1 + 1)", len(queued), timedOut)
	}
	queued[0].Write([]byte("x 1 1\n"))
	if s := p.Stats(); s.Accepted != 0 {
		t.Fatalf("a never-accepting listener accepted: %+v", s)
	}
	p.Set(PeerBehaviour{Mode: PeerRead})
	waitPeer(t, p, "the waiting connections accepted and read", func(s PeerStats) bool {
		return s.Accepted == 2 && s.Lines == 1
	})
}

// A slow reader reads no faster than its rate (an upper bound the fake enforces itself).
func TestFaultPeerSlow(t *testing.T) {
	const rate = 4000
	p := StartFaultPeer(t, FaultPeerOptions{ReadBuffer: 16 << 10}, PeerBehaviour{Mode: PeerSlow, Rate: rate})
	c := dialPeer(t, p)
	go fill(c, 1<<20)
	waitPeer(t, p, "reading to start", func(s PeerStats) bool { return s.BytesRead > 0 })
	start := time.Now()
	time.Sleep(500 * time.Millisecond) // the bound below is computed from the time that really passed
	read := p.Stats().BytesRead
	limit := int64(time.Since(start).Seconds()*rate) + rate/20 + rate/20
	if read > limit {
		t.Errorf("slow reader read %d bytes in %v at %d B/s (limit %d)", read, time.Since(start), rate, limit)
	}
	t.Logf("slow reader: %d bytes in %v", read, time.Since(start))
}

// Reset after N bytes reads exactly N bytes of each connection, then resets it.
func TestFaultPeerResetAfterBytes(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{}, PeerBehaviour{Mode: PeerResetAfterBytes, ResetBytes: 100_000})
	for i := 1; i <= 2; i++ {
		c := dialPeer(t, p)
		n, werr := fillErr(c, 400_000)
		s := waitPeer(t, p, "the reset", func(s PeerStats) bool { return s.OurResets == i && s.Open == 0 })
		if s.BytesRead != int64(i)*100_000 {
			t.Errorf("after %d connections the peer read %d bytes, want %d", i, s.BytesRead, i*100_000)
		}
		// The kernel reports a reset once: to the write that met it (ECONNRESET, or EPIPE for a
		// write after it), or to the next read.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.EPIPE) && !errors.Is(rerr, syscall.ECONNRESET) {
			t.Errorf("the client wrote %d bytes (%v) and reads %v, want a reset in one of them", n, werr, rerr)
		}
	}
}

// Reset after a time resets a connection at that age even when nothing is sent.
func TestFaultPeerResetAfterTime(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{}, PeerBehaviour{Mode: PeerResetAfterTime, ResetAfter: 200 * time.Millisecond})
	// Taken before the dial: the peer's clock starts at its accept, which may come before the
	// dial returns.
	start := time.Now()
	c := dialPeer(t, p)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %v, want a reset", err)
	}
	if age := time.Since(start); age < 200*time.Millisecond {
		t.Errorf("reset after %v, before its time", age)
	}
	waitPeer(t, p, "the reset counted", func(s PeerStats) bool { return s.OurResets == 1 && s.Open == 0 })
}

// Like carbon, a line over MaxLine drops the connection: the lines before it are kept,
// nothing after it on that connection is read, and the next connection works.
func TestFaultPeerDropsLongLines(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{}, PeerBehaviour{Mode: PeerRead, MaxLine: CarbonMaxLine})
	c := dialPeer(t, p)
	long := "x." + strings.Repeat("y", CarbonMaxLine) + " 1 1\n"
	c.Write([]byte("before 1 1\n" + long + "after 1 1\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %v: the connection was not dropped", err)
	}
	s := waitPeer(t, p, "the drop", func(s PeerStats) bool { return s.Dropped == 1 && s.Open == 0 })
	counts := p.Counts()
	if counts["before 1 1"] != 1 || counts["after 1 1"] != 0 || s.Lines != 1 {
		t.Errorf("counts %v, stats %+v: want only the line before the long one", counts, s)
	}
	// A line of exactly the limit is fine; so is a partial line up to it.
	c2 := dialPeer(t, p)
	exact := strings.Repeat("z", CarbonMaxLine)
	c2.Write([]byte(exact + "\n"))
	waitPeer(t, p, "the line at the limit", func(s PeerStats) bool { return s.Lines == 2 })
	c2.Close()
	waitPeer(t, p, "a clean close", func(s PeerStats) bool { return s.PeerCloses == 1 && s.Dropped == 1 })
}

// Accepts per second are counted over any one-second window.
func TestFaultPeerAcceptRate(t *testing.T) {
	p := StartFaultPeer(t, FaultPeerOptions{}, PeerBehaviour{Mode: PeerRead})
	for range 5 {
		c := dialPeer(t, p)
		c.Close()
	}
	s := waitPeer(t, p, "5 connections", func(s PeerStats) bool { return s.Accepted == 5 && s.Open == 0 })
	if s.MaxAcceptsPerSecond != 5 {
		t.Errorf("max accepts per second %d, want 5", s.MaxAcceptsPerSecond)
	}
}
