package graphite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

// faultConfig has waits short enough for a fault test to last seconds.
func faultConfig(addr string) config.Graphite {
	cfg := testConfig(addr)
	cfg.Retries, cfg.Interval, cfg.Backoff, cfg.Delay = 2, 20*time.Millisecond, 2, 200*time.Millisecond
	cfg.StallTimeout = 500 * time.Millisecond
	cfg.WriteTimeout = 100 * time.Millisecond
	cfg.QueueBytes = 1 << 20
	return cfg
}

// shortStrictHold shortens the wait before a careful drain (5× what failed under -race).
func shortStrictHold(t testing.TB) {
	old := strictHold
	strictHold = 250 * time.Millisecond
	t.Cleanup(func() { strictHold = old })
}

func shortReplayHold(t testing.TB, d time.Duration) {
	old := replayHold
	replayHold = d
	t.Cleanup(func() { replayHold = old })
}

type faultResult struct {
	elapsed        time.Duration
	connections    int
	dupes          int
	resent, stream uint64
	st             Stats
	lossLogs       int // "connection lost" log lines
	logs           *logRecorder
}

// runFault submits snaps (from one goroutine, in order) to a dispatcher sending to p, calls
// during (if not nil) while the fault lasts, then makes the peer healthy unless keepFault,
// waits for every chunk's done, and checks that every line was processed by the peer at
// least once and that no chunk was reported delivered before the peer processed it.
func runFault(t *testing.T, p *fakePeer, cfg config.Graphite, snaps [][]*metric.Batch,
	during func(d *Dispatcher, pc *provenChecker), keepFault bool) (faultResult, *provenChecker) {
	t.Helper()
	log, logs := newLogger()
	d := newDispatcher(cfg, log, nil, nil)
	d.start()
	t.Cleanup(func() { // after a failure too: no writer outlives its test
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	rec := newDoneRecorder(t)
	pc := &provenChecker{t: t, p: p, rec: rec}
	start := time.Now()
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for _, snap := range snaps {
			for _, b := range snap {
				if err := d.Submit(context.Background(), b, pc.fn(b)); err != nil {
					t.Errorf("Submit: %v", err)
					return
				}
			}
		}
	}()
	if during != nil {
		during(d, pc)
	}
	if !keepFault {
		p.makeHealthy()
	}
	total := 0
	for _, s := range snaps {
		total += len(s)
	}
	t.Cleanup(func() {
		if t.Failed() {
			msgs := logs.messages()
			t.Logf("%d log lines, the first ones: %q", len(msgs), msgs[:min(len(msgs), 60)])
			t.Logf("stats %+v", d.Stats())
		}
	})
	waitFor(t, 30*time.Second, "every chunk's done", func() bool { return rec.count() == total })
	<-submitted
	elapsed := time.Since(start)
	closeOK(t, d)

	var stream uint64
	missing := 0
	p.mu.Lock()
	dupes := 0
	for _, snap := range snaps {
		for _, b := range snap {
			stream += uint64(len(b.Data))
			errs, _ := rec.result(b)
			var rej dispatch.Rejected
			if errs[0] != nil && !errors.As(errs[0], &rej) {
				t.Errorf("chunk %d of %s: done(%v)", b.Seq, b.Source, errs[0])
			}
			for data := b.Data; len(data) > 0; {
				i := bytes.IndexByte(data, '\n')
				n := p.seen[string(data[:i])]
				if n == 0 && rej == nil {
					missing++
				}
				dupes += max(0, n-1)
				data = data[i+1:]
			}
		}
	}
	p.mu.Unlock()
	if missing > 0 {
		t.Errorf("%d lines never reached the peer application", missing)
	}
	st := d.Stats()
	res := faultResult{elapsed: elapsed, connections: p.connections(), dupes: dupes,
		resent: st.ResentBytes, stream: stream, st: st, lossLogs: logs.count("WARN graphite connection lost"), logs: logs}
	t.Logf("%v: %d connections (%.1f/s), %d drains, %d of %d bytes re-sent (%.2f×), %d duplicate lines, %d lost-connection log lines",
		elapsed.Round(time.Millisecond), res.connections, float64(res.connections)/elapsed.Seconds(), st.Drains,
		res.resent, stream, float64(res.resent)/float64(stream), dupes, logs.count("WARN graphite connection lost"))
	return res, pc
}

func faultSnapshots(n, chunks, lines int) [][]*metric.Batch {
	var snaps [][]*metric.Batch
	for i := range n {
		snaps = append(snaps, makeSnapshot(i, chunks, lines, ts+int64(i)))
	}
	return snaps
}

// A peer that accepts and never reads: its kernel acknowledges what fits in its buffers, but
// nothing may be reported delivered, whatever the size of our writes and however long it
// lasts; stall-timeout gives the connections up (gracefully) and reconnections back off.
func TestBlackHoleNothingDeliveredUntilItReads(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	p := startPeer(t, 0, 0, blackHoleThenRead)
	snaps := faultSnapshots(10, 4, 500) // 10 snapshots of about 74 KB
	res, _ := runFault(t, p, faultConfig(p.addr), snaps, func(d *Dispatcher, pc *provenChecker) {
		waitFor(t, 20*time.Second, "three given-up connections", func() bool { return p.connections() >= 3 })
		if n := pc.rec.count(); n != 0 {
			t.Fatalf("%d chunks reported done while the peer never read", n)
		}
	}, false)
	if cps := float64(res.connections) / res.elapsed.Seconds(); cps > 20 {
		t.Errorf("%.1f connections/s", cps)
	}
}

// A listener that never accepts: the kernel completes the handshake and buffers data for the
// backlog, and nothing of it may count as delivered.
func TestNeverAcceptingListenerNothingDeliveredUntilItAccepts(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	p := startPeer(t, 0, 0, func(p *fakePeer, c *net.TCPConn, _ int) { readAll(p, c) }, true)
	snaps := faultSnapshots(5, 4, 500)
	res, _ := runFault(t, p, faultConfig(p.addr), snaps, func(d *Dispatcher, pc *provenChecker) {
		waitFor(t, 20*time.Second, "three connections given up", func() bool { return d.Stats().Losses >= 3 })
		if n := pc.rec.count(); n != 0 {
			t.Fatalf("%d chunks reported done while the listener never accepted", n)
		}
	}, false)
	if res.st.Losses < 3 {
		t.Errorf("Stats = %+v", res.st)
	}
}

// A slow reader (5 kB/s, a 4 KiB receive buffer, a 1000-byte MSS so that its window reopens
// in small steps) makes progress all the time: it is never given up, never reset, and reads
// every line exactly once.
func TestSlowReaderIsNeverDroppedAndLosesNothing(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	p := startPeer(t, 4096, 1000, slowReader(5000))
	cfg := faultConfig(p.addr)
	// At 5 kB/s an MSS frees in 0.2 s, but with so small a buffer the receiver leaves it to
	// our zero-window probes (backing off: 0.2, 0.4, 0.8 s…) to find out: gaps up to 1.3 s.
	cfg.StallTimeout = 3 * time.Second
	snaps := faultSnapshots(3, 2, 100) // 22 KB: about 4.5 s
	res, _ := runFault(t, p, cfg, snaps, nil, true)
	if res.st.Losses != 0 || res.dupes != 0 || res.resent != 0 {
		t.Errorf("a slow peer was given up: %+v, %d duplicate lines", res.st, res.dupes)
	}
}

// A peer that resets every connection after 100 kB, for ever: everything still gets through
// (careful mode sends what fits before the reset, proven by drains), connections per second
// and re-sent bytes stay bounded.
func TestPeerResettingAfter100kBDoesNotLivelock(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	shortStrictHold(t)
	p := startPeer(t, 0, 0, resetAfterBytes(100_000))
	snaps := faultSnapshots(4, 4, 1000) // 590 KB
	cfg := faultConfig(p.addr)
	cfg.StallTimeout = 2 * time.Second // above the careful drain's waits
	res, _ := runFault(t, p, cfg, snaps, nil, true)
	if cps := float64(res.connections) / res.elapsed.Seconds(); cps > 30 {
		t.Errorf("%.1f connections/s", cps)
	}
	if res.st.Losses < 2 || res.lossLogs != 1 {
		t.Errorf("%d losses logged in %d lines; want one line for the ongoing fault", res.st.Losses, res.lossLogs)
	}
	if res.resent > 4*res.stream {
		t.Errorf("%d bytes re-sent for a stream of %d", res.resent, res.stream)
	}
}

// A peer that reads at 4 MB/s and resets every connection after 1 s, for ever, while a large
// backlog streams (a drain would come only every 8 MiB, 2 s).
func TestPeerResettingAfterOneSecondDoesNotLivelock(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	p := startPeer(t, 0, 0, resetAfter(time.Second, 4<<20))
	cfg := faultConfig(p.addr)
	cfg.QueueBytes = 8 << 20
	snaps := faultSnapshots(4, 20, 6000) // 4 snapshots of 4.4 MB
	res, _ := runFault(t, p, cfg, snaps, nil, true)
	if res.st.Losses == 0 {
		t.Errorf("the peer never reset a connection: %+v", res.st)
	}
	if cps := float64(res.connections) / res.elapsed.Seconds(); cps > 10 {
		t.Errorf("%.1f connections/s", cps)
	}
	// A loss re-sends at most what was unproven or held: queue-bytes × 5/4 and a chunk.
	if limit := res.st.Losses * uint64(cfg.QueueBytes*5/4+256<<10); res.resent > limit {
		t.Errorf("%d bytes re-sent after %d losses, more than %d", res.resent, res.st.Losses, limit)
	}
}

// One line over carbon's 16 KiB limit: the peer drops every connection on it. The line is
// narrowed down, skipped, logged once, its chunk gets a dispatch.Rejected error naming the
// snapshot and the line; every other line gets through.
func TestLineThePeerKeepsDroppingIsIsolatedAndRejected(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	shortStrictHold(t)
	p := startPeer(t, 0, 0, carbonLineLimit(16384))
	snaps := faultSnapshots(3, 4, 1000)
	// Chunk 2 of snapshot 1 gets a 20 KB line in its middle.
	b := snaps[1][2]
	mid := bytes.IndexByte(b.Data[len(b.Data)/2:], '\n') + len(b.Data)/2 + 1
	long := "test.poison." + strings.Repeat("x", 20_000) + " 1 1700000001\n"
	b.Data = append(append(append([]byte(nil), b.Data[:mid]...), long...), b.Data[mid:]...)
	b.Lines++
	cfg := faultConfig(p.addr)
	cfg.StallTimeout = 2 * time.Second // above the careful drain's waits
	res, pc := runFault(t, p, cfg, snaps, nil, true)
	if res.st.Rejected != 1 || len(pc.rejected) != 1 {
		t.Fatalf("Stats %+v, rejected chunks %v; want one rejected line", res.st, pc.rejected)
	}
	var rej dispatch.Rejected
	if !errors.As(pc.rejected[0], &rej) || !strings.Contains(rej.Rejected(), b.Source) ||
		!strings.Contains(rej.Rejected(), "test.poison.xxx") || !strings.Contains(rej.Rejected(), "20026 bytes") {
		t.Errorf("Rejected() = %q; want the snapshot, the line's length and its first bytes", rej.Rejected())
	}
	if n := res.logs.count("ERROR graphite: the receiver drops the connection on this line"); n != 1 {
		t.Errorf("the skipped line was logged %d times: %q", n, res.logs.messages())
	}
	for _, m := range res.logs.messages() {
		if strings.HasPrefix(m, "ERROR graphite: the receiver drops") && (!strings.Contains(m, "snapshot="+b.Source) || !strings.Contains(m, "length=20026")) {
			t.Errorf("the log line does not name the snapshot and the length: %q", m)
		}
	}
	if n := p.seen[strings.TrimSuffix(long, "\n")]; n != 0 {
		t.Errorf("the peer processed the long line %d times", n)
	}
}

// NewOnce with nothing listening: after one connect round every queued chunk fails, and so
// does every later Submit, at once; nothing is reported delivered.
func TestOnceGivesUpAfterOneConnectRound(t *testing.T) {
	for _, retries := range []int{2, -1} {
		cfg := faultConfig(reservePort(t))
		cfg.Retries = retries
		d := NewOnce(cfg, nil)
		rec := newDoneRecorder(t)
		snap := makeSnapshot(0, 3, 10, ts)
		start := time.Now()
		for _, b := range snap {
			if err := d.Submit(context.Background(), b, rec.fn(b)); err != nil {
				break // it may give up before the last Submit
			}
		}
		waitFor(t, 10*time.Second, "the give-up", func() bool { return d.Submit(context.Background(), snap[0], func(error) {}) != nil })
		err := d.Submit(context.Background(), snap[0], func(error) { t.Error("done called after a failed Submit") })
		if !errors.Is(err, ErrGaveUp) {
			t.Fatalf("retries %d: Submit after the give-up: %v, want ErrGaveUp", retries, err)
		}
		t.Logf("retries %d: gave up after %v: %v", retries, time.Since(start).Round(time.Millisecond), err)
		for _, b := range snap {
			if errs, called := rec.result(b); called && (errs[0] == nil || !errors.Is(errs[0], ErrGaveUp)) {
				t.Errorf("chunk %d: done(%v), want ErrGaveUp", b.Seq, errs[0])
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.Close(ctx); !errors.Is(err, ErrGaveUp) {
			t.Errorf("Close: %v, want ErrGaveUp", err)
		}
		cancel()
	}
}

// NewOnce facing a black hole gives up after stall-timeout.
func TestOnceGivesUpAfterAStall(t *testing.T) {
	p := startPeer(t, 0, 0, blackHoleThenRead)
	d := NewOnce(faultConfig(p.addr), nil)
	rec := newDoneRecorder(t)
	snap := makeSnapshot(0, 3, 1000, ts)
	submitAll(t, d, rec, snap)
	waitFor(t, 10*time.Second, "every chunk failed", func() bool { return rec.count() == len(snap) })
	for _, b := range snap {
		if errs, _ := rec.result(b); !errors.Is(errs[0], ErrGaveUp) {
			t.Errorf("chunk %d: done(%v), want ErrGaveUp", b.Seq, errs[0])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, ErrGaveUp) {
		t.Errorf("Close: %v, want ErrGaveUp", err)
	}
}

// How long after the peer application read a chunk's last line is the chunk proven? With the
// replay hold off, done follows the proof at once. Quiet: one small snapshot every 300 ms
// (each tail is proven by a drain); streaming: a large backlog.
func TestMeasureProofDelay(t *testing.T) {
	shortReplayHold(t, 0)
	for _, tc := range []struct {
		name  string
		snaps [][]*metric.Batch
		gap   bool
	}{
		{"quiet", faultSnapshots(8, 2, 300), true},
		{"streaming", faultSnapshots(10, 20, 6000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeer(t, 0, 0, func(p *fakePeer, c *net.TCPConn, _ int) { readAll(p, c) })
			p.mu.Lock()
			p.timeSeen, p.seenAt = true, map[string]time.Time{}
			p.mu.Unlock()
			cfg := faultConfig(p.addr)
			cfg.QueueBytes = 8 << 20
			d := New(cfg, nil)
			var mu sync.Mutex
			var delays []time.Duration
			var wg sync.WaitGroup
			for _, snap := range tc.snaps {
				for _, b := range snap {
					last := b.Data[:len(b.Data)-1]
					last = last[bytes.LastIndexByte(last, '\n')+1:]
					wg.Add(1)
					err := d.Submit(context.Background(), b, func(err error) {
						defer wg.Done()
						now := time.Now()
						p.mu.Lock()
						at, ok := p.seenAt[string(last)]
						p.mu.Unlock()
						if err != nil || !ok {
							t.Errorf("chunk %d of %s: done(%v), read by the peer: %v", b.Seq, b.Source, err, ok)
							return
						}
						mu.Lock()
						delays = append(delays, now.Sub(at))
						mu.Unlock()
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				if tc.gap {
					wg.Wait() // the next snapshot comes once this one is proven
				}
			}
			wg.Wait()
			closeOK(t, d)
			slices.Sort(delays)
			t.Logf("%d chunks: proven %v (median), %v (90th percentile), %v (max) after the peer read their last line; %d drains",
				len(delays), delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)*9/10].Round(time.Millisecond),
				delays[len(delays)-1].Round(time.Millisecond), d.Stats().Drains)
		})
	}
}

// Many lines over carbon's 16 KiB limit: once one was proven rejected, the others (at least as
// long) are skipped without being tried, so isolating them costs a few connections, not two or
// more for each line; every short line still gets through, and each long one is reported.
func TestLinesAsLongAsARejectedOneAreSkippedWithoutTrying(t *testing.T) {
	shortReplayHold(t, 200*time.Millisecond)
	shortStrictHold(t)
	p := startPeer(t, 0, 0, carbonLineLimit(16384))
	snaps := faultSnapshots(2, 4, 1000)
	const longLines = 24
	var longs []string
	for k := range longLines {
		b := snaps[k%2][1+k%3] // spread over chunks 1–3 of both snapshots
		at := (k*7919 + 1) % len(b.Data)
		at = bytes.IndexByte(b.Data[at:], '\n') + at + 1
		if at > len(b.Data) {
			at = len(b.Data)
		}
		long := fmt.Sprintf("test.long%02d.", k) + strings.Repeat("x", 20_000) + " 1 1700000001\n"
		b.Data = append(append(append([]byte(nil), b.Data[:at]...), long...), b.Data[at:]...)
		b.Lines++
		longs = append(longs, strings.TrimSuffix(long, "\n"))
	}
	cfg := faultConfig(p.addr)
	cfg.StallTimeout = 2 * time.Second
	res, _ := runFault(t, p, cfg, snaps, nil, true)
	if res.st.Rejected != longLines {
		t.Errorf("%d lines rejected, want the %d long ones", res.st.Rejected, longLines)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range longs {
		if n := p.seen[l]; n != 0 {
			t.Errorf("the peer processed a long line %d times", n)
		}
	}
	short := 0
	for _, snap := range snaps {
		for _, b := range snap {
			for data := b.Data; len(data) > 0; {
				i := bytes.IndexByte(data, '\n')
				if line := string(data[:i]); len(line) < 16384 {
					short++
					if p.seen[line] == 0 {
						t.Errorf("short line %q never reached the peer", line)
						return
					}
				}
				data = data[i+1:]
			}
		}
	}
	// Without the skip, every long line costs at least two connections the peer drops on it
	// alone (the other connections are careful mode's drains, one per piece).
	if res.st.Losses >= longLines {
		t.Errorf("the peer dropped %d connections for %d long lines; want far fewer than one per line",
			res.st.Losses, longLines)
	}
	t.Logf("%d long lines isolated and %d short lines delivered in %v: %d connections, %d of them dropped by the peer",
		longLines, short, res.elapsed.Round(time.Millisecond), res.connections, res.st.Losses)
}
