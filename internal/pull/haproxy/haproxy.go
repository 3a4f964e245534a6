// Package haproxy is the HAProxy source kind of stats-pull: every UNIX socket in socket-dir plus
// the `servers` list, each asked `show info` and `show stat` over its stats socket, exactly like
// haproxystats-pull (§3.3, §3.4 of the reference), with its crashes turned into per-source
// failures.
//
// Per socket, one connection asks `show info;show stat` (HAProxy closes a non-interactive CLI
// connection after answering; haproxystats made one connection per command): the reply is
// split at the empty line that ends `show info`'s (both.go), so the files are byte for byte
// those of two connections (with [pull] typed, `show info typed;show stat typed` into
// <name>_info.typed and <name>_stat.typed: typed.go). A connection attempt is bounded by `timeout`; a failed attempt
// is retried `retries` times (−1 forever, 0 = one attempt) after sleeping `interval`. The
// reply is read until EOF and streamed into its file: an empty reply, or one that ends before
// `show stat`'s, fails ("received zero data"), and so do read and write errors. Everything
// obeys the round's context (pull-timeout, shutdown).
//
// Memory: replies are never held in memory. A request reads its first bytes into a small
// buffer of its own, then takes one of `workers` copy buffers of min(buffer-limit, 256 KiB)
// bytes, reused across requests and rounds, and copies the rest of the reply through it. So
// `workers` means "replies streamed to files at the same time", and memory for replies is at
// most workers × 256 KiB whatever their size. A socket that accepts but never answers holds no
// worker, so it cannot starve the others; it fails at pull-timeout.
//
// Disk: a reply longer than max-reply-size fails its source for the round ("... is larger
// than max-reply-size ..."): reading stops before the byte past the limit is written, so no
// file of a snapshot grows beyond it, and the loop removes the source's files. A socket that
// sends forever ends there or at pull-timeout, whichever comes first; either way its worker
// buffer is back before the round ends.
package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/pull"
)

// Kind is the name this source kind registers under.
const Kind = "haproxy"

const (
	// maxCopyBuffer caps the copy buffer. A UNIX socket read returns at most about the socket
	// buffer (~200 KiB); measured on 64 × 5 MB replies, 256 KiB copies ~1.7× faster than
	// 64 KiB, and a larger buffer would only cost memory.
	maxCopyBuffer = 256 << 10
	// firstReadSize is the buffer a request owns while it waits for the first bytes.
	firstReadSize = 512
	// DefaultMaxReplySize is [pull] max-reply-size's default, used when Options leave it 0.
	DefaultMaxReplySize = 256 << 20
)

// FromConfig builds the provider of the [pull] HAProxy options; nil when neither socket-dir nor
// servers is set. (The sources/haproxy kind registers it.)
func FromConfig(cfg config.Pull, log *slog.Logger) *Provider {
	if cfg.SocketDir == "" && len(cfg.Servers) == 0 && len(cfg.MasterSockets) == 0 {
		return nil
	}
	return New(Options{
		SocketDir:     cfg.SocketDir,
		Servers:       cfg.Servers,
		MasterSockets: cfg.MasterSockets,
		Retries:       cfg.Retries,
		Timeout:       cfg.Timeout,
		Interval:      cfg.Interval,
		BufferLimit:   cfg.BufferLimit,
		Workers:       cfg.Workers,
		MaxReplySize:  cfg.MaxReplySize,
		AllowPartial:  cfg.AllowPartial,
		Typed:         cfg.Typed,
	}, log)
}

