package haproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/statspipe/statspipe/internal/metric"
)

const (
	readBufferSize = 256 << 10
	// maxRecord bounds one CSV record (and a whole *_info file): a reply this large is not
	// HAProxy's, and reading it would only use memory.
	maxRecord = 64 << 20
	// headerFields is how many header fields are kept; HAProxy 3.x has about 200 with modules.
	headerFields = 4096
	// cellsLoggedPerFile bounds the log lines about bad cells of one file.
	cellsLoggedPerFile = 5
)

// fileReader streams one file through a reused buffer.
type fileReader struct {
	f    *os.File
	buf  []byte
	r, w int
	eof  bool
}

func (fr *fileReader) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	fr.f, fr.r, fr.w, fr.eof = f, 0, 0, false
	return nil
}

func (fr *fileReader) close() {
	if fr.f != nil {
		fr.f.Close()
		fr.f = nil
	}
}

// fill moves the unread bytes to the front and reads more, growing the buffer when a single
// record does not fit.
func (fr *fileReader) fill() error {
	if fr.r > 0 {
		fr.w = copy(fr.buf, fr.buf[fr.r:fr.w])
		fr.r = 0
	}
	if fr.w == len(fr.buf) {
		if len(fr.buf) >= maxRecord {
			return fmt.Errorf("a record is longer than %d bytes", maxRecord)
		}
		nb := make([]byte, 2*len(fr.buf))
		copy(nb, fr.buf[:fr.w])
		fr.buf = nb
	}
	n, err := fr.f.Read(fr.buf[fr.w:])
	fr.w += n
	if err == io.EOF {
		fr.eof = true
		return nil
	}
	return err
}

// readAll reads a whole (small) file into the reused buffer.
func (fr *fileReader) readAll(path string) ([]byte, error) {
	if err := fr.open(path); err != nil {
		return nil, err
	}
	defer fr.close()
	for !fr.eof {
		if err := fr.fill(); err != nil {
			return nil, err
		}
	}
	return fr.buf[:fr.w], nil
}

// statError is a problem that rejects a whole stat file.
type statError struct {
	line int
	msg  string
}

func (e *statError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return e.msg
}

// parseStatFile aggregates the rows of one `show stat` reply. scanned reports whether a data row
// was reached (so the aggregates or column types may have been touched) before an error.
func (p *Processor) parseStatFile(path string) (scanned bool, err error) {
	if err := p.rd.open(path); err != nil {
		return false, err
	}
	defer p.rd.close()
	p.file = path
	p.startCache(filepath.Base(path))
	p.badCells = 0
	p.lastFeOK, p.lastBeOK = false, false
	p.typingDone = false
	clear(p.vals) // slots without a column in this file stay 0
	p.sc.setWant(headerFields)
	header := true
	rows := 0
	lineNo := 1
	for {
		data := p.rd.buf[p.rd.r:p.rd.w]
		if header {
			n, nFields, nLines, st := p.sc.next(data, p.rd.eof)
			switch {
			case st == scanNeedMore:
				if err := p.rd.fill(); err != nil {
					return false, err
				}
				continue
			case st == scanBadQuote:
				return false, &statError{lineNo, "quoted field is not closed before the end of the file"}
			case n == 0:
				return false, errors.New("empty file")
			}
			p.rd.r += n
			recLine := lineNo
			lineNo += nLines
			if nFields == 0 {
				continue // blank line
			}
			if err := p.header(nFields, data[:n]); err != nil {
				return false, &statError{recLine, err.Error()}
			}
			header = false
			continue
		}

		nl := bytes.IndexByte(data, '\n')
		if nl < 0 && !p.rd.eof {
			if err := p.rd.fill(); err != nil {
				return p.typingDone, err
			}
			continue
		}
		line, consumed, nLines := data, len(data), 0
		if nl >= 0 {
			line, consumed, nLines = data[:nl], nl+1, 1
		} else if len(data) == 0 {
			break
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			p.rd.r += consumed
			lineNo += nLines
			continue // blank line
		}
		if !p.typingDone {
			p.applyHeaderTyping()
		}
		p.curLine = lineNo
		p.pxS, p.pxE, p.svS, p.svE, p.tyS, p.tyE = 0, 0, 0, 0, 0, 0
		var nFields int
		base := line
		if bytes.IndexByte(line, '"') < 0 {
			nFields = p.scanLine(line)
		} else {
			n, nf, nls, st := p.sc.nextQuoted(data, p.rd.eof)
			if st == scanNeedMore {
				if err := p.rd.fill(); err != nil {
					return p.typingDone, err
				}
				continue
			}
			if st == scanBadQuote {
				return true, &statError{lineNo, "quoted field is not closed before the end of the file"}
			}
			consumed, nLines, nFields = n, nls, nf
			p.class = classGeneric
			base = p.sc.unquoted
			for k := 0; k < p.sc.kept; k++ {
				if c := p.colCode[k]; c != codeNone {
					p.setField(c, base, int(p.sc.start[k]), int(p.sc.end[k]))
				}
			}
			if nFields < len(p.colCode) {
				p.shortRow(p.colCode, nFields)
			}
		}
		p.rd.r += consumed
		recLine := lineNo
		lineNo += nLines
		if nFields > p.nHeader {
			return true, &statError{recLine, fmt.Sprintf(
				"row has %d fields, the header has %d", nFields, p.nHeader)}
		}
		p.row(base)
		rows++
	}
	if p.badCells > cellsLoggedPerFile && p.logCells {
		p.problem(slog.LevelWarn, "more non-numeric cells treated as empty", "file", path,
			"count", p.badCells-cellsLoggedPerFile)
	}
	if header {
		return false, errors.New("empty file")
	}
	if rows == 0 {
		return false, errors.New("header line only, no rows")
	}
	return true, nil
}

