// Package dispatch defines what stats-process hands its Graphite plaintext lines to.
//
// A snapshot's lines reach every enabled dispatcher as a sequence of metric.Batch chunks.
// The worker deletes a snapshot directory only once every chunk of it got done(nil) from every
// enabled dispatcher (haproxystats.md §10.2 #1). Anything else leaves the snapshot on disk to be
// processed again; the retry goes only to the dispatchers that did not deliver every chunk of
// it (the runner remembers that in memory), so after a crash, or a failure of that same
// dispatcher, a dispatcher may see the same lines twice: that is harmless, because a line is
// identified by path and timestamp.
//
// Implementations: dispatch/graphite (one persistent TCP connection to carbon) and
// dispatch/localstore (<dir>/<ts>/stats files).
package dispatch

import (
	"context"
	"errors"

	"github.com/statspipe/statspipe/internal/metric"
)

// ErrClosed is returned by Submit once Close has been called; done is then never called.
var ErrClosed = errors.New("dispatcher is closed")

// Dispatcher delivers chunks of Graphite plaintext lines somewhere.
type Dispatcher interface {
	// Name identifies the dispatcher in logs ("graphite", "local-store").
	Name() string

	// Submit hands one chunk over. Chunks of one snapshot arrive in order from one goroutine
	// (Seq 0.., Last on the final one); different snapshots may interleave from several
	// workers. b and b.Data must stay unmodified until done is called.
	//
	// Submit blocks while the dispatcher holds its limit of undelivered lines (back-pressure)
	// and returns ctx.Err() if ctx ends first, or ErrClosed after Close; in both cases done is
	// never called. Otherwise Submit returns nil and done is called exactly once, from any
	// goroutine — possibly before Submit returns, so the caller must not hold a lock that done
	// needs: nil once the chunk is delivered, or the error that made the dispatcher give up on it.
	// done must return quickly and must not call Submit: it may run on the goroutine that
	// delivers the next chunks.
	Submit(ctx context.Context, b *metric.Batch, done func(error)) error

	// Close stops accepting, keeps delivering what it holds until ctx ends, then calls
	// done(err) for whatever is left and releases connections and files. It returns nil when
	// everything accepted was delivered, or an error saying how much was not.
	Close(ctx context.Context) error
}

// Rejected is implemented by the error a dispatcher passes to done for a chunk holding lines
// its receiver keeps refusing (a line carbon drops the connection on, every time): sending the
// snapshot again cannot help. The dispatcher still delivers the chunk's other lines and the
// later chunks before answering. The runner counts such a chunk as settled for that dispatcher
// (the snapshot is not sent to it again), delivers the rest of the snapshot everywhere, then
// quarantines it with every Rejected() reason (which names the line) instead of retrying it
// forever; it is never reported delivered. A Format's Process may return such an error too,
// after flushing every other line. Any other error passed to done keeps the snapshot on disk
// for a retry.
type Rejected interface {
	error
	Rejected() string
}

// SnapshotShipper is implemented by a dispatcher that sends a snapshot's raw files rather than
// its lines (dispatch/ship, the central tier's edge side). It reads the snapshot directory
// named by the Source of the snapshot's Last chunk, which stays in place until every
// dispatcher called done for it, and ignores the lines. When every enabled dispatcher is a
// SnapshotShipper the runner does not parse snapshots at all: it hands over one empty Last
// chunk per snapshot.
type SnapshotShipper interface {
	Dispatcher
	ShipsSnapshots()
}