// Options configure the HAProxy sources; they are [pull] options of the same names.
type Options struct {
	SocketDir string          // every UNIX socket in it (symlinks followed); "" = none
	Servers   []config.Server // unix:// and tcp:// stats sockets
	// MasterSockets are master CLI sockets (haproxy -W -S): every worker behind each, old ones
	// included, is pulled through it (master.go).
	MasterSockets []string
	Retries       int           // connect retries: −1 forever, 0 one attempt, N → N+1 attempts
	Timeout       time.Duration // per connect attempt; ≤ 0 = bounded by the round only
	Interval      time.Duration // sleep between connect attempts
	BufferLimit   int           // copy buffer size limit (capped at 256 KiB; ≤ 0 = 256 KiB)
	Workers       int           // replies streamed to files at the same time (≥ 1)
	// MaxReplySize fails a source whose reply to one command is longer (≤ 0 = the default).
	MaxReplySize int64
	// AllowPartial publishes the sockets that answered when others failed ([pull] allow-partial).
	AllowPartial bool
	// Typed asks `show info typed` / `show stat typed` into <name>_info.typed /
	// <name>_stat.typed ([pull] typed; see typed.go).
	Typed bool
}

// Provider lists the HAProxy stats sockets of each round.
type Provider struct {
	opt     Options
	log     *slog.Logger
	bufSize int
	bufs    chan []byte // the worker buffers; taking one is taking a worker slot

	// socket-dir bounds: MaxSocketDirSockets and maxSocketDirEntries (tests lower them)
	maxSockets, maxEntries int

	mu       sync.Mutex
	reported map[string]string // socket-dir entries skipped, and why, already logged at warning level
}

// New returns the provider. Call it once: its buffers are reused by every round.
func New(opt Options, log *slog.Logger) *Provider {
	workers := max(opt.Workers, 1)
	size := maxCopyBuffer
	if opt.BufferLimit > 0 {
		size = min(opt.BufferLimit, maxCopyBuffer)
	}
	if opt.MaxReplySize <= 0 {
		opt.MaxReplySize = DefaultMaxReplySize
	}
	p := &Provider{opt: opt, log: log, bufSize: size, bufs: make(chan []byte, workers),
		maxSockets: MaxSocketDirSockets, maxEntries: maxSocketDirEntries, reported: map[string]string{}}
	for range workers {
		p.bufs <- nil // allocated on first use
	}
	return p
}

// Info implements pull.Provider: the top-level source named haproxy, as haproxystats wrote it.
func (p *Provider) Info() pull.ProviderInfo {
	return pull.ProviderInfo{Source: Kind, Kind: Kind, TopLevel: true, AllowPartial: p.opt.AllowPartial}
}

// Sources returns the sockets of this round: the UNIX sockets found in socket-dir now (sorted
// by name, at most MaxSocketDirSockets), then `servers` in order, then one source per
// `master-socket` (named by its base name; it writes the files of all its workers). A name (the file prefix) is
// used once: a later target with the same name is dropped, with a warning when its address
// differs. An unreadable socket-dir, or one holding more sockets than a round pulls, is an error
// (returned with the sources that are pulled), because sockets would be missing from the round.
func (p *Provider) Sources(ctx context.Context) ([]pull.Source, error) {
	var out []pull.Source
	taken := map[string]string{}
	add := func(network, address, name string) {
		if prev, dup := taken[name]; dup {
			if prev != address {
				p.log.Warn("two stats sockets would write the same snapshot files; using the first",
					"name", name, "first", prev, "ignored", address)
			}
			return
		}
		taken[name] = address
		if network == masterNetwork {
			out = append(out, &masterSocket{sock: socket{p: p, network: "unix", address: address, name: name, master: true}})
			return
		}
		out = append(out, &socket{p: p, network: network, address: address, name: name})
	}
	var err error
	if p.opt.SocketDir != "" {
		var paths []string
		paths, err = p.scanSocketDir()
		for _, path := range paths {
			add("unix", path, filepath.Base(path))
		}
		if err == nil && len(paths) == 0 {
			p.log.Warn("found zero UNIX sockets under " + p.opt.SocketDir + " to connect to")
		}
	}
	for _, s := range p.opt.Servers {
		add(s.Network, s.Address, s.Name)
	}
	for _, path := range p.opt.MasterSockets {
		add(masterNetwork, path, filepath.Base(path))
	}
	return out, err
}