// header maps the columns of the header record by name.
func (p *Processor) header(nFields int, raw []byte) error {
	first := p.sc.field(0)
	if len(first) == 0 || first[0] != '#' {
		return fmt.Errorf("no `# pxname,…` header, not a `show stat` reply: %s", firstLine(raw))
	}
	if string(bytes.TrimLeft(first[1:], " ")) != "pxname" {
		return fmt.Errorf("header does not start with `# pxname`: %s", firstLine(raw))
	}
	for s := range p.colOfSlot {
		p.colOfSlot[s] = -1
	}
	svCol, typeCol := -1, -1
	for i := 1; i < p.sc.kept; i++ {
		name := p.sc.field(i)
		switch string(name) {
		case "svname":
			if svCol < 0 {
				svCol = i
			}
		case "type":
			if typeCol < 0 {
				typeCol = i
			}
		}
		if s, ok := p.lay.slotIndex[string(name)]; ok && p.colOfSlot[s] < 0 {
			p.colOfSlot[s] = int32(i)
		}
	}
	if svCol < 0 {
		return errors.New("header has no svname column")
	}
	if typeCol < 0 {
		return errors.New("header has no type column")
	}
	maxCol := max(svCol, typeCol)
	for _, c := range p.colOfSlot {
		maxCol = max(maxCol, int(c))
	}
	p.colCode = slices.Grow(p.colCode[:0], maxCol+1)[:maxCol+1]
	for i := range p.colCode {
		p.colCode[i] = codeNone
	}
	p.colCode[0], p.colCode[svCol], p.colCode[typeCol] = codePx, codeSv, codeType
	for s, c := range p.colOfSlot {
		if c >= 0 {
			p.colCode[c] = int32(s)
		}
	}
	p.svCol, p.typeCol = svCol, typeCol
	p.nHeader = nFields
	p.sc.setWant(maxCol + 1)
	p.plansDirty = true
	return nil
}

// applyHeaderTyping runs at the first row of a file, so that a file rejected at its header
// leaves no trace: a column missing from a used file makes the column a float column (pandas
// fills it with NaN when concatenating).
func (p *Processor) applyHeaderTyping() {
	p.typingDone = true
	for s, c := range p.colOfSlot {
		if c >= 0 {
			p.slotPresent[s] = true
		} else {
			p.slotFloat[s] = true
		}
	}
}

