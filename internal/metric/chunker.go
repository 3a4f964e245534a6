package metric

import (
	"strconv"
	"sync"
)

// DefaultChunkSize is the chunk size used when none is given: large enough that a chunk costs
// one write, small enough that a few chunks in flight stay cheap.
const DefaultChunkSize = 256 << 10

// chunkSlack is spare capacity so that the line that crosses the chunk size rarely grows the
// buffer.
const chunkSlack = 4 << 10

// Chunker cuts the lines of one snapshot into Batches and hands each full one to a FlushFunc.
// Lines are appended straight into the chunk buffer, so writing a line allocates nothing:
//
//	b := c.Start()
//	b = append(b, path...)
//	b = append(b, ' ')
//	b = metric.AppendFloat(b, v)
//	c.End(b)
//
// A Chunker is reused for many snapshots (Reset) by one goroutine. A flushed chunk's memory is
// never touched again, since dispatchers may still hold it.
type Chunker struct {
	size   int
	flush  FlushFunc
	source string
	ts     int64
	tail   []byte // " <timestamp>\n"
	seq    int
	buf    []byte
	lines  int // lines in buf
	total  int // lines of the snapshot so far
	err    error
}

// NewChunker returns a Chunker whose chunks hold about size bytes (DefaultChunkSize if ≤ 0).
func NewChunker(size int) *Chunker {
	if size <= 0 {
		size = DefaultChunkSize
	}
	return &Chunker{size: size}
}

// Reset starts a new snapshot: lines get timestamp ts, chunks go to flush and name source.
func (c *Chunker) Reset(flush FlushFunc, source string, ts int64) {
	c.flush = flush
	c.source = source
	c.ts = ts
	c.tail = strconv.AppendInt(append(c.tail[:0], ' '), ts, 10)
	c.tail = append(c.tail, '\n')
	c.seq = 0
	c.buf = nil
	c.lines = 0
	c.total = 0
	c.err = nil
}

// Start returns the buffer to append one line's "<path> <value>" to.
func (c *Chunker) Start() []byte {
	if c.buf == nil {
		c.buf = getBuffer(c.size + chunkSlack)
	}
	return c.buf
}

// End completes the line appended to b (the slice Start returned, grown) with the timestamp and
// '\n', and flushes the chunk once it is full. After a flush error lines are dropped; Err
// reports it.
func (c *Chunker) End(b []byte) {
	if c.err != nil {
		c.buf = b[:0]
		return
	}
	c.buf = append(b, c.tail...)
	c.lines++
	c.total++
	if len(c.buf) >= c.size {
		c.flushChunk(false)
	}
}

// EndLines is End for n complete lines appended to b, each already ending with
// " <timestamp>\n" (see LineEnd).
func (c *Chunker) EndLines(b []byte, n int) {
	if c.err != nil {
		c.buf = b[:0]
		return
	}
	c.buf = b
	c.lines += n
	c.total += n
	if len(c.buf) >= c.size {
		c.flushChunk(false)
	}
}

// Lines is the number of lines written for this snapshot.
func (c *Chunker) Lines() int { return c.total }

// Err is the first flush error of this snapshot.
func (c *Chunker) Err() error { return c.err }

// Close flushes the final chunk (Last set, possibly empty) and returns the first flush error.
func (c *Chunker) Close() error {
	if c.err == nil {
		c.flushChunk(true)
	}
	return c.err
}

func (c *Chunker) flushChunk(last bool) {
	b := &Batch{
		Timestamp: c.ts,
		Source:    c.source,
		Seq:       c.seq,
		Last:      last,
		Data:      c.buf,
		Lines:     c.lines,
		pooled:    c.buf != nil,
	}
	if last && cap(c.buf) > 4*len(c.buf) {
		// The last chunk of a snapshot is usually far from full, and a small snapshot is only
		// that chunk: while Graphite is down, hundreds of them may wait in memory. Keep a copy
		// of the right size and give the chunk buffer back at once.
		b.Data, b.pooled = append([]byte(nil), c.buf...), false
		putBuffer(c.buf)
	}
	c.seq++
	c.buf = nil
	c.lines = 0
	if err := c.flush(b); err != nil {
		c.err = err
	}
}

// Chunk memory is recycled when the consumer says it is done with a Batch: a large snapshot is
// about 30 MB of lines, and fresh memory for every chunk costs page faults and garbage
// collection. Without Recycle calls chunks are simply garbage collected.
var freeChunks struct {
	sync.Mutex
	bufs [][]byte
}

// maxFreeChunks bounds the memory kept for reuse (16 default-size chunks ≈ 4 MiB unless
// SetFreeChunks says otherwise).
var maxFreeChunks = 16

// SetFreeChunks sets how many chunk buffers are kept for reuse (at least 1). A program whose
// dispatchers may hold n chunks at once sets about n: chunks then cycle between the
// dispatchers and the pool, and a steady stream allocates none, so the garbage collector has
// nothing to let grow (the pool only holds what the dispatchers are not holding). Call it
// before the first chunk is made.
func SetFreeChunks(n int) {
	freeChunks.Lock()
	maxFreeChunks = max(n, 1)
	freeChunks.Unlock()
}

// Recycle gives the memory of b.Data back for later chunks. Call it at most once per Batch,
// only when every consumer of b is done with b.Data (written and acknowledged, or dropped):
// the bytes will be overwritten. It clears b.Data.
func Recycle(b *Batch) {
	if b == nil {
		return
	}
	if b.pooled {
		putBuffer(b.Data)
	}
	b.Data, b.pooled = nil, false
}

func putBuffer(buf []byte) {
	if cap(buf) == 0 {
		return
	}
	freeChunks.Lock()
	if len(freeChunks.bufs) < maxFreeChunks {
		freeChunks.bufs = append(freeChunks.bufs, buf[:0])
	}
	freeChunks.Unlock()
}

func getBuffer(size int) []byte {
	freeChunks.Lock()
	for n := len(freeChunks.bufs); n > 0; n-- {
		buf := freeChunks.bufs[n-1]
		freeChunks.bufs[n-1] = nil
		freeChunks.bufs = freeChunks.bufs[:n-1]
		if cap(buf) >= size {
			freeChunks.Unlock()
			return buf
		}
	}
	freeChunks.Unlock()
	return make([]byte, 0, size)
}
