package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// Issue 7, "snapshots are opened safely", against the real stats-process: a FIFO, symlinks to a
// directory (as the snapshot and inside one) and to a file outside the spool, a device node, a
// UNIX socket, a REASON symlink, each in its own snapshot or directly in src-dir. None may hang
// a worker, nothing outside the spool may be read or written, each is quarantined with a reason
// naming the entry and its type, dot files are not data, and SIGTERM still stops the program.

const (
	// stopBound is how long stats-process may take to exit after SIGTERM (it drains for up to
	// its 10 s drain timeout only while a dispatcher holds chunks; the local store holds none).
	stopBound = 5 * time.Second
	// settleBound is how long the whole set may take to be delivered or quarantined.
	settleBound = 30 * time.Second
)

const goldenInput = "../internal/process/haproxy/testdata/golden/S-synthetic-small/input/1700000001"

// unsafeCase is one entry to publish: make creates it at path (a snapshot directory already
// holding the golden files, when inDir), and reason is what REASON must say.
type unsafeCase struct {
	name   string
	inDir  bool   // a real snapshot directory with one unsafe entry in it
	reason string // "" for a snapshot that must be delivered
	make   func(t *testing.T, path string) error
}

// outsideTree is a directory outside the spool that the unsafe entries point into.
type outsideTree struct {
	dir       string
	before    string
	atimeWork bool // the filesystem updates access times, so a read would show
	accepted  atomic.Int64
}

func newOutside(t *testing.T) *outsideTree {
	t.Helper()
	o := &outsideTree{dir: t.TempDir()}
	copyGolden(t, filepath.Join(o.dir, "snapshot"))
	if err := os.WriteFile(filepath.Join(o.dir, "secret_stat"), []byte("# pxname,svname,type,\nsecret,FRONTEND,0,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Access times older than modification times: with relatime (or strictatime) any read of
	// a file outside then moves its atime, which treeOf records.
	old, older := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(-2*time.Hour).Truncate(time.Second)
	filepath.WalkDir(o.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chtimes(p, older, old)
		}
		return nil
	})
	probe := filepath.Join(o.dir, "atime-probe")
	os.WriteFile(probe, []byte("x"), 0o644)
	os.Chtimes(probe, older, old)
	os.ReadFile(probe)
	o.atimeWork = atime(t, probe).After(older)
	os.Remove(probe)
	os.Chtimes(o.dir, older, old)
	if !o.atimeWork {
		t.Log("this filesystem does not update access times: reads outside the spool are shown by the contents delivered only")
	}
	o.before = o.tree(t)
	return o
}

func atime(t *testing.T, p string) time.Time {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return time.Unix(st.Atim.Sec, st.Atim.Nsec)
}

// tree describes every entry under o.dir: name, mode, size, modification time, contents, and
// the access time when the filesystem keeps it.
func (o *outsideTree) tree(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(o.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		fmt.Fprintf(&b, "%s %v %d mtime %v", p, fi.Mode(), fi.Size(), fi.ModTime())
		if o.atimeWork && !d.IsDir() {
			fmt.Fprintf(&b, " atime %v", atime(t, p))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func (o *outsideTree) unchanged(t *testing.T) {
	t.Helper()
	if after := o.tree(t); after != o.before {
		t.Errorf("outside the spool something was read, written, created or removed:\nbefore:\n%safter:\n%s", o.before, after)
	}
	filepath.WalkDir(o.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), spool.ReasonFile) {
			t.Errorf("a %s appeared outside the spool: %s", spool.ReasonFile, p)
		}
		return nil
	})
	if n := o.accepted.Load(); n != 0 {
		t.Errorf("the UNIX socket in a snapshot was connected to %d times", n)
	}
}

func copyGolden(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(goldenInput); err != nil {
		t.Skipf("golden input not available: %v", err)
	}
	copyTree(t, goldenInput, dir)
}

