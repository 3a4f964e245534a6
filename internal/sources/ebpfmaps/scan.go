package ebpfmaps

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A reader of <map>.body lines for the process half that allocates nothing per line once its
// buffers have grown: the fields' texts are slices of the line, or of the scratch buffer when
// a string had escapes. It accepts what encoding/json writes for an Entry (any member order,
// unknown members skipped); the differential fuzz test holds it to encoding/json.

type rawField struct {
	name, kind, num, str []byte
}

type rawEntry struct {
	key, value []rawField
	perCPU     [][]rawField
	nCPU       int
	rawKey     []byte
}

type scanner struct {
	b       []byte
	i       int
	scratch []byte
}

var errSyntax = errors.New("not a JSON entry")

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return errSyntax
	}
	s.i++
	return nil
}

// str reads a JSON string; the result is valid until the next line.
func (s *scanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			if !utf8.Valid(out) {
				return s.fixUTF8(out), nil
			}
			return out, nil
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return nil, errSyntax
		}
		s.i++
	}
	return nil, errSyntax
}

// fixUTF8 replaces invalid bytes by U+FFFD, as encoding/json does.
func (s *scanner) fixUTF8(b []byte) []byte {
	at := len(s.scratch)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		s.scratch = utf8.AppendRune(s.scratch, r)
		b = b[n:]
	}
	return s.scratch[at:]
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(v), err == nil
}

// escaped reads the rest of a string that has escapes, into scratch.
func (s *scanner) escaped(start int) ([]byte, error) {
	at := len(s.scratch)
	s.scratch = append(s.scratch, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			out := s.scratch[at:]
			if !utf8.Valid(out) {
				return s.fixUTF8(out), nil
			}
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			s.scratch = append(s.scratch, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return nil, errSyntax
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			s.scratch = append(s.scratch, e)
		case 'b':
			s.scratch = append(s.scratch, '\b')
		case 'f':
			s.scratch = append(s.scratch, '\f')
		case 'n':
			s.scratch = append(s.scratch, '\n')
		case 'r':
			s.scratch = append(s.scratch, '\r')
		case 't':
			s.scratch = append(s.scratch, '\t')
		case 'u':
			r, ok := hex4(s.b[s.i:])
			if !ok {
				return nil, errSyntax
			}
			s.i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					r2, ok2 = hex4(s.b[s.i+2:])
				}
				if d := utf16.DecodeRune(r, r2); ok2 && d != utf8.RuneError {
					s.i += 6
					r = d
				} else {
					r = utf8.RuneError
				}
			}
			s.scratch = utf8.AppendRune(s.scratch, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

// number reads a JSON number's text.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	if n := digits(); n == 0 || n > 1 && s.b[intStart] == '0' {
		return nil, errSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	return s.b[start:s.i], nil
}

// skip skips any JSON value (bounded in depth).
func (s *scanner) skip(depth int) error {
	if depth > 32 {
		return errSyntax
	}
	switch c := s.peek(); {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{' || c == '[':
		s.i++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if s.peek() == end {
			s.i++
			return nil
		}
		for {
			if c == '{' {
				if _, err := s.str(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case end:
				s.i++
				return nil
			default:
				return errSyntax
			}
		}
	case c == 't':
		return s.word("true")
	case c == 'f':
		return s.word("false")
	case c == 'n':
		return s.word("null")
	default:
		_, err := s.number()
		return err
	}
}

func (s *scanner) word(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return errSyntax
	}
	s.i += len(w)
	return nil
}

// isNull consumes a null.
func (s *scanner) isNull() bool {
	if s.peek() == 'n' && s.word("null") == nil {
		return true
	}
	return false
}

// object calls member for each member of an object.
func (s *scanner) object(member func(name []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		name, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array calls elem for each element of an array (null is an empty array).
func (s *scanner) array(elem func() error) error {
	if s.isNull() {
		return nil
	}
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// strOrNull reads a string member (null leaves it empty).
func (s *scanner) strOrNull() ([]byte, error) {
	if s.isNull() {
		return nil, nil
	}
	return s.str()
}

func (s *scanner) fields(dst []rawField) ([]rawField, error) {
	dst = dst[:0]
	err := s.array(func() error {
		if s.isNull() {
			dst = append(dst, rawField{})
			return nil
		}
		if len(dst) >= maxFields {
			return errTooManyFields
		}
		var f rawField
		err := s.object(func(name []byte) error {
			var err error
			switch {
			case is(name, "name"):
				f.name, err = s.strOrNull()
			case is(name, "kind"):
				f.kind, err = s.strOrNull()
			case is(name, "str"):
				f.str, err = s.strOrNull()
			case is(name, "num"):
				if s.isNull() {
					f.num = nil
					return nil
				}
				// encoding/json takes a json.Number from a number or from a string holding one.
				if s.peek() == '"' {
					if f.num, err = s.str(); err == nil {
						sub := scanner{b: f.num}
						if _, nerr := sub.number(); nerr != nil || sub.i != len(f.num) || len(f.num) == 0 {
							err = errSyntax
						}
					}
					return err
				}
				f.num, err = s.number()
			default:
				err = s.skip(0)
			}
			return err
		})
		dst = append(dst, f)
		return err
	})
	return dst, err
}

// entry parses one line into e, reusing its buffers.
func (s *scanner) entry(line []byte, e *rawEntry) error {
	s.b, s.i, s.scratch = line, 0, s.scratch[:0]
	e.key, e.value, e.nCPU, e.rawKey = e.key[:0], e.value[:0], 0, nil
	err := s.object(func(name []byte) error {
		var err error
		switch {
		case is(name, "key"):
			e.key, err = s.fields(e.key)
		case is(name, "value"):
			e.value, err = s.fields(e.value)
		case is(name, "per_cpu"):
			e.nCPU = 0
			err = s.array(func() error {
				if e.nCPU >= maxCPUs {
					return errSyntax
				}
				if e.nCPU == len(e.perCPU) {
					e.perCPU = append(e.perCPU, nil)
				}
				var err error
				e.perCPU[e.nCPU], err = s.fields(e.perCPU[e.nCPU])
				e.nCPU++
				return err
			})
		case is(name, "raw_key"):
			e.rawKey, err = s.strOrNull()
		default:
			err = s.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	if s.peek() != 0 || s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

// is matches a member name as encoding/json does: case-insensitively.
func is(name []byte, want string) bool { return bytes.EqualFold(name, []byte(want)) }

// maxCPUs bounds the per-CPU values of one entry.
const maxCPUs = 8192
