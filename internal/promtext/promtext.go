package promtext

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/statspipe/statspipe/internal/sample"
)

// Format is the exposition format of a body.
type Format uint8

const (
	// Text is the Prometheus text format 0.0.4.
	Text Format = iota + 1
	// OpenMetrics is OpenMetrics 1.0 (text).
	OpenMetrics
)

func (f Format) String() string {
	switch f {
	case Text:
		return "text/0.0.4"
	case OpenMetrics:
		return "openmetrics/1.0"
	}
	return "format?"
}

// Accept is the Accept header a scraper sends: only the formats this package parses, OpenMetrics
// first (formats.md §5.2). Never protobuf, which node_exporter would otherwise answer.
const Accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

// FormatOf says which format a reply's Content-Type names. It looks at the media type only,
// case-insensitively, and ignores version and other parameters: Python's client labels
// OpenMetrics 1.0 bodies version=0.0.1. An empty header means Text (a producer that sends none).
func FormatOf(contentType string) (Format, error) {
	if strings.TrimSpace(contentType) == "" {
		return Text, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("promtext: content type %q: %w", contentType, err)
	}
	switch mt { // ParseMediaType lower-cases the media type
	case "text/plain":
		return Text, nil
	case "application/openmetrics-text":
		return OpenMetrics, nil
	}
	return 0, fmt.Errorf("promtext: unsupported content type %q", mt)
}

// ErrNoEOF is returned for an OpenMetrics body that ends without its "# EOF" line: the body was
// truncated, and the samples handed out so far are not the whole exposition.
var ErrNoEOF = errors.New("promtext: OpenMetrics body ends without # EOF (truncated)")

// ParseError is a malformed line. Line counts from 1.
type ParseError struct {
	Line   int
	Reason string
}

func (e *ParseError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Reason }

// Limits that keep a hostile or broken body from growing memory without bound.
const (
	// DefaultMaxLineBytes is the line bound NewParser uses when given ≤ 0.
	DefaultMaxLineBytes = 1 << 20
	// MaxLabels is the most labels one sample line (or exemplar) may carry.
	MaxLabels = 256
	// MaxFamilies is the most distinct families (TYPE lines) one body may declare, and
	// MaxFamilyBytes the most bytes their names may total. The table of family names is kept
	// across Parse calls so that scraping the same target again allocates nothing; it is
	// emptied at the start of a Parse when it holds more than either.
	MaxFamilies    = 1 << 16
	MaxFamilyBytes = 8 << 20
)

const readBufSize = 64 << 10

// Stats describe the last Parse.
type Stats struct {
	Lines    int // lines read, comments included
	Samples  int // samples handed to the callback
	Families int // distinct families declared by # TYPE lines
	Skipped  int // samples dropped by rule (_created of counters, histograms, summaries)
}

// famType is the declared type of a family; 0 means none declared.
type famType uint8

const (
	ftNone famType = iota
	ftCounter
	ftGauge
	ftHistogram
	ftGaugeHistogram
	ftSummary
	ftInfo
	ftStateset
	ftUntyped
)

func typeOf(b []byte) famType {
	switch string(b) {
	case "counter":
		return ftCounter
	case "gauge":
		return ftGauge
	case "histogram":
		return ftHistogram
	case "gaugehistogram":
		return ftGaugeHistogram
	case "summary":
		return ftSummary
	case "info":
		return ftInfo
	case "stateset":
		return ftStateset
	case "untyped", "unknown":
		return ftUntyped
	}
	return ftNone
}

type family struct {
	name []byte // interned
	typ  famType
	gen  uint32 // the Parse that declared it; an entry of an older Parse counts as absent
}

// Parser parses bodies one at a time; its buffers are reused from one Parse to the next. It is
// not safe for concurrent use.
type Parser struct {
	maxLine int
	br      *bufio.Reader
	long    []byte // a line longer than the bufio buffer, gathered here
	ubuf    []byte // unescaped names and label values of the current line
	labels  []sample.Label
	fams    map[string]*family
	gen     uint32
	cur     *family // the last family declared: most samples belong to it
	// famBytes totals the family names of this Parse, internBytes those in fams.
	famBytes, internBytes int
	s                     sample.Sample
	format                Format
	line                  int
	stats                 Stats
}

// NewParser returns a Parser that rejects lines longer than maxLineBytes (≤ 0: 1 MiB).
func NewParser(maxLineBytes int) *Parser {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultMaxLineBytes
	}
	return &Parser{
		maxLine: maxLineBytes,
		labels:  make([]sample.Label, 0, 16),
		fams:    make(map[string]*family),
	}
}

