package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/statspipe/statspipe/internal/spool"
)

// Typed snapshots ([pull] typed): <socket>_stat.typed holds a `show stat typed` reply and
// <socket>_info.typed a `show info typed` reply (formats.md §1.5, §2):
//
//	<obj>.<px_id>.<id>.<fpos>.<fname>.<process_num>:<tags>:<type>:<value>   (stat; obj F, B, S or L)
//	<pos>.<name>.<process_num>:<tags>:<type>:<value>                       (info)
//
// one line per non-empty field. Each file is transcoded, in a reused buffer, into exactly the
// text the plain parsers read: the `show stat` CSV (a `# pxname,svname,…` header in HAProxy's
// field order, one row per object, each field at its column, empty where the object has no
// value, a `-` column before the module counters) and the `show info` text (`Name: value`
// lines). Values are copied as HAProxy printed them (strings are CSV-escaped the same way in
// both forms), so every path and value is the one the plain form gives. The nature of each
// field (the second tag character) is recorded in typedNatures for all-metrics.
//
// A malformed line rejects the whole file, with a problem naming the file and the line, as a
// corrupt CSV file is. Bounds: field positions below headerFields (the CSV header bound), a
// line (and the field names together) of at most maxRecord bytes, like a CSV record; the
// reply is streamed twice through a reused buffer, so its size is bounded only by the file,
// as a CSV reply's. Per field nothing is allocated: fields are offsets into the buffers.

const typedSuffix = ".typed"

// maxTypedKeys bounds the interned "<obj>.<field>" keys kept across snapshots; past it they are
// forgotten and interned again (a bound on memory, not a limit on fields).
const maxTypedKeys = 1 << 15

// maxTypedNatures bounds the natures of one snapshot: 4 row types × headerFields positions,
// and as many `show info` names. The fields past it (a hostile info reply of millions of names)
// have no nature.
const maxTypedNatures = 5 * headerFields

// typedState is the typed-snapshot part of a Processor.
type typedState struct {
	// typedNatures holds the nature of every field of this snapshot's typed files, keyed
	// "<obj>.<field>" (obj F, B, S, L, or I for show info); cleared per snapshot.
	typedNatures FieldNatures
	typedKeys    map[string]string // interned keys of typedNatures, kept across snapshots
	natKey       []byte
	tc           typedTranscoder
}

// typedNature returns the nature HAProxy declared for field of row type obj (F, B, S, L; I for
// show info) in this snapshot's typed files, NatureUnknown when none said.
func (p *Processor) typedNature(obj byte, field string) Nature {
	if len(p.typedNatures) == 0 {
		return NatureUnknown
	}
	p.natKey = append(append(append(p.natKey[:0], obj), '.'), field...)
	return p.typedNatures[string(p.natKey)]
}

// startTyped forgets the natures of the previous snapshot.
func (p *Processor) startTyped() {
	clear(p.typedNatures)
}

// setNature records nature n of key (obj '.' field) unless the snapshot already has one.
func (p *Processor) setNature(key []byte, n Nature) {
	if n == NatureUnknown {
		return
	}
	if p.typedNatures == nil {
		p.typedNatures = FieldNatures{}
		p.typedKeys = map[string]string{}
	}
	if _, ok := p.typedNatures[string(key)]; ok || len(p.typedNatures) >= maxTypedNatures {
		return
	}
	k, ok := p.typedKeys[string(key)]
	if !ok {
		if len(p.typedKeys) >= maxTypedKeys {
			clear(p.typedKeys)
		}
		k = string(key)
		p.typedKeys[k] = k
	}
	p.typedNatures[k] = n
}

// typedObjs are the row types of `show stat typed`, in the order of typedTranscoder.nat.
const typedObjs = "FBSL"