// row aggregates the current record, whose cells are in p.vals and whose names and type are at
// the recorded offsets of base.
func (p *Processor) row(base []byte) {
	px, sv := base[p.pxS:p.pxE], base[p.svS:p.svE]
	if len(px) == 0 || len(sv) == 0 {
		p.badCell("pxname/svname", px, "row without a proxy or server name skipped")
		return
	}
	t := base[p.tyS:p.tyE]
	isServer := len(t) == 1 && t[0] == '2' || len(t) > 1 && parseCellValue(t) == 2
	if isServer && p.class != classServer {
		// A FRONTEND or BACKEND row of type 2 (not something HAProxy writes): the server
		// cells were not parsed for it.
		p.rescanGeneric(base)
	}
	lay := &p.lay
	vals := p.vals
	if string(sv) == "FRONTEND" {
		fe := p.frontendOf(px)
		if !p.fe.excl[fe] {
			acc := p.fe.accOf(fe)
			p.fe.rows[fe]++
			for i, s := range lay.fe {
				acc[i] += vals[s]
			}
		}
	}
	if string(sv) == "BACKEND" {
		be := p.backendOf(px)
		if !p.be.excl[be] {
			acc := p.be.accOf(be)
			p.be.rows[be]++
			for i, s := range lay.beSum {
				acc[i] += vals[s]
			}
			acc = acc[len(lay.beSum):]
			for i, s := range lay.beAvg {
				acc[i] += vals[s]
			}
			if vals[lay.lbtot] > 0 {
				p.be.trows[be]++
				acc = acc[len(lay.beAvg):]
				for i, s := range lay.beTime {
					acc[i] += vals[s]
				}
			}
		}
	}
	if !isServer {
		return
	}
	be := p.backendOf(px)
	srv, aggr := p.serverOf(be, sv)
	if srv >= 0 {
		p.addServer(p.srv, srv, lay.srvSum)
	}
	if aggr >= 0 {
		p.addServer(p.aggr, aggr, lay.aggrSum)
	}
}

// rowCache remembers, per stat file, the server entities of its server rows in order: a
// process lists its servers in the same order in every snapshot, so comparing the raw server
// name with the previous snapshot's row at the same position (the backend is compared as an
// entity) replaces sanitising the name and a map lookup (cache misses on a map of thousands of
// strings) by one short byte comparison.
type rowCache struct {
	used      uint32 // generation of the pass that last used it
	srvEpoch  uint32
	aggrEpoch uint32
	names     []byte // raw pxname and svname of every cached row, back to back
	rows      []cachedRow
	next      int // ordinal of the next server row in the current file
}

type cachedRow struct {
	off, svLen int32
	be         int32 // backend entity
	srv, aggr  int32 // entities; -1 for none (excluded backend, no aggregation)
}

// startCache selects the row cache of stat file name for the rows that follow.
func (p *Processor) startCache(name string) {
	c := p.caches[name]
	if c == nil {
		c = &rowCache{}
		p.caches[name] = c
	}
	if c.srvEpoch != p.srv.epoch || c.aggrEpoch != p.aggr.epoch {
		c.rows, c.names = c.rows[:0], c.names[:0]
		c.srvEpoch, c.aggrEpoch = p.srv.epoch, p.aggr.epoch
	}
	c.used = p.gen
	c.next = 0
	p.cache = c
}

// dropStaleCaches forgets the caches of files that were not in the last snapshot.
func (p *Processor) dropStaleCaches() {
	for name, c := range p.caches {
		if c.used != p.gen {
			delete(p.caches, name)
		}
	}
}