// Stats returns the counts of the last Parse.
func (p *Parser) Stats() Stats { return p.stats }

func (p *Parser) errorf(format string, args ...any) error {
	return &ParseError{Line: p.line, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads r to its end, line by line, and calls fn for every sample. The Sample and its
// byte slices are reused: they are valid only during the call. It returns fn's error as is,
// a *ParseError for a malformed line, ErrNoEOF for an OpenMetrics body without # EOF, or a
// read error of r.
func (p *Parser) Parse(r io.Reader, f Format, fn sample.Func) error {
	if f != Text && f != OpenMetrics {
		return fmt.Errorf("promtext: unknown format %d", f)
	}
	if p.br == nil {
		// Not NewReaderSize(r): it would hand back r itself if r were a large enough
		// *bufio.Reader, and the next Parse would Reset the caller's reader.
		p.br = bufio.NewReaderSize(nil, readBufSize)
	}
	p.br.Reset(r)
	defer p.br.Reset(nil) // do not keep the caller's reader alive
	p.format = f
	p.line = 0
	p.stats = Stats{}
	p.cur = nil
	p.gen++
	p.famBytes = 0
	if p.gen == 0 || len(p.fams) > MaxFamilies || p.internBytes > MaxFamilyBytes {
		clear(p.fams)
		p.gen = 1
		p.internBytes = 0
	}
	seenEOF := false
	for {
		line, err := p.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p.line++
		p.stats.Lines++
		if seenEOF {
			return p.errorf("content after # EOF")
		}
		eof, err := p.parseLine(line, fn)
		if err != nil {
			return err
		}
		seenEOF = eof
	}
	if f == OpenMetrics && !seenEOF {
		return ErrNoEOF
	}
	return nil
}

// readLine returns the next line without its '\n', io.EOF at the end of the body. A last line
// without '\n' is returned as a line.
func (p *Parser) readLine() ([]byte, error) {
	b, err := p.br.ReadSlice('\n')
	if err == nil {
		b = b[:len(b)-1]
		if len(b) > p.maxLine {
			return nil, &ParseError{Line: p.line + 1, Reason: fmt.Sprintf("line longer than %d bytes", p.maxLine)}
		}
		return b, nil
	}
	if err == io.EOF {
		if len(b) == 0 {
			return nil, io.EOF
		}
		if len(b) > p.maxLine {
			return nil, &ParseError{Line: p.line + 1, Reason: fmt.Sprintf("line longer than %d bytes", p.maxLine)}
		}
		return b, nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	p.long = append(p.long[:0], b...)
	for {
		if len(p.long) > p.maxLine {
			return nil, &ParseError{Line: p.line + 1, Reason: fmt.Sprintf("line longer than %d bytes", p.maxLine)}
		}
		b, err = p.br.ReadSlice('\n')
		switch err {
		case nil:
			p.long = append(p.long, b[:len(b)-1]...)
		case bufio.ErrBufferFull, io.EOF:
			p.long = append(p.long, b...)
			if err == bufio.ErrBufferFull {
				continue
			}
		default:
			return nil, err
		}
		if len(p.long) > p.maxLine {
			return nil, &ParseError{Line: p.line + 1, Reason: fmt.Sprintf("line longer than %d bytes", p.maxLine)}
		}
		return p.long, nil
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// skipSep skips the separator of the format at b[i:]: in text a run of blanks and tabs, in
// OpenMetrics one space. It says whether there was one.
func (p *Parser) skipSep(b []byte, i int) (int, bool) {
	if p.format == OpenMetrics {
		if i < len(b) && b[i] == ' ' {
			return i + 1, true
		}
		return i, false
	}
	j := i
	for j < len(b) && isBlank(b[j]) {
		j++
	}
	return j, j > i
}

func (p *Parser) parseLine(b []byte, fn sample.Func) (eof bool, err error) {
	if p.format == OpenMetrics {
		if bytes.IndexByte(b, '\r') >= 0 {
			return false, p.errorf("carriage return in an OpenMetrics line")
		}
		if len(b) == 0 {
			return false, p.errorf("empty line in an OpenMetrics body")
		}
	} else {
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1] // a CRLF body: tolerated in text
		}
		i := 0
		for i < len(b) && isBlank(b[i]) {
			i++
		}
		b = b[i:]
		if len(b) == 0 {
			return false, nil // blank lines are allowed in text
		}
	}
	if b[0] == '#' {
		return p.parseComment(b)
	}
	return false, p.parseSample(b, fn)
}

// parseComment handles a line that starts with '#'.
func (p *Parser) parseComment(b []byte) (eof bool, err error) {
	om := p.format == OpenMetrics
	if om {
		if string(b) == "# EOF" {
			return true, nil
		}
		if len(b) < 2 || b[1] != ' ' {
			return false, p.errorf("malformed # line")
		}
	}
	i, _ := p.skipSep(b, 1)
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	keyword := b[i:j]
	switch string(keyword) {
	case "HELP", "TYPE":
	case "UNIT":
		if !om {
			return false, nil // a comment in text
		}
	default:
		if om {
			return false, p.errorf("unknown # line %q in OpenMetrics", truncate(keyword))
		}
		return false, nil // any other # line is a comment in text
	}
	i, ok := p.skipSep(b, j)
	if !ok {
		return false, p.errorf("# %s without a metric name", keyword)
	}
	p.ubuf = p.ubuf[:0]
	if cap(p.ubuf) < len(b) {
		p.ubuf = make([]byte, 0, len(b))
	}
	name, i, err := p.parseName(b, i, true)
	if err != nil {
		return false, err
	}
	rest := b[i:]
	switch string(keyword) {
	case "HELP", "UNIT":
		// The text is not used; only its separation from the name is checked.
		if len(rest) > 0 && !isBlank(rest[0]) {
			return false, p.errorf("# %s: bad metric name", keyword)
		}
		return false, nil
	}
	i, ok = p.skipSep(b, i)
	if !ok {
		return false, p.errorf("# TYPE %s without a type", truncate(name))
	}
	t := b[i:]
	if !om {
		for len(t) > 0 && isBlank(t[len(t)-1]) {
			t = t[:len(t)-1]
		}
	}
	typ := typeOf(t)
	if typ == ftNone {
		return false, p.errorf("# TYPE %s: unknown type %q", truncate(name), truncate(t))
	}
	return false, p.declare(name, typ)
}

// declare records a # TYPE line. A second TYPE line of the same family is an error unless it
// repeats the same type.
func (p *Parser) declare(name []byte, typ famType) error {
	f := p.fams[string(name)]
	if f != nil && f.gen == p.gen {
		if f.typ != typ {
			return p.errorf("second # TYPE line for %s with another type", truncate(name))
		}
		p.cur = f
		return nil
	}
	if p.stats.Families >= MaxFamilies {
		return p.errorf("more than %d families", MaxFamilies)
	}
	if p.famBytes += len(name); p.famBytes > MaxFamilyBytes {
		return p.errorf("family names longer than %d bytes in all", MaxFamilyBytes)
	}
	if f == nil {
		f = &family{name: append([]byte(nil), name...)}
		p.fams[string(f.name)] = f
		p.internBytes += len(name)
	}
	f.typ, f.gen = typ, p.gen
	p.cur = f
	p.stats.Families++
	return nil
}

func (p *Parser) lookup(name []byte) *family {
	if c := p.cur; c != nil && string(c.name) == string(name) {
		return c
	}
	f := p.fams[string(name)]
	if f == nil || f.gen != p.gen {
		return nil
	}
	return f
}

// nameClass classifies bytes for names: a table is cheaper than comparisons on the hot path.
var nameClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] = classStart | classChar | classMetricStart | classMetricChar
		case c >= '0' && c <= '9':
			t[c] = classChar | classMetricChar
		case c == ':':
			t[c] = classMetricStart | classMetricChar
		}
	}
	return t
}()

