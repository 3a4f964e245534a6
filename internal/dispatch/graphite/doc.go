// Package graphite delivers Graphite plaintext lines ("<path> <value> <timestamp>\n") to carbon
// (carbon-cache, carbon-relay, carbon-c-relay, go-carbon…) over one TCP connection at a time.
//
// # Delivery
//
// Submit appends a chunk (metric.Batch) to an in-memory FIFO and returns; one writer goroutine
// owns the connection and writes the queue oldest-first, several chunks per writev(2) call
// (up to 1 MiB). Bytes are passed through untouched: nothing is added, removed or re-ordered,
// except a line skipped by careful mode (below).
//
// A chunk is done(nil) only once the peer application is proven to have read it (README
// "Graphite" has the operator's version and the measurements):
//
//   - Drain: when nothing more is to be written and the peer's TCP acknowledged everything,
//     the writer waits drainHold (strictHold, and the peer's window reopened, in careful
//     mode or after a line over carbon's 16 KiB limit), half-closes, and a clean EOF from the
//     peer proves everything written on the connection: the application reads our end of
//     stream only after every byte before it, and a Linux peer closing with unread data
//     resets instead. The writer then reconnects at once.
//   - Replay hold: a proven chunk is held (within QueueBytes/4) until the application showed
//     life (its window's right edge moved, or a drain answered) replayHold after the proof; a
//     connection that ends before sends held chunks again, once. carbon-cache loses what it
//     read during its last second or so when it is stopped or killed.
//
// The window (TCP_INFO: acknowledged + advertised) only shows progress: it is no proof, since
// a receiver autotuning its buffer while full moves its right edge without reading.
// done callbacks run on the writer goroutine, oldest
// chunk first, and must not block: the next write waits for them.
//
// A connection that fails, or on which the peer shows no progress for stall-timeout, is closed
// gracefully (FIN: the peer may still read what it holds); its unproven chunks, and its held
// ones, go out again, first, on the next connection, from the first byte of the oldest one.
// A chunk cut by the failure may have left a partial last line on the dead connection; carbon's
// line receiver discards an unterminated line when the connection closes. Re-sent lines are
// harmless for carbon-cache (same path and timestamp: it keeps one value); an aggregating
// relay (carbon-c-relay `aggregate … compute sum`) would count them twice.
//
// After the peer ended a connection that carried unproven data, the writer is in careful mode:
// each connection carries a budget of bytes and ends with a drain; the budget doubles after
// each success (careful mode ends at QueueBytes) and, after a connection that died before its
// drain, the longest line of what it carried is tried alone, then the rest in halves. A line
// that killed two connections on its own is skipped, logged once, and its chunk's done gets a
// *RejectedError (dispatch.Rejected).
//
// Nothing else is ever dropped: the dispatcher retries until Close, and when it holds
// queue-size lines or queue-bytes bytes unproven, Submit blocks (back-pressure) so that
// snapshots wait on disk. NewOnce gives up instead after one failed connect round or one stall.
//
// # Options ([graphite] section)
//
//   - server, port: the carbon plaintext listener. IPv6 literals are accepted without
//     brackets ("::1").
//   - connect-timeout (s): the longest one TCP connect attempt may take.
//   - write-timeout (s): how long one blocked write waits before the writer checks progress,
//     stall-timeout and shutdown; it never ends a connection by itself.
//   - stall-timeout (s): no progress (bytes acknowledged, window's right edge, drain answer)
//     for this long gives the connection up.
//   - retries: connect attempts per round are retries+1 (0 means one attempt, -1 means the round
//     never ends).
//   - interval (s) and backoff: before attempt k ≥ 2 of a round the writer sleeps
//     interval·backoff^(k−2), never longer than max(delay, interval); every sleep is drawn
//     from [½, 1] of its value (jitter).
//   - delay (s): the pause after a failed round. A connection that ends without a drain and
//     proved nothing counts as a failed attempt; one that proved something is followed by a
//     wait of interval. The reconnection after a drain is immediate.
//   - queue-size, queue-bytes: the most lines and bytes unproven before Submit blocks. A chunk
//     larger than that is still accepted when nothing is unproven, so progress is always
//     possible.
//
// Differences from haproxystats 0.5.2 (haproxystats.md §7.1, §10.2 rows 1–4): it sent one line
// per send(2), drained its backlog newest-first and only when a later line was sent, slept
// inside the worker while reconnecting, and dropped the oldest lines when its queue was full.
//
// Logging: the first connection; each loss (with the error and how many lines were unproven)
// and its reconnection, each failed round, rate-limited to one a minute per ongoing fault with
// a suppressed count; a skipped line, once. Nothing is logged per chunk or per drain.
package graphite
