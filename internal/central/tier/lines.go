package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/statspipe/statspipe/internal/central"
	"github.com/statspipe/statspipe/internal/consume"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
)

// LineOptions configure Lines.
type LineOptions struct {
	Runner *process.Runner
	// Central is the aggregation of every partition (Now, Policies… included).
	Central central.Options
	WorkDir string // lines.quarantine/ is made here
	Log     *slog.Logger
	Retry   Retry
}

// Lines is the consume.Handler of the line-topic. Its rule for what arrives late is the
// aggregator's: a line whose bucket was already written is left out of the cluster lines (its
// per-host line was delivered by the tier that produced it), counted (Late) and logged.
type Lines struct {
	o     LineOptions
	log   *slog.Logger
	limit *logLimit
	// ownPrefix starts the cluster lines ("<namespace>.<cluster>."): the runner delivers them
	// to every dispatcher, so a [kafka] dispatcher feeding line-topic sends them back.
	ownPrefix []byte

	mu    sync.Mutex
	parts map[int32]*linePart
	late  int
}

// linePart is one assigned partition: its aggregator and, per bucket start, the lowest offset
// of the records in it, while the bucket is open (open) or its cluster lines are being
// delivered (sending).
type linePart struct {
	agg     *central.Aggregator
	done    func(int64)
	open    map[int64]int64
	sending map[int64]int64
	next    int64
	revoked bool
}

// NewLines checks o.
func NewLines(o LineOptions) (*Lines, error) {
	if _, err := central.New(o.Central); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Retry = o.Retry.orDefaults()
	return &Lines{o: o, log: o.Log, limit: newLogLimit(30 * time.Second), parts: map[int32]*linePart{},
		ownPrefix: []byte(o.Central.Namespace + "." + o.Central.Cluster + ".")}, nil
}

// Late is the number of lines left out of the cluster lines because their bucket was written.
func (l *Lines) Late() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.late
}

