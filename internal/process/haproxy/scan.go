package haproxy

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Scanning one `show stat` row is most of the parsing cost, so it is specialised:
//
//   - pxname and svname come first (as in every HAProxy version); svname tells whether the row
//     is a frontend, a backend or (probably) a server, and each of these row classes has its
//     own plan: which columns to parse, and where to stop reading. A server row, 90 % of a
//     large reply, needs nothing after ttime (column 61 of 2.6) and skips the 20-odd columns
//     only frontends use.
//   - The row is scanned in two passes, each a loop that calls nothing. The first only records
//     where each field ends, finding commas eight bytes at a time. The second visits only the
//     columns of the plan (about half of those located) and converts cells of up to 16 digits
//     eight digits at a time; the rare cells it cannot take (empty, not a plain number) are
//     handled afterwards, one call each.
//   - Upstream printed a column as int unless some cell of it was empty anywhere (§6.1). While
//     a column is still int, every plan checks its cells for emptiness; once it is float the
//     plans are rebuilt without that check.
//
// Rows with quotes, files whose svname is not the second column, rows with fewer fields than
// their plan reads and rows that turn out to be both a frontend/backend and a server take the
// generic path: all needed columns of all classes, cell by cell.

// Column codes of the generic path: what a column of the current file feeds. ≥ 0 is a value
// slot to parse.
const (
	codeNone int32 = -1 - iota
	codePx
	codeSv
	codeType
	codeState0 // codeState0 - k: state cell k (ServerStates), down to codeState0 - nStates + 1
)

const (
	classFrontend = iota
	classBackend
	classServer
	classGeneric
)

const (
	swarOnes   = 0x0101010101010101
	swarLow7   = 0x7f7f7f7f7f7f7f7f
	swarComma  = ',' * swarOnes
	swarZeros  = '0' * swarOnes
	swarHigh   = 0x8080808080808080
	swarDigitK = 0x7676767676767676 // 0x80 - 10 per byte: d + this has the high bit set iff d ≥ 10
)

// maxPlanCols bounds the columns a plan covers, so that the per-row arrays have a fixed size
// and masked indices need no bounds checks. HAProxy 3.x has about 120 static columns; a file
// needing more takes the generic path.
const maxPlanCols = 256

// fieldEndsLen holds the field ends of one row: a sentinel, up to maxPlanCols ends and the up
// to 7 more that the eight-byte step finds past the last one wanted; a power of two for the
// index mask.
const fieldEndsLen = 512

// planColumn is one column a plan visits and the value slot it feeds.
type planColumn struct {
	col, slot int32
}

// rowPlan is what the fast path does with the rows of one class in the current file.
type rowPlan struct {
	want   int          // fields to locate: the last column the plan visits + 1
	parse  []planColumn // columns parsed into their slot
	checks []planColumn // int columns of slots this class does not use: only checked for emptiness
}

// buildPlans derives the per-class plans from the current file's header and the columns that
// are still int.
func (p *Processor) buildPlans() {
	p.plansDirty = false
	p.plansOK = p.valArr != nil && p.svCol == 1
	needs := [3][]int{p.lay.feParse, p.lay.beParse, p.lay.srvParse}
	for class, slots := range needs {
		plan := &p.plans[class]
		plan.parse, plan.checks = plan.parse[:0], plan.checks[:0]
		last := p.typeCol
		for _, s := range slots {
			if c := p.colOfSlot[s]; c >= 0 {
				plan.parse = append(plan.parse, planColumn{c, int32(s)})
				last = max(last, int(c))
			}
		}
		for s, c := range p.colOfSlot {
			if c >= 0 && !p.slotFloat[s] && !slices.Contains(slots, s) {
				plan.checks = append(plan.checks, planColumn{c, int32(s)})
				last = max(last, int(c))
			}
		}
		if class == classServer && p.wantStates() {
			for _, c := range p.stateCol {
				last = max(last, int(c))
			}
		}
		if last >= maxPlanCols {
			p.plansOK = false
			return
		}
		plan.want = last + 1
	}
}

// commaMask has the high bit of byte j set iff byte j of w (little-endian) is ','. It is
// exact: adding 0x7f to the low 7 bits of a byte cannot carry into the next byte.
func commaMask(w uint64) uint64 {
	x := w ^ swarComma
	return ^(((x & swarLow7) + swarLow7) | x | swarLow7)
}

