// Package graphite delivers Graphite plaintext lines ("<path> <value> <timestamp>\n") to carbon
// (carbon-cache, carbon-relay, carbon-c-relay, go-carbon…) over one persistent TCP connection.
//
// # Delivery
//
// Submit appends a chunk (metric.Batch) to an in-memory FIFO and returns; one writer goroutine
// owns the connection and writes the queue oldest-first, several chunks per writev(2) call
// (up to 1 MiB). Bytes are passed through untouched: nothing is added, removed or re-ordered.
//
// A chunk is acknowledged (done(nil)) once all its bytes were written to the socket, on Linux
// the peer's TCP stack has acknowledged them (the socket's unacknowledged send queue, SIOCOUTQ,
// has drained past the chunk's last byte), and the connection then stayed up for the replay
// window (3 s). Without the second condition a chunk written into the local send buffer just
// before the connection dies would be reported as delivered and its snapshot deleted, although
// it never left the machine; on other systems that condition is "written". The third covers
// what TCP cannot see: carbon's plaintext protocol has no application-level acknowledgement,
// and carbon-cache 1.1, when stopped, drops the points it received during its last second or
// so (its writer thread sleeps a second between passes and exits without draining its cache),
// as well as what was still unread in its socket. A stop ends the connection, so the chunks
// acknowledged within the window before a connection ends are sent again, first, on the next
// connection. The window gives way at once to back-pressure (a Submit waiting for space) and
// to Close, so it never slows the pipeline down; it only delays the removal of a snapshot from
// the spool by up to 3 s. Points that carbon loses more than 3 s after receiving them (a
// crash with a large cache) cannot be seen from here.
//
// done callbacks run on the writer goroutine, oldest chunk first, and must not block: the
// next write waits for them.
//
// When the connection fails, the writer resets it (unsent bytes are discarded, since they will
// be sent again) and reconnects in the background (triggered
// by the failure, not by new data), then re-sends, from its first byte, the oldest
// unacknowledged chunk and everything after it. A chunk cut by the failure may have left a
// partial last line on the dead connection; carbon's line receiver discards an unterminated line
// when the connection closes (twisted's LineOnlyReceiver keeps it in a buffer that dies with the
// connection), and the whole chunk is sent again on the new connection. Lines acknowledged
// longer than the replay window ago are not re-sent; lines acknowledged within it, or written
// but not yet acknowledged, may arrive twice, which is harmless for carbon-cache (same path and
// timestamp: it keeps one value). An aggregating relay in front of it (carbon-c-relay
// `aggregate … compute sum`) would count such lines twice for that interval.
//
// Nothing is ever dropped: the dispatcher retries until Close, and when it holds queue-size
// undelivered lines Submit blocks (back-pressure) so that snapshots wait on disk.
//
// # Options ([graphite] section)
//
//   - server, port: the carbon plaintext listener. IPv6 literals are accepted without
//     brackets ("::1").
//   - connect-timeout (s): the longest one TCP connect attempt may take.
//   - write-timeout (s): how long the connection may make no progress before it is declared
//     dead: a write call that gets no byte accepted within write-timeout, or written bytes that
//     the peer does not acknowledge within write-timeout. Any progress restarts the clock, so a
//     slow but working peer is not disconnected; a stalled or black-holed one is.
//   - retries: connect attempts per round are retries+1 (0 means one attempt, -1 means the round
//     never ends).
//   - interval (s) and backoff: before attempt k ≥ 2 of a round the writer sleeps
//     interval·backoff^(k−2) (1.8 s, 3.6 s, 7.2 s with the defaults), never longer than
//     max(delay, interval), which bounds the wait of an unbounded (retries = -1) round.
//   - delay (s): the pause after a failed round, before the next round starts. Each failed round
//     is logged once at error level, with the address and the last error. The first reconnect
//     after a working connection fails is immediate. A connection that fails before the peer
//     acknowledged anything, and sooner than delay after it was opened, counts as a failed
//     attempt, so a peer that accepts and then closes every connection cannot make the writer
//     spin.
//   - queue-size: the most lines the dispatcher holds (queued plus written but not yet
//     acknowledged) before Submit blocks. A chunk larger than queue-size is still accepted when
//     the queue is empty, so progress is always possible.
//
// Differences from haproxystats 0.5.2 (haproxystats.md §7.1, §10.2 rows 1–4): it sent one line
// per send(2), drained its backlog newest-first and only when a later line was sent, slept
// inside the worker while reconnecting, and dropped the oldest lines when its queue was full.
//
// Logging: the first connection, each loss (with the error and how many lines were
// unacknowledged), each failed round, and each reconnection (with the outage duration and the
// number of lines waiting) are logged once; nothing is logged per chunk.
package graphite
