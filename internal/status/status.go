// Package status is the liveness record of stats-pull and stats-process: a small JSON file each
// program rewrites after every pull round or delivered snapshot, which the freshness check
// (check_statspipe_freshness) reads. stats-process removes a snapshot once delivered, so the
// spool alone cannot tell "stats-pull stopped publishing" from "everything was delivered"; these
// files can.
//
// # Where
//
//	<dst-dir>/.statspipe-pull-status.json     written by stats-pull   ([PullFile])
//	<src-dir>/.statspipe-process-status.json  written by stats-process ([ProcessFile])
//
// Both live in the queue directory itself (dst-dir = src-dir in every normal setup), under dot
// names, which the spool contract (package spool) excludes from the queue for every reader:
// they are never taken for snapshots, counted by queue-size or the queue check, nor
// quarantined. Each program already writes there (pull publishes, process removes), so no new
// directory, permission or option is needed, and a checker that knows dst-dir finds both.
//
// # How
//
// A file is replaced in one step ([Write]): the new content goes to a temporary dot file in
// the same directory (<name>.tmp), which is then renamed over the old one, so a reader sees either the old
// or the new record, never a torn one. It is not fsynced: the record describes the running
// process, and after a crash or a power loss the next round rewrites it (a lost update only
// makes it look older, which errs on the side of alerting). Flushing it every pull-interval
// and for every delivered snapshot would cost a disk flush each time for nothing. A reader
// that finds an empty or malformed file (a power loss right after a rename on a filesystem
// that reorders them) reports it as unreadable; it is fixed by the next write.
//
// # Format
//
// One JSON object; times are RFC 3339 with nanoseconds, in UTC. "format" is 1; a reader
// rejects other values. Fields are [Pull] and [Process].
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The file names, in dst-dir (pull) and src-dir (process).
const (
	PullFile    = ".statspipe-pull-status.json"
	ProcessFile = ".statspipe-process-status.json"
)

// Format is the version of the records written here.
const Format = 1

// maxSize bounds what a reader reads: the records are a few hundred bytes.
const maxSize = 64 << 10

// maxText bounds an error text kept in a record.
const maxText = 1024

// maxNames bounds the failed sources listed in a record.
const maxNames = 20

// Pull is stats-pull's record, rewritten after every round.
type Pull struct {
	Format  int       `json:"format"`
	Program string    `json:"program"` // "stats-pull"
	PID     int       `json:"pid"`
	Started time.Time `json:"started"` // when this process started
	Updated time.Time `json:"updated"` // end of the last round
	// LastPublish is the last snapshot published, possibly by an earlier process (carried
	// over at start); nil if none ever was.
	LastPublish *Publish `json:"last_publish,omitempty"`
	// LastError is why the last round that published nothing did not, or the failures of
	// the last partial snapshot; nil if no round failed since the last complete publish.
	LastError *Problem `json:"last_error,omitempty"`
	// RoundsWithoutPublish counts the rounds in a row, up to the last one, that published
	// nothing (0 when the last round published).
	RoundsWithoutPublish int `json:"rounds_without_publish"`
}

// Publish is one published snapshot.
type Publish struct {
	Time     time.Time `json:"time"`     // when it became visible in dst-dir
	Snapshot string    `json:"snapshot"` // its name, the epoch of its round
	// FailedSources names the sources (instances) missing from it: a partial snapshot.
	FailedSources []string `json:"failed_sources,omitempty"`
}

// Problem is a failure: when, and the error as logged.
type Problem struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error"`
}

// Process is stats-process's record, rewritten after every delivered snapshot.
type Process struct {
	Format  int       `json:"format"`
	Program string    `json:"program"` // "stats-process"
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// LastDelivery is the last snapshot delivered (to every dispatcher) and removed, possibly
	// by an earlier process; nil if none ever was.
	LastDelivery *Delivery `json:"last_delivery,omitempty"`
	// Delivered counts the snapshots this process delivered.
	Delivered int64 `json:"delivered"`
}

// Delivery is one delivered snapshot.
type Delivery struct {
	Time     time.Time `json:"time"`
	Snapshot string    `json:"snapshot"`
	Seconds  float64   `json:"seconds"` // from the start of its processing to its removal
}

// Write replaces the file at path with v as JSON, atomically (temporary file and rename; no
// fsync: see the package comment).
func Write(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp := tempName(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// tempName is the temporary file of path: a dot name, fixed, so that a program killed between
// the write and the rename leaves at most one, which its next write replaces. (One writer per
// file: the recorders serialise their writes.)
func tempName(path string) string {
	name := filepath.Base(path)
	if !strings.HasPrefix(name, ".") {
		name = "." + name
	}
	return filepath.Join(filepath.Dir(path), name+".tmp")
}

// ErrFormat is returned (wrapped) by the readers for a file that is not a record of this
// format.
var ErrFormat = errors.New("not a statspipe status record")

// ReadPull reads a stats-pull record. A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadPull(path string) (*Pull, error) {
	var p Pull
	if err := read(path, &p, &p.Format); err != nil {
		return nil, err
	}
	return &p, nil
}

// ReadProcess reads a stats-process record.
func ReadProcess(path string) (*Process, error) {
	var p Process
	if err := read(path, &p, &p.Format); err != nil {
		return nil, err
	}
	return &p, nil
}

func read(path string, v any, format *int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxSize {
		return fmt.Errorf("%s: %w: larger than %d bytes", path, ErrFormat, maxSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrFormat, err)
	}
	if *format != Format {
		return fmt.Errorf("%s: %w: format %d, want %d", path, ErrFormat, *format, Format)
	}
	return nil
}

// clip bounds an error text.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return s[:maxText] + "…"
}
