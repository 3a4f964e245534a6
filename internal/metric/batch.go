// Package metric holds what flows from aggregation to the dispatchers: Graphite plaintext lines,
// cut into chunks so that a large snapshot never sits in memory whole.
package metric

import "bytes"

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

// ReplacePrefix returns a chunk with the lines of b, each line that starts with from starting
// with to instead (the central tier writes an edge's lines under the edge's host name), and
// recycles b. Other lines are copied unchanged. With equal prefixes b itself is returned.
func ReplacePrefix(b *Batch, from, to []byte) *Batch {
	if string(from) == string(to) {
		return b
	}
	size := len(b.Data)
	if grow := len(to) - len(from); grow > 0 {
		size += grow * b.Lines
	}
	out := &Batch{Timestamp: b.Timestamp, Source: b.Source, Seq: b.Seq, Last: b.Last, Lines: b.Lines,
		Data: getBuffer(size), pooled: true}
	data := b.Data
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if rest, ok := bytes.CutPrefix(line, from); ok {
			out.Data = append(append(out.Data, to...), rest...)
		} else {
			out.Data = append(out.Data, line...)
		}
	}
	Recycle(b)
	return out
}
