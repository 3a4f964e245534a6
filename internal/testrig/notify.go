package testrig

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Notify is a fake systemd notification socket: start a program with Env() in its
// environment and read what it sends with Next.
type Notify struct {
	Path string
	msgs chan string
}

// ListenNotify opens the socket; it is closed and removed on cleanup.
func ListenNotify(t testing.TB) *Notify {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // sun_path must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	n := &Notify{Path: filepath.Join(dir, "notify"), msgs: make(chan string, 100)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); os.RemoveAll(dir) })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// Env is the environment that points a program at the socket, with a watchdog of 200 ms.
func (n *Notify) Env() []string {
	return []string{"NOTIFY_SOCKET=" + n.Path, "WATCHDOG_USEC=200000"}
}

// Next returns the next notification, or fails the test after timeout.
func (n *Notify) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case m := <-n.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no sd_notify message within %v", timeout)
		return ""
	}
}

// ExpectLifecycle checks what a Type=notify unit with a watchdog must see: READY=1, then at
// least three WATCHDOG=1 pings each within 3 s, then, after stop() (which should signal the
// program), STOPPING=1 with nothing but pings before it.
func (n *Notify) ExpectLifecycle(t testing.TB, stop func()) {
	t.Helper()
	if m := n.Next(t, 5*time.Second); !strings.HasPrefix(m, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	for i := 0; i < 3; i++ {
		if m := n.Next(t, 3*time.Second); m != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", m)
		}
	}
	stop()
	for m := n.Next(t, 5*time.Second); m != "STOPPING=1"; m = n.Next(t, 5*time.Second) {
		if m != "WATCHDOG=1" {
			t.Fatalf("unexpected notification %q while stopping", m)
		}
	}
}
