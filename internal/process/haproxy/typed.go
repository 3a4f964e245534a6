package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
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
// file of at most maxRecord bytes (read whole, like a *_info file); rows are bounded by the
// file. Per field nothing is allocated: fields are offsets into the file's bytes.

const typedSuffix = ".typed"

// maxTypedKeys bounds the interned "<obj>.<field>" keys kept across snapshots; past it they are
// forgotten and interned again (a bound on memory, not a limit on fields).
const maxTypedKeys = 1 << 14

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
	if _, ok := p.typedNatures[string(key)]; ok {
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

// typedTranscoder turns typed replies into the plain forms. Its slices are reused.
type typedTranscoder struct {
	in  []byte // the typed stat reply being read
	out []byte // the transcoded text

	// by field position: the name (offsets in the data; nameE < 0 when not seen)
	nameS, nameE []int32
	maxPos       int
	// by field position: its column in out, -1 for none
	colOf []int32
	// the columns: the position each shows, or colDash for the `-` column, or
	// colStatic - i for a static name nobody sent (staticFields[i])
	cols []int32
	// the current row's cells by column (offsets in the data; cellE < 0 when empty)
	cellS, cellE []int32
	quote        []bool // the current row's cells to quote, by column
	recs         []typedRec
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
	obj               byte // F, B, S, L (stat); 0 for info
	keyE              int  // stat: end of "<obj>.<px_id>.<id>." (the object, with proc)
	pos               int
	nameS, nameE      int
	procS, procE      int
	nature            Nature
	valS              int
	str               bool // a str value
	quoted, needQuote bool // str: already CSV-quoted; to be quoted
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
	t.str, t.quoted, t.needQuote = false, false, false
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
	t.str = true
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
		t.quoted = true
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

// typedRec is one field of the reply, as pass 1 found it.
type typedRec struct {
	valS, valE int32 // the value, in the data
	pos        int16
	newRow     bool // the first field of an object
	quote      bool // a str value to CSV-quote
}

// transcodeStat turns a `show stat typed` reply into the `show stat` CSV in tc.out, and fills
// tc.nat with the natures it declares.
func (tc *typedTranscoder) transcodeStat(data []byte) error {
	tc.nameS = grow32(tc.nameS, headerFields)
	tc.nameE = grow32(tc.nameE, headerFields)
	for i := range tc.nameE {
		tc.nameE[i] = -1
	}
	for k := range tc.nat {
		if tc.nat[k] == nil {
			tc.nat[k] = make([]Nature, headerFields)
		} else {
			clear(tc.nat[k])
		}
	}
	tc.maxPos = -1
	// Pass 1: check every line, collect the field names by position, the natures and where
	// each value is. A new object (obj, px_id, id, process) starts a row, and so does a field
	// position that does not increase.
	var t typedLine
	recs := tc.recs[:0]
	var key, proc []byte
	lastPos := -1
	for rest, no := data, 1; len(rest) > 0; no++ {
		line := rest
		if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
			line, rest = rest[:nl], rest[nl+1:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			continue
		}
		if msg := parseTypedLine(line, true, &t); msg != "" {
			tc.recs = recs
			return typedError(no, "%s", msg)
		}
		if err := tc.noteName(data, line, &t, no); err != nil {
			tc.recs = recs
			return err
		}
		k, pr := line[:t.keyE], line[t.procS:t.procE]
		base := int32(offsetIn(data, line))
		r := typedRec{valS: base + int32(t.valS), valE: base + int32(len(line)), pos: int16(t.pos), quote: t.needQuote}
		if len(recs) == 0 || t.pos <= lastPos || string(k) != string(key) || string(pr) != string(proc) {
			r.newRow = true
			key, proc = k, pr
		}
		lastPos = t.pos
		recs = append(recs, r)
	}
	tc.recs = recs
	if len(recs) == 0 {
		return errors.New("empty file")
	}
	tc.layout(data)
	// Pass 2: the rows.
	out := tc.header(data, tc.out[:0])
	nCols := len(tc.cols)
	tc.cellS = grow32(tc.cellS, nCols)
	tc.cellE = grow32(tc.cellE, nCols)
	quote := tc.quoteFlags(nCols)
	for i, r := range recs {
		if r.newRow {
			if i > 0 {
				out = tc.row(data, out, quote)
			}
			for c := range tc.cellE {
				tc.cellE[c] = -1
			}
			clear(quote)
		}
		c := tc.colOf[r.pos]
		tc.cellS[c], tc.cellE[c] = r.valS, r.valE
		quote[c] = r.quote
	}
	out = tc.row(data, out, quote)
	tc.out = append(out, '\n')
	return nil
}

// offsetIn is the offset of sub, a subslice of data, in data.
func offsetIn(data, sub []byte) int {
	return cap(data) - cap(sub)
}

// noteName records the name and nature of the field of line t.
func (tc *typedTranscoder) noteName(data, line []byte, t *typedLine, no int) error {
	base := int32(offsetIn(data, line))
	s, e := base+int32(t.nameS), base+int32(t.nameE)
	if prev := tc.nameE[t.pos]; prev >= 0 {
		if !bytes.Equal(data[tc.nameS[t.pos]:prev], data[s:e]) {
			return typedError(no, "field position %d is named %q here and %q before", t.pos, data[s:e], data[tc.nameS[t.pos]:prev])
		}
	} else {
		tc.nameS[t.pos], tc.nameE[t.pos] = s, e
		tc.maxPos = max(tc.maxPos, t.pos)
	}
	if n := &tc.nat[strings.IndexByte(typedObjs, t.obj)][t.pos]; *n == NatureUnknown {
		*n = t.nature
	}
	return nil
}

// layout chooses the columns: the positions seen in order, the static columns nobody sent
// (when the names sent match staticFields), and `-` before the module counters (the
// positions after the last static column's name), when there are any.
func (tc *typedTranscoder) layout(data []byte) {
	// the module counters start after the last static name
	modStart := 0
	for pos := tc.maxPos; pos >= 0; pos-- {
		if tc.nameE[pos] >= 0 {
			if _, static := staticIndex[string(data[tc.nameS[pos]:tc.nameE[pos]])]; static {
				modStart = pos + 1
				break
			}
		}
	}
	tableOK := modStart <= len(staticFields)
	for pos := 0; pos < modStart && tableOK; pos++ {
		if tc.nameE[pos] >= 0 {
			name := string(data[tc.nameS[pos]:tc.nameE[pos]])
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
func (tc *typedTranscoder) header(data, out []byte) []byte {
	out = append(out, "# "...)
	for _, c := range tc.cols {
		switch {
		case c == colDash:
			out = append(out, '-')
		case c <= colStatic:
			pos := int(colStatic - c)
			name := staticFields[pos]
			if alt, ok := staticAlt[pos]; ok && tc.seenName(data, name) {
				name = alt
			}
			out = append(out, name...)
		default:
			out = append(out, data[tc.nameS[c]:tc.nameE[c]]...)
		}
		out = append(out, ',')
	}
	return append(out, '\n')
}

// seenName reports whether some position is named name.
func (tc *typedTranscoder) seenName(data []byte, name string) bool {
	for pos := 0; pos <= tc.maxPos; pos++ {
		if tc.nameE[pos] >= 0 && string(data[tc.nameS[pos]:tc.nameE[pos]]) == name {
			return true
		}
	}
	return false
}

// quoteFlags returns a reused []bool of n (the cells to quote), kept in tc.
func (tc *typedTranscoder) quoteFlags(n int) []bool {
	if cap(tc.quote) < n {
		tc.quote = make([]bool, n)
	}
	return tc.quote[:n]
}

// row appends the current row: every cell followed by ','.
func (tc *typedTranscoder) row(data, out []byte, quote []bool) []byte {
	for i, c := range tc.cols {
		switch {
		case c == colDash:
			out = append(out, '-')
		case tc.cellE[i] >= 0:
			v := data[tc.cellS[i]:tc.cellE[i]]
			if quote[i] {
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

// maxTypedKept bounds the typed buffers kept from one snapshot to the next: a typed reply is
// several times the size of its CSV (about 25 KB per 10 objects), and growing the buffers
// again for every snapshot would cost more than keeping them. Larger ones are given back.
const maxTypedKept = 16 << 20

// shrink gives back the buffers that grew past maxTypedKept.
func (tc *typedTranscoder) shrink() {
	if cap(tc.out) > maxTypedKept {
		tc.out = nil
	}
	if cap(tc.in) > maxTypedKept {
		tc.in = nil
	}
}

// parseTypedStatFile aggregates a `show stat typed` reply: it is read whole, transcoded into
// CSV and parsed as a `show stat` reply from memory. Its natures are recorded when it is used.
func (p *Processor) parseTypedStatFile(path string) (scanned bool, err error) {
	tc := &p.tc
	// The typed reply is read whole into its own buffer (kept across files and snapshots, see
	// shrink), then the CSV parser reads p.rd: it gets the transcoded text as a file read to
	// its end (it calls fill only before the end). The read buffer is set aside meanwhile.
	saved := p.rd.buf
	defer func() { p.rd.buf, p.rd.r, p.rd.w = saved, 0, 0 }()
	if tc.in == nil {
		tc.in = make([]byte, readBufferSize)
	}
	p.rd.buf = tc.in
	data, err := p.rd.readAll(path)
	tc.in = p.rd.buf
	if err != nil {
		return false, err
	}
	if err := tc.transcodeStat(data); err != nil {
		return false, err
	}
	p.rd.buf, p.rd.r, p.rd.w, p.rd.eof = tc.out, 0, len(tc.out), true
	scanned, err = p.parseStat(path)
	if err != nil {
		return scanned, err
	}
	var key []byte
	for k := range typedObjs {
		for pos, n := range tc.nat[k][:tc.maxPos+1] {
			if n != NatureUnknown && tc.nameE[pos] >= 0 {
				key = append(append(append(p.natKey[:0], typedObjs[k]), '.'), data[tc.nameS[pos]:tc.nameE[pos]]...)
				p.natKey = key
				p.setNature(key, n)
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
