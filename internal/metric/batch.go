// Package metric holds what flows from aggregation to the dispatchers: Graphite plaintext lines,
// cut into chunks so that a large snapshot never sits in memory whole.
package metric

// Batch is one chunk of the lines of one snapshot. Data holds whole lines only, each
// "<path> <value> <timestamp>\n", so a dispatcher may cut it at any '\n' and never split a line.
// Chunks of one snapshot are produced by one goroutine, in order: Seq 0, 1, 2, …, and the last
// one has Last set (it may be empty). Dispatchers must not modify Data; it is shared by all of
// them.
type Batch struct {
	// Timestamp is the snapshot directory name (epoch seconds): the timestamp of every line.
	Timestamp int64
	// Source names the snapshot (its directory path) for log lines.
	Source string
	Seq    int
	Last   bool
	Data   []byte
	Lines  int

	pooled bool // Data is a chunk buffer that Recycle may reuse
}

// FlushFunc hands a full chunk to the dispatchers. It may block (back-pressure) and returns an
// error only when the chunk cannot be accepted (shutdown); the producer then stops.
type FlushFunc func(*Batch) error