// scanLine scans a row without quotes into p.vals and the name and type offsets, and returns
// its number of fields.
func (p *Processor) scanLine(line []byte) int {
	if p.plansDirty {
		p.buildPlans()
	}
	if !p.plansOK {
		return p.scanGeneric(line)
	}
	c0 := bytes.IndexByte(line, ',')
	if c0 < 0 {
		return p.scanGeneric(line)
	}
	p.pxE = c0
	c1 := bytes.IndexByte(line[c0+1:], ',')
	if c1 < 0 {
		return p.scanGeneric(line)
	}
	c1 += c0 + 1
	p.svS, p.svE = c0+1, c1
	switch string(line[c0+1 : c1]) {
	case "FRONTEND":
		p.class = classFrontend
	case "BACKEND":
		p.class = classBackend
	default:
		p.class = classServer
	}
	plan := &p.plans[p.class]
	want := plan.want

	// Pass 1: ends[f+1] is where field f ends; ends[0] = -1 makes ends[f]+1 its start.
	ends := &p.fieldEnds
	ends[0], ends[1], ends[2] = -1, int32(c0), int32(c1)
	k, i := locateFields(line, c1+1, 3, want, ends)
	// k-1 commas are located, all of those before i
	nFields := k + bytes.Count(line[i:], []byte{','})
	if k <= want {
		if k < want {
			// fewer fields than the plan reads (a truncated row): the generic path has the
			// rules for missing cells
			return p.scanGeneric(line)
		}
		ends[k&(fieldEndsLen-1)] = int32(len(line)) // the last field ends the line
	}

	// Pass 2: the plan's columns; the few cells that are not plain numbers of up to 16
	// digits are taken afterwards, one call each.
	if n := parseColumns(line, plan.parse, ends, p.valArr, &p.slowCols); n > 0 {
		for _, j := range p.slowCols[:n] {
			pc := plan.parse[j]
			p.setField(pc.slot, line, int(ends[pc.col&(fieldEndsLen-1)])+1, int(ends[(pc.col+1)&(fieldEndsLen-1)]))
		}
	}
	for _, pc := range plan.checks {
		if ends[pc.col&(fieldEndsLen-1)]+1 == ends[(pc.col+1)&(fieldEndsLen-1)] {
			p.emptyCell(pc.slot)
		}
	}
	p.tyS = int(ends[p.typeCol&(fieldEndsLen-1)]) + 1
	p.tyE = int(ends[(p.typeCol+1)&(fieldEndsLen-1)])
	if p.class == classServer && p.wantStates() {
		for k, c := range p.stateCol {
			if c >= 0 {
				p.stateS[k] = int(ends[c&(fieldEndsLen-1)]) + 1
				p.stateE[k] = int(ends[(c+1)&(fieldEndsLen-1)])
			}
		}
	}
	return nFields
}

// locateFields records in ends[k], ends[k+1], … the offsets of the commas of line from offset
// i on, until ends[want] is set or the line ends, and returns the next index of ends and the
// offset up to which commas were recorded. It calls nothing, so that the loop keeps its
// state in registers.
func locateFields(line []byte, i, k, want int, ends *[fieldEndsLen]int32) (int, int) {
	for k <= want && i+8 <= len(line) {
		for m := commaMask(binary.LittleEndian.Uint64(line[i:])); m != 0; m &= m - 1 {
			ends[k&(fieldEndsLen-1)] = int32(i + bits.TrailingZeros64(m)>>3)
			k++
		}
		i += 8
	}
	for ; k <= want && i < len(line); i++ {
		if line[i] == ',' {
			ends[k&(fieldEndsLen-1)] = int32(i)
			k++
		}
	}
	return k, i
}