// unsafeCases are the entries of issue 7's list, with the epochs first..first+12. The device
// node is left out (and said so) where mknod is not permitted.
func unsafeCases(t *testing.T, o *outsideTree, first int) []unsafeCase {
	epoch := func(i int) string { return fmt.Sprint(1700000000 + first + i) }
	fifo := func(t *testing.T, p string) error { return syscall.Mkfifo(p, 0o644) }
	link := func(target string) func(*testing.T, string) error {
		return func(t *testing.T, p string) error { return os.Symlink(target, p) }
	}
	cases := []unsafeCase{
		{name: epoch(0), inDir: true},
		{name: epoch(1) + "/x_stat", inDir: true, reason: "x_stat is a FIFO (named pipe)", make: fifo},
		{name: epoch(2), reason: epoch(2) + " is a symlink to \"" + filepath.Join(o.dir, "snapshot") + "\", not a snapshot directory",
			make: link(filepath.Join(o.dir, "snapshot"))},
		{name: epoch(3) + "/dir_stat", inDir: true, reason: "dir_stat is a symlink to \"" + filepath.Join(o.dir, "snapshot") + "\"",
			make: link(filepath.Join(o.dir, "snapshot"))},
		{name: epoch(4) + "/admin9.sock_stat", inDir: true, reason: "admin9.sock_stat is a symlink to \"" + filepath.Join(o.dir, "secret_stat") + "\"",
			make: link(filepath.Join(o.dir, "secret_stat"))},
		{name: epoch(5) + "/dev_stat", inDir: true, reason: "dev_stat is a character device", make: func(t *testing.T, p string) error {
			return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|3) // 1:3, what /dev/null is
		}},
		{name: epoch(6) + "/sock_stat", inDir: true, reason: "sock_stat is a UNIX socket", make: func(t *testing.T, p string) error {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
			if err != nil {
				return err
			}
			l.SetUnlinkOnClose(false) // the socket file moves to the quarantine with its snapshot
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					o.accepted.Add(1)
					c.Close()
				}
			}()
			return nil
		}},
		// Dot files are not data: a FIFO and a symlink under dot names do not stop a snapshot.
		{name: epoch(7) + "/.hidden.sock_stat", inDir: true, make: func(t *testing.T, p string) error {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(o.dir, "secret_stat"), filepath.Join(filepath.Dir(p), ".hidden_info"))
		}},
		{name: epoch(8), reason: epoch(8) + " is a FIFO (named pipe), not a snapshot directory", make: fifo},
		{name: epoch(9), reason: epoch(9) + " is a symlink to \"" + filepath.Join(o.dir, "secret_stat") + "\", not a snapshot directory",
			make: link(filepath.Join(o.dir, "secret_stat"))},
		// A snapshot carrying its own REASON as a dangling link outside and a partial record
		// that is a FIFO: the record goes to REASON.1, nothing is created at the link's target.
		{name: epoch(10) + "/REASON", inDir: true, reason: "statspipe-partial is a FIFO (named pipe)", make: func(t *testing.T, p string) error {
			if err := os.Symlink(filepath.Join(o.dir, "created-through-REASON"), p); err != nil {
				return err
			}
			return syscall.Mkfifo(filepath.Join(filepath.Dir(p), spool.PartialFile), 0o644)
		}},
		{name: epoch(11) + "/sub", inDir: true, reason: "sub is a directory", make: func(t *testing.T, p string) error {
			return os.Mkdir(p, 0o755)
		}},
		{name: "not-a-number", reason: "not-a-number is a symlink to", make: link(filepath.Join(o.dir, "snapshot"))},
	}
	probe := filepath.Join(t.TempDir(), "device")
	if err := syscall.Mknod(probe, syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Logf("leaving out the device-node case: mknod is not permitted here (%v)", err)
		cases = append(cases[:5], cases[6:]...)
	}
	return cases
}

// snapshotName is the queue entry a case makes.
func (c unsafeCase) snapshotName() string { return strings.Split(c.name, "/")[0] }

