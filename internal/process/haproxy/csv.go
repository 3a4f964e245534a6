package haproxy

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// csvScanner splits `show stat` CSV records in place. HAProxy quotes a field only when it must
// (RFC 4180, '"' doubled), so the fast path handles a line without '"': it finds the commas up
// to the last column we need eight bytes at a time, and only counts the commas of the rest of
// the line (vectorised bytes.Count) to check the field count. Lines with a '"' take the
// quote-aware path, which may span lines.
//
// Fields are kept as offsets, not slices: storing offsets writes no pointers, so the per-field
// work has no GC write barriers.
type csvScanner struct {
	start, end []int32 // field i is base()[start[i]:end[i]]
	want       int     // how many leading fields to keep
	kept       int     // fields kept for the current record
	rec        []byte  // the current record (fast path)
	quoted     bool    // the fields are in unquoted, not rec
	// unquoted holds the fields of a record with quotes; its capacity is kept ≥ the data
	// scanned so that appending never moves earlier fields.
	unquoted []byte
}

type scanStatus int

const (
	scanOK       scanStatus = iota
	scanNeedMore            // the record is not complete in data and more data follows
	scanBadQuote            // a quoted field is not closed at the end of the data
)

// setWant sets how many leading fields to keep.
func (s *csvScanner) setWant(n int) {
	n = max(n, 1)
	if cap(s.start) < n {
		s.start = make([]int32, n)
		s.end = make([]int32, n)
	}
	s.start, s.end = s.start[:n], s.end[:n]
	s.want = n
}

// field returns kept field i of the current record.
func (s *csvScanner) field(i int) []byte {
	if s.quoted {
		return s.unquoted[s.start[i]:s.end[i]]
	}
	return s.rec[s.start[i]:s.end[i]]
}

// next scans the record at the start of data. It returns the bytes consumed, the number of
// fields in the record (0 for a blank line) and the number of '\n' consumed. When atEOF the
// record may end at the end of data without '\n'.
func (s *csvScanner) next(data []byte, atEOF bool) (consumed, nFields, lines int, st scanStatus) {
	nl := bytes.IndexByte(data, '\n')
	var line []byte
	if nl < 0 {
		if !atEOF {
			return 0, 0, 0, scanNeedMore
		}
		line, consumed = data, len(data)
	} else {
		line, consumed, lines = data[:nl], nl+1, 1
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	s.kept = 0
	if len(line) == 0 {
		return consumed, 0, lines, scanOK
	}
	if bytes.IndexByte(line, '"') >= 0 {
		return s.nextQuoted(data, atEOF)
	}
	s.rec, s.quoted = line, false
	s.kept, nFields = splitFields(line, s.start, s.end, s.want)
	return consumed, nFields, lines, scanOK
}

// splitFields records the offsets of the first want fields of line (which holds no quote) and
// returns how many it kept and how many fields the line has.
func splitFields(line []byte, start, end []int32, want int) (kept, total int) {
	start, end = start[:want], end[:want]
	k, fs := 0, 0
	i := 0
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:]) ^ swarComma
		// high bit of each byte set iff that byte of x is zero, i.e. the byte was ','
		// (exact: adding 0x7f to the low 7 bits cannot carry into the next byte)
		m := ^(((x & swarLow7) + swarLow7) | x | swarLow7)
		for m != 0 {
			pos := i + bits.TrailingZeros64(m)>>3
			start[k], end[k] = int32(fs), int32(pos)
			k++
			fs = pos + 1
			if k == want {
				return want, want + bytes.Count(line[fs:], []byte{','}) + 1
			}
			m &= m - 1
		}
	}
	for ; i < len(line); i++ {
		if line[i] == ',' {
			start[k], end[k] = int32(fs), int32(i)
			k++
			fs = i + 1
			if k == want {
				return want, want + bytes.Count(line[fs:], []byte{','}) + 1
			}
		}
	}
	start[k], end[k] = int32(fs), int32(len(line))
	return k + 1, k + 1
}

// nextQuoted is the RFC 4180 path: a field starting with '"' runs to the matching '"' (with
// "" as an escaped quote) and may contain ',' and '\n'; text between the closing quote and the
// next separator is kept literally, as pandas does. Every field is copied to s.unquoted.
func (s *csvScanner) nextQuoted(data []byte, atEOF bool) (consumed, nFields, lines int, st scanStatus) {
	if cap(s.unquoted) < len(data) {
		s.unquoted = make([]byte, 0, len(data))
	}
	u := s.unquoted[:0]
	s.quoted = true
	k := 0
	i := 0
	for {
		fstart := len(u)
		if i < len(data) && data[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					if !atEOF {
						return 0, 0, 0, scanNeedMore
					}
					return len(data), 0, 0, scanBadQuote
				}
				lines += bytes.Count(data[i:i+j], []byte{'\n'})
				u = append(u, data[i:i+j]...)
				i += j + 1
				if i < len(data) && data[i] == '"' {
					u = append(u, '"')
					i++
					continue
				}
				if i >= len(data) && !atEOF {
					return 0, 0, 0, scanNeedMore
				}
				break
			}
		}
		for i < len(data) && data[i] != ',' && data[i] != '\n' {
			u = append(u, data[i])
			i++
		}
		if i >= len(data) && !atEOF {
			return 0, 0, 0, scanNeedMore
		}
		fend := len(u)
		if (i >= len(data) || data[i] == '\n') && fend > fstart && u[fend-1] == '\r' {
			fend--
		}
		if k < s.want {
			s.start[k], s.end[k] = int32(fstart), int32(fend)
		}
		k++
		if i >= len(data) {
			break
		}
		if data[i] == ',' {
			i++
			continue
		}
		i++ // '\n'
		lines++
		break
	}
	s.unquoted = u
	s.kept = min(k, s.want)
	return i, k, lines, scanOK
}