// typedTranscoder turns typed replies into the plain forms. A `show stat typed` reply is
// streamed twice through a reused buffer: once to learn the field names (the CSV header comes
// first), once to produce the rows, which it hands out as an io.Reader; so memory does not grow
// with the reply (a typed reply is about 6 times its CSV). Its slices are reused.
type typedTranscoder struct {
	in  typedInput
	br  bytes.Reader // the input of transcodeStat
	out []byte       // transcodeStat's and transcodeInfo's result

	// by field position: the name (offsets in names; nameE < 0 when not seen)
	nameS, nameE []int32
	names        []byte
	maxPos       int
	// by field position: its column, -1 for none
	colOf []int32
	// the columns: the position each shows, or colDash for the `-` column, or
	// colStatic - i for a static name nobody sent (staticFields[i])
	cols []int32
	// the current row: its cells by column (offsets in rowBuf; cellE < 0 when empty), the
	// cells to quote, its object and process
	cellS, cellE []int32
	quote        []bool
	rowBuf       []byte
	key, proc    []byte
	// what Read hands out: pend[pendS:], then the next row; done after the final blank line
	pend  []byte
	pendS int
	done  bool
	// nature by row type and field position (0 when not given)
	nat [len(typedObjs)][]Nature
	// show info: the natures by name (offsets in the data)
	infoNat []infoNature
}

type infoNature struct {
	s, e int32
	n    Nature
}

const (
	colDash   int32 = -1
	colStatic int32 = -2
)

// staticFields are the names of `show stat`'s static columns at each position (Debian's
// HAProxy 2.6.12 header, then the columns formats.md §1.2 lists for later versions). They name
// the columns of a typed reply that no object has a value for (in the CSV every cell of such
// a column is empty): the plain parser then sees the same columns. They are used only when
// every name the reply gives for these positions matches.
var staticFields = strings.Fields(`pxname svname qcur qmax scur smax slim stot bin bout dreq dresp
ereq econ eresp wretr wredis status weight act bck chkfail chkdown lastchg downtime qlimit pid
iid sid throttle lbtot tracked type rate rate_lim rate_max check_status check_code
check_duration hrsp_1xx hrsp_2xx hrsp_3xx hrsp_4xx hrsp_5xx hrsp_other hanafail req_rate
req_rate_max req_tot cli_abrt srv_abrt comp_in comp_out comp_byp comp_rsp lastsess last_chk
last_agt qtime ctime rtime ttime agent_status agent_code agent_duration check_desc agent_desc
check_rise check_fall check_health agent_rise agent_fall agent_health addr cookie mode algo
conn_rate conn_rate_max conn_tot intercepted dcon dses wrew connect reuse cache_lookups
cache_hits srv_icur src_ilim qtime_max ctime_max rtime_max ttime_max eint idle_conn_cur
safe_conn_cur used_conn_cur need_conn_est uweight agg_server_status agg_server_check_status
agg_check_status srid sess_other h1sess h2sess h3sess req_other h1req h2req h3req proto
priv_idle_cur reqbin reqbout resbin resbout cache_hint_hits`)

// staticAlt are positions whose name differs between versions (2.6.12 has agg_server_status
// at 100, later versions agg_server_check_status).
var staticAlt = map[int]string{100: "agg_server_check_status", 101: "agg_server_status"}

var staticIndex = func() map[string]int {
	m := map[string]int{}
	for i, n := range staticFields {
		m[n] = i
	}
	for i, n := range staticAlt {
		m[n] = i
	}
	return m
}()

// typedLine is one parsed line of a typed reply; the offsets are into the line.
type typedLine struct {
	obj          byte // F, B, S, L (stat); 0 for info
	keyE         int  // stat: end of "<obj>.<px_id>.<id>." (the object, with proc)
	pos          int
	nameS, nameE int
	procS, procE int
	nature       Nature
	valS         int
	needQuote    bool // a str value with ',' or '"' that HAProxy did not quote
}

// typedError is a malformed line.
func typedError(line int, format string, args ...any) error {
	return &statError{line, "malformed typed reply: " + fmt.Sprintf(format, args...)}
}

