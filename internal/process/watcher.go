package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/statspipe/statspipe/internal/spool"
)

// watcher feeds the queue from src-dir. The inotify watch is added before the backlog is
// listed, so a snapshot published between the two is seen at least once (the queue drops the
// duplicate); an event-queue overflow or a periodic tick triggers a full rescan.
type watcher struct {
	dir    string
	queue  *queue
	log    *slog.Logger
	rescan time.Duration
	fs     *fsnotify.Watcher
	beat   atomic.Int64 // unix nanoseconds of the event loop's last turn
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
	w := &watcher{dir: dir, queue: q, log: log, rescan: rescan, fs: fs}
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
	added := 0
	for _, e := range entries {
		if w.queue.push(e) {
			added++
		}
	}
	if added > 0 {
		w.log.Debug("queued snapshots found by a scan", "count", added)
	}
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
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
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
	if strings.HasPrefix(name, ".") {
		return
	}
	fi, err := os.Stat(ev.Name)
	if err != nil || !fi.IsDir() {
		w.log.Debug("ignoring a spool entry that is not a directory", "path", ev.Name)
		return
	}
	w.queue.push(spool.Entry{Name: name, Path: ev.Name})
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
