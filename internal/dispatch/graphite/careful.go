package graphite

import (
	"bytes"

	"github.com/statspipe/statspipe/internal/metric"
)

// carbonMaxLine is carbon's line limit (Twisted's LineReceiver.MAX_LENGTH, '\n' excluded):
// carbon drops the connection on a longer line.
const carbonMaxLine = 16 << 10

// careful is the mode for a stream that keeps killing connections at the same place (a peer
// that drops the connection on a line, or after a number of bytes): each connection carries
// at most budget bytes, ends with a drain, and on failure the piece is halved, the longest
// line of a failed piece tried alone first, down to the single line that is then skipped.
type careful struct {
	on     bool
	budget int
	// A suspect line of queue[0], tried alone; suspectFails counts connections it killed.
	suspect, suspectLen, suspectFails int
	hasSuspect                        bool
	suspectOf                         *metric.Batch
}

// pieceEnd is where the piece of it sent on a careful connection ends (len(Data): whole).
func (c *careful) pieceEnd(it item) int {
	data := it.b.Data
	if c.hasSuspect && c.suspectOf == it.b {
		if it.skip < c.suspect {
			return lineEndAtMost(data, it.skip, min(c.suspect, it.skip+c.budget))
		}
		return c.suspect + c.suspectLen // the suspect line alone
	}
	if len(data)-it.skip <= c.budget {
		return len(data)
	}
	return lineEndAtMost(data, it.skip, it.skip+c.budget)
}

// lineEndAtMost is the end of the last whole line of data[from:] ending at or before limit,
// or of the first line when none does.
func lineEndAtMost(data []byte, from, limit int) int {
	limit = min(limit, len(data))
	if i := bytes.LastIndexByte(data[from:limit], '\n'); i >= 0 {
		return from + i + 1
	}
	if i := bytes.IndexByte(data[limit:], '\n'); i >= 0 {
		return limit + i + 1
	}
	return len(data)
}

// longLineNearEnd reports a line longer than carbon's 16 KiB limit among the last 64 KiB
// (one carbon read) written on this connection: carbon drops the connection on reading it.
func (d *Dispatcher) longLineNearEnd() bool {
	w := &d.w
	const window = 64 << 10
	d.mu.Lock()
	defer d.mu.Unlock()
	left := window
	run := 0 // bytes since the last '\n' seen, scanning backwards
	for i := w.held + w.written - 1; i >= w.held && left > 0; i-- {
		it := d.queue[i]
		end := len(it.b.Data)
		if w.piece && i == w.held+w.written-1 {
			end = w.pieceEnd
		}
		data := it.b.Data[max(it.skip, end-left):end]
		left -= len(data)
		for len(data) > 0 {
			j := bytes.LastIndexByte(data, '\n')
			if j < 0 {
				run += len(data)
				break
			}
			if run+len(data)-j-1 > carbonMaxLine {
				return true
			}
			run = 0
			data = data[:j]
		}
		if run > carbonMaxLine {
			return true
		}
	}
	return false
}

// carefulAfterLoss narrows down a place where connections keep dying.
func (d *Dispatcher) carefulAfterLoss(first *metric.Batch, tried bool, from, to int) {
	w := &d.w
	c := &w.care
	if !tried {
		return
	}
	if c.hasSuspect && from == c.suspect && to == c.suspect+c.suspectLen {
		c.suspectFails++
		if c.suspectFails >= 2 {
			d.rejectLine(first, from, c.suspectLen)
			if n := c.suspectLen; n-1 > carbonMaxLine && (w.rejectAtLeast == 0 || n < w.rejectAtLeast) {
				w.rejectAtLeast = n
			}
			c.hasSuspect = false
			c.budget = max(c.budget, len(first.Data)-from-c.suspectLen) // the rest in one piece
		}
		return
	}
	if !c.hasSuspect {
		// Try the longest line of the failed piece alone first: the usual culprit.
		start, n := longestLine(first.Data[from:to])
		c.hasSuspect, c.suspect, c.suspectLen, c.suspectFails = true, from+start, n, 0
		c.suspectOf = first
		if start == 0 && from+n == to {
			c.suspectFails = 1 // the piece was that line alone
		}
	} else {
		c.hasSuspect = false
	}
	c.budget = max((to-from)/2, 1)
}

// rejectLine skips the line at b.Data[off:off+n] for good.
func (d *Dispatcher) rejectLine(b *metric.Batch, off, n int) {
	d.mu.Lock()
	i := 0
	for i < len(d.queue)-1 && d.queue[i].b != b {
		i++
	}
	it := &d.queue[i]
	line := it.b.Data[off : off+n]
	prefix := string(line[:min(len(line), lineProbeMax)])
	it.rejected = append(it.rejected, rejectedLine{offset: off, length: n, prefix: prefix})
	it.skip = off + n
	src, seq := it.b.Source, it.b.Seq
	d.mu.Unlock()
	d.rejected.Add(1)
	d.log.Error("graphite: the receiver drops the connection on this line every time; skipped",
		"address", d.addr, "snapshot", src, "chunk", seq, "offset", off, "length", n, "line_prefix", prefix)
}

// longestLine returns the offset and length (with its '\n') of the longest line of data.
func longestLine(data []byte) (int, int) {
	best, bestLen := 0, 0
	for pos := 0; pos < len(data); {
		i := bytes.IndexByte(data[pos:], '\n')
		n := i + 1
		if i < 0 {
			n = len(data) - pos
		}
		if n > bestLen {
			best, bestLen = pos, n
		}
		pos += n
	}
	return best, bestLen
}

// skipKnownRejectedLocked is called, with d.mu held, for the chunk a careful connection starts
// with. Once the receiver has rejected a line over carbon's limit (w.rejectAtLeast), a line at
// least that long is skipped at once when it comes first (trying it again would only cost two
// more connections, for each such line), and the piece ends before the next one. It returns
// where the piece must end at the latest (len(it.b.Data): anywhere).
func (d *Dispatcher) skipKnownRejectedLocked(it *item) int {
	limit := d.w.rejectAtLeast
	if limit == 0 {
		return len(it.b.Data)
	}
	data := it.b.Data
	skipped := 0
	end := len(data)
	for pos := it.skip; pos < len(data); {
		n := len(data) - pos
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			n = i + 1
		}
		if n >= limit {
			if pos != it.skip {
				end = pos // the lines before it go first, and must be proven first
				break
			}
			line := data[pos : pos+n]
			it.rejected = append(it.rejected, rejectedLine{offset: pos, length: n,
				prefix: string(line[:min(len(line), lineProbeMax)])})
			it.skip = pos + n
			skipped++
		}
		pos += n
	}
	if skipped > 0 {
		d.rejected.Add(uint64(skipped))
		d.log.Error("graphite: skipped lines at least as long as one the receiver kept dropping the connection on",
			"address", d.addr, "snapshot", it.b.Source, "chunk", it.b.Seq, "lines", skipped, "min_length", limit)
	}
	return end
}