// parseTypedLine parses line (without '\n'); stat tells the stat form from the info form. It
// returns what is wrong, "" when nothing is. One pass over the bytes, calling nothing: most
// lines are about 30 bytes, where a call per separator would cost more than the scan.
func parseTypedLine(line []byte, stat bool, t *typedLine) string {
	i := 0
	if stat {
		if len(line) < 2 || line[1] != '.' || !(line[0] == 'F' || line[0] == 'B' || line[0] == 'S' || line[0] == 'L') {
			return "the object is not F, B, S or L"
		}
		t.obj = line[0]
		i = 2
		for range 2 { // px_id, id
			j := digitsEnd(line, i)
			if j == i || j >= len(line) || line[j] != '.' {
				return "bad proxy or object id"
			}
			i = j + 1
		}
		t.keyE = i
	}
	j := digitsEnd(line, i)
	if j == i || j >= len(line) || line[j] != '.' || j-i > 5 {
		return "bad field position"
	}
	pos := 0
	for _, c := range line[i:j] {
		pos = pos*10 + int(c-'0')
	}
	if pos >= headerFields {
		return fmt.Sprintf("field position %d is beyond %d", pos, headerFields)
	}
	t.pos = pos
	t.nameS = j + 1
	// the name and process number end at the first ':'; the process number follows the last '.'
	dot, c1 := -1, -1
	bad := false
	for k := t.nameS; k < len(line); k++ {
		c := line[k]
		if c == ':' {
			c1 = k
			break
		}
		if c == '.' {
			dot = k
		}
		bad = bad || c == ',' || c == '"'
	}
	if c1 < 0 {
		return "fewer than 4 `:`-separated parts"
	}
	if dot <= t.nameS {
		return "no field name and process number"
	}
	if bad {
		return "a field name or process number with `,` or `\"`"
	}
	t.nameE, t.procS, t.procE = dot, dot+1, c1
	if t.procS == t.procE || digitsEnd(line, t.procS) != t.procE {
		return "bad process number"
	}
	// tags: 3 or 4 characters, then the type
	c2 := -1
	for k := c1 + 1; k < len(line) && k <= c1+5; k++ {
		if line[k] == ':' {
			c2 = k
			break
		}
	}
	if c2 < 0 && len(line) <= c1+5 {
		return "fewer than 4 `:`-separated parts"
	}
	if n := c2 - c1 - 1; c2 < 0 || n < 3 || n > 4 {
		return "the tags are not 3 or 4 characters"
	}
	t.nature = Nature(line[c1+2])
	if len(line) < c2+5 || line[c2+4] != ':' {
		if bytes.IndexByte(line[c2+1:], ':') < 0 {
			return "fewer than 4 `:`-separated parts"
		}
		return "an unknown type " + fmt.Sprintf("%q", line[c2+1:c2+1+bytes.IndexByte(line[c2+1:], ':')])
	}
	typ := line[c2+1 : c2+4]
	val := line[c2+5:]
	t.valS = c2 + 5
	t.needQuote = false
	switch string(typ) {
	case "u32", "u64":
		if len(val) == 0 || digitsEnd(val, 0) != len(val) {
			return "an unsigned value that is not digits"
		}
		return ""
	case "s32", "s64":
		k := 0
		if len(val) > 0 && val[0] == '-' {
			k = 1
		}
		if len(val) == k || digitsEnd(val, k) != len(val) {
			return "a signed value that is not an integer"
		}
		return ""
	case "flt":
		if len(val) == 0 {
			return "an empty float"
		}
		for _, c := range val {
			if !('0' <= c && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
				return "a float value that is not a number"
			}
		}
		return ""
	case "str":
	default:
		return "an unknown type " + fmt.Sprintf("%q", typ)
	}
	special := false
	for _, c := range val {
		if c == '\r' {
			return "a value with a carriage return"
		}
		special = special || c == ',' || c == '"'
	}
	if len(val) > 0 && val[0] == '"' {
		if !wellQuoted(val) {
			return "a quoted string value that is not closed"
		}
	} else {
		t.needQuote = special
	}
	return ""
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	return i
}

