package haproxy

// Master CLI sockets ([pull] master-socket): HAProxy started with -W -S <socket> runs a master
// process and workers; after a reload (SIGUSR2, `reload`) the old workers stay until their last
// connection ends, and they still count traffic that the new worker does not see. A plain stats
// socket reaches one worker; the master CLI reaches each of them by pid.
//
// Each round, for one master socket named <name> (the socket's base name):
//
//  1. `show proc` on the master socket; the reply, verbatim, is <name>_proc.
//  2. The reply is parsed (management.txt "show proc"): a header line "#<PID> <type> <reloads>
//     <uptime> <version>" (columns found by name, so older layouts with "<relative PID>" parse
//     too), then the sections "# workers" (the current worker) and "# old workers" (workers of
//     earlier configurations still serving connections). Rows of other sections (the master,
//     "# programs") are ignored. More than MaxMasterWorkers workers fail the source, naming
//     the socket.
//  3. For each worker, `@!<pid> show info` and `@!<pid> show stat` through the master socket,
//     each on its own connection like a plain socket (same timeout, retries, streaming,
//     max-reply-size, worker buffers), written to <name>@<generation>_info and
//     <name>@<generation>_stat (with [pull] typed, the typed forms into <name>@<generation>_info.typed
//     and <name>@<generation>_stat.typed, as for a stats socket). The generation is 0 for a current worker; for an old worker it is
//     its "reloads" column, the number of reloads it has been through (1 for the worker of the
//     configuration before the last reload, 2 for the one before that, …). Should two workers
//     have the same generation (nbproc > 1 in HAProxy < 2.5), the second is
//     <name>@<generation>-2, the third -3, … in show proc order.
//  4. A worker that exits between show proc and its request (the master answers "Can't find
//     the target PID", or the request fails and a new show proc no longer lists the pid) is
//     logged at debug level and skipped: its files are removed and the round goes on. Any other
//     failure fails the source, like a plain socket.
//
// Each command is sent as "<command>;quit": HAProxy's master CLI keeps a connection open after
// a command, unlike a worker's stats socket.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/statspipe/statspipe/internal/pull"
)

const (
	// masterNetwork marks a master socket in Sources; it is dialled as "unix".
	masterNetwork = "master"
	// MaxMasterWorkers bounds the workers (current and old) pulled through one master socket.
	MaxMasterWorkers = 64
	// maxProcReply bounds the show proc reply, which is parsed in memory: 64 workers take about
	// 5 KiB, the rest is room for "# programs".
	maxProcReply = 64 << 10
	// masterParallel bounds the requests one master socket has running at the same time.
	masterParallel = 8
)

// masterNoTarget starts the master CLI's reply to @!<pid> for a pid it does not know.
var masterNoTarget = []byte("Can't find the target PID")

// errWorkerGone: the master does not know the worker (any more).
var errWorkerGone = errors.New("worker is gone")

// masterSocket is one master CLI socket: a pull.Source writing <name>_proc and the files of
// every worker.
type masterSocket struct {
	sock socket // master: true
}

func (m *masterSocket) Name() string { return m.sock.name }

// worker is one worker of a show proc reply.
type worker struct {
	pid  int
	old  bool
	gen  int    // 0 for a current worker; reloads for an old one
	file string // <name>@<gen>[-k]
}

// Pull runs show proc, then both commands of every worker, masterParallel requests at a time.
// The first failure (not a worker that is gone) cancels the others.
func (m *masterSocket) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	proc := &capped{max: maxProcReply}
	if err := m.sock.requestKeep(ctx, snap, "show proc", m.sock.name+"_proc", proc); err != nil {
		return m.procError(err)
	}
	workers, err := m.workers(proc.buf.Bytes())
	if err != nil {
		return err
	}
	sem := make(chan struct{}, masterParallel)
	errs := make(chan error, len(workers))
	for _, w := range workers {
		go func() {
			err := m.pullWorker(ctx, snap, w, sem)
			if err != nil {
				cancel(err)
			}
			errs <- err
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if cause := context.Cause(ctx); first != nil && cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return first
}

func (m *masterSocket) procError(err error) error {
	if errors.Is(err, errTooLargeProc) {
		return fmt.Errorf("show proc reply of master CLI socket %s is larger than %d bytes; "+
			"a master-socket is pulled with at most %d workers", m.sock.address, maxProcReply, MaxMasterWorkers)
	}
	return err
}

// workers parses show proc and names the workers' files.
func (m *masterSocket) workers(reply []byte) ([]worker, error) {
	workers, err := parseShowProc(reply)
	if err != nil {
		return nil, fmt.Errorf("show proc on master CLI socket %s: %w", m.sock.address, err)
	}
	if len(workers) > MaxMasterWorkers {
		return nil, fmt.Errorf("master CLI socket %s lists %d workers, more than the %d a master-socket is pulled with",
			m.sock.address, len(workers), MaxMasterWorkers)
	}
	if len(workers) == 0 {
		return nil, fmt.Errorf("master CLI socket %s lists no worker", m.sock.address)
	}
	seen := map[int]int{}
	for i := range workers {
		w := &workers[i]
		seen[w.gen]++
		w.file = m.sock.name + "@" + strconv.Itoa(w.gen)
		if k := seen[w.gen]; k > 1 {
			w.file += "-" + strconv.Itoa(k)
		}
	}
	return workers, nil
}

// pullWorker writes both files of one worker. A worker that is gone is skipped (nil), its files
// removed.
func (m *masterSocket) pullWorker(ctx context.Context, snap pull.SnapshotWriter, w worker, sem chan struct{}) error {
	ws := &workerSnap{SnapshotWriter: snap}
	prefix := "@!" + strconv.Itoa(w.pid) + " "
	var err error
	for _, r := range m.sock.p.commands(w.file) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		err = m.sock.request(ctx, ws, prefix+r.cmd, r.file)
		<-sem
		if err != nil {
			break
		}
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, errWorkerGone) && (ctx.Err() != nil || !m.gone(ctx, w.pid)) {
		return err
	}
	if derr := ws.discard(); derr != nil {
		return fmt.Errorf("worker %d of master CLI socket %s exited during the round, and its files cannot be removed: %w",
			w.pid, m.sock.address, derr)
	}
	m.sock.p.log.Debug("worker exited between show proc and its request; skipped",
		"socket", m.sock.address, "pid", w.pid, "old", w.old, "generation", w.gen, "error", err.Error())
	return nil
}

