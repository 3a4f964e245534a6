package mesos

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/statspipe/statspipe/internal/sample"
)

// Bounds of one body. A Mesos master with thousands of frameworks and roles has some tens of
// thousands of keys of well under a hundred bytes; these only stop a body that is not a
// snapshot from costing unbounded memory (the body's size is bounded by max-body-size).
const (
	// MaxKeys is the most keys one body may have.
	MaxKeys = 1 << 20
	// MaxKeyLength is the longest key, in bytes once unescaped.
	MaxKeyLength = 4096
	// maxNumberLength bounds the text of one number (a double needs at most 24 characters;
	// JSON allows more digits, which only round).
	maxNumberLength = 256
	readBufferSize  = 64 << 10
)

// The keys of the leader rule, as sample names (after the '/' → '.' mapping).
var (
	masterPrefix = []byte("master.")
	electedName  = []byte("master.elected")
	uptimeName   = []byte("master.uptime_secs")
)

// Parser reads one /metrics/snapshot body as a stream: a JSON object whose values are numbers.
// Every key becomes one sample: Name is the key unescaped with each '/' turned into '.' and
// each '.' inside a part turned into '_' (so the parts of the name are the key's parts), and
// Value the number as a float64. A Parser is reused across bodies by one goroutine; parsing
// allocates nothing once its buffers have grown.
type Parser struct {
	// ElectedOnly applies the leader rule: when the body's own master/elected is 0, its other
	// master/* keys but master/uptime_secs are left out.
	ElectedOnly bool

	r      io.Reader
	buf    []byte
	pos    int
	end    int
	offset int64 // body bytes before buf[0]
	rerr   error

	key  []byte
	num  []byte
	keys int
	s    sample.Sample
	fn   sample.Func

	// leader rule state of the current body
	elected      int8 // 0 unknown, 1 elected, -1 not elected
	pending      []pendingSample
	pendingNames []byte

	nulls   int
	dropped int
}

type pendingSample struct {
	off, len int32
	value    float64
}

// NewParser returns a Parser with the leader rule on.
func NewParser() *Parser {
	return &Parser{ElectedOnly: true, buf: make([]byte, readBufferSize)}
}

// Nulls is the number of null values the last body had (skipped: no sample).
func (p *Parser) Nulls() int { return p.nulls }

// Dropped is the number of samples the leader rule left out of the last body.
func (p *Parser) Dropped() int { return p.dropped }

// SyntaxError is a body that is not a snapshot: Offset is the byte (0-based) where it fails.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("byte %d: %s", e.Offset, e.Msg) }

// errEOF marks the end of the body inside the object; Parse reports it as truncation.
var errEOF = errors.New("end of body")

// Parse reads body and calls fn with each sample, in body order (with the leader rule on,
// the samples from the first master/* key up to master/elected are held back until
// master/elected says whether they count, then given in order). The Sample and its byte
// slices are valid only during the call.
func (p *Parser) Parse(body io.Reader, fn sample.Func) error {
	if p.buf == nil {
		p.buf = make([]byte, readBufferSize)
	}
	p.r, p.fn = body, fn
	p.pos, p.end, p.offset, p.rerr = 0, 0, 0, nil
	p.keys, p.nulls, p.dropped, p.elected = 0, 0, 0, 0
	p.pending, p.pendingNames = p.pending[:0], p.pendingNames[:0]
	p.s = sample.Sample{Kind: sample.Untyped}
	err := p.object()
	p.r, p.fn = nil, nil
	if err == errEOF {
		if p.rerr != nil && p.rerr != io.EOF {
			return p.rerr
		}
		if p.offset+int64(p.pos) == 0 {
			return &SyntaxError{0, "empty body: want a JSON object"}
		}
		return &SyntaxError{p.offset + int64(p.pos), "unexpected end of body inside the object (truncated?)"}
	}
	return err
}

func (p *Parser) fail(format string, args ...any) error {
	return &SyntaxError{p.offset + int64(p.pos), fmt.Sprintf(format, args...)}
}

