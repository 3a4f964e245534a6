package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/statspipe/statspipe/internal/spool"
)

// watcher feeds the queue from src-dir. The inotify watch is added before the backlog is
// listed, so a snapshot published between the two is seen at least once (the queue drops the
// duplicate); an event-queue overflow or a periodic tick triggers a full rescan.
//
// A directory seen by an event or a scan is a candidate, not yet a snapshot: fsnotify reports
// mkdir (IN_CREATE) and rename (IN_MOVED_TO) alike, and a directory made in place — `cp -r`
// into the spool, rsync — is still being filled when its event arrives. A candidate is queued
// once it has settled: nothing in it (its entries, their sizes and modification times) changed
// for settleTime. stats-pull's snapshots arrive complete by rename and settle at the first
// look after settleTime; a backlog older than settleTime is queued at once.
//
// Events and scans take what spool.List takes (spool.IsQueueEntry, from lstat: a link is never
// followed). A stray — a symlink, FIFO, socket or device in src-dir — has nothing to settle and
// is queued at once; the worker quarantines it as it is (spool.CheckSnapshot).
type watcher struct {
	dir    string
	queue  *queue
	log    *slog.Logger
	rescan time.Duration
	fs     *fsnotify.Watcher
	beat   atomic.Int64 // unix nanoseconds of the event loop's last turn

	mu      sync.Mutex // candidates: the event loop and rewatch both scan
	pending map[string]*candidate
}

// settleTime is how long a candidate directory must stay unchanged before it is queued.
const settleTime = 500 * time.Millisecond

// candidate is a directory seen in src-dir but not queued yet.
type candidate struct {
	entry spool.Entry
	look  string    // what the last look saw (contentsOf)
	since time.Time // when the contents last changed, as far as the looks can tell
}

func newWatcher(dir string, q *queue, log *slog.Logger, rescan time.Duration) (*watcher, error) {
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("process: inotify: %w", err)
	}
	if err := fs.Add(dir); err != nil {
		fs.Close()
		return nil, fmt.Errorf("process: watching %s: %w", dir, err)
	}
	w := &watcher{dir: dir, queue: q, log: log, rescan: rescan, fs: fs, pending: map[string]*candidate{}}
	w.beat.Store(time.Now().UnixNano())
	w.scan()
	return w, nil
}

func (w *watcher) scan() {
	entries, err := spool.List(w.dir)
	if err != nil {
		w.log.Error("cannot list the spool directory", "dir", w.dir, "error", err)
		return
	}
	for _, e := range entries {
		w.consider(e)
	}
}

// consider queues e once it has settled (see watcher). Called for every event and scan.
func (w *watcher) consider(e spool.Entry) {
	if w.queue.knows(e.Name) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.pending[e.Name]; ok {
		return
	}
	look, newest, err := contentsOf(e.Path)
	if err != nil {
		return // gone again, or unreadable: the next scan sees it if it comes back
	}
	now := time.Now()
	if now.Sub(newest) >= settleTime {
		w.queue.push(e)
		return
	}
	w.pending[e.Name] = &candidate{entry: e, look: look, since: now}
}

// settle looks at every candidate again and queues those that did not change for settleTime.
func (w *watcher) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for name, c := range w.pending {
		look, _, err := contentsOf(c.entry.Path)
		switch {
		case err != nil:
			delete(w.pending, name)
		case look != c.look:
			c.look, c.since = look, now
		case now.Sub(c.since) >= settleTime:
			delete(w.pending, name)
			w.queue.push(c.entry)
		}
	}
}

func (w *watcher) waiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) > 0
}

// contentsOf describes directory dir for the settle check: its entries with their sizes and
// modification times, those of its part directories' entries too (a file still being copied
// into a source's directory grows there), and the newest of those times (the directory's own
// included). Nothing is followed or opened but directories: the entries are lstat'ed. A queue entry that is
// not a real directory (a stray, see spool.IsQueueEntry) has nothing to settle: its newest time
// is the zero time, so it is queued at once, to be quarantined as it is.
func contentsOf(dir string) (look string, newest time.Time, err error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", time.Time{}, err
	}
	if !fi.IsDir() {
		return fi.Mode().Type().String(), time.Time{}, nil
	}
	newest = fi.ModTime()
	var b strings.Builder
	if err := describeEntries(&b, dir, "", &newest, true); err != nil {
		return "", time.Time{}, err
	}
	return b.String(), newest, nil
}

// describeEntries writes one line per entry of dir (name prefixed by prefix) and, with deeper,
// the entries of each subdirectory, moving newest to the latest modification time seen.
func describeEntries(b *strings.Builder, dir, prefix string, newest *time.Time, deeper bool) error {
	entries, err := spool.ReadSnapshotDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed while we looked; the next look differs anyway
		}
		if info.ModTime().After(*newest) {
			*newest = info.ModTime()
		}
		fmt.Fprintf(b, "%s%s %d %d\n", prefix, e.Name(), info.Size(), info.ModTime().UnixNano())
		if deeper && e.IsDir() {
			// A part directory that vanished or cannot be listed: the next look tells.
			_ = describeEntries(b, filepath.Join(dir, e.Name()), prefix+e.Name()+"/", newest, false)
		}
	}
	return nil
}

func (w *watcher) run(ctx context.Context) {
	defer w.fs.Close()
	var tick <-chan time.Time
	if w.rescan > 0 {
		t := time.NewTicker(w.rescan)
		defer t.Stop()
		tick = t.C
	}
	heartbeat := time.NewTicker(time.Second)
	defer heartbeat.Stop()
	for {
		w.beat.Store(time.Now().UnixNano())
		var settleTick <-chan time.Time // only while candidates wait: an idle spool costs no wake-ups
		if w.waiting() {
			settleTick = time.After(settleTime / 5)
		}
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
		case <-settleTick:
			w.settle()
		case <-tick:
			w.scan()
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.event(ev)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("inotify event queue overflowed; rescanning the spool directory", "dir", w.dir)
				w.scan()
				continue
			}
			w.log.Error("inotify error", "dir", w.dir, "error", err)
		}
	}
}

func (w *watcher) event(ev fsnotify.Event) {
	if ev.Name == w.dir && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
		w.log.Error("the spool directory was removed or renamed; waiting for it to come back", "dir", w.dir)
		go w.rewatch()
		return
	}
	// fsnotify reports both IN_CREATE and IN_MOVED_TO as Create. Publishers rename complete
	// directories into the spool, so a Create is the publication itself.
	if !ev.Has(fsnotify.Create) {
		return
	}
	name := filepath.Base(ev.Name)
	// The entry itself, never what a symlink points to; the same rule as spool.List's.
	fi, err := os.Lstat(ev.Name)
	if err != nil || !spool.IsQueueEntry(name, fi.Mode().Type()) {
		w.log.Debug("ignoring a spool entry that is not a snapshot", "path", ev.Name)
		return
	}
	w.consider(spool.Entry{Name: name, Path: ev.Name})
}

// rewatch re-adds the watch once the directory exists again, then rescans.
func (w *watcher) rewatch() {
	for {
		if err := w.fs.Add(w.dir); err == nil {
			w.log.Info("watching the spool directory again", "dir", w.dir)
			w.scan()
			return
		} else if errors.Is(err, fsnotify.ErrClosed) {
			return
		}
		time.Sleep(3 * time.Second)
	}
}