// Bounds on socket-dir, which is listed every round: a directory named by mistake (or filled by
// something else) must not turn into thousands of connections, files and log lines per round.
const (
	// MaxSocketDirSockets is how many UNIX sockets of socket-dir one round pulls, like the at
	// most 1024 items of `servers`: each is a connection, a goroutine and two files.
	MaxSocketDirSockets = 1024
	// maxSocketDirEntries bounds the entries listed (and stat'ed) per round.
	maxSocketDirEntries = 64 << 10
	// maxSkipWarnings bounds the skipped entries named at warning level per round; the rest
	// are counted in one line.
	maxSkipWarnings = 10
)

// scanSocketDir returns the paths in socket-dir that are UNIX sockets, following symlinks,
// sorted by name. A dangling symlink or any other non-socket is skipped, logged at warning level
// the first time and at debug level afterwards. More than MaxSocketDirSockets sockets, or more
// than maxSocketDirEntries entries, is an error naming the directory and the count, returned
// with the first MaxSocketDirSockets sockets by name: the round misses the others.
func (p *Provider) scanSocketDir() ([]string, error) {
	dir := p.opt.SocketDir
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list socket-dir: %w", err)
	}
	des, err := d.ReadDir(p.maxEntries + 1)
	d.Close()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("cannot list socket-dir: %w", err)
	}
	var tooMany []string
	if len(des) > p.maxEntries {
		des = des[:p.maxEntries]
		tooMany = append(tooMany, fmt.Sprintf("socket-dir %s holds more than %d entries; only the first %d "+
			"listed were looked at, so sockets may be missing from the round", dir, p.maxEntries, p.maxEntries))
	}
	var socks []string
	skipped := map[string]string{}
	for _, de := range des {
		path := filepath.Join(dir, de.Name())
		st, err := os.Stat(path)
		switch {
		case err != nil && de.Type()&fs.ModeSymlink != 0:
			skipped[path] = "dangling symlink: " + err.Error()
		case err != nil:
			skipped[path] = err.Error()
		case st.Mode()&fs.ModeSocket == 0:
			skipped[path] = "not a UNIX socket but " + fileKind(st.Mode())
		default:
			socks = append(socks, path)
		}
	}
	slices.Sort(socks)
	if n := len(socks); n > p.maxSockets {
		socks = socks[:p.maxSockets]
		tooMany = append(tooMany, fmt.Sprintf("socket-dir %s holds %d UNIX sockets, more than the %d a round "+
			"pulls; pulling the first %d by name, the round misses the other %d",
			dir, n, p.maxSockets, p.maxSockets, n-p.maxSockets))
	}
	p.logSkipped(skipped)
	if tooMany != nil {
		return socks, errors.New(strings.Join(tooMany, "; "))
	}
	return socks, nil
}

// logSkipped logs the skipped entries of socket-dir: those not skipped for the same reason in
// the previous round at warning level (at most maxSkipWarnings by name, then a count), the
// others at debug level.
func (p *Provider) logSkipped(skipped map[string]string) {
	paths := slices.Sorted(maps.Keys(skipped))
	p.mu.Lock()
	defer p.mu.Unlock()
	warned, more := 0, 0
	for _, path := range paths {
		why := skipped[path]
		level := slog.LevelWarn
		switch {
		case p.reported[path] == why:
			level = slog.LevelDebug
		case warned == maxSkipWarnings:
			more++
			level = slog.LevelDebug
		default:
			warned++
		}
		p.log.Log(context.Background(), level, "skipping entry of socket-dir", "path", path, "reason", why)
	}
	if more > 0 {
		p.log.Warn(fmt.Sprintf("skipping %d more entries of socket-dir that are not UNIX sockets (listed at debug level)", more),
			"dir", p.opt.SocketDir)
	}
	p.reported = skipped
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a file of mode " + m.String()
}