// fill reads more of the body; false at its end (or on a read error, kept in rerr).
func (p *Parser) fill() bool {
	if p.rerr != nil {
		return false
	}
	p.offset += int64(p.end)
	p.pos, p.end = 0, 0
	// A reader that keeps returning nothing is given up on, as bufio does.
	for range 100 {
		n, err := p.r.Read(p.buf)
		p.end = n
		if err != nil {
			p.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	p.rerr = io.ErrNoProgress
	return false
}

// peek returns the next byte without consuming it.
func (p *Parser) peek() (byte, bool) {
	if p.pos == p.end && !p.fill() {
		return 0, false
	}
	return p.buf[p.pos], true
}

// skipSpace consumes JSON white space and returns the next byte (not consumed).
func (p *Parser) skipSpace() (byte, error) {
	for {
		if p.pos == p.end && !p.fill() {
			return 0, errEOF
		}
		c := p.buf[p.pos]
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return c, nil
		}
		p.pos++
	}
}

func (p *Parser) object() error {
	c, err := p.skipSpace()
	if err != nil {
		return err
	}
	if c != '{' {
		return p.fail("want a JSON object ('{'), found %q", c)
	}
	p.pos++
	c, err = p.skipSpace()
	if err != nil {
		return err
	}
	if c != '}' {
		for {
			if c != '"' {
				return p.fail("want a key (a string), found %q", c)
			}
			p.pos++
			if err := p.readKey(); err != nil {
				return err
			}
			if p.keys++; p.keys > MaxKeys {
				return p.fail("more than %d keys", MaxKeys)
			}
			if c, err = p.skipSpace(); err != nil {
				return err
			}
			if c != ':' {
				return p.fail("want ':' after key %q, found %q", p.key, c)
			}
			p.pos++
			if err := p.value(); err != nil {
				return err
			}
			if c, err = p.skipSpace(); err != nil {
				return err
			}
			p.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				p.pos--
				return p.fail("want ',' or '}' after the value of %q, found %q", p.key, c)
			}
			if c, err = p.skipSpace(); err != nil {
				return err
			}
		}
	} else {
		p.pos++
	}
	if err := p.flushPending(); err != nil {
		return err
	}
	// Only white space may follow the object.
	if c, err := p.skipSpace(); err == nil {
		return p.fail("data after the object: %q", c)
	}
	if p.rerr != nil && p.rerr != io.EOF {
		return p.rerr
	}
	return nil
}

// readKey reads a string after its opening quote into p.key, as a sample name: escapes
// decoded, '/' → '.', '.' → '_'.
func (p *Parser) readKey() error {
	p.key = p.key[:0]
	for {
		if p.pos == p.end && !p.fill() {
			return errEOF
		}
		// The common run of plain bytes, copied at once.
		start := p.pos
		for p.pos < p.end {
			c := p.buf[p.pos]
			if c == '"' || c == '\\' || c == '/' || c == '.' || c < 0x20 {
				break
			}
			p.pos++
		}
		p.key = append(p.key, p.buf[start:p.pos]...)
		if len(p.key) > MaxKeyLength {
			return p.fail("key longer than %d bytes", MaxKeyLength)
		}
		if p.pos == p.end {
			continue
		}
		c := p.buf[p.pos]
		p.pos++
		switch {
		case c == '"':
			return nil
		case c == '/':
			p.key = append(p.key, '.')
		case c == '.':
			p.key = append(p.key, '_')
		case c < 0x20:
			p.pos--
			return p.fail("control character %q in a key", c)
		default: // '\\'
			if err := p.escape(); err != nil {
				return err
			}
		}
		if len(p.key) > MaxKeyLength {
			return p.fail("key longer than %d bytes", MaxKeyLength)
		}
	}
}

func (p *Parser) escape() error {
	c, ok := p.peek()
	if !ok {
		return errEOF
	}
	p.pos++
	return p.escapeChar(c)
}

// escapeChar decodes the escape whose letter, after the backslash, is c.
func (p *Parser) escapeChar(c byte) error {
	switch c {
	case '/':
		p.key = append(p.key, '.')
	case '"', '\\':
		p.key = append(p.key, c)
	case 'b':
		p.key = append(p.key, '\b')
	case 'f':
		p.key = append(p.key, '\f')
	case 'n':
		p.key = append(p.key, '\n')
	case 'r':
		p.key = append(p.key, '\r')
	case 't':
		p.key = append(p.key, '\t')
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return err
		}
		// A surrogate pair is \uD8xx\uDCxx; a half that does not pair becomes U+FFFD and the
		// escape after it is read on its own, as encoding/json does.
		for utf16.IsSurrogate(r) {
			c, ok := p.peek()
			if !ok {
				return errEOF
			}
			if c != '\\' {
				break
			}
			p.pos++
			c, ok = p.peek()
			if !ok {
				return errEOF
			}
			p.pos++
			if c != 'u' {
				p.appendRune(utf8.RuneError)
				return p.escapeChar(c)
			}
			r2, err := p.hex4()
			if err != nil {
				return err
			}
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				p.appendRune(dec)
				return nil
			}
			p.appendRune(utf8.RuneError)
			r = r2
		}
		if utf16.IsSurrogate(r) {
			r = utf8.RuneError
		}
		p.appendRune(r)
	default:
		return p.fail("invalid escape \\%c in a key", c)
	}
	return nil
}

// appendRune adds a decoded rune to the key under the same mapping as a plain byte.
func (p *Parser) appendRune(r rune) {
	switch r {
	case '/':
		p.key = append(p.key, '.')
	case '.':
		p.key = append(p.key, '_')
	default:
		p.key = utf8.AppendRune(p.key, r)
	}
}

func (p *Parser) hex4() (rune, error) {
	var r rune
	for range 4 {
		c, ok := p.peek()
		if !ok {
			return 0, errEOF
		}
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, p.fail("invalid \\u escape in a key: %q", c)
		}
		p.pos++
		r = r<<4 | rune(d)
	}
	return r, nil
}

