package process

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

// delivery counts the chunks of one snapshot that dispatchers still owe an answer for, and
// keeps each dispatcher's answers apart: a dispatcher that acknowledged every chunk has
// delivered the snapshot even if another one failed, and is not sent it again (the runner
// keeps that record). The snapshot directory may be removed only when the producer has finished
// and every dispatcher delivered every chunk (the delivery rule).
type delivery struct {
	mu       sync.Mutex
	pending  int
	finished bool
	fired    bool
	produce  error            // the producer's (Format's) error
	refused  bool             // a Submit refused a chunk: the producer could not hand over everything
	results  []dispatchResult // by index into the dispatchers given to submit
	lines    int              // handed over (counted once, not per dispatcher)
	bytes    int
	onDone   func(deliveryDone) // called once, when everything is settled
	progress func()             // called for every chunk a dispatcher acknowledged
}

// dispatchResult is what one dispatcher answered for the chunks of one attempt at a snapshot.
type dispatchResult struct {
	err      error     // the first failure that is not a rejection; nil if none
	rejected []string  // Rejected() reasons of the chunks it refused (bounded, see addReason)
	last     time.Time // when it answered for its last chunk
}

// deliveryDone is the settled outcome of one attempt at a snapshot.
type deliveryDone struct {
	produce error // the Format's error (nil, Unusable, Rejected or another failure)
	// refused: some chunk was not handed to every dispatcher, so no dispatcher has the whole
	// snapshot, whatever the Format returned.
	refused bool
	results []dispatchResult
	// lines and bytes handed over to the dispatchers (each got them all unless refused).
	lines, bytes int
}

// maxReasons bounds the rejection reasons kept per snapshot; maxReasonBytes bounds one of
// them (a reason may quote the line it is about).
const (
	maxReasons     = 8
	maxReasonBytes = 1024
)

func newDelivery(dispatchers int, onDone func(deliveryDone), progress func()) *delivery {
	return &delivery{results: make([]dispatchResult, dispatchers), onDone: onDone, progress: progress}
}

// submit hands b to every dispatcher in dispatchers (the same slice each time, matching the
// count given to newDelivery), counting each hand-over as owed. The chunk's memory is recycled
// once the last dispatcher is done with it.
func (d *delivery) submit(ctx context.Context, dispatchers []dispatch.Dispatcher, b *metric.Batch) error {
	var holders atomic.Int32
	holders.Store(int32(len(dispatchers)))
	release := func(n int32) {
		if holders.Add(-n) == 0 {
			metric.Recycle(b)
		}
	}
	d.mu.Lock()
	d.lines += b.Lines
	d.bytes += len(b.Data)
	d.mu.Unlock()
	for i, disp := range dispatchers {
		d.mu.Lock()
		d.pending++
		d.mu.Unlock()
		err := disp.Submit(ctx, b, func(err error) {
			release(1)
			d.ack(i, err)
		})
		if err != nil {
			// Submit refused: this dispatcher and the ones not asked yet never hold the chunk.
			release(int32(len(dispatchers) - i))
			d.mu.Lock()
			d.refused = true
			for j := i + 1; j < len(dispatchers); j++ {
				d.fail(j, err)
			}
			d.mu.Unlock()
			d.ack(i, err)
			return err
		}
	}
	return nil
}

// fail records err for dispatcher i unless it already failed. Called with d.mu held.
func (d *delivery) fail(i int, err error) {
	if d.results[i].err == nil {
		d.results[i].err = err
	}
}

func (d *delivery) ack(i int, err error) {
	var rejected dispatch.Rejected
	d.mu.Lock()
	d.pending--
	d.results[i].last = time.Now()
	switch {
	case err == nil:
	case errors.As(err, &rejected):
		d.results[i].rejected = addReason(d.results[i].rejected, rejected.Rejected())
	default:
		d.fail(i, err)
	}
	fire := d.finished && d.pending == 0 && !d.fired
	if fire {
		d.fired = true
	}
	d.mu.Unlock()
	if err == nil && d.progress != nil {
		d.progress()
	}
	if fire {
		d.onDone(deliveryDone{produce: d.produce, refused: d.refused, results: d.results, lines: d.lines, bytes: d.bytes})
	}
}

// finish records that the producer is done (with its error, if any).
func (d *delivery) finish(err error) {
	d.mu.Lock()
	d.finished = true
	d.produce = err
	fire := d.pending == 0 && !d.fired
	if fire {
		d.fired = true
	}
	d.mu.Unlock()
	if fire {
		d.onDone(deliveryDone{produce: d.produce, refused: d.refused, results: d.results, lines: d.lines, bytes: d.bytes})
	}
}

// addReason appends reason to reasons unless it is already there, keeping at most maxReasons
// (the last slot then says that there were more) of at most maxReasonBytes each.
func addReason(reasons []string, reason string) []string {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes] + "…"
	}
	for _, r := range reasons {
		if r == reason {
			return reasons
		}
	}
	switch {
	case len(reasons) < maxReasons-1:
		return append(reasons, reason)
	case len(reasons) == maxReasons-1:
		return append(reasons, "and more")
	}
	return reasons
}