const (
	classStart       = 1 << iota // may start a label name
	classChar                    // may continue a label name
	classMetricStart             // may start a metric name
	classMetricChar              // may continue a metric name
)

// parseName reads a metric name (metric) or label name at b[i:]: either the classic syntax or
// a quoted UTF-8 string, unescaped into ubuf.
func (p *Parser) parseName(b []byte, i int, metric bool) ([]byte, int, error) {
	if i < len(b) && b[i] == '"' {
		v, j, err := p.parseQuoted(b, i)
		if err != nil {
			return nil, j, err
		}
		if len(v) == 0 {
			return nil, j, p.errorf("empty quoted name")
		}
		return v, j, nil
	}
	start, char := uint8(classStart), uint8(classChar)
	if metric {
		start, char = classMetricStart, classMetricChar
	}
	if i >= len(b) || nameClass[b[i]]&start == 0 {
		if metric {
			return nil, i, p.errorf("expected a metric name")
		}
		return nil, i, p.errorf("expected a label name")
	}
	j := i + 1
	for j < len(b) && nameClass[b[j]]&char != 0 {
		j++
	}
	return b[i:j], j, nil
}

// parseQuoted reads the quoted string at b[i] == '"', unescaping \\, \" and \n. The result
// is b's own bytes when there is no escape, else a piece of ubuf (whose capacity was made at
// least the line's length, so that appends never move earlier pieces).
func (p *Parser) parseQuoted(b []byte, i int) ([]byte, int, error) {
	start := i + 1
	j := start
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j >= len(b) {
		return nil, j, p.errorf("unterminated quoted string")
	}
	if b[j] == '"' {
		v := b[start:j]
		if !utf8.Valid(v) {
			return nil, j, p.errorf("invalid UTF-8 in a quoted string")
		}
		return v, j + 1, nil
	}
	u0 := len(p.ubuf)
	p.ubuf = append(p.ubuf, b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch c {
		case '"':
			v := p.ubuf[u0:len(p.ubuf):len(p.ubuf)]
			if !utf8.Valid(v) {
				return nil, j, p.errorf("invalid UTF-8 in a quoted string")
			}
			return v, j + 1, nil
		case '\\':
			if j+1 >= len(b) {
				return nil, j, p.errorf("unterminated quoted string")
			}
			switch b[j+1] {
			case '\\':
				p.ubuf = append(p.ubuf, '\\')
			case '"':
				p.ubuf = append(p.ubuf, '"')
			case 'n':
				p.ubuf = append(p.ubuf, '\n')
			default:
				return nil, j, p.errorf("invalid escape \\%c", b[j+1])
			}
			j += 2
		default:
			p.ubuf = append(p.ubuf, c)
			j++
		}
	}
	return nil, j, p.errorf("unterminated quoted string")
}