// value reads the value of p.key and hands on its sample.
func (p *Parser) value() error {
	c, err := p.skipSpace()
	if err != nil {
		return err
	}
	switch {
	case c == '-' || c >= '0' && c <= '9':
		v, err := p.number()
		if err != nil {
			return err
		}
		return p.emit(v)
	case c == 'n':
		if err := p.literal("null"); err != nil {
			return err
		}
		p.nulls++
		return nil
	case c == '"':
		return p.fail("the value of %q is a string, not a number: not a metrics snapshot", p.key)
	case c == '{', c == '[':
		return p.fail("the value of %q is an object or array, not a number: not a metrics snapshot (/metrics/snapshot is flat)", p.key)
	case c == 't', c == 'f':
		return p.fail("the value of %q is a boolean, not a number: not a metrics snapshot", p.key)
	}
	return p.fail("invalid value for %q: %q", p.key, c)
}

func (p *Parser) literal(word string) error {
	for i := 0; i < len(word); i++ {
		c, ok := p.peek()
		if !ok {
			return errEOF
		}
		if c != word[i] {
			return p.fail("invalid value for %q (want a number)", p.key)
		}
		p.pos++
	}
	return nil
}

// number reads a JSON number (RFC 8259 grammar, checked) and returns it as a float64; one
// beyond float64's range becomes ±Inf, which the engine skips.
func (p *Parser) number() (float64, error) {
	p.num = p.num[:0]
	const (
		sSign = iota
		sInt0
		sInt
		sDot
		sFrac
		sExp
		sExpSign
		sExpDigits
		sZero
	)
	state := sSign
	for {
		c, ok := p.peek()
		if !ok {
			if p.rerr != nil && p.rerr != io.EOF {
				return 0, errEOF
			}
			break // the object is not closed: the caller finds that out
		}
		digit := c >= '0' && c <= '9'
		next := -1
		switch state {
		case sSign:
			if c == '-' {
				next = sInt0
			} else if c == '0' {
				next = sZero
			} else if digit {
				next = sInt
			}
		case sInt0:
			if c == '0' {
				next = sZero
			} else if digit {
				next = sInt
			}
		case sInt, sZero:
			if digit && state == sInt {
				next = sInt
			} else if c == '.' {
				next = sDot
			} else if c == 'e' || c == 'E' {
				next = sExp
			}
		case sDot, sFrac:
			if digit {
				next = sFrac
			} else if state == sFrac && (c == 'e' || c == 'E') {
				next = sExp
			}
		case sExp:
			if c == '+' || c == '-' {
				next = sExpSign
			} else if digit {
				next = sExpDigits
			}
		case sExpSign, sExpDigits:
			if digit {
				next = sExpDigits
			}
		}
		if next < 0 {
			break
		}
		if len(p.num) >= maxNumberLength {
			return 0, p.fail("number longer than %d characters for %q", maxNumberLength, p.key)
		}
		p.num = append(p.num, c)
		p.pos++
		state = next
	}
	switch state {
	case sInt, sZero, sFrac, sExpDigits:
	default:
		return 0, p.fail("invalid number %q for %q", p.num, p.key)
	}
	// The bytes are a valid number, so the only error is a range one (±Inf or 0), and the
	// string view is not kept by it past this call.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(p.num), len(p.num)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, p.fail("invalid number %q for %q", p.num, p.key)
	}
	return v, nil
}

// emit hands on the sample of p.key, applying the leader rule.
func (p *Parser) emit(v float64) error {
	if !p.ElectedOnly {
		return p.call(p.key, v)
	}
	switch p.elected {
	case 0:
		if bytesEqual(p.key, electedName) {
			if v != 0 && !math.IsNaN(v) {
				p.elected = 1
			} else {
				p.elected = -1
			}
			if err := p.flushPending(); err != nil {
				return err
			}
			return p.call(p.key, v)
		}
		if len(p.pending) > 0 || hasPrefix(p.key, masterPrefix) {
			// Held back, in order, until master/elected is known (bounded by MaxKeys and
			// MaxKeyLength).
			p.pending = append(p.pending, pendingSample{int32(len(p.pendingNames)), int32(len(p.key)), v})
			p.pendingNames = append(p.pendingNames, p.key...)
			return nil
		}
	case -1:
		if p.leftOut(p.key) {
			p.dropped++
			return nil
		}
	}
	return p.call(p.key, v)
}

// leftOut says whether a non-elected master's sample is left out.
func (p *Parser) leftOut(name []byte) bool {
	return hasPrefix(name, masterPrefix) && !bytesEqual(name, electedName) && !bytesEqual(name, uptimeName)
}

// flushPending hands on the held-back samples: all of them when the body never said (a body
// without master/elected is an agent's, or an old master's, and counts).
func (p *Parser) flushPending() error {
	for _, ps := range p.pending {
		name := p.pendingNames[ps.off : ps.off+ps.len]
		if p.elected < 0 && p.leftOut(name) {
			p.dropped++
			continue
		}
		if err := p.call(name, ps.value); err != nil {
			return err
		}
	}
	p.pending, p.pendingNames = p.pending[:0], p.pendingNames[:0]
	return nil
}

func (p *Parser) call(name []byte, v float64) error {
	p.s.Name, p.s.Value = name, v
	return p.fn(&p.s)
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