// serverOf returns the server entity of (backend be, server sv) and its server.* aggregate
// (-1 when the backend is excluded, or without aggr-server-metrics), activated for this pass.
func (p *Processor) serverOf(be int32, sv []byte) (srv, aggr int32) {
	c := p.cache
	j := c.next
	c.next++
	if j < len(c.rows) {
		r := c.rows[j]
		if r.be == be && string(c.names[r.off:r.off+r.svLen]) == string(sv) && (r.srv < 0) == p.be.excl[be] {
			if r.srv >= 0 {
				p.srv.activate(r.srv, p.gen)
			}
			if r.aggr >= 0 {
				p.aggr.activate(r.aggr, p.gen)
			}
			return r.srv, r.aggr
		}
		// the rows changed from here on: record them again
		c.rows = c.rows[:j]
		c.names = c.names[:r.off]
	}
	srv, aggr = -1, -1
	if !p.be.excl[be] {
		// key: backend entity index, then the sanitised server name
		p.keyBuf = binary.LittleEndian.AppendUint32(p.keyBuf[:0], uint32(be))
		p.keyBuf = metric.AppendComponent(p.keyBuf, sv)
		var fresh bool
		srv, fresh = p.srv.lookup(p.keyBuf, p.gen)
		if fresh {
			p.srv.names[srv] = p.srv.keys[srv][4:]
			p.srv.parent[srv] = be
		}
	}
	if p.lay.aggrSum != nil {
		p.keyBuf = metric.AppendComponent(p.keyBuf[:0], sv)
		aggr, _ = p.aggr.lookup(p.keyBuf, p.gen)
	}
	if j == len(c.rows) {
		if len(c.rows) == cap(c.rows) { // double (append grows large slices by only 1.25×)
			c.rows = slices.Grow(c.rows, max(256, len(c.rows)))
			c.names = slices.Grow(c.names, max(4096, len(c.names)))
		}
		off := int32(len(c.names))
		c.names = append(c.names, sv...)
		c.rows = append(c.rows, cachedRow{off, int32(len(sv)), be, srv, aggr})
	}
	return srv, aggr
}

func (p *Processor) addServer(t *table, e int32, sum []int) {
	lay := &p.lay
	vals := p.vals
	acc := t.accOf(e)
	t.rows[e]++
	for i, s := range sum {
		acc[i] += vals[s]
	}
	acc = acc[len(sum):]
	for i, s := range lay.srvAvg {
		acc[i] += vals[s]
	}
	if vals[lay.lbtot] > 0 {
		t.trows[e]++
		acc = acc[len(lay.srvAvg):]
		for i, s := range lay.srvTime {
			acc[i] += vals[s]
		}
	}
}

func (p *Processor) frontendOf(px []byte) int32 {
	if p.lastFeOK && bytes.Equal(px, p.lastFe) {
		return p.lastFeIdx
	}
	p.keyBuf = metric.AppendComponent(p.keyBuf[:0], px)
	fe, fresh := p.fe.lookup(p.keyBuf, p.gen)
	if fresh {
		_, p.fe.excl[fe] = p.exclFe[p.fe.names[fe]]
	}
	p.lastFe = append(p.lastFe[:0], px...)
	p.lastFeIdx, p.lastFeOK = fe, true
	return fe
}

func (p *Processor) backendOf(px []byte) int32 {
	if p.lastBeOK && bytes.Equal(px, p.lastBe) {
		return p.lastBeIdx
	}
	p.keyBuf = metric.AppendComponent(p.keyBuf[:0], px)
	be, fresh := p.be.lookup(p.keyBuf, p.gen)
	if fresh {
		_, p.be.excl[be] = p.exclBe[p.be.names[be]]
	}
	p.lastBe = append(p.lastBe[:0], px...)
	p.lastBeIdx, p.lastBeOK = be, true
	return be
}

// cell parses a non-empty cell that is not a plain integer, through strconv. A cell that is not
// a number is reported and counts as empty (0), as an empty cell does.
func (p *Processor) cell(s int, b []byte) float64 {
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		p.slotFloat[s] = true
		p.badCell(p.lay.slotNames[s], b, "non-numeric cell treated as empty")
		return 0
	}
	// pandas reads such a column as float64; NaN cells become 0 (fillna)
	p.slotFloat[s] = true
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func (p *Processor) badCell(column string, value []byte, msg string) {
	p.badCells++
	if !p.logCells || p.badCells > cellsLoggedPerFile {
		return
	}
	if len(value) > 40 {
		value = value[:40]
	}
	p.problem(slog.LevelWarn, msg, "file", p.file, "line", p.curLine, "column", column,
		"value", strconv.Quote(string(value)))
}

// parseUint parses an optionally negative decimal integer of at most 18 digits.
func parseUint(b []byte) (float64, bool) {
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		d := c - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	if neg {
		return -float64(n), true
	}
	return float64(n), true
}

// parseCellValue parses a cell outside the aggregation (the type column); bad text is -1.
func parseCellValue(b []byte) float64 {
	if v, ok := parseUint(b); ok {
		return v
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
	if err != nil {
		return -1
	}
	return v
}