// parseLabels reads a label set from b[i] == '{' to its '}'. Labels go to p.labels unless
// discard (an exemplar). A quoted string not followed by '=' is the metric name (UTF-8 form);
// it is returned as name.
func (p *Parser) parseLabels(b []byte, i int, discard bool) (name []byte, j int, err error) {
	om := p.format == OpenMetrics
	j = i + 1
	n := 0
	skip := func() {
		if !om {
			for j < len(b) && isBlank(b[j]) {
				j++
			}
		}
	}
	for {
		skip()
		if j >= len(b) {
			return nil, j, p.errorf("unterminated label set")
		}
		if b[j] == '}' {
			if n > 0 && om && b[j-1] == ',' {
				return nil, j, p.errorf("trailing comma in an OpenMetrics label set")
			}
			return name, j + 1, nil
		}
		quoted := b[j] == '"'
		var ln []byte
		ln, j, err = p.parseName(b, j, false)
		if err != nil {
			return nil, j, err
		}
		skip()
		if quoted && !discard && (j >= len(b) || b[j] != '=') {
			if name != nil || n > 0 {
				return nil, j, p.errorf("a quoted metric name must come first in the braces")
			}
			name = ln
		} else {
			if j >= len(b) || b[j] != '=' {
				return nil, j, p.errorf("expected '=' after label name %q", truncate(ln))
			}
			j++
			skip()
			if j >= len(b) || b[j] != '"' {
				return nil, j, p.errorf("expected a quoted label value for %q", truncate(ln))
			}
			var v []byte
			v, j, err = p.parseQuoted(b, j)
			if err != nil {
				return nil, j, err
			}
			if n >= MaxLabels {
				return nil, j, p.errorf("more than %d labels", MaxLabels)
			}
			if !discard {
				// A duplicate would make the series ambiguous (and a second le or
				// quantile would stay behind in Labels). Quadratic, but bounded by
				// MaxLabels, and a handful of comparisons for real lines.
				for _, l := range p.labels {
					if string(l.Name) == string(ln) {
						return nil, j, p.errorf("duplicate label %q", truncate(ln))
					}
				}
				p.labels = append(p.labels, sample.Label{Name: ln, Value: v})
			}
		}
		n++
		skip()
		if j >= len(b) {
			return nil, j, p.errorf("unterminated label set")
		}
		switch b[j] {
		case ',':
			j++
		case '}':
		default:
			return nil, j, p.errorf("expected ',' or '}' in a label set")
		}
	}
}