// Assigned implements consume.Handler: a partition gets an aggregator of its own, so that a
// partition that moves takes nothing of its buckets along (its next owner recomputes them
// from the committed offset).
func (l *Lines) Assigned(p int32, done func(next int64)) {
	agg, err := central.New(l.o.Central)
	if err != nil {
		panic(err) // checked by NewLines
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.parts[p]; old != nil {
		old.revoked = true
	}
	l.parts[p] = &linePart{agg: agg, done: done, open: map[int64]int64{}, sending: map[int64]int64{}, next: -1}
}

// Revoked implements consume.Handler.
func (l *Lines) Revoked(ps []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ps {
		if part := l.parts[p]; part != nil {
			part.revoked = true
			delete(l.parts, p)
		}
	}
}

// Handle implements consume.Handler: the record's lines go into their buckets, then every
// bucket whose window has passed is delivered.
func (l *Lines) Handle(ctx context.Context, r *consume.Record) {
	l.mu.Lock()
	part := l.parts[r.Partition]
	if part == nil {
		l.mu.Unlock()
		return
	}
	part.next = r.Offset + 1
	var bad []string
	for v := r.Value; len(v) > 0; {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if bytes.HasPrefix(line, l.ownPrefix) {
			continue // the tier's own cluster lines, back from a [kafka] dispatcher into line-topic
		}
		start, err := part.agg.AddLine(line)
		switch {
		case err == nil:
			if o, ok := part.open[start]; !ok || r.Offset < o {
				part.open[start] = r.Offset
			}
		case errors.Is(err, central.ErrLate):
			l.late++
			l.limit.Do("late", func(n int) {
				l.log.Warn("a line arrived after its bucket's lateness window: left out of the cluster lines",
					"partition", r.Partition, "offset", r.Offset, "bucket", start, "line", string(line), "late_total", l.late, "repeated", n)
			})
		default:
			if len(bad) < 8 {
				bad = append(bad, fmt.Sprintf("%q: %v", line, err))
			}
		}
	}
	var ready []*metric.Batch
	if part.agg.Ready() {
		ready = l.flush(r.Partition, part)
	}
	if ready != nil || len(part.open) == 0 && len(part.sending) == 0 {
		// Otherwise the oldest open bucket holds the commit where it was.
		l.advance(part)
	}
	l.mu.Unlock()
	if bad != nil {
		l.quarantine(r, bad)
	}
	// Outside the lock: the runner blocks on back-pressure, and its answers take the lock.
	for _, b := range ready {
		l.send(ctx, r.Partition, part, b, l.o.Retry.Min)
	}
}

// flush takes the cluster lines of the buckets of part whose window has passed, each as one
// chunk; called with l.mu held.
func (l *Lines) flush(p int32, part *linePart) []*metric.Batch {
	byBucket := map[int64][]*metric.Batch{}
	var ready []*metric.Batch
	written, err := part.agg.Flush(func(b *metric.Batch) error {
		byBucket[b.Timestamp] = append(byBucket[b.Timestamp], b)
		return nil
	}, false)
	if err != nil {
		l.log.Error("cannot write cluster lines", "partition", p, "error", err) // the flush func never fails
	}
	for _, start := range written {
		part.sending[start] = part.open[start]
		delete(part.open, start)
		// One chunk per bucket, a copy kept for the retries.
		out := &metric.Batch{Timestamp: start, Last: true,
			Source: fmt.Sprintf("cluster %s bucket %d partition %d", l.o.Central.Cluster, start, p)}
		for _, b := range byBucket[start] {
			out.Data = append(out.Data, b.Data...)
			out.Lines += b.Lines
			metric.Recycle(b)
		}
		ready = append(ready, out)
	}
	return ready
}

// send hands one bucket's cluster lines to the runner; a failure is tried again after wait
// while the partition is this consumer's.
func (l *Lines) send(ctx context.Context, p int32, part *linePart, bucket *metric.Batch, wait time.Duration) {
	start := bucket.Timestamp
	b := *bucket // the runner recycles and renumbers its chunk; bucket stays for a retry
	l.o.Runner.DeliverLines(ctx, bucket.Source, start, []*metric.Batch{&b}, func(err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil && !part.revoked && ctx.Err() == nil && !errors.Is(err, process.ErrClosed) {
			l.limit.Do("retry", func(n int) {
				l.log.Warn("cluster lines not delivered; tried again", "bucket", start, "partition", p,
					"error", err, "retry_in", wait.String(), "repeated", n)
			})
			l.o.Retry.after(ctx, wait, func(next time.Duration) { l.send(ctx, p, part, bucket, next) })
			return
		}
		if err == nil {
			delete(part.sending, start)
			l.advance(part)
		}
	})
}

// advance commits part up to the oldest record of a bucket not delivered yet; called with
// l.mu held.
func (l *Lines) advance(part *linePart) {
	if part.revoked || part.next < 0 {
		return
	}
	next := part.next
	for _, o := range part.open {
		next = min(next, o)
	}
	for _, o := range part.sending {
		next = min(next, o)
	}
	part.done(next)
}

// quarantine keeps a record some of whose lines are unusable (the others were used), as
// lines.quarantine/p<partition>-o<offset>/record with a REASON.
func (l *Lines) quarantine(r *consume.Record, bad []string) {
	reason := fmt.Sprintf("record at partition %d offset %d: lines that are not this namespace's Graphite lines: %v",
		r.Partition, r.Offset, bad)
	dest, err := quarantineRecord(filepath.Join(l.o.WorkDir, "lines"), recordName(r.Partition, r.Offset), r.Value, reason)
	if err != nil {
		l.log.Error("cannot quarantine a line record; it is left out", "reason", reason, "error", err)
		return
	}
	l.limit.Do("quarantine", func(n int) {
		l.log.Error("line record quarantined", "to", dest, "reason", reason, "repeated", n)
	})
}