// parseColumns converts the cells of cols (located by ends) into vals. A cell it cannot take
// here (empty, not plain digits, longer than 16 digits or too close to the end of line for an
// eight-byte load) is left for the caller: its index in cols goes to slow, and the count of
// those is returned. It calls nothing, like locateFields.
func parseColumns(line []byte, cols []planColumn, ends *[fieldEndsLen]int32, vals *[maxPlanCols]float64, slow *[maxPlanCols]uint8) int {
	nSlow := 0
	for j, pc := range cols {
		fs := int(ends[pc.col&(fieldEndsLen-1)]) + 1
		pos := int(ends[(pc.col+1)&(fieldEndsLen-1)])
		n := pos - fs
		if uint(n-1) < 8 && fs+8 <= len(line) {
			if d, ok := digits8(binary.LittleEndian.Uint64(line[fs:]), n); ok {
				vals[uint8(pc.slot)] = float64(int64(d)) // < 10^8: the signed conversion is one instruction
				continue
			}
		} else if uint(n-9) < 8 {
			// 9 to 16 digits (byte counters): the leading n-8 digits, then the last 8
			hi, okHi := digits8(binary.LittleEndian.Uint64(line[fs:]), n-8)
			lo, okLo := digits8(binary.LittleEndian.Uint64(line[pos-8:]), 8)
			if okHi && okLo {
				vals[uint8(pc.slot)] = float64(int64(hi*100000000 + lo))
				continue
			}
		}
		slow[uint8(nSlow)] = uint8(j)
		nSlow++
	}
	return nSlow
}

// digits8 converts the first n (1..8) bytes of w (little-endian, as loaded from memory) as
// decimal digits: the n bytes are moved to the top of the word, where the bytes shifted in
// become leading zero digits once '0' is subtracted, then combined with three
// multiplications. ok is false if a byte is not a digit.
func digits8(w uint64, n int) (uint64, bool) {
	shift := uint(8-n) * 8 & 63 // n is 1..8; the mask tells the compiler the shift is < 64
	keep := ^uint64(0) << shift
	d := w<<shift - swarZeros&keep
	if (d|(d+swarDigitK))&swarHigh&keep != 0 {
		return 0, false
	}
	d = d*10 + d>>8
	return ((d&0x000000FF000000FF)*(100+1000000<<32) + (d>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32, true
}

// emptyCell records an empty cell of slot s: its value is 0 (upstream: fillna(0)) and its
// column is a float column from now on.
func (p *Processor) emptyCell(s int32) {
	if s >= 0 {
		p.vals[s] = 0
	}
	if !p.slotFloat[s] {
		p.slotFloat[s] = true
		p.plansDirty = true
	}
}

// scanGeneric scans a row without quotes with the all-classes plan.
func (p *Processor) scanGeneric(line []byte) int {
	p.class = classGeneric
	codes := p.colCode
	want := len(codes)
	k, fs := 0, 0
	for i := 0; i < len(line); i++ {
		if line[i] == ',' {
			if c := codes[k]; c != codeNone {
				p.setField(c, line, fs, i)
			}
			k++
			fs = i + 1
			if k == want {
				return want + bytes.Count(line[fs:], []byte{','}) + 1
			}
		}
	}
	if c := codes[k]; c != codeNone {
		p.setField(c, line, fs, len(line))
	}
	k++
	if k < want {
		p.shortRow(codes, k)
	}
	return k
}

// rescanGeneric re-reads the current row (line) with the all-classes plan.
func (p *Processor) rescanGeneric(line []byte) {
	if p.class == classGeneric {
		return
	}
	p.scanGeneric(line)
}

// setField takes cell base[fs:pos] for code c (generic path, and the cells parseColumns leaves).
func (p *Processor) setField(c int32, base []byte, fs, pos int) {
	f := base[fs:pos]
	if c >= 0 {
		if len(f) == 0 {
			p.emptyCell(c)
		} else if v, ok := parseUint(f); ok {
			p.vals[c] = v
		} else {
			p.vals[c] = p.cell(int(c), f)
		}
		return
	}
	switch c {
	case codePx:
		p.pxS, p.pxE = fs, pos
	case codeSv:
		p.svS, p.svE = fs, pos
	case codeType:
		p.tyS, p.tyE = fs, pos
	default:
		if k := codeState0 - c; k >= 0 && k < nStates {
			p.stateS[k], p.stateE[k] = fs, pos
		}
	}
}

// shortRow handles a row that ends before the columns of codes do (a truncated last row): the
// missing cells are empty.
func (p *Processor) shortRow(codes []int32, nFields int) {
	for _, c := range codes[nFields:] {
		if c >= 0 {
			p.emptyCell(c)
		}
	}
}