// bytesString views b as a string for strconv, which keeps no reference to it.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseFloat is strconv.ParseFloat without Go's hexadecimal form (and the underscores Go
// allows between digits), which no exposition format has.
func parseFloat(b []byte) (float64, bool) {
	d := b
	if len(d) > 0 && (d[0] == '+' || d[0] == '-') {
		d = d[1:]
	}
	if len(d) > 1 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X') || bytes.IndexByte(d, '_') >= 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(bytesString(b), 64)
	if err != nil {
		// A range error (1e999) still gives ±Inf or 0, as Prometheus takes it.
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return v, true
		}
		return 0, false
	}
	return v, true
}

func token(b []byte, i int) (int, []byte) {
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	return j, b[i:j]
}

// parseSample handles a sample line.
func (p *Parser) parseSample(b []byte, fn sample.Func) error {
	p.labels = p.labels[:0]
	p.ubuf = p.ubuf[:0]
	if cap(p.ubuf) < len(b) {
		p.ubuf = make([]byte, 0, len(b))
	}
	var name []byte
	i := 0
	var err error
	if b[0] != '{' {
		if name, i, err = p.parseName(b, 0, true); err != nil {
			return err
		}
		if b[0] == '"' {
			return p.errorf("a quoted metric name belongs inside the braces")
		}
	}
	if i < len(b) && b[i] == '{' {
		var qn []byte
		if qn, i, err = p.parseLabels(b, i, false); err != nil {
			return err
		}
		if qn != nil {
			if name != nil {
				return p.errorf("two metric names")
			}
			name = qn
		}
	}
	if name == nil {
		return p.errorf("sample without a metric name")
	}
	i, ok := p.skipSep(b, i)
	if !ok {
		if i >= len(b) {
			return p.errorf("sample %s without a value", truncate(name))
		}
		return p.errorf("unexpected %q after the metric name", b[i])
	}
	i, vb := token(b, i)
	if len(vb) == 0 {
		return p.errorf("sample %s without a value", truncate(name))
	}
	value, ok := parseFloat(vb)
	if !ok {
		return p.errorf("bad value %q", truncate(vb))
	}
	if err := p.parseTail(b, i); err != nil {
		return err
	}
	return p.emit(name, value, fn)
}

// parseTail checks what follows the value at b[i:]: an optional timestamp (int64 ms in text,
// float seconds in OpenMetrics) and, in OpenMetrics, an optional exemplar; both are ignored.
func (p *Parser) parseTail(b []byte, i int) error {
	if p.format == Text {
		i, _ = p.skipSep(b, i)
		if i >= len(b) {
			return nil // trailing blanks are tolerated in text
		}
		i, ts := token(b, i)
		if _, err := strconv.ParseInt(bytesString(ts), 10, 64); err != nil {
			return p.errorf("bad timestamp %q", truncate(ts))
		}
		i, _ = p.skipSep(b, i)
		if i < len(b) {
			return p.errorf("unexpected %q after the timestamp", truncate(b[i:]))
		}
		return nil
	}
	// OpenMetrics: single spaces, nothing trailing.
	if i >= len(b) {
		return nil
	}
	if b[i] != ' ' || i+1 >= len(b) {
		return p.errorf("unexpected %q after the value", truncate(b[i:]))
	}
	i++
	if b[i] != '#' {
		var ts []byte
		i, ts = token(b, i)
		if v, ok := parseFloat(ts); !ok || math.IsNaN(v) {
			return p.errorf("bad timestamp %q", truncate(ts))
		}
		if i >= len(b) {
			return nil
		}
		if i+1 >= len(b) || b[i+1] != '#' {
			return p.errorf("unexpected %q after the timestamp", truncate(b[i:]))
		}
		i++
	}
	// Exemplar: "# {labels} value [timestamp]".
	if i+2 >= len(b) || b[i+1] != ' ' || b[i+2] != '{' {
		return p.errorf("malformed exemplar")
	}
	_, i, err := p.parseLabels(b, i+2, true)
	if err != nil {
		return err
	}
	if i >= len(b) || b[i] != ' ' {
		return p.errorf("exemplar without a value")
	}
	i, v := token(b, i+1)
	if _, ok := parseFloat(v); !ok {
		return p.errorf("bad exemplar value %q", truncate(v))
	}
	if i < len(b) {
		var ts []byte
		i, ts = token(b, i+1)
		if _, ok := parseFloat(ts); !ok || i < len(b) {
			return p.errorf("bad exemplar timestamp")
		}
	}
	return nil
}