// wellQuoted reports whether v is one CSV-quoted field: "…" with inner quotes doubled.
func wellQuoted(v []byte) bool {
	if len(v) < 2 || v[len(v)-1] != '"' {
		return false
	}
	in := v[1 : len(v)-1]
	for i := 0; i < len(in); i++ {
		if in[i] == '"' {
			if i+1 >= len(in) || in[i+1] != '"' {
				return false
			}
			i++
		}
	}
	return true
}

// forLines calls f for every non-blank line of data with its 1-based number, until f fails.
func forLines(data []byte, f func(line []byte, no int) error) error {
	no := 0
	for len(data) > 0 {
		no++
		var line []byte
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl], data[nl+1:]
		} else {
			line, data = data, nil
		}
		if len(line) == 0 {
			continue
		}
		if err := f(line, no); err != nil {
			return err
		}
	}
	return nil
}

func grow32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

// typedInput reads the lines of a typed reply through a reused buffer.
type typedInput struct {
	r     io.ReadSeeker
	buf   []byte
	s, e  int // the unread bytes are buf[s:e]
	eof   bool
	line  int // number of the last line returned (1-based)
	lastS int // where the last line returned starts (for unread)
}

func (in *typedInput) reset(r io.ReadSeeker) {
	if in.buf == nil {
		in.buf = make([]byte, readBufferSize)
	}
	in.r, in.s, in.e, in.eof, in.line = r, 0, 0, false, 0
}

func (in *typedInput) rewind() error {
	_, err := in.r.Seek(0, io.SeekStart)
	in.s, in.e, in.eof, in.line = 0, 0, false, 0
	return err
}

// next returns the next line without its '\n' (possibly empty), valid until the next call;
// ok is false at the end. A line longer than maxRecord is an error.
func (in *typedInput) next() (line []byte, ok bool, err error) {
	for {
		if i := bytes.IndexByte(in.buf[in.s:in.e], '\n'); i >= 0 {
			line = in.buf[in.s : in.s+i]
			in.lastS, in.s = in.s, in.s+i+1
			in.line++
			return line, true, nil
		}
		if in.eof {
			if in.s == in.e {
				return nil, false, nil
			}
			line = in.buf[in.s:in.e]
			in.lastS, in.s = in.s, in.e
			in.line++
			return line, true, nil
		}
		if in.s > 0 {
			in.e = copy(in.buf, in.buf[in.s:in.e])
			in.s = 0
		}
		if in.e == len(in.buf) {
			if len(in.buf) >= maxRecord {
				return nil, false, &statError{in.line + 1, fmt.Sprintf("a line is longer than %d bytes", maxRecord)}
			}
			nb := make([]byte, min(2*len(in.buf), maxRecord))
			copy(nb, in.buf[:in.e])
			in.buf = nb
		}
		n, err := in.r.Read(in.buf[in.e:])
		in.e += n
		if err == io.EOF {
			in.eof = true
		} else if err != nil {
			return nil, false, err
		}
	}
}

// unread gives back the line next just returned.
func (in *typedInput) unread() {
	in.s = in.lastS
	in.line--
}

