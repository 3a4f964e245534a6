package process

import (
	"context"
	"sync"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
)

// delivery counts the chunks of one snapshot that dispatchers still owe an answer for. The
// snapshot directory may be removed only when the producer has finished and every chunk was
// acknowledged by every dispatcher (the delivery rule).
type delivery struct {
	mu       sync.Mutex
	pending  int
	finished bool
	fired    bool
	err      error
	onDone   func(error)
}

func newDelivery(onDone func(error)) *delivery { return &delivery{onDone: onDone} }

// submit hands b to every dispatcher, counting each hand-over as owed.
func (d *delivery) submit(ctx context.Context, dispatchers []dispatch.Dispatcher, b *metric.Batch) error {
	for _, disp := range dispatchers {
		d.mu.Lock()
		d.pending++
		d.mu.Unlock()
		if err := disp.Submit(ctx, b, d.ack); err != nil {
			d.ack(err) // Submit refused: done will never be called for this chunk
			return err
		}
	}
	return nil
}

func (d *delivery) ack(err error) {
	d.mu.Lock()
	d.pending--
	if err != nil && d.err == nil {
		d.err = err
	}
	fire := d.finished && d.pending == 0 && !d.fired
	if fire {
		d.fired = true
	}
	d.mu.Unlock()
	if fire {
		d.onDone(d.err)
	}
}

// finish records that the producer is done (with its error, if any).
func (d *delivery) finish(err error) {
	d.mu.Lock()
	d.finished = true
	if err != nil && d.err == nil {
		d.err = err
	}
	fire := d.pending == 0 && !d.fired
	if fire {
		d.fired = true
	}
	d.mu.Unlock()
	if fire {
		d.onDone(d.err)
	}
}