func hasSuffix(b []byte, s string) bool {
	return len(b) > len(s) && string(b[len(b)-len(s):]) == s
}

// resolve finds the family a sample name belongs to and the kind of the sample. skip says the
// sample is dropped by rule (a _created).
func (p *Parser) resolve(name []byte) (f *family, kind sample.Kind, skip bool, ok bool) {
	if f = p.lookup(name); f != nil {
		switch f.typ {
		case ftCounter:
			return f, sample.Counter, false, true
		case ftGauge, ftStateset, ftInfo:
			return f, sample.Gauge, false, true
		case ftSummary:
			return f, sample.Quantile, false, true
		case ftUntyped:
			return f, sample.Untyped, false, true
		}
		// A histogram's own name is no sample of it; look for a family it is a suffix of.
	}
	for _, sf := range suffixes {
		if !hasSuffix(name, sf.suffix) {
			continue
		}
		base := p.lookup(name[:len(name)-len(sf.suffix)])
		if base == nil {
			continue
		}
		for _, o := range sf.owners {
			if o.typ == base.typ {
				return base, o.kind, o.skip, true
			}
		}
	}
	if f != nil {
		return f, 0, false, false // a histogram-typed name with no suffix
	}
	return nil, sample.Untyped, false, true
}

type owner struct {
	typ  famType
	kind sample.Kind
	skip bool
}

var suffixes = [...]struct {
	suffix string
	owners []owner
}{
	{"_bucket", []owner{{ftHistogram, sample.Bucket, false}, {ftGaugeHistogram, sample.Bucket, false}}},
	{"_sum", []owner{{ftHistogram, sample.HistogramSum, false}, {ftSummary, sample.SummarySum, false}}},
	{"_count", []owner{{ftHistogram, sample.HistogramCount, false}, {ftSummary, sample.SummaryCount, false}}},
	{"_total", []owner{{ftCounter, sample.Counter, false}}},
	{"_created", []owner{{ftCounter, 0, true}, {ftHistogram, 0, true}, {ftSummary, 0, true}, {ftGaugeHistogram, 0, true}}},
	{"_gsum", []owner{{ftGaugeHistogram, sample.HistogramSum, false}}},
	{"_gcount", []owner{{ftGaugeHistogram, sample.HistogramCount, false}}},
	{"_info", []owner{{ftInfo, sample.Gauge, false}}},
}

// takeLabel removes the label named n from p.labels and returns its value.
func (p *Parser) takeLabel(n string) ([]byte, bool) {
	for k, l := range p.labels {
		if string(l.Name) == n {
			v := l.Value
			p.labels = append(p.labels[:k], p.labels[k+1:]...)
			return v, true
		}
	}
	return nil, false
}

func (p *Parser) emit(name []byte, value float64, fn sample.Func) error {
	f, kind, skip, ok := p.resolve(name)
	if !ok {
		return p.errorf("sample %s of histogram family %s needs a _bucket, _sum or _count suffix", truncate(name), truncate(f.name))
	}
	if skip {
		p.stats.Skipped++
		return nil
	}
	s := &p.s
	s.Name, s.Kind, s.Value, s.Bound = name, kind, value, 0
	s.Family = name
	switch kind {
	case sample.Bucket:
		le, ok := p.takeLabel("le")
		if !ok {
			return p.errorf("bucket %s without le", truncate(name))
		}
		bound, ok := parseFloat(le)
		if !ok || math.IsNaN(bound) {
			return p.errorf("bucket %s: le %q is not a number", truncate(name), truncate(le))
		}
		s.Bound = bound
		s.Family = f.name
	case sample.Quantile:
		q, ok := p.takeLabel("quantile")
		if !ok {
			return p.errorf("summary sample %s without quantile", truncate(name))
		}
		bound, ok := parseFloat(q)
		if !ok || !(bound >= 0 && bound <= 1) {
			return p.errorf("summary %s: quantile %q is not a number in [0, 1]", truncate(name), truncate(q))
		}
		s.Bound = bound
		s.Family = f.name
	case sample.HistogramSum, sample.HistogramCount, sample.SummarySum, sample.SummaryCount:
		s.Family = f.name
	}
	s.Labels = p.labels
	p.stats.Samples++
	return fn(s)
}

// truncate keeps error messages short for long tokens.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