// start reads the whole reply r once, checking every line and collecting the field names by
// position and the natures, and prepares Read to hand out the CSV from the header on.
func (tc *typedTranscoder) start(r io.ReadSeeker) error {
	tc.in.reset(r)
	tc.nameS = grow32(tc.nameS, headerFields)
	tc.nameE = grow32(tc.nameE, headerFields)
	for i := range tc.nameE {
		tc.nameE[i] = -1
	}
	tc.names = tc.names[:0]
	for k := range tc.nat {
		if tc.nat[k] == nil {
			tc.nat[k] = make([]Nature, headerFields)
		} else {
			clear(tc.nat[k])
		}
	}
	tc.maxPos = -1
	var t typedLine
	fields := 0
	for {
		line, ok, err := tc.in.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if len(line) == 0 {
			continue
		}
		if msg := parseTypedLine(line, true, &t); msg != "" {
			return typedError(tc.in.line, "%s", msg)
		}
		if err := tc.noteName(line, &t, tc.in.line); err != nil {
			return err
		}
		fields++
	}
	if fields == 0 {
		return errors.New("empty file")
	}
	tc.layout()
	n := len(tc.cols)
	tc.cellS = grow32(tc.cellS, n)
	tc.cellE = grow32(tc.cellE, n)
	if cap(tc.quote) < n {
		tc.quote = make([]bool, n)
	}
	tc.quote = tc.quote[:n]
	tc.pend = tc.header(tc.pend[:0])
	tc.pendS, tc.done = 0, false
	return tc.in.rewind()
}

// Read hands out the CSV: the header, then one row per object, then the final blank line.
// A line that fails now (the file changed since start) is an error.
func (tc *typedTranscoder) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if tc.pendS < len(tc.pend) {
			k := copy(p[n:], tc.pend[tc.pendS:])
			tc.pendS += k
			n += k
			continue
		}
		if tc.done {
			return n, io.EOF
		}
		tc.pend, tc.pendS = tc.pend[:0], 0
		more, err := tc.nextRow()
		if err != nil {
			return n, err
		}
		if !more {
			tc.pend = append(tc.pend, '\n')
			tc.done = true
		}
	}
	return n, nil
}

// nextRow appends the next object's row to pend; false when there is none. An object is the
// fields of one (obj, px_id, id, process) in increasing position: a field of another object,
// or at a position not after the last, starts the next row.
func (tc *typedTranscoder) nextRow() (bool, error) {
	for c := range tc.cellE {
		tc.cellE[c] = -1
	}
	clear(tc.quote)
	tc.rowBuf = tc.rowBuf[:0]
	var t typedLine
	started := false
	lastPos := -1
	for {
		line, ok, err := tc.in.next()
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		if len(line) == 0 {
			continue
		}
		if msg := parseTypedLine(line, true, &t); msg != "" {
			return false, typedError(tc.in.line, "%s", msg)
		}
		k, pr := line[:t.keyE], line[t.procS:t.procE]
		if started && (t.pos <= lastPos || string(k) != string(tc.key) || string(pr) != string(tc.proc)) {
			tc.in.unread()
			break
		}
		if !started {
			tc.key, tc.proc = append(tc.key[:0], k...), append(tc.proc[:0], pr...)
			started = true
		}
		lastPos = t.pos
		if t.pos > tc.maxPos || tc.colOf[t.pos] < 0 {
			return false, typedError(tc.in.line, "the file changed while it was read")
		}
		c := tc.colOf[t.pos]
		tc.cellS[c] = int32(len(tc.rowBuf))
		tc.rowBuf = append(tc.rowBuf, line[t.valS:]...)
		tc.cellE[c] = int32(len(tc.rowBuf))
		tc.quote[c] = t.needQuote
	}
	if !started {
		return false, nil
	}
	tc.pend = tc.row(tc.pend)
	return true, nil
}

// transcodeStat turns the `show stat typed` reply data into the `show stat` CSV in tc.out
// (tests, benchmarks; the processor streams the file).
func (tc *typedTranscoder) transcodeStat(data []byte) error {
	tc.br.Reset(data)
	if err := tc.start(&tc.br); err != nil {
		return err
	}
	out := tc.out[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := tc.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			tc.out = out
			return err
		}
	}
	tc.out = out
	return nil
}

// offsetIn is the offset of sub, a subslice of data, in data.
func offsetIn(data, sub []byte) int {
	return cap(data) - cap(sub)
}

