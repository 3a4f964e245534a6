package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// endlessSocket answers every command with a reply that never ends, like a broken or hostile
// stats socket. pace, if not 0, is a pause between chunks that slows the stream down.
type endlessSocket struct {
	address string
	sent    atomic.Int64 // bytes accepted by the kernel, over all connections
}

func serveEndless(t *testing.T, network, address string, pace time.Duration) *endlessSocket {
	t.Helper()
	l, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	e := &endlessSocket{address: l.Addr().String()}
	ctx, stopAll := context.WithCancel(context.Background())
	closed := ctx.Done()
	var wg sync.WaitGroup
	chunk := bytes.Repeat([]byte("be_app,srv1,0,0,1,4,,123456,9876543,1234567,,0,,0,0,0,0,UP,1,1,0\n"), 1000)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					return
				}
				for {
					n, err := c.Write(chunk)
					e.sent.Add(int64(n))
					if err != nil {
						return // the puller hung up: the only way this reply ends
					}
					if pace > 0 {
						select {
						case <-time.After(pace):
						case <-closed:
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		stopAll()
		l.Close()
		wg.Wait()
	})
	return e
}

// peakRSS is the process's peak resident set size (VmHWM) in KiB, 0 when unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// TestReplyLargerThanMaxReplySizeFails: a socket that never stops sending fails its source
// with an error naming the socket and the limit, long before pull-timeout, and no file gets a
// byte past the limit.
func TestReplyLargerThanMaxReplySizeFails(t *testing.T) {
	dir := shortDir(t)
	endless := serveEndless(t, "unix", filepath.Join(dir, "endless.sock"), 0)
	const limit = 1 << 20
	log, _ := testrig.Logger()
	p := New(Options{SocketDir: dir, Workers: 2, MaxReplySize: limit}, log)
	b := newBuilding(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := pullAll(t, ctx, p, b)["endless.sock"]
	took := time.Since(start)
	want := "from UNIX socket " + endless.address + " is larger than max-reply-size (1048576 bytes)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	if ctx.Err() != nil {
		t.Fatalf("the source only failed at the deadline (%s)", took)
	}
	for _, name := range []string{"endless.sock_info", "endless.sock_stat"} {
		fi, err := os.Stat(filepath.Join(b.Path(), name))
		if err != nil {
			continue // the other request was cancelled before it created its file
		}
		if fi.Size() > limit {
			t.Errorf("%s has %d bytes, past max-reply-size %d", name, fi.Size(), limit)
		}
	}
	if endless.sent.Load() <= limit {
		t.Fatalf("the socket sent only %d bytes: the limit was not exercised", endless.sent.Load())
	}
	t.Logf("failed after %s; the socket pushed %d bytes, the snapshot holds %d bytes; peak RSS %d KiB",
		took.Round(time.Millisecond), endless.sent.Load(), dirBytes(b.Path()), peakRSS())
}

// TestEndlessReplyEndsAtPullTimeout: with a limit too high to be reached, a socket that sends
// forever fails at pull-timeout, and its worker is free again when the round ends.
func TestEndlessReplyEndsAtPullTimeout(t *testing.T) {
	dir := shortDir(t)
	serveEndless(t, "unix", filepath.Join(dir, "endless.sock"), time.Millisecond) // ~64 MB/s at most
	log, _ := testrig.Logger()
	p := New(Options{SocketDir: dir, Workers: 1, MaxReplySize: 16 << 30}, log)
	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := pullAll(t, ctx, p, newBuilding(t))["endless.sock"]
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("error %v, want the deadline", err)
	}
	if took > timeout+2*time.Second {
		t.Fatalf("the source returned %s after a %s deadline", took, timeout)
	}
	// Every worker buffer is back: taking all of them does not wait.
	for i := range cap(p.bufs) {
		select {
		case b := <-p.bufs:
			defer func() { p.bufs <- b }()
		default:
			t.Fatalf("worker %d is still held after the source returned", i)
		}
	}
	t.Logf("returned %s after the start of a %s round", took.Round(time.Millisecond), timeout)
}

