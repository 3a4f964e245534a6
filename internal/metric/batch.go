// Package metric holds what flows from aggregation to the dispatchers: the Graphite plaintext
// lines of one snapshot, built once and handed unchanged to every dispatcher.
package metric

// Batch is every line of one snapshot. Data holds whole lines only, each
// "<path> <value> <timestamp>\n", so a dispatcher may cut it at any '\n' and never split a line.
type Batch struct {
	// Timestamp is the snapshot directory name (epoch seconds): the timestamp of every line.
	Timestamp int64
	// Source names the snapshot (its directory path) for log lines.
	Source string
	Data   []byte
	Lines  int
}
