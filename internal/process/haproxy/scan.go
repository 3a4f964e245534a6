package haproxy

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Scanning one `show stat` row is most of the parsing cost, so it is specialised:
//
//   - pxname and svname come first (as in every HAProxy version); svname tells whether the row
//     is a frontend, a backend or (probably) a server, and each of these row classes has its
//     own plan: which columns to parse, and where to stop reading. A server row, 90 % of a
//     large reply, needs nothing after ttime (column 61 of 2.6) and skips the 20-odd columns
//     only frontends use.
//   - Commas are found eight bytes at a time; cells of up to 16 digits are converted eight
//     digits at a time, the common case of up to 8 inline in the loop.
//   - Upstream printed a column as int unless some cell of it was empty anywhere (§6.1). While
//     a column is still int, every plan checks its cells for emptiness; once it is float the
//     plans are rebuilt without that check.
//
// Rows with quotes, files whose svname is not the second column and rows that turn out to be
// both a frontend/backend and a server take the generic path: all needed columns of all
// classes, cell by cell.

// Column codes: what a column of the current file feeds. ≥ 0 is a value slot to parse.
const (
	codeNone int32 = -1 - iota
	codePx
	codeSv
	codeType
	// codeCheck - s: only check slot s's cell for emptiness
	codeCheck int32 = -16
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

// maxPlanCols bounds the columns a plan covers (fixed-size arrays indexed by a uint8: no
// bounds checks in the loop). HAProxy 3.x has about 120 static columns; a file needing more
// takes the generic path.
const maxPlanCols = 256

type planCodes [maxPlanCols]int32

// buildPlans derives the per-class column plans from the current file's header and the
// columns that are still int.
func (p *Processor) buildPlans() {
	p.plansDirty = false
	p.plansOK = p.valArr != nil && p.svCol == 1
	needs := [3][]int{p.lay.feParse, p.lay.beParse, p.lay.srvParse}
	for class, slots := range needs {
		last := p.typeCol
		for _, s := range slots {
			last = max(last, int(p.colOfSlot[s]))
		}
		for s, c := range p.colOfSlot {
			if c >= 0 && !p.slotFloat[s] {
				last = max(last, int(c))
			}
		}
		if last >= maxPlanCols {
			p.plansOK = false
			return
		}
		p.planWant[class] = last + 1
		if p.plans[class] == nil {
			p.plans[class] = new(planCodes)
		}
		codes := p.plans[class][:last+1]
		for i := range codes {
			codes[i] = codeNone
		}
		for s, c := range p.colOfSlot {
			if c >= 0 && !p.slotFloat[s] {
				codes[c] = codeCheck - int32(s)
			}
		}
		for _, s := range slots {
			if c := p.colOfSlot[s]; c >= 0 {
				codes[c] = int32(s)
			}
		}
		codes[p.typeCol] = codeType
		// pxname and svname are read before the plan applies
		codes[0], codes[1] = codeNone, codeNone
	}
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
		p.pxE = len(line)
		p.class = classGeneric
		p.shortRow(p.colCode, 1)
		return 1
	}
	p.pxE = c0
	c1 := bytes.IndexByte(line[c0+1:], ',')
	if c1 < 0 {
		p.svS, p.svE = c0+1, len(line)
		p.class = classGeneric
		p.shortRow(p.colCode, 2)
		return 2
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
	codes := p.plans[p.class]
	want := p.planWant[p.class]
	k, fs := 2, c1+1
	if k >= want {
		return want + bytes.Count(line[fs:], []byte{','}) + 1
	}
	vals := p.valArr
	i := fs
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:]) ^ swarComma
		// high bit of each byte set iff that byte of x is zero, i.e. the byte was ','
		// (exact: adding 0x7f to the low 7 bits cannot carry into the next byte)
		m := ^(((x & swarLow7) + swarLow7) | x | swarLow7)
		for m != 0 {
			pos := i + bits.TrailingZeros64(m)>>3
			// The common case, a cell of 1 to 8 digits, is converted here, without a call
			// (which would spill the loop's registers).
			if c := codes[uint8(k)]; c >= 0 {
				n := pos - fs
				if uint(n-1) < 8 && fs+8 <= len(line) {
					if d, ok := digits8(binary.LittleEndian.Uint64(line[fs:]), n); ok {
						vals[uint8(c)] = float64(int64(d)) // < 10^8: the signed conversion is one instruction
					} else {
						p.setField(c, line, fs, pos)
					}
				} else {
					p.longField(c, line, fs, pos)
				}
			} else if c != codeNone {
				p.planField(c, line, fs, pos)
			}
			k++
			fs = pos + 1
			if k == want {
				return want + bytes.Count(line[fs:], []byte{','}) + 1
			}
			m &= m - 1
		}
	}
	for ; i < len(line); i++ {
		if line[i] == ',' {
			if c := codes[uint8(k)]; c != codeNone {
				p.planField(c, line, fs, i)
			}
			k++
			fs = i + 1
			if k == want {
				return want + bytes.Count(line[fs:], []byte{','}) + 1
			}
		}
	}
	if c := codes[uint8(k)]; c != codeNone {
		p.planField(c, line, fs, len(line))
	}
	k++
	if k < want {
		p.shortRow(codes[:want], k)
	}
	return k
}

// longField takes a cell the inline path leaves out: empty, 9 to 16 digits (two 8-byte
// conversions), near the end of the line, or not a plain number.
func (p *Processor) longField(c int32, line []byte, fs, pos int) {
	n := pos - fs
	if n == 0 {
		p.emptyCell(c)
		return
	}
	if n > 8 && n <= 16 && pos+8 <= len(line) {
		hi, okHi := digits8(binary.LittleEndian.Uint64(line[fs:]), n-8)
		lo, okLo := digits8(binary.LittleEndian.Uint64(line[pos-8:]), 8)
		if okHi && okLo {
			p.vals[c] = float64(int64(hi*100000000 + lo))
			return
		}
	}
	p.setField(c, line, fs, pos)
}

// digits8 converts the first n (1..8) bytes of w (little-endian, as loaded from memory) as
// decimal digits: the n bytes are moved to the top of the word, where the bytes shifted in
// become leading zero digits once '0' is subtracted, then combined with three
// multiplications. ok is false if a byte is not a digit.
func digits8(w uint64, n int) (uint64, bool) {
	shift := uint(8-n) * 8
	keep := ^uint64(0) << shift
	d := w<<shift - swarZeros&keep
	if (d|(d+swarDigitK))&swarHigh&keep != 0 {
		return 0, false
	}
	d = d*10 + d>>8
	return ((d&0x000000FF000000FF)*(100+1000000<<32) + (d>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32, true
}

// planField takes cell line[fs:pos] of the current row for code c (the cases the inline path
// of scanLine leaves out).
func (p *Processor) planField(c int32, line []byte, fs, pos int) {
	if c >= 0 {
		p.setField(c, line, fs, pos)
		return
	}
	if c <= codeCheck {
		if pos == fs {
			p.emptyCell(codeCheck - c)
		}
		return
	}
	if c == codeType {
		p.tyS, p.tyE = fs, pos
	}
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

// setField takes cell base[fs:pos] for code c (generic path, and the fast path's long cells).
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
	}
}

// shortRow handles a row that ends before the columns of codes do (a truncated last row): the
// missing cells are empty.
func (p *Processor) shortRow(codes []int32, nFields int) {
	for _, c := range codes[nFields:] {
		switch {
		case c >= 0:
			p.emptyCell(c)
		case c <= codeCheck:
			p.emptyCell(codeCheck - c)
		}
	}
}