// TestRoundWithEndlessReply runs the pull loop on a good socket and an endless one: the round
// follows all-or-nothing (nothing published) or allow-partial (published with the endless
// socket recorded as failed), tmp-dst-dir never holds more than the replies' limits, and the
// round ends well within pull-timeout.
func TestRoundWithEndlessReply(t *testing.T) {
	for _, allowPartial := range []bool{false, true} {
		t.Run("allow-partial="+strconv.FormatBool(allowPartial), func(t *testing.T) {
			dir := shortDir(t)
			serveEndless(t, "unix", filepath.Join(dir, "endless.sock"), 0)
			testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "good.sock"), testrig.FakeReply{
				"show info": golden(t, "admin5.sock_info"), "show stat": golden(t, "admin5.sock_stat"),
			}, false)
			base := t.TempDir()
			log, logs := testrig.Logger()
			w, err := spool.NewWriter(filepath.Join(base, "incoming"), filepath.Join(base, "incoming.tmp"), log)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			const limit = 4 << 20
			providers := []pull.Provider{FromConfig(config.Pull{SocketDir: dir, Workers: 8, BufferLimit: 6291456,
				MaxReplySize: limit, AllowPartial: allowPartial}, log)}
			const pullTimeout = 20 * time.Second
			loop, err := pull.NewLoop(w, providers, pull.Options{Interval: time.Minute, Timeout: pullTimeout}, log)
			if err != nil {
				t.Fatal(err)
			}

			// Sample tmp-dst-dir while the round runs. Sampling can miss the very peak, so the
			// figure is a lower bound of it; the hard bound is checked per file above.
			var peak atomic.Int64
			done := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peak.Store(max(peak.Load(), dirBytes(w.TmpDir())))
					select {
					case <-done:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			start := time.Now()
			published := loop.Once(context.Background())
			took := time.Since(start)
			close(done)
			<-sampled

			if took >= pullTimeout {
				t.Fatalf("the round took %s, the whole pull-timeout", took)
			}
			if peak.Load() > 2*limit+64<<10 {
				t.Fatalf("tmp-dst-dir held %d bytes, more than two replies at max-reply-size", peak.Load())
			}
			if left := dirBytes(w.TmpDir()); left != 0 {
				t.Fatalf("%d bytes left in tmp-dst-dir after the round", left)
			}
			if n := len(logs.Lines("level=ERROR", "source failed", "source=endless.sock", "is larger than max-reply-size (4194304 bytes)")); n != 1 {
				t.Fatalf("%d lines about the endless source:\n%s", n, logs)
			}
			if !allowPartial {
				if published != "" {
					t.Fatalf("published %s with a failed source", published)
				}
			} else {
				failed, err := spool.PartialRecord(published)
				if err != nil || len(failed) != 1 || failed[0].Name != "endless.sock" || !strings.Contains(failed[0].Err, "max-reply-size") {
					t.Fatalf("partial record %+v, %v", failed, err)
				}
				if _, err := os.Stat(filepath.Join(published, "endless.sock_stat")); err == nil {
					t.Fatal("the failed source's file was published")
				}
				if got, _ := os.ReadFile(filepath.Join(published, "good.sock_stat")); !bytes.Equal(got, golden(t, "admin5.sock_stat")) {
					t.Fatal("the good source's file is missing or differs")
				}
			}
			t.Logf("round took %s; tmp-dst-dir peaked at ≥ %d bytes (limit %d per reply); peak RSS %d KiB",
				took.Round(time.Millisecond), peak.Load(), limit, peakRSS())
		})
	}
}

// TestMaxReplySizeIsInclusive: a reply of exactly max-reply-size bytes is stored whole, one
// byte more fails; for a reply that fits the first read and one that needs the copy, for the
// `show info` part of the connection's reply and for the `show stat` part after it.
func TestMaxReplySizeIsInclusive(t *testing.T) {
	small := []byte("Name: HAProxy\n\n")
	for _, limit := range []int64{100, 4096} {
		for _, size := range []int64{limit, limit + 1} {
			for _, cmd := range []string{"show info", "show stat"} {
				dir := shortDir(t)
				// HAProxy-shaped: a reply ends with an empty line, and has none before
				reply := append(bytes.Repeat([]byte("z"), int(size)-2), "\n\n"...)
				replies := testrig.FakeReply{"show info": small, "show stat": reply}
				file := "a.sock_stat"
				if cmd == "show info" {
					replies = testrig.FakeReply{"show info": reply, "show stat": small}
					file = "a.sock_info"
				}
				testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "a.sock"), replies, false)
				log, _ := testrig.Logger()
				b := newBuilding(t)
				err := pullAll(t, context.Background(), New(Options{SocketDir: dir, MaxReplySize: limit, BufferLimit: 1000}, log), b)["a.sock"]
				switch {
				case size == limit && err != nil:
					t.Errorf("limit %d, %s reply %d: %v", limit, cmd, size, err)
				case size == limit:
					if got, _ := os.ReadFile(filepath.Join(b.Path(), file)); !bytes.Equal(got, reply) {
						t.Errorf("limit %d: stored %d bytes of %d in %s", limit, len(got), size, file)
					}
				case err == nil || !strings.Contains(err.Error(), "reply to \""+cmd+"\"") ||
					!strings.Contains(err.Error(), "is larger than max-reply-size ("+strconv.FormatInt(limit, 10)+" bytes)"):
					t.Errorf("limit %d, %s reply %d: %v", limit, cmd, size, err)
				}
			}
		}
	}
}
