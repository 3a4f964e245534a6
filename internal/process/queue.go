package process

import (
	"container/heap"
	"context"
	"sync"

	"github.com/statspipe/statspipe/internal/spool"
)

// queue holds the snapshots waiting for a worker, oldest first, and remembers every snapshot
// that is waiting or in flight so that a rescan, a duplicate event or an overflow never hands the
// same directory to two workers.
type queue struct {
	mu      sync.Mutex
	items   snapshotHeap
	known   map[string]bool // by name: waiting or being processed/delivered
	wake    chan struct{}
	stopped bool
}

type snapshot struct {
	spool.Entry
	ts    int64
	valid bool // the name is an integer epoch
}

func newQueue() *queue {
	return &queue{known: make(map[string]bool), wake: make(chan struct{}, 1)}
}

// push adds e unless it is already waiting or in flight; it reports whether e was added.
func (q *queue) push(e spool.Entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || q.known[e.Name] {
		return false
	}
	ts, ok := spool.TimestampOf(e.Name)
	q.known[e.Name] = true
	heap.Push(&q.items, snapshot{Entry: e, ts: ts, valid: ok})
	q.signal()
	return true
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop blocks until a snapshot is waiting or ctx ends. The snapshot stays known until done.
// Once ctx has ended it returns false even while snapshots wait: a stop takes no new ones.
func (q *queue) pop(ctx context.Context) (snapshot, bool) {
	for {
		if ctx.Err() != nil {
			return snapshot{}, false
		}
		q.mu.Lock()
		if len(q.items) > 0 {
			s := heap.Pop(&q.items).(snapshot)
			if len(q.items) > 0 {
				q.signal() // another worker may be waiting too
			}
			q.mu.Unlock()
			return s, true
		}
		closed := q.stopped
		q.mu.Unlock()
		if closed {
			q.signal() // pass the news on to the next idle worker
			return snapshot{}, false
		}
		select {
		case <-ctx.Done():
			return snapshot{}, false
		case <-q.wake:
		}
	}
}

// knows reports whether name is waiting or in flight.
func (q *queue) knows(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.known[name]
}

// done forgets name, so a later scan may queue it again (for example after a failed delivery).
func (q *queue) done(name string) {
	q.mu.Lock()
	delete(q.known, name)
	q.mu.Unlock()
}

// close makes pop return false once the waiting snapshots are taken, and push a no-op.
func (q *queue) close() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// snapshotHeap orders integer names numerically (oldest first); names that are not timestamps
// come after them, by name, and are quarantined when their turn comes.
type snapshotHeap []snapshot

func (h snapshotHeap) Len() int { return len(h) }
func (h snapshotHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.valid != b.valid {
		return a.valid
	}
	if a.valid && a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.Name < b.Name
}
func (h snapshotHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *snapshotHeap) Push(x any)   { *h = append(*h, x.(snapshot)) }
func (h *snapshotHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