func (p *Provider) takeBuffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.bufs:
		if b == nil {
			b = make([]byte, p.bufSize)
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Provider) giveBuffer(b []byte) { p.bufs <- b }

// socket is one stats socket: a pull.Source writing <name>_info and <name>_stat (with Typed,
// <name>_info.typed and <name>_stat.typed).
type socket struct {
	p       *Provider
	network string // "unix" or "tcp"
	address string
	name    string
	// master: a master CLI socket. Each command is followed by ";quit" (the master CLI keeps a
	// connection open after a command), and the master's reply that the target worker is not
	// there fails the request with errWorkerGone before any file is created.
	master bool
}

func (s *socket) Name() string { return s.name }

func (s *socket) kind() string {
	if s.master {
		return "master CLI"
	}
	if s.network == "unix" {
		return "UNIX"
	}
	return "TCP"
}

// Pull asks for both replies on one connection (pullBoth).
func (s *socket) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	return s.pullBoth(ctx, snap)
}

// request runs one command on its own connection and streams the reply into file.
func (s *socket) request(ctx context.Context, snap pull.SnapshotWriter, cmd, file string) error {
	return s.requestKeep(ctx, snap, cmd, file, nil)
}

// ask connects (with retries) and sends the command line (errors name it cmd); done closes the
// connection. Until
// then its reads and writes end with the round: an expired deadline unblocks them at once.
// (Not ctx.Deadline() itself: the conn could time out a moment before ctx reports why.)
func (s *socket) ask(ctx context.Context, cmd, line string) (conn stream, done func(), err error) {
	if conn, err = s.connect(ctx); err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	done = func() {
		stop()
		conn.Close()
	}
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		done()
		return nil, nil, s.failure(ctx, "sending", cmd, err)
	}
	return conn, done, nil
}

// failure names what failed on cmd and why: the round's end (pull-timeout, shutdown) when it
// has come, else err.
func (s *socket) failure(ctx context.Context, what, cmd string, err error) error {
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return fmt.Errorf("%s %q on %s socket %s: %w", what, cmd, s.kind(), s.address, err)
}

