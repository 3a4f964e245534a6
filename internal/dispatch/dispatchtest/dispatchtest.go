// Package dispatchtest holds what the dispatchers' tests and benchmarks share.
package dispatchtest

import (
	"strconv"

	"github.com/statspipe/statspipe/internal/metric"
)

// BenchSnapshot is, for the dispatchers' benchmarks, the size of haproxystats' 4 × 1000 × 10 synthetic snapshot
// (haproxystats.md §9): 362,605 lines of about 90 bytes, cut into 256 KiB chunks.
func BenchSnapshot() ([]*metric.Batch, int, int) {
	const lines, chunkSize = 362_605, 256 << 10
	var chunks []*metric.Batch
	buf := make([]byte, 0, chunkSize)
	n, size := 0, 0
	flush := func(last bool) {
		chunks = append(chunks, &metric.Batch{Timestamp: 1700000000, Source: "/spool/1700000000",
			Seq: len(chunks), Last: last, Data: buf, Lines: n})
		size += len(buf)
		buf, n = make([]byte, 0, chunkSize), 0
	}
	for i := range lines {
		var line []byte
		line = append(line, "loadbalancers.lb-0001_example_com.haproxy.backend.be_"...)
		line = strconv.AppendInt(line, int64(i/400), 10)
		line = append(line, ".server.srv_"...)
		line = strconv.AppendInt(line, int64(i/40%10), 10)
		line = append(line, ".hrsp_"...)
		line = strconv.AppendInt(line, int64(i%40), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i*7919%1000003), 10)
		line = append(line, " 1700000000\n"...)
		if len(buf)+len(line) > chunkSize {
			flush(false)
		}
		buf = append(buf, line...)
		n++
	}
	flush(true)
	return chunks, lines, size
}
