package status

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// writer writes one program's record and logs a failure once, until a write succeeds again, so
// that an unwritable directory does not add a line to every round.
type writer struct {
	path    string
	log     *slog.Logger
	failing bool
}

func (w *writer) write(v any) {
	err := Write(w.path, v)
	switch {
	case err != nil && !w.failing:
		w.failing = true
		w.log.Warn("cannot write the status file (check_statspipe_freshness reads it); retrying after every round", "file", w.path, "error", err)
	case err == nil && w.failing:
		w.failing = false
		w.log.Info("the status file is written again", "file", w.path)
	}
}

// PullRecorder keeps stats-pull's record ([Pull]) in <dst-dir>/[PullFile]. Its methods are safe
// for concurrent use.
type PullRecorder struct {
	now func() time.Time
	mu  sync.Mutex
	w   writer
	rec Pull
}

// NewPullRecorder writes a record for a starting stats-pull, carrying over the last publish and
// the last error of the previous record in dstDir, if any: a restart must not make a stale pull
// look fresh.
func NewPullRecorder(dstDir string, log *slog.Logger) *PullRecorder {
	r := &PullRecorder{now: time.Now, w: writer{path: filepath.Join(dstDir, PullFile), log: log}}
	now := r.now().UTC()
	r.rec = Pull{Format: Format, Program: "stats-pull", PID: os.Getpid(), Started: now, Updated: now}
	if old, err := ReadPull(r.w.path); err == nil {
		r.rec.LastPublish, r.rec.LastError = old.LastPublish, old.LastError
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("ignoring an unreadable status file; it is rewritten", "file", r.w.path, "error", err)
	}
	r.w.write(&r.rec)
	return r
}

// Path is the file's path.
func (r *PullRecorder) Path() string { return r.w.path }

// Failure is a failed source of a round, as in the partial-snapshot record.
type Failure struct{ Name, Err string }

// Published records a round that published snapshot; failed are the sources missing from it.
func (r *PullRecorder) Published(snapshot string, failed []Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC()
	p := &Publish{Time: now, Snapshot: snapshot}
	for i, f := range failed {
		if i == maxNames {
			p.FailedSources = append(p.FailedSources, "…")
			break
		}
		p.FailedSources = append(p.FailedSources, f.Name)
	}
	r.rec.Updated, r.rec.LastPublish, r.rec.RoundsWithoutPublish = now, p, 0
	if len(failed) > 0 {
		r.rec.LastError = &Problem{Time: now, Error: clip("partial snapshot " + snapshot + ": " + describe(failed))}
	} else {
		r.rec.LastError = nil
	}
	r.w.write(&r.rec)
}

// Failed records a round that published nothing, why, and the sources that failed in it.
func (r *PullRecorder) Failed(reason string, failed []Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC()
	r.rec.Updated = now
	r.rec.RoundsWithoutPublish++
	if len(failed) > 0 {
		reason += " (" + describe(failed) + ")"
	}
	r.rec.LastError = &Problem{Time: now, Error: clip(reason)}
	r.w.write(&r.rec)
}

func describe(failed []Failure) string {
	var parts []string
	for i, f := range failed {
		if i == maxNames {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, f.Name+": "+f.Err)
	}
	return strings.Join(parts, "; ")
}

// ProcessRecorder keeps stats-process's record ([Process]) in <src-dir>/[ProcessFile]. Its
// methods are safe for concurrent use (workers settle snapshots concurrently).
type ProcessRecorder struct {
	now func() time.Time
	mu  sync.Mutex
	w   writer
	rec Process
}

// NewProcessRecorder writes a record for a starting stats-process, carrying over the last
// delivery of the previous record in srcDir, if any.
func NewProcessRecorder(srcDir string, log *slog.Logger) *ProcessRecorder {
	r := &ProcessRecorder{now: time.Now, w: writer{path: filepath.Join(srcDir, ProcessFile), log: log}}
	now := r.now().UTC()
	r.rec = Process{Format: Format, Program: "stats-process", PID: os.Getpid(), Started: now, Updated: now}
	if old, err := ReadProcess(r.w.path); err == nil {
		r.rec.LastDelivery = old.LastDelivery
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("ignoring an unreadable status file; it is rewritten", "file", r.w.path, "error", err)
	}
	r.w.write(&r.rec)
	return r
}

// Path is the file's path.
func (r *ProcessRecorder) Path() string { return r.w.path }

// Delivered records a snapshot delivered to every dispatcher and removed; took is the time
// from the start of its processing.
func (r *ProcessRecorder) Delivered(snapshot string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC()
	r.rec.Updated = now
	r.rec.Delivered++
	r.rec.LastDelivery = &Delivery{Time: now, Snapshot: snapshot, Seconds: took.Seconds()}
	r.w.write(&r.rec)
}