// requestKeep is request that also copies the reply into keep (when not nil); an error of
// keep's Write fails the request.
func (s *socket) requestKeep(ctx context.Context, snap pull.SnapshotWriter, cmd, file string, keep io.Writer) error {
	line := cmd
	if s.master {
		line += ";quit"
	}
	conn, done, err := s.ask(ctx, cmd, line)
	if err != nil {
		return err
	}
	defer done()
	fail := func(what string, err error) error { return s.failure(ctx, what, cmd, err) }
	limit := s.p.opt.MaxReplySize
	tooLarge := func() error {
		return fmt.Errorf("reply to %q from %s socket %s is larger than max-reply-size (%d bytes); "+
			"stopped reading it", cmd, s.kind(), s.address, limit)
	}
	first := make([]byte, min(firstReadSize, limit+1))
	n, readErr := readSome(conn, first)
	if n == 0 {
		if readErr == io.EOF {
			return fmt.Errorf("received zero data for %q from %s socket %s", cmd, s.kind(), s.address)
		}
		return fail("reading reply to", readErr)
	}
	if int64(n) > limit {
		return tooLarge()
	}
	if readErr != nil && readErr != io.EOF {
		return fail("reading reply to", readErr)
	}
	if s.master && bytes.HasPrefix(first[:n], masterNoTarget) {
		return fmt.Errorf("%w: %q on %s socket %s: %s", errWorkerGone, cmd, s.kind(), s.address,
			strings.TrimSpace(string(first[:n])))
	}
	f, err := snap.Create(file)
	if err != nil {
		return fmt.Errorf("creating %s: %w", file, err)
	}
	var w io.Writer = f
	if keep != nil {
		w = io.MultiWriter(f, keep)
	}
	if readErr == io.EOF {
		if _, err := w.Write(first[:n]); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
	} else {
		buf, err := s.p.takeBuffer(ctx)
		if err != nil {
			return fail("waiting for a worker for", err)
		}
		filled := 0
		if n <= len(buf) {
			filled = copy(buf, first[:n]) // written with what follows
		} else if _, err := w.Write(first[:n]); err != nil { // a buffer-limit below firstReadSize
			s.p.giveBuffer(buf)
			return fmt.Errorf("writing %s: %w", file, err)
		}
		err = copyReply(w, conn, buf, filled, limit-int64(n))
		s.p.giveBuffer(buf)
		if err != nil {
			var we writeError
			if errors.Is(err, errTooLarge) {
				return tooLarge()
			}
			if errors.As(err, &we) {
				return fmt.Errorf("writing %s: %w", file, we.err)
			}
			return fail("reading reply to", err)
		}
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// readSome reads until it has at least one byte or an error.
func readSome(r io.Reader, p []byte) (int, error) {
	for range 100 {
		n, err := r.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

var errTooLarge = errors.New("reply too large")

// copyReply streams r to w through buf until EOF; buf[:filled] is already read. It reads at
// most room more bytes: it fails with errTooLarge as soon as it has read a byte more, without
// writing it. Unlike io.CopyBuffer it never bypasses buf (os.File's ReadFrom would), so
// memory use is exactly buf.
//
// buf is written only when full or at EOF: a socket read returns what HAProxy has sent so far
// (often 16 KiB), and one large write costs the kernel much less than many small ones (fewer
// system calls, page-cache folios allocated in larger pieces); a `show stat` of a few hundred
// KB is then one or two writes.
func copyReply(w io.Writer, r io.Reader, buf []byte, filled int, room int64) error {
	flush := func() error {
		if filled == 0 {
			return nil
		}
		_, err := w.Write(buf[:filled])
		filled = 0
		if err != nil {
			return writeError{err}
		}
		return nil
	}
	for {
		if filled == len(buf) {
			if err := flush(); err != nil {
				return err
			}
		}
		n, err := r.Read(buf[filled:min(int64(len(buf)), int64(filled)+room+1)])
		if int64(n) > room {
			return errTooLarge
		}
		room -= int64(n)
		filled += n
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			return err
		}
	}
}

// stream is a connection to a stats socket: a net.Conn, or for a UNIX socket the *os.File of
// dialUnix.
type stream interface {
	io.ReadWriteCloser
	SetDeadline(time.Time) error
}

// connect dials with retries, logging like haproxystats (§3.4).
func (s *socket) connect(ctx context.Context) (stream, error) {
	retries := s.p.opt.Retries
	dialer := net.Dialer{Timeout: s.p.opt.Timeout}
	for attempt := 0; ; attempt++ {
		var conn stream
		var err error
		if s.network == "unix" {
			conn, err = dialUnix(ctx, s.address)
		} else {
			conn, err = dialer.DialContext(ctx, s.network, s.address)
		}
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s socket %s: %w", s.kind(), s.address, context.Cause(ctx))
		}
		if retries >= 0 && attempt >= retries {
			// The loop logs this error with the source's name.
			return nil, fmt.Errorf("failed to connect to %s socket %s after %d retries: %w", s.kind(), s.address, retries, err)
		}
		remaining := "unlimited"
		if retries >= 0 {
			remaining = strconv.Itoa(retries - attempt)
		}
		s.p.log.Warn(fmt.Sprintf("caught %q when connecting to %s socket %s, remaining tries %s, sleeping for %.2f seconds",
			err.Error(), s.kind(), s.address, remaining, s.p.opt.Interval.Seconds()))
		t := time.NewTimer(s.p.opt.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connecting to %s socket %s: %w (last attempt: %v)", s.kind(), s.address, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}
