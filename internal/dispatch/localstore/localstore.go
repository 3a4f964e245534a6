// Package localstore writes each snapshot's Graphite plaintext lines to <dir>/<ts>/stats,
// haproxystats' local-store layout (haproxystats.md §7.2): the same lines, in the same order,
// as sent to Graphite, one file per snapshot timestamp.
//
// Unlike haproxystats, every line of a snapshot lands in that snapshot's own file, including
// TotalWallClockTime (§10.2 #9), and the file appears atomically: chunks are appended to a
// temporary file in <dir>/<ts>/ (".stats.tmp"), which the last chunk fsyncs and renames to
// "stats" before the directories are fsynced. Only then is the last chunk acknowledged, so a
// snapshot is never deleted from the spool before its file is durable. Processing the same
// snapshot again replaces its stats file atomically.
//
// Nothing is ever deleted, as in haproxystats: retention is left to the operator (for example a
// cron job removing old <ts> directories). A temporary file left by a crash is overwritten when
// the same snapshot is processed again.
package localstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

const (
	fileName    = "stats"
	tmpFileName = ".stats.tmp"
)

// Dispatcher writes snapshots under one directory. It implements dispatch.Dispatcher. Submit
// writes synchronously and calls done before it returns.
type Dispatcher struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	open   map[snapshotKey]*snapshotFile
	// tmpInUse holds the temporary paths of snapshots in progress, so that two sources with
	// the same timestamp do not write into one file.
	tmpInUse map[string]bool
	sm       *selfmetrics.Dispatcher // self-metrics (SetMetrics); nil counts nothing
}

type snapshotKey struct {
	ts     int64
	source string
}

type snapshotFile struct {
	mu      sync.Mutex
	dir     string // <dir>/<ts>
	tmp     string
	f       *os.File
	nextSeq int
	err     error // the failure that doomed this snapshot; its later chunks get it too
	lines   int   // written so far, counted delivered once the file is in place
	bytes   int
}

// New returns a local-store dispatcher writing under cfg.Dir (created when needed).
func New(cfg config.LocalStore, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		dir:      cfg.Dir,
		log:      log,
		open:     map[snapshotKey]*snapshotFile{},
		tmpInUse: map[string]bool{},
	}
}

// SetMetrics makes the dispatcher count, in m, the lines and bytes of every stats file put in
// place and every write error. Call it before the first Submit.
func (d *Dispatcher) SetMetrics(m *selfmetrics.Dispatcher) { d.sm = m }

// Name implements dispatch.Dispatcher.
func (d *Dispatcher) Name() string { return "local-store" }

// Submit implements dispatch.Dispatcher. It appends the chunk to its snapshot's temporary file
// and calls done before returning: nil once written (for the last chunk: once the stats file is
// durably in place), or the error that made the snapshot fail.
func (d *Dispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := snapshotKey{b.Timestamp, b.Source}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return dispatch.ErrClosed
	}
	sf := d.open[key]
	if sf != nil && b.Seq == 0 {
		// The snapshot starts over (its producer gave up on an earlier attempt).
		d.discardLocked(key, sf, nil)
		sf = nil
	}
	if sf == nil {
		sf = &snapshotFile{dir: filepath.Join(d.dir, strconv.FormatInt(b.Timestamp, 10))}
		sf.tmp = filepath.Join(sf.dir, tmpFileName)
		for n := 1; d.tmpInUse[sf.tmp]; n++ {
			sf.tmp = filepath.Join(sf.dir, ".stats."+strconv.Itoa(n)+".tmp")
		}
		d.tmpInUse[sf.tmp] = true
		d.open[key] = sf
	}
	d.mu.Unlock()

	sf.mu.Lock()
	err := d.write(sf, b)
	sf.mu.Unlock()
	if b.Last || err != nil {
		d.mu.Lock()
		if b.Last && d.open[key] == sf {
			delete(d.open, key)
			delete(d.tmpInUse, sf.tmp)
		}
		d.mu.Unlock()
	}
	done(err)
	return nil
}

// write appends one chunk (and completes the file on the last one). Called with sf.mu held.
func (d *Dispatcher) write(sf *snapshotFile, b *metric.Batch) error {
	if sf.err != nil {
		return fmt.Errorf("local-store: chunk %d of %s not written: %w", b.Seq, b.Source, sf.err)
	}
	fail := func(err error) error {
		sf.err = err
		d.sm.Error()
		d.removeTmp(sf)
		d.log.Error("local-store: cannot write snapshot", "file", filepath.Join(sf.dir, fileName),
			"source", b.Source, "error", err)
		return fmt.Errorf("local-store: %s: %w", filepath.Join(sf.dir, fileName), err)
	}
	if b.Seq != sf.nextSeq {
		return fail(fmt.Errorf("chunk %d of %s arrived, expected chunk %d", b.Seq, b.Source, sf.nextSeq))
	}
	sf.nextSeq++
	if sf.f == nil {
		if err := os.MkdirAll(sf.dir, 0o755); err != nil {
			return fail(err)
		}
		f, err := os.OpenFile(sf.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		if err != nil {
			return fail(err)
		}
		sf.f = f
	}
	if _, err := sf.f.Write(b.Data); err != nil {
		return fail(err)
	}
	sf.lines += b.Lines
	sf.bytes += len(b.Data)
	if !b.Last {
		return nil
	}
	if err := sf.f.Sync(); err != nil {
		return fail(err)
	}
	err := sf.f.Close()
	sf.f = nil
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(sf.tmp, filepath.Join(sf.dir, fileName)); err != nil {
		return fail(err)
	}
	// The rename, and a <ts> directory created for this snapshot, are durable only once
	// their directories are synced.
	if err := syncDir(sf.dir); err != nil {
		return fail(err)
	}
	if err := syncDir(d.dir); err != nil {
		return fail(err)
	}
	d.sm.Delivered(sf.lines, sf.bytes)
	return nil
}

func (d *Dispatcher) removeTmp(sf *snapshotFile) {
	if sf.f != nil {
		_ = sf.f.Close()
		sf.f = nil
	}
	if err := os.Remove(sf.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("local-store: cannot remove temporary file", "file", sf.tmp, "error", err)
	}
}

// discardLocked drops an unfinished snapshot file. Called with d.mu held.
func (d *Dispatcher) discardLocked(key snapshotKey, sf *snapshotFile, cause error) {
	sf.mu.Lock()
	if sf.f != nil {
		d.removeTmp(sf)
	}
	if cause != nil && sf.err == nil {
		sf.err = cause
	}
	sf.mu.Unlock()
	delete(d.open, key)
	delete(d.tmpInUse, sf.tmp)
}

// Close implements dispatch.Dispatcher. Submit completes every chunk before returning, so
// nothing is pending; snapshots whose last chunk never came have their temporary files removed
// (they were not acknowledged as a whole, and will be processed again).
func (d *Dispatcher) Close(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for key, sf := range d.open {
		d.log.Warn("local-store: closing with an incomplete snapshot", "source", key.source,
			"file", sf.tmp)
		d.discardLocked(key, sf, dispatch.ErrClosed)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