// noteName records the name (in names) and nature of the field of line t.
func (tc *typedTranscoder) noteName(line []byte, t *typedLine, no int) error {
	name := line[t.nameS:t.nameE]
	if prev := tc.nameE[t.pos]; prev >= 0 {
		if before := tc.names[tc.nameS[t.pos]:prev]; string(before) != string(name) {
			return typedError(no, "field position %d is named %q here and %q before", t.pos, name, before)
		}
	} else {
		if len(tc.names)+len(name) > maxRecord {
			return typedError(no, "field names longer than %d bytes together", maxRecord)
		}
		tc.nameS[t.pos] = int32(len(tc.names))
		tc.names = append(tc.names, name...)
		tc.nameE[t.pos] = int32(len(tc.names))
		tc.maxPos = max(tc.maxPos, t.pos)
	}
	if n := &tc.nat[strings.IndexByte(typedObjs, t.obj)][t.pos]; *n == NatureUnknown {
		*n = t.nature
	}
	return nil
}

// name is the name of field position pos.
func (tc *typedTranscoder) name(pos int) []byte {
	return tc.names[tc.nameS[pos]:tc.nameE[pos]]
}

// layout chooses the columns: the positions seen in order, the static columns nobody sent
// (when the names sent match staticFields), and `-` before the module counters (the
// positions after the last static column's name), when there are any.
func (tc *typedTranscoder) layout() {
	// the module counters start after the last static name
	modStart := 0
	for pos := tc.maxPos; pos >= 0; pos-- {
		if tc.nameE[pos] >= 0 {
			if _, static := staticIndex[string(tc.name(pos))]; static {
				modStart = pos + 1
				break
			}
		}
	}
	tableOK := modStart <= len(staticFields)
	for pos := 0; pos < modStart && tableOK; pos++ {
		if tc.nameE[pos] >= 0 {
			name := string(tc.name(pos))
			tableOK = name == staticFields[pos] || name == staticAlt[pos]
		}
	}
	tc.colOf = grow32(tc.colOf, tc.maxPos+1)
	tc.cols = tc.cols[:0]
	for pos := 0; pos <= tc.maxPos; pos++ {
		tc.colOf[pos] = -1
		if pos == modStart && pos > 0 {
			tc.cols = append(tc.cols, colDash)
		}
		switch {
		case tc.nameE[pos] >= 0:
			tc.colOf[pos] = int32(len(tc.cols))
			tc.cols = append(tc.cols, int32(pos))
		case pos < modStart && tableOK:
			tc.cols = append(tc.cols, colStatic-int32(pos))
		}
	}
}

// header appends the CSV header line.
func (tc *typedTranscoder) header(out []byte) []byte {
	out = append(out, "# "...)
	for _, c := range tc.cols {
		switch {
		case c == colDash:
			out = append(out, '-')
		case c <= colStatic:
			pos := int(colStatic - c)
			name := staticFields[pos]
			if alt, ok := staticAlt[pos]; ok && tc.seenName(name) {
				name = alt
			}
			out = append(out, name...)
		default:
			out = append(out, tc.name(int(c))...)
		}
		out = append(out, ',')
	}
	return append(out, '\n')
}

// seenName reports whether some position is named name.
func (tc *typedTranscoder) seenName(name string) bool {
	for pos := 0; pos <= tc.maxPos; pos++ {
		if tc.nameE[pos] >= 0 && string(tc.name(pos)) == name {
			return true
		}
	}
	return false
}

// row appends the current row: every cell followed by ','.
func (tc *typedTranscoder) row(out []byte) []byte {
	for i, c := range tc.cols {
		switch {
		case c == colDash:
			out = append(out, '-')
		case tc.cellE[i] >= 0:
			v := tc.rowBuf[tc.cellS[i]:tc.cellE[i]]
			if tc.quote[i] {
				out = appendQuoted(out, v)
			} else {
				out = append(out, v...)
			}
		}
		out = append(out, ',')
	}
	return append(out, '\n')
}

