package kafka

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/lograte"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// What the [kafka] dispatcher and the snapshot shipper (dispatch/ship) share about their
// producer client: the reconnect counter, the bound on failure logs and the close.

// ReconnectHook is a kgo hook that counts, in the self-metrics metrics returns (nil: none),
// the connections made again to a broker after one was closed.
type ReconnectHook struct {
	metrics func() *selfmetrics.Dispatcher
	mu      sync.Mutex
	lost    map[int32]bool
}

var (
	_ kgo.HookBrokerConnect    = (*ReconnectHook)(nil)
	_ kgo.HookBrokerDisconnect = (*ReconnectHook)(nil)
)

// NewReconnectHook returns a hook counting reconnects into metrics().
func NewReconnectHook(metrics func() *selfmetrics.Dispatcher) *ReconnectHook {
	return &ReconnectHook{metrics: metrics, lost: map[int32]bool{}}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *ReconnectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		return
	}
	h.mu.Lock()
	again := h.lost[meta.NodeID]
	delete(h.lost, meta.NodeID)
	h.mu.Unlock()
	if again {
		h.metrics().Reconnect()
	}
}

// OnBrokerDisconnect implements kgo.HookBrokerDisconnect.
func (h *ReconnectHook) OnBrokerDisconnect(meta kgo.BrokerMetadata, _ net.Conn) {
	h.mu.Lock()
	h.lost[meta.NodeID] = true
	h.mu.Unlock()
}

// FailureLog lets through one log line of a failing delivery per minute (an outage fails
// every chunk or snapshot), counting the ones held back. Its zero value is ready.
type FailureLog struct {
	mu sync.Mutex
	w  lograte.Window
}

// Allow reports whether to log now, and how many lines were held back before.
func (l *FailureLog) Allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Allow(time.Now(), time.Minute)
}

// CloseProducer flushes what cl holds until ctx ends, closes it (failing whatever is still
// buffered with kgo.ErrClientClosed), waits until every accepted item (pending) is answered,
// and returns how many of them failed (counted in failed) since the close began.
func CloseProducer(ctx context.Context, cl *kgo.Client, pending *sync.WaitGroup, failed *atomic.Int64) (int64, error) {
	before := failed.Load()
	flushErr := cl.Flush(ctx)
	cl.Close()
	pending.Wait()
	return failed.Load() - before, flushErr
}
