package process

import (
	"context"
	"sync"
	"sync/atomic"

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

// submit hands b to every dispatcher, counting each hand-over as owed. The chunk's memory is
// recycled once the last dispatcher is done with it.
func (d *delivery) submit(ctx context.Context, dispatchers []dispatch.Dispatcher, b *metric.Batch) error {
	var holders atomic.Int32
	holders.Store(int32(len(dispatchers)))
	release := func(n int32) {
		if holders.Add(-n) == 0 {
			metric.Recycle(b)
		}
	}
	for i, disp := range dispatchers {
		d.mu.Lock()
		d.pending++
		d.mu.Unlock()
		err := disp.Submit(ctx, b, func(err error) {
			release(1)
			d.ack(err)
		})
		if err != nil {
			// Submit refused: this dispatcher and the ones not asked yet never hold the chunk.
			release(int32(len(dispatchers) - i))
			d.ack(err)
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
