// Package tier is the central tier's two Kafka consumers, handlers of internal/consume that
// feed a process.Runner (the dispatchers of the tier's own configuration):
//
//   - Snapshots consumes the raw snapshots that edges' [ship] dispatchers produce (keyed by
//     host, fragmented; see dispatch/ship), processes each one as stats-process processes a
//     spool snapshot and writes its lines under the edge's host name. A [kafka] dispatcher with
//     record-key = series among the tier's dispatchers feeds the line-topic.
//   - Lines consumes the line-topic (per-host lines keyed by series) and aggregates across
//     hosts per time bucket with one central.Aggregator per partition: keyed by series, a
//     partition holds every host's values of its series.
//
// Both commit a record's offset only once its effect is delivered: a snapshot's lines, or the
// cluster lines of the bucket a line went into. Whatever is not delivered when a partition
// moves or the program stops is consumed again by the next owner (at-least-once; a line sent
// twice is harmless). What cannot be used — a record that is no fragment, an archive that does
// not unpack, a snapshot no format can read, a line of another namespace — is quarantined in
// work-dir with the reason, and its offset committed: never retried forever, never dropped.
package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/statspipe/statspipe/internal/consume"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/ship"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/spool"
)

// SnapshotOptions configure Snapshots.
type SnapshotOptions struct {
	Runner *process.Runner
	// Namespace is the tier's [graphite] namespace (as metric.Namespace writes it) and
	// OwnPrefix the host prefix the tier's formats write ("<namespace>.<tier host>"): every
	// line starting with OwnPrefix + "." is written under the edge's host instead.
	Namespace, OwnPrefix string
	// WorkDir holds received/ (snapshots being processed) and received.quarantine/.
	WorkDir          string
	MaxSnapshotBytes int64
	Log              *slog.Logger
	Retry            Retry
}

// Snapshots is the consume.Handler of the snapshot-topic.
type Snapshots struct {
	o     SnapshotOptions
	log   *slog.Logger
	limit *logLimit
	asm   *ship.Assembler // used by Handle only (one goroutine)
	seq   int             // names the received/ directories apart

	mu    sync.Mutex
	parts map[int32]*snapPart
}

// snapPart is one assigned partition: the offsets handed to Handle and not settled yet.
type snapPart struct {
	done    func(int64)
	pending map[int64]bool
	next    int64 // the offset after the last record handed to Handle
	revoked bool
}

// Received is the directory under WorkDir where snapshots are unpacked.
func Received(workDir string) string { return filepath.Join(workDir, "received") }

// NewSnapshots makes WorkDir's directories and empties received/ (what a stop left there is
// consumed again from Kafka, as its offsets were not committed).
func NewSnapshots(o SnapshotOptions) (*Snapshots, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Retry = o.Retry.orDefaults()
	recv := Received(o.WorkDir)
	if err := os.RemoveAll(recv); err != nil {
		return nil, fmt.Errorf("central: cleaning %s: %w", recv, err)
	}
	if err := os.MkdirAll(recv, 0o755); err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	return &Snapshots{o: o, log: o.Log, limit: newLogLimit(30 * time.Second),
		asm:   ship.NewAssembler(ship.Limits{Bytes: 4 * o.MaxSnapshotBytes}),
		parts: map[int32]*snapPart{}}, nil
}

// Assigned implements consume.Handler.
func (s *Snapshots) Assigned(p int32, done func(next int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.parts[p]; old != nil {
		old.revoked = true
	}
	s.parts[p] = &snapPart{done: done, pending: map[int64]bool{}, next: -1}
}

// Revoked implements consume.Handler: the partitions' partial snapshots are dropped and their
// deliveries in flight finish without committing or retrying.
func (s *Snapshots) Revoked(ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if part := s.parts[p]; part != nil {
			part.revoked = true
			delete(s.parts, p)
		}
		s.asm.Drop(p)
	}
}

// Handle implements consume.Handler. It blocks while the runner's workers are all busy.
func (s *Snapshots) Handle(ctx context.Context, r *consume.Record) {
	s.mu.Lock()
	part := s.parts[r.Partition]
	if part == nil {
		s.mu.Unlock()
		return // not assigned (any more): the owner consumes it
	}
	part.pending[r.Offset] = true
	part.next = r.Offset + 1
	s.mu.Unlock()

	a, err := s.asm.Add(r.Partition, r.Offset, r.Key, r.Headers, r.Value)
	var aerr *ship.Error
	if errors.As(err, &aerr) {
		s.quarantineRecord(r, aerr.Error())
		s.settle(part, aerr.Offsets...)
		if !containsOffset(aerr.Offsets, r.Offset) {
			s.settle(part, r.Offset)
		}
		return
	}
	if err != nil {
		s.quarantineRecord(r, err.Error())
		s.settle(part, r.Offset)
		return
	}
	if a == nil {
		return // a fragment: the offset stays pending until its snapshot is delivered
	}
	s.deliver(ctx, part, a)
}

func containsOffset(offsets []int64, o int64) bool {
	for _, x := range offsets {
		if x == o {
			return true
		}
	}
	return false
}

