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
	"strings"

	"github.com/statspipe/statspipe/internal/spool"
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
	src  io.Reader // read instead of f when set (a typed reply's transcoder)
	buf  []byte
	r, w int
	eof  bool
}

// open refuses anything but a regular file directly in a real directory (spool.OpenSnapshotFile):
// a FIFO would block the worker forever, a symlink may lead outside the spool.
func (fr *fileReader) open(path string) error {
	f, err := spool.OpenSnapshotFile(path)
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
		nb := make([]byte, fr.grownSize())
		copy(nb, fr.buf[:fr.w])
		fr.buf = nb
	}
	var n int
	var err error
	if fr.src != nil {
		n, err = fr.src.Read(fr.buf[fr.w:])
	} else {
		n, err = fr.f.Read(fr.buf[fr.w:])
	}
	fr.w += n
	if err == io.EOF {
		fr.eof = true
		return nil
	}
	return err
}

// grownSize is the buffer size for a record longer than the buffer: twice the size, or at once
// room for the rest of the file when it is within maxRecord. Doubling up to a 60 MB record
// allocates twice its size in all and holds one and a half times it during the last copy.
func (fr *fileReader) grownSize() int {
	size := 2 * len(fr.buf)
	fi, err := fr.f.Stat()
	if err != nil {
		return size
	}
	pos, err := fr.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return size
	}
	// +1: a buffer that is not full when the file ends reads EOF without growing again
	if rest := fi.Size() - pos + int64(fr.w) + 1; rest > int64(size) && rest <= maxRecord {
		return int(rest)
	}
	return size
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
	if strings.HasSuffix(path, typedSuffix) {
		return p.parseTypedStatFile(path)
	}
	if err := p.rd.open(path); err != nil {
		return false, err
	}
	defer p.rd.close()
	return p.parseStat(path)
}