func appendQuoted(out, v []byte) []byte {
	out = append(out, '"')
	for _, c := range v {
		if c == '"' {
			out = append(out, '"')
		}
		out = append(out, c)
	}
	return append(out, '"')
}

// transcodeInfo turns a `show info typed` reply into `show info` text in tc.out, and fills
// tc.infoNat with the natures it declares.
func (tc *typedTranscoder) transcodeInfo(data []byte) error {
	out := tc.out[:0]
	tc.infoNat = tc.infoNat[:0]
	var t typedLine
	err := forLines(data, func(line []byte, no int) error {
		if msg := parseTypedLine(line, false, &t); msg != "" {
			return typedError(no, "%s", msg)
		}
		out = append(out, line[t.nameS:t.nameE]...)
		out = append(out, ": "...)
		out = append(out, line[t.valS:]...)
		out = append(out, '\n')
		base := int32(offsetIn(data, line))
		tc.infoNat = append(tc.infoNat, infoNature{base + int32(t.nameS), base + int32(t.nameE), t.nature})
		return nil
	})
	tc.out = append(out, '\n')
	return err
}

// shrink gives back the buffers that grew past the read buffer's size (a long line, a long
// row, a large info reply).
func (tc *typedTranscoder) shrink() {
	if cap(tc.out) > readBufferSize {
		tc.out = nil
	}
	if cap(tc.in.buf) > readBufferSize {
		tc.in.buf = nil
	}
	if cap(tc.rowBuf) > readBufferSize {
		tc.rowBuf, tc.pend = nil, nil
	}
	tc.in.r = nil
	tc.br.Reset(nil)
}

// parseTypedStatFile aggregates a `show stat typed` reply: it is read once for its field names,
// then again, transcoded row by row into the `show stat` CSV that the CSV parser reads (p.rd
// reads from the transcoder instead of a file). Its natures are recorded when it is used.
func (p *Processor) parseTypedStatFile(path string) (scanned bool, err error) {
	f, err := spool.OpenSnapshotFile(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tc := &p.tc
	if err := tc.start(f); err != nil {
		return false, err
	}
	p.rd.f, p.rd.src, p.rd.r, p.rd.w, p.rd.eof = nil, tc, 0, 0, false
	scanned, err = p.parseStat(path)
	p.rd.src, p.rd.r, p.rd.w = nil, 0, 0
	if err != nil {
		return scanned, err
	}
	for k := range typedObjs {
		for pos, n := range tc.nat[k][:tc.maxPos+1] {
			if n != NatureUnknown && tc.nameE[pos] >= 0 {
				p.natKey = append(append(append(p.natKey[:0], typedObjs[k]), '.'), tc.name(pos)...)
				p.setNature(p.natKey, n)
			}
		}
	}
	return true, nil
}

// typedInfo transcodes the `show info typed` reply data into `show info` text.
func (p *Processor) typedInfo(data []byte) ([]byte, error) {
	if err := p.tc.transcodeInfo(data); err != nil {
		return nil, err
	}
	return p.tc.out, nil
}

// keepInfoNatures records the natures of the typed info reply data last transcoded.
func (p *Processor) keepInfoNatures(data []byte) {
	for _, in := range p.tc.infoNat {
		p.natKey = append(append(p.natKey[:0], 'I', '.'), data[in.s:in.e]...)
		p.setNature(p.natKey, in.n)
	}
}

// preferTyped drops from names (sorted) a plain file whose typed form is there too: the
// snapshot would count that socket twice. (stats-pull writes one form; a snapshot with both
// was assembled by hand.)
func (p *Processor) preferTyped(dir string, names []string) []string {
	out := names[:0]
	for i, name := range names {
		if !strings.HasSuffix(name, typedSuffix) && i+1 < len(names) && names[i+1] == name+typedSuffix {
			p.problem(slog.LevelWarn, "ignoring a plain file beside its typed form", "file", filepath.Join(dir, name))
			continue
		}
		out = append(out, name)
	}
	return out
}