// deliver unpacks a and hands it to the runner; the outcome settles a's offsets.
func (s *Snapshots) deliver(ctx context.Context, part *snapPart, a *ship.Archive) {
	where := fmt.Sprintf("snapshot %s/%s (partition %d, offset %d)", a.Host, a.Snapshot, a.Partition, a.Offsets[len(a.Offsets)-1])
	s.seq++
	tmp := filepath.Join(Received(s.o.WorkDir), recordName(a.Partition, a.Offsets[0])+"-"+strconv.Itoa(s.seq))
	fail := func(reason string) {
		os.RemoveAll(tmp)
		s.quarantineBytes(a.Partition, a.Offsets[0], a.Data, where+": "+reason)
		s.settle(part, a.Offsets...)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		s.limit.Do("mkdir", func(n int) {
			s.log.Error("cannot unpack a received snapshot; it is consumed again later", "snapshot", where, "error", err, "repeated", n)
		})
		return // pending: not committed, so consumed again by the partition's next owner
	}
	edge, dir, err := spool.Unpack(bytes.NewReader(a.Data), tmp, spool.ArchiveLimits{Bytes: s.o.MaxSnapshotBytes})
	if err != nil {
		fail(err.Error())
		return
	}
	ts, ok := spool.TimestampOf(edge.Snapshot)
	host := metric.Component(edge.Host)
	switch {
	case !ok:
		fail(fmt.Sprintf("the archive names snapshot %q, not an epoch timestamp", edge.Snapshot))
		return
	case edge.Host != a.Host || host != edge.Host || host == "":
		fail(fmt.Sprintf("the archive's host %q is not its records' key %q (or not a path component)", edge.Host, a.Host))
		return
	}
	from := []byte(s.o.OwnPrefix + ".")
	to := []byte(s.o.Namespace + "." + host + ".")
	rewrite := func(b *metric.Batch) *metric.Batch { return metric.ReplacePrefix(b, from, to) }
	s.attempt(ctx, part, a, where, tmp, dir, ts, rewrite, s.o.Retry.Min)
}

// attempt delivers dir once; a failure is tried again after wait (doubling up to Retry.Max)
// while the partition is still this consumer's and ctx has not ended.
func (s *Snapshots) attempt(ctx context.Context, part *snapPart, a *ship.Archive, where, tmp, dir string, ts int64,
	rewrite func(*metric.Batch) *metric.Batch, wait time.Duration) {
	s.o.Runner.Deliver(ctx, dir, ts, rewrite, func(err error) {
		var unusable process.Unusable
		var rejected dispatch.Rejected
		switch {
		case err == nil:
			os.RemoveAll(tmp)
			s.settle(part, a.Offsets...)
		case errors.As(err, &unusable) || errors.As(err, &rejected):
			s.quarantineDir(dir, where+": "+err.Error())
			os.RemoveAll(tmp)
			s.settle(part, a.Offsets...)
		default:
			s.mu.Lock()
			gone := part.revoked
			s.mu.Unlock()
			if gone || ctx.Err() != nil || errors.Is(err, process.ErrClosed) {
				os.RemoveAll(tmp) // not committed: the partition's next owner delivers it
				return
			}
			s.limit.Do("retry", func(n int) {
				s.log.Warn("a received snapshot was not delivered; it is tried again", "snapshot", where,
					"error", err, "retry_in", wait.String(), "repeated", n)
			})
			s.o.Retry.after(ctx, wait, func(next time.Duration) {
				s.attempt(ctx, part, a, where, tmp, dir, ts, rewrite, next)
			})
		}
	})
}

// settle marks offsets of part as handled and commits up to the oldest still pending.
func (s *Snapshots) settle(part *snapPart, offsets ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range offsets {
		delete(part.pending, o)
	}
	if part.revoked {
		return
	}
	next := part.next
	for o := range part.pending {
		next = min(next, o)
	}
	if next >= 0 {
		part.done(next)
	}
}

// quarantineRecord keeps a record that is not a usable fragment.
func (s *Snapshots) quarantineRecord(r *consume.Record, reason string) {
	s.quarantineBytes(r.Partition, r.Offset, r.Value,
		fmt.Sprintf("record at partition %d offset %d (key %q): %s", r.Partition, r.Offset, r.Key, reason))
}

// quarantineBytes writes data as received.quarantine/p<partition>-o<offset>/record with a
// REASON.
func (s *Snapshots) quarantineBytes(p int32, offset int64, data []byte, reason string) {
	dest, err := quarantineRecord(Received(s.o.WorkDir), recordName(p, offset)+"-record", data, reason)
	if err != nil {
		s.log.Error("cannot quarantine a record; it is left out", "reason", reason, "error", err)
		return
	}
	s.log.Error("received snapshot quarantined", "to", dest, "reason", reason)
}

// recordName names a record's quarantine directory: p<partition>-o<offset>.
func recordName(p int32, offset int64) string {
	return "p" + strconv.Itoa(int(p)) + "-o" + strconv.FormatInt(offset, 10)
}

// quarantineRecord keeps data, a record that cannot be used, as <srcDir>.quarantine/<name>/
// record with a REASON (spool.Quarantine), and returns where.
func quarantineRecord(srcDir, name string, data []byte, reason string) (string, error) {
	dir := filepath.Join(srcDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "record"), data, 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return spool.Quarantine(srcDir, dir, reason)
}

func (s *Snapshots) quarantineDir(dir, reason string) {
	dest, err := spool.Quarantine(Received(s.o.WorkDir), dir, reason)
	if err != nil {
		s.log.Error("cannot quarantine a received snapshot", "dir", dir, "reason", reason, "error", err)
		return
	}
	s.log.Error("received snapshot quarantined", "to", dest, "reason", reason)
}