// parseStat aggregates the `show stat` reply that p.rd reads (path names it).
func (p *Processor) parseStat(path string) (scanned bool, err error) {
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
			if len(p.cache.rows) == 0 {
				p.reserveRows()
			}
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
		if p.wantStates() {
			p.stateS, p.stateE = [nStates]int{}, [nStates]int{}
		}
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

// maxReservedRows bounds what reserveRows reserves: 10 times the rows of a large
// configuration (1000 backends × 25 servers), 10 MB of row cache.
const maxReservedRows = 1 << 18

// reserveRows sizes the row cache and the server table for the rows of the current file when
// they start empty (a one-shot run, a new file): growing them by doubling copies them over
// and over and rehashes the map, which for a one-shot run costs more (copies, page faults,
// garbage) than filling them. The estimate is the file size times the density of lines in
// the first buffer read.
func (p *Processor) reserveRows() {
	if p.rd.f == nil { // a typed reply, transcoded in memory
		return
	}
	fi, err := p.rd.f.Stat()
	if err != nil || p.rd.w == 0 {
		return
	}
	lines := bytes.Count(p.rd.buf[:p.rd.w], []byte{'\n'})
	// lines differ in length: a little more rather than one more doubling; bounded, since a
	// first buffer of short lines says little about a large file
	rows := int(min(fi.Size()*int64(lines)/int64(p.rd.w)*9/8, maxReservedRows))
	c := p.cache
	c.rows = slices.Grow(c.rows, rows)
	c.names = slices.Grow(c.names, rows*16)
	p.srv.reserve(rows)
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
	p.stateCol = [nStates]int32{-1, -1, -1}
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
		if p.wantStates() {
			for k, col := range stateColumns {
				if string(name) == col && p.stateCol[k] < 0 && p.wantStatus(k) {
					p.stateCol[k] = int32(i)
				}
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
	for _, c := range p.stateCol {
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
	for k, c := range p.stateCol {
		// (no metric list has these text columns, so a value slot never takes them)
		if c >= 0 && p.colCode[c] == codeNone {
			p.colCode[c] = codeState0 - int32(k)
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
	e := p.entitiesOf(px, sv, isServer)
	lay := &p.lay
	vals := p.vals
	if fe := e.fe; fe >= 0 && !p.fe.excl[fe] {
		acc := p.fe.accOf(fe)
		p.fe.rows[fe]++
		for i, s := range lay.fe {
			acc[i] += vals[s]
		}
	}
	if be := e.be; e.backendRow && be >= 0 && !p.be.excl[be] {
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
	if (e.srv >= 0 || e.aggr >= 0) && p.opts.Filters.SkipMaintServers && p.maintRow(base) {
		return // (the server stays live with no rows: emitServers leaves it out)
	}
	if e.srv >= 0 {
		p.addServer(p.srv, e.srv, lay.srvSum)
		if p.opts.ServerStates {
			p.addStates(e.srv, base)
		}
	}
	if e.aggr >= 0 {
		p.addServer(p.aggr, e.aggr, lay.aggrSum)
	}
}

// rowEntities are the entities one row feeds; -1 for none.
type rowEntities struct {
	fe         int32 // a FRONTEND row: its frontend
	be         int32 // a BACKEND or server row: its backend
	srv, aggr  int32 // a server row: the server in its backend (unless the backend is excluded) and the server.* aggregate (with aggr-server-metrics)
	backendRow bool  // svname is BACKEND
	server     bool  // type 2
	// srvDropped: a filter (filter.go) dropped the server row by its backend or server name,
	// so srv and aggr are -1 whatever the exclude files say
	srvDropped bool
}

// rowCache remembers the entities of the rows of a stat file, in order. A process lists its
// proxies and servers in the same order in every snapshot, and the processes of one HAProxy
// share their configuration, so comparing a row's raw pxname and svname with the row at the
// same position of the previous file or snapshot replaces sanitising both names and hashing
// them into maps of thousands of strings (cache misses, most of the cost of a row once it is
// parsed). Rows that differ are looked up and recorded again.
//
// A file seen for the first time shares the cache of the file before it; it gets its own copy
// when its rows turn out to differ (refs > 1).
type rowCache struct {
	refs   int    // file caches pointing here
	epochs uint32 // the tables' epochs when the entities were recorded
	names  []byte // raw pxname and svname of the cached rows
	rows   []cachedRow
}

type cachedRow struct {
	pxOff, pxLen int32 // pxname in names (shared with the row before when equal)
	svOff, svLen int32 // svname in names, after pxname
	// uncached: a name was longer than max-component-length, so the names are not kept
	// (pxLen = svLen = 0) and such a row is looked up every time; the rows after it still
	// match by position
	uncached bool
	rowEntities
}

// fileCache is the row cache of one stat file name.
type fileCache struct {
	used uint32 // generation of the pass that last used it
	rc   *rowCache
}

// tableEpochs changes whenever a table is emptied, which invalidates cached entities.
func (p *Processor) tableEpochs() uint32 {
	return p.fe.epoch + p.be.epoch + p.srv.epoch + p.aggr.epoch
}

// startCache selects the row cache of stat file name for the rows that follow.
func (p *Processor) startCache(name string) {
	fc := p.caches[name]
	if fc == nil {
		fc = &fileCache{}
		if p.prevCache != nil && p.prevCache.refs > 0 {
			fc.rc = p.prevCache
		} else {
			fc.rc = &rowCache{}
		}
		fc.rc.refs++
		p.caches[name] = fc
	}
	fc.used = p.gen
	c := fc.rc
	if epochs := p.tableEpochs(); c.epochs != epochs {
		c.rows, c.names = c.rows[:0], c.names[:0]
		c.epochs = epochs
	}
	p.fileCache = fc
	p.cache = c
	p.cacheNext = 0
	p.prevCache = c
}

// dropStaleCaches forgets the caches of files that were not in the last snapshot.
func (p *Processor) dropStaleCaches() {
	for name, fc := range p.caches {
		if fc.used != p.gen {
			fc.rc.refs--
			delete(p.caches, name)
		}
	}
}

// entitiesOf returns the entities of the current row (pxname px, svname sv, a server row or
// not), activated for this pass.
func (p *Processor) entitiesOf(px, sv []byte, isServer bool) rowEntities {
	c := p.cache
	j := p.cacheNext
	p.cacheNext++
	// A name longer than the component bound may be megabytes long and is shortened (hashed)
	// anyway: keeping a copy of it to compare would cost its size again, per file.
	long := len(px) > p.maxComponent || len(sv) > p.maxComponent
	if j < len(c.rows) {
		r := &c.rows[j]
		if r.uncached {
			if long {
				r.rowEntities = p.lookupEntities(px, sv, isServer)
				return r.rowEntities
			}
		} else if r.server == isServer &&
			string(c.names[r.svOff:r.svOff+r.svLen]) == string(sv) &&
			string(c.names[r.pxOff:r.pxOff+r.pxLen]) == string(px) &&
			p.reuse(&r.rowEntities) {
			return r.rowEntities
		}
		// the rows differ from here on: record them again
		if c.refs > 1 {
			// shared with other files, which still match it
			c.refs--
			own := &rowCache{
				refs:   1,
				epochs: c.epochs,
				rows:   append(make([]cachedRow, 0, cap(c.rows)), c.rows[:j]...),
				names:  append(make([]byte, 0, cap(c.names)), c.names[:r.svOff]...),
			}
			p.fileCache.rc, p.cache, p.prevCache = own, own, own
			c = own
		}
		c.rows = c.rows[:j]
		c.names = c.names[:r.svOff]
		if prev := j - 1; j == 0 || c.rows[prev].pxOff != r.pxOff || c.rows[prev].pxLen != r.pxLen {
			c.names = c.names[:r.pxOff] // the pxname was this row's own
		}
	}

	e := p.lookupEntities(px, sv, isServer)
	if j == len(c.rows) {
		if len(c.rows) == cap(c.rows) { // double (append grows large slices by only 1.25×)
			c.rows = slices.Grow(c.rows, max(256, len(c.rows)))
			c.names = slices.Grow(c.names, max(4096, len(c.names)))
		}
		r := cachedRow{rowEntities: e, uncached: long}
		if long {
			r.pxOff, r.svOff = int32(len(c.names)), int32(len(c.names))
			c.rows = append(c.rows, r)
			return e
		}
		if j > 0 {
			if prev := &c.rows[j-1]; string(c.names[prev.pxOff:prev.pxOff+prev.pxLen]) == string(px) {
				r.pxOff, r.pxLen = prev.pxOff, prev.pxLen
			}
		}
		if r.pxLen == 0 {
			r.pxOff, r.pxLen = int32(len(c.names)), int32(len(px))
			c.names = append(c.names, px...)
		}
		r.svOff, r.svLen = int32(len(c.names)), int32(len(sv))
		c.names = append(c.names, sv...)
		c.rows = append(c.rows, r)
	}
	return e
}

// lookupEntities finds (or creates) and activates the entities of a row by its names.
func (p *Processor) lookupEntities(px, sv []byte, isServer bool) rowEntities {
	e := rowEntities{fe: -1, be: -1, srv: -1, aggr: -1, server: isServer}
	e.backendRow = string(sv) == "BACKEND"
	names := p.filt.names
	if string(sv) == "FRONTEND" {
		if !names || p.keepFrontend(px) {
			e.fe = p.frontendOf(px)
		}
	}
	if e.backendRow || isServer {
		if names && !p.keepBackend(px) {
			e.srvDropped = isServer
			return e
		}
		e.be = p.backendOf(px)
	}
	if isServer {
		if names && !p.keepServer(px, sv) {
			e.srvDropped = true
			return e
		}
		e.srv, e.aggr = p.serverOf(e.be, sv)
	}
	return e
}

// reuse activates the cached entities e of a row whose names match, unless an exclusion
// changed since they were recorded (the exclude files are re-read for every snapshot).
func (p *Processor) reuse(e *rowEntities) bool {
	if e.fe >= 0 {
		p.activateFrontend(e.fe)
	}
	if e.be >= 0 {
		p.activateBackend(e.be)
		if e.server && !e.srvDropped && (e.srv < 0) != p.be.excl[e.be] {
			return false
		}
	}
	if e.srv >= 0 {
		p.srv.activate(e.srv, p.gen)
	}
	if e.aggr >= 0 {
		p.aggr.activate(e.aggr, p.gen)
	}
	return true
}

func (p *Processor) activateFrontend(fe int32) {
	if p.fe.activate(fe, p.gen) {
		_, p.fe.excl[fe] = p.exclFe[p.fe.names[fe]]
	}
}

func (p *Processor) activateBackend(be int32) {
	if p.be.activate(be, p.gen) {
		_, p.be.excl[be] = p.exclBe[p.be.names[be]]
	}
}

// serverOf looks up the server entity of (backend be, server sv) and its server.* aggregate
// (-1 when the backend is excluded, or without aggr-server-metrics), activated for this pass.
func (p *Processor) serverOf(be int32, sv []byte) (srv, aggr int32) {
	srv, aggr = -1, -1
	if !p.be.excl[be] {
		// key: backend entity index, then the sanitised, bounded server name
		p.keyBuf = binary.LittleEndian.AppendUint32(p.keyBuf[:0], uint32(be))
		var short bool
		p.keyBuf, short = p.names.Append(p.keyBuf, sv)
		srv = p.srv.intern(p.keyBuf)
		if short {
			p.srv.markShort(srv)
			p.noteShortened(sv, p.keyBuf[4:])
		}
		if p.srv.activate(srv, p.gen) {
			p.srv.names[srv] = p.srv.keys[srv][4:]
			p.srv.parent[srv] = be
		}
	}
	if p.lay.aggrSum != nil {
		var short bool
		p.keyBuf, short = p.names.Append(p.keyBuf[:0], sv)
		aggr = p.aggr.intern(p.keyBuf)
		if short {
			p.aggr.markShort(aggr)
			p.noteShortened(sv, p.keyBuf)
		}
		p.aggr.activate(aggr, p.gen)
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
	var short bool
	p.keyBuf, short = p.names.Append(p.keyBuf[:0], px)
	fe := p.fe.intern(p.keyBuf)
	if short {
		p.fe.markShort(fe)
		p.noteShortened(px, p.keyBuf)
	}
	p.activateFrontend(fe)
	// a long name is not copied for the next row (see entitiesOf)
	p.lastFeOK = len(px) <= p.maxComponent
	if p.lastFeOK {
		p.lastFe = append(p.lastFe[:0], px...)
		p.lastFeIdx = fe
	}
	return fe
}

func (p *Processor) backendOf(px []byte) int32 {
	if p.lastBeOK && bytes.Equal(px, p.lastBe) {
		return p.lastBeIdx
	}
	var short bool
	p.keyBuf, short = p.names.Append(p.keyBuf[:0], px)
	be := p.be.intern(p.keyBuf)
	if short {
		p.be.markShort(be)
		p.noteShortened(px, p.keyBuf)
	}
	p.activateBackend(be)
	p.lastBeOK = len(px) <= p.maxComponent
	if p.lastBeOK {
		p.lastBe = append(p.lastBe[:0], px...)
		p.lastBeIdx = be
	}
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