// gone asks show proc again whether pid is still listed. An error is "not gone": the failure
// stands.
func (m *masterSocket) gone(ctx context.Context, pid int) bool {
	proc := &capped{max: maxProcReply}
	if err := m.sock.requestKeep(ctx, discardSnap{}, "show proc", "", proc); err != nil {
		return false
	}
	workers, err := parseShowProc(proc.buf.Bytes())
	if err != nil {
		return false
	}
	return !slices.ContainsFunc(workers, func(w worker) bool { return w.pid == pid })
}

// showProcColumn matches one "<name>" of the header line.
var showProcColumn = regexp.MustCompile(`<([^>]*)>`)

// parseShowProc returns the workers of a show proc reply: current ones first, in order, then
// old ones.
func parseShowProc(reply []byte) ([]worker, error) {
	lines := strings.Split(string(reply), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "#") {
		return nil, fmt.Errorf("no header line: %q", firstLine(reply))
	}
	pidCol, typeCol, reloadsCol := -1, -1, -1
	for i, m := range showProcColumn.FindAllStringSubmatch(lines[0], -1) {
		switch strings.ToLower(m[1]) {
		case "pid":
			pidCol = i
		case "type":
			typeCol = i
		case "reloads":
			reloadsCol = i
		}
	}
	if pidCol < 0 || typeCol < 0 || reloadsCol < 0 {
		return nil, fmt.Errorf("header %q lacks <PID>, <type> or <reloads>", lines[0])
	}
	need := max(pidCol, typeCol, reloadsCol) + 1
	var current, old []worker
	section := "" // the master's rows come first, outside any section
	for n, line := range lines[1:] {
		if strings.HasPrefix(line, "#") {
			section = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		if section != "workers" && section != "old workers" || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < need || f[typeCol] != "worker" {
			return nil, fmt.Errorf("line %d: unexpected row in %q: %q", n+2, section, line)
		}
		pid, err1 := strconv.Atoi(f[pidCol])
		reloads, err2 := strconv.Atoi(f[reloadsCol])
		if err1 != nil || err2 != nil || pid <= 0 || reloads < 0 {
			return nil, fmt.Errorf("line %d: bad pid or reloads in %q", n+2, line)
		}
		if section == "workers" {
			current = append(current, worker{pid: pid})
		} else {
			old = append(old, worker{pid: pid, old: true, gen: reloads})
		}
	}
	return append(current, old...), nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line[:min(len(line), 80)])
}

var errTooLargeProc = errors.New("show proc reply too large")

// capped keeps what is written, failing past max bytes.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, errTooLargeProc
	}
	return c.buf.Write(p)
}

// workerSnap remembers the files of one worker, to discard them when the worker is gone.
type workerSnap struct {
	pull.SnapshotWriter
	mu    sync.Mutex
	files []pull.SnapshotFile
}

func (w *workerSnap) Create(name string) (pull.SnapshotFile, error) {
	f, err := w.SnapshotWriter.Create(name)
	if err == nil {
		w.mu.Lock()
		w.files = append(w.files, f)
		w.mu.Unlock()
	}
	return f, err
}

func (w *workerSnap) discard() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.files {
		d, ok := f.(pull.Discarder)
		if !ok {
			return fmt.Errorf("snapshot file of type %T cannot be discarded", f)
		}
		if err := d.Discard(); err != nil {
			return err
		}
	}
	w.files = nil
	return nil
}

// discardSnap is a snapshot whose files go nowhere (the second show proc of gone).
type discardSnap struct{}

func (discardSnap) Create(string) (pull.SnapshotFile, error) { return discardFile{}, nil }

type discardFile struct{}

func (discardFile) Write(p []byte) (int, error) { return len(p), nil }
func (discardFile) Commit() error               { return nil }
