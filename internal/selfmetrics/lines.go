package selfmetrics

import (
	"strconv"

	"github.com/statspipe/statspipe/internal/metric"
)

// LineWriter writes a registry's values as Graphite lines, `<prefix>.statspipe.<program>.…
// <value> <ts>`, as one more part of a snapshot's chunk sequence: its Process has the method of
// process.Format. One LineWriter serves one worker.
type LineWriter struct {
	reg    *Registry
	prefix string // "<namespace>[.<host>].statspipe."
	buf    []byte
	tail   []byte
}

// NewLineWriter returns a LineWriter of reg's values below hostPrefix (`<namespace>[.<host>]`).
func NewLineWriter(reg *Registry, hostPrefix string) *LineWriter {
	return &LineWriter{reg: reg, prefix: hostPrefix + ".statspipe."}
}

// Process flushes one chunk with every value as of now, stamped ts. dir is not read.
func (w *LineWriter) Process(dir string, ts int64, flush metric.FlushFunc) error {
	samples := w.reg.Collect()
	w.tail = strconv.AppendInt(append(w.tail[:0], ' '), ts, 10)
	w.tail = append(w.tail, '\n')
	data := AppendLines(make([]byte, 0, len(samples)*(len(w.prefix)+48)), w.prefix, string(w.tail), samples)
	return flush(&metric.Batch{Timestamp: ts, Source: dir, Data: data, Lines: len(samples)})
}

// AppendBody appends the registry's values as `<program>.<path> <value>` lines, the body the
// statspipe source kind writes into a snapshot.
func (r *Registry) AppendBody(dst []byte) []byte {
	return AppendLines(dst, "", "\n", r.Collect())
}