// publish creates c under dir: a snapshot directory is built in tmp and renamed in, as
// stats-pull does; an entry directly in src-dir is made in place.
func (c unsafeCase) publish(t *testing.T, src, tmp string) {
	t.Helper()
	if !c.inDir {
		if err := c.make(t, filepath.Join(src, c.name)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		return
	}
	build := filepath.Join(tmp, c.snapshotName())
	copyGolden(t, build)
	if c.make != nil {
		if err := c.make(t, filepath.Join(tmp, c.name)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if err := os.Rename(build, filepath.Join(src, c.snapshotName())); err != nil {
		t.Fatal(err)
	}
}

type unsafeRig struct {
	base, src, tmp, store, conf string
	outside                     *outsideTree
}

func newUnsafeRig(t *testing.T) *unsafeRig {
	t.Helper()
	base := t.TempDir()
	r := &unsafeRig{base: base, src: filepath.Join(base, "incoming"), tmp: filepath.Join(base, "incoming.tmp"),
		store: filepath.Join(base, "local-store"), outside: newOutside(t)}
	for _, d := range []string{r.src, r.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.conf = writeConfig(t, base, `
[process]
src-dir = `+r.src+`
workers = 2
[graphite]
enabled = false
hostname = vm
[local-store]
dir = `+r.store+`
`)
	return r
}

func (r *unsafeRig) settled(cases []unsafeCase) func() bool {
	return func() bool {
		for _, c := range cases {
			if _, err := os.Lstat(filepath.Join(r.src, c.snapshotName())); err == nil {
				return false
			}
		}
		return true
	}
}

// check verifies what became of each case: delivered (and its lines in the local store), or
// quarantined with a reason naming the entry and its type, and never delivered.
func (r *unsafeRig) check(t *testing.T, cases []unsafeCase, log string) {
	t.Helper()
	qdir := spool.QuarantineDir(r.src)
	log = strings.ReplaceAll(log, `\"`, `"`) // logfmt quoting
	for _, c := range cases {
		name := c.snapshotName()
		_, delivered := os.Stat(filepath.Join(r.store, name, "stats"))
		if c.reason == "" {
			if delivered != nil {
				t.Errorf("%s was not delivered: %v", c.name, delivered)
			}
			continue
		}
		if delivered == nil {
			t.Errorf("%s was delivered; it must be quarantined unread", c.name)
		}
		reason, err := os.ReadFile(filepath.Join(qdir, name, spool.ReasonFile))
		if strings.HasSuffix(c.name, "/REASON") {
			reason, err = os.ReadFile(filepath.Join(qdir, name, spool.ReasonFile+".1"))
		}
		if err != nil || !strings.Contains(string(reason), c.reason) {
			t.Errorf("%s: REASON %q (%v); want it to say %q", c.name, reason, err, c.reason)
		}
		if !strings.Contains(log, c.reason) {
			t.Errorf("%s: the log does not say %q", c.name, c.reason)
		}
	}
	if n, _ := spool.QueueLen(r.src); n != 0 {
		t.Errorf("spool.QueueLen(src-dir) = %d after everything was handled", n)
	}
	r.outside.unchanged(t)
}

// stopWithin sends SIGTERM and polls for the exit, failing past stopBound.
func stopWithin(t *testing.T, d *daemon) time.Duration {
	t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopBound):
		t.Fatalf("stats-process did not stop within %v of SIGTERM", stopBound)
	}
	took := time.Since(start)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("stats-process exited %d after SIGTERM:\n%s", code, d.out.String())
	}
	return took
}

// The whole set is in src-dir before stats-process starts: the backlog (spool.List) path.
func TestUnsafeEntriesInTheBacklog(t *testing.T) {
	r := newUnsafeRig(t)
	cases := unsafeCases(t, r.outside, 0)
	for _, c := range cases {
		c.publish(t, r.src, r.tmp)
	}
	start := time.Now()
	d := r.start(t)
	waitUntil(t, settleBound, "every entry delivered or quarantined", r.settled(cases))
	t.Logf("%d entries handled in %v", len(cases), time.Since(start).Round(time.Millisecond))
	took := stopWithin(t, d)
	t.Logf("SIGTERM to exit: %v", took.Round(time.Millisecond))
	r.check(t, cases, d.out.String())
}

func (r *unsafeRig) start(t *testing.T) *daemon {
	t.Helper()
	return start(t, "stats-process", "-f", r.conf)
}

// The set is published while stats-process runs: the inotify path. A quarantined snapshot is
// then replayed as the README says (fix it, move it back; REASON may stay), and SIGTERM comes
// while a second set is still being published and handled.
func TestUnsafeEntriesPublishedLiveThenReplayed(t *testing.T) {
	r := newUnsafeRig(t)
	d := r.start(t)
	cases := unsafeCases(t, r.outside, 0)
	cases[0].publish(t, r.src, r.tmp) // the good one first: once delivered, the watch is up
	waitUntil(t, settleBound, "the first snapshot delivered", func() bool {
		_, err := os.Stat(filepath.Join(r.store, cases[0].name, "stats"))
		return err == nil
	})
	start := time.Now()
	for _, c := range cases[1:] {
		c.publish(t, r.src, r.tmp)
	}
	waitUntil(t, settleBound, "every entry delivered or quarantined", r.settled(cases))
	t.Logf("%d entries handled in %v", len(cases)-1, time.Since(start).Round(time.Millisecond))
	// A quarantine is logged just after its rename: wait for the lines, not only the moves.
	waitUntil(t, settleBound, "the log to name every quarantined entry", func() bool {
		log := strings.ReplaceAll(d.out.String(), `\"`, `"`)
		for _, c := range cases {
			if c.reason != "" && !strings.Contains(log, c.reason) {
				return false
			}
		}
		return true
	})
	r.check(t, cases, d.out.String())

	// Replay: remove what the reason names, move the snapshot back under its epoch name.
	fifoCase := cases[1]
	q := filepath.Join(spool.QuarantineDir(r.src), fifoCase.snapshotName())
	if err := os.Remove(filepath.Join(q, "x_stat")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(q, filepath.Join(r.src, fifoCase.snapshotName())); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, settleBound, "the replayed snapshot delivered", func() bool {
		_, err := os.Stat(filepath.Join(r.store, fifoCase.snapshotName(), "stats"))
		return err == nil
	})
	waitUntil(t, settleBound, "the replayed snapshot removed", r.settled(cases[1:2]))

	// SIGTERM in the middle of a second set.
	more := unsafeCases(t, r.outside, 100)
	for _, c := range more {
		c.publish(t, r.src, r.tmp)
	}
	took := stopWithin(t, d)
	t.Logf("SIGTERM to exit with a second set just published: %v", took.Round(time.Millisecond))
	r.outside.unchanged(t)
}

// --once over the set exits 1 (some were quarantined) within its bound, never hanging.
func TestUnsafeEntriesOnce(t *testing.T) {
	r := newUnsafeRig(t)
	cases := unsafeCases(t, r.outside, 0)
	for _, c := range cases {
		c.publish(t, r.src, r.tmp)
	}
	cmd := exec.Command(filepath.Join(binDir, "stats-process"), "-f", r.conf, "--once")
	out := &testrig.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("--once: %v, want exit status 1 (snapshots were quarantined):\n%s", err, out)
		}
	case <-time.After(settleBound):
		cmd.Process.Kill()
		<-done
		t.Fatalf("--once did not exit within %v:\n%s", settleBound, out)
	}
	t.Logf("--once over %d entries: exit 1 after %v", len(cases), time.Since(start).Round(time.Millisecond))
	quarantined := 0
	for _, c := range cases {
		if c.reason != "" {
			quarantined++
		}
	}
	if want := fmt.Sprintf("quarantined=%d ", quarantined); !strings.Contains(out.String(), want) {
		t.Errorf("the summary does not say %s:\n%s", want, out)
	}
	r.check(t, cases, out.String())
}
