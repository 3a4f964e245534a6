package haproxy

import (
	"bytes"
	"encoding/binary"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/statspipe/statspipe/internal/aggregate"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// all-metrics (Options.AllMetrics): every numeric field of every row type and of `show info`,
// aggregated across the processes (the *_stat and *_info files of a snapshot) by its nature,
// beside haproxystats' lines, which stay as they are. It is a second pass over the stat files
// that the haproxystats pass used, so that it cannot change that pass; its accumulators are
// per kind (frontend, backend, server, listener, daemon), per entity and per field.

// amOp is how one output line of a field is computed from its accumulator.
type amOp uint8

const (
	amSum  amOp = iota // a: the sum
	amMean             // a / n
	amMax              // a: the maximum
	amMin              // a: the minimum
	amSumB             // b: the sum beside a maximum
)

// amOut is one line of a field: its last path component and how it is computed.
type amOut struct {
	name string
	op   amOp
}

// amField is one field of one kind.
type amField struct {
	name   string // column name or info key, as HAProxy writes it
	comp   string // name sanitised and bounded as a path component
	nature Nature
	hs     bool   // haproxystats already writes <comp> at this kind's path
	float  bool   // some cell of the current snapshot was not an integer
	hdr    uint32 // the header (amHeader call) that last mapped a column to it
	outs   []amOut
	// the all-metrics-aggregate functions of the first rule matching <kind>.<field> and their
	// names (<comp>.<fn>); when there are any, the per-process values are kept
	extras     []aggregate.Func
	extraNames []string
}

// How a cell is accumulated (amHeader decides it per column, amRow applies it).
const (
	amModeSum    = 0 // a += v
	amModeMax    = 1 // a = max, b += v
	amModeMin    = 2 // a = min
	amModeValues = 4 // keep the value too (extra functions)
)

func amMode(f *amField) uint8 {
	var m uint8
	switch f.nature {
	case NatureMax, NatureDuration:
		m = amModeMax
	case NatureAge, NatureMin:
		m = amModeMin
	}
	if f.extras != nil {
		m |= amModeValues
	}
	return m
}

// amAcc accumulates one field of one entity over the rows of a snapshot.
type amAcc struct {
	a, b float64
	n    int32
}

// amKind holds the fields and entities of one kind.
type amKind struct {
	kind   int
	fields []amField
	index  map[string]int32 // field name → index in fields

	ents    map[string]int32 // key (parent index, sanitised name) → entity
	names   []string         // sanitised, bounded name
	short   []bool
	parent  []int32
	gen     []uint32
	acc     [][]amAcc
	live    []int32
	lastRaw []byte // raw name of the last looked-up entity (frontends, backends)
	lastIdx int32
	lastOK  bool

	// per-process values of the fields with extra functions: (entity, field) → values
	valIndex map[uint64]int32
	vals     [][]float64
	valsUsed []int32
}

func newAMKind(kind int) *amKind {
	return &amKind{kind: kind, index: map[string]int32{}, ents: map[string]int32{}, valIndex: map[uint64]int32{}}
}

// allMetrics is the Processor's all-metrics state.
type allMetrics struct {
	kinds [nKinds]*amKind
	gen   uint32
	slack int // longest " <name> <value> <timestamp>" of an all-metrics line after its path
	// names haproxystats writes at each kind's paths
	hsNames [nKinds]map[string]bool
	rules   []aggregate.Rule

	used []string // the stat files the haproxystats pass used, in order

	// current file: per kind, column → field index (-1: not emitted for that kind)
	colField  [4][]int32
	colMode   [4][]uint8 // per kind and column: amModeSum/Max/Min, | amModeValues
	typeCol   int
	svCol     int
	statusCol int // "status", for skip-maint-servers (-1: none)

	colNames map[string]string // interned column names
	hdrGen   uint32

	// row caches by stat file name; epoch changes when an entity table is emptied
	caches map[string]*amRowCache
	cache  *amRowCache
	next   int
	epoch  uint32

	// emission buffers
	order, children []int32
}

func newAllMetrics(o *Options, lay *layout) *allMetrics {
	am := &allMetrics{rules: o.AllMetricsAggregate, slack: maxLineEnd + len("_sum"), colNames: map[string]string{},
		caches: map[string]*amRowCache{}}
	for k := range am.kinds {
		am.kinds[k] = newAMKind(k)
		am.hsNames[k] = map[string]bool{}
	}
	add := func(k int, lists ...[]string) {
		for _, l := range lists {
			for _, n := range l {
				am.hsNames[k][n] = true
			}
		}
	}
	add(kindFrontend, lay.feNames)
	add(kindBackend, lay.beSumNames, lay.beAvgNames, lay.beTimeNames)
	add(kindServer, lay.srvSumNames, lay.srvAvgNames, lay.srvTimeNames)
	add(kindDaemon, DaemonMetrics, DaemonAvgMetrics)
	return am
}

// field returns the index of field name (raw bytes) of kind k with nature nat, registering it
// on first sight (the only allocation: names repeat from file to file).
func (p *Processor) amField(k *amKind, name []byte, nat Nature) int32 {
	fi, ok := k.index[string(name)]
	if !ok {
		s := string(name)
		comp, _ := p.names.Component(s)
		fi = int32(len(k.fields))
		k.fields = append(k.fields, amField{name: s, comp: comp, hs: p.am.hsNames[k.kind][comp]})
		k.index[s] = fi
		f := &k.fields[fi]
		glob := kindNames[k.kind] + "." + strings.ToLower(s)
		for _, r := range p.am.rules {
			if ok, _ := path.Match(r.Glob, glob); ok {
				for _, fn := range r.Funcs {
					if name := comp + "." + fn.String(); p.keepMetric(name) {
						f.extras = append(f.extras, fn)
						f.extraNames = append(f.extraNames, name)
					}
				}
				break
			}
		}
		for _, n := range f.extraNames {
			p.am.slack = max(p.am.slack, len(n)+maxLineEnd)
		}
	}
	f := &k.fields[fi]
	if f.nature != nat || f.outs == nil {
		f.nature = nat
		f.outs = amOutputs(f.comp, nat, f.hs)
		if p.filt.metrics { // metric-include/-exclude, on the last component as written
			f.outs = slices.DeleteFunc(slices.Clone(f.outs), func(o amOut) bool { return !p.keepMetric(o.name) })
			if len(f.outs) == 0 {
				f.outs = []amOut{} // not nil: computed
			}
		}
		p.am.slack = max(p.am.slack, len(f.comp)+len("_sum")+maxLineEnd)
	}
	return fi
}

// amOutputs are the lines of a field of nature nat; hs: haproxystats writes <comp> already
// (with a sum, or a mean for the averaged metrics), so a sum or mean is not written again and
// the nature's own aggregate goes to <comp>_max or <comp>_min.
func amOutputs(comp string, nat Nature, hs bool) []amOut {
	switch nat {
	case NatureCounter, NatureGauge, NatureRate, NatureLimit:
		if hs {
			return []amOut{}
		}
		return []amOut{{comp, amSum}}
	case NatureAvg:
		if hs {
			return []amOut{}
		}
		return []amOut{{comp, amMean}}
	case NatureMax:
		if hs {
			return []amOut{{comp + "_max", amMax}}
		}
		return []amOut{{comp, amMax}, {comp + "_sum", amSumB}}
	case NatureDuration:
		if hs {
			return []amOut{{comp + "_max", amMax}}
		}
		return []amOut{{comp, amMax}}
	case NatureAge, NatureMin:
		if hs {
			return []amOut{{comp + "_min", amMin}}
		}
		return []amOut{{comp, amMin}}
	}
	return []amOut{}
}

// amEmitted reports whether fields of nature nat are emitted at all.
func amEmitted(nat Nature) bool {
	switch nat {
	case NatureCounter, NatureGauge, NatureRate, NatureLimit, NatureAvg, NatureMax, NatureDuration,
		NatureAge, NatureMin:
		return true
	}
	return false
}

// amStartPass forgets the entities of the last snapshot.
func (p *Processor) amStartPass() {
	am := p.am
	am.gen++
	for _, k := range am.kinds {
		if am.gen == 0 || len(k.names) > 4*len(k.live)+4096 {
			// names churn (or the generation wrapped): start afresh so that it cannot grow without bound
			clear(k.ents)
			k.names, k.short, k.parent, k.gen, k.acc = k.names[:0], k.short[:0], k.parent[:0], k.gen[:0], k.acc[:0]
			clear(k.valIndex)
			k.vals = k.vals[:0]
			am.epoch++
		}
		k.live = k.live[:0]
		k.lastOK = false
		for _, v := range k.valsUsed {
			k.vals[v] = k.vals[v][:0]
		}
		k.valsUsed = k.valsUsed[:0]
		for i := range k.fields {
			k.fields[i].float = false
		}
	}
	if am.gen == 0 {
		am.gen = 1
	}
}

// amEntity returns the entity (parent, raw name) of kind k, activated for this snapshot.
func (p *Processor) amEntity(k *amKind, parent int32, raw []byte) int32 {
	if parent < 0 && k.lastOK && bytes.Equal(raw, k.lastRaw) {
		return k.lastIdx
	}
	key := p.keyBuf[:0]
	if parent >= 0 {
		key = binary.LittleEndian.AppendUint32(key, uint32(parent))
	}
	key, short := p.names.Append(key, raw)
	p.keyBuf = key
	e, ok := k.ents[string(key)]
	if !ok {
		e = int32(len(k.names))
		s := string(key)
		k.ents[s] = e
		if parent >= 0 {
			s = s[4:]
		}
		k.names = append(k.names, s)
		k.short = append(k.short, short)
		k.parent = append(k.parent, parent)
		k.gen = append(k.gen, 0)
		k.acc = append(k.acc, make([]amAcc, len(k.fields)))
	}
	k.activate(e, p.am.gen)
	if parent < 0 {
		k.lastOK = len(raw) <= p.maxComponent
		if k.lastOK {
			k.lastRaw = append(k.lastRaw[:0], raw...)
			k.lastIdx = e
		}
	}
	return e
}

// activate makes entity e part of snapshot gen, its accumulators zeroed on its first use.
func (k *amKind) activate(e int32, gen uint32) {
	if k.gen[e] == gen {
		return
	}
	k.gen[e] = gen
	if len(k.acc[e]) < len(k.fields) {
		k.acc[e] = slices.Grow(k.acc[e][:0], len(k.fields))[:len(k.fields)]
	}
	clear(k.acc[e])
	k.live = append(k.live, e)
}

// add adds value v of field fi to entity e of kind k, accumulated as mode says.
func (k *amKind) add(e, fi int32, v float64, mode uint8) {
	acc := k.acc[e]
	if int(fi) >= len(acc) { // a field first seen after the entity was activated
		acc = append(acc, make([]amAcc, len(k.fields)-len(acc))...)
		k.acc[e] = acc
	}
	a := &acc[fi]
	switch mode &^ amModeValues {
	case amModeSum:
		a.a += v
	case amModeMax:
		if a.n == 0 || v > a.a {
			a.a = v
		}
		a.b += v
	case amModeMin:
		if a.n == 0 || v < a.a {
			a.a = v
		}
	}
	a.n++
	if mode&amModeValues != 0 {
		k.addValue(e, fi, v)
	}
}

// addValue keeps v, a per-process value of field fi of entity e, for the extra functions.
func (k *amKind) addValue(e, fi int32, v float64) {
	key := uint64(uint32(e))<<32 | uint64(uint32(fi))
	vi, ok := k.valIndex[key]
	if !ok {
		vi = int32(len(k.vals))
		k.valIndex[key] = vi
		k.vals = append(k.vals, nil)
	}
	if len(k.vals[vi]) == 0 {
		k.valsUsed = append(k.valsUsed, vi)
	}
	k.vals[vi] = append(k.vals[vi], v)
}

// amCell parses a numeric cell: a plain integer without strconv, a float through it; text
// (a status, an address) is not a number.
func amCell(b []byte) (v float64, isFloat, ok bool) {
	if len(b) == 0 {
		return 0, false, false
	}
	if v, ok := parseUint(b); ok {
		return v, false, true
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' && c != '-' && c != '+' && c != 'e' && c != 'E' {
			return 0, false, false
		}
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, false
	}
	return v, true, true
}

// amInfo adds the numeric keys of one `show info` reply (a process) to the daemon entity.
func (p *Processor) amInfo(data []byte) {
	k := p.am.kinds[kindDaemon]
	e := p.amEntity(k, -1, nil)
	for len(data) > 0 {
		var line []byte
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl], data[nl+1:]
		} else {
			line, data = data, nil
		}
		sep := bytes.Index(line, []byte(": "))
		if sep <= 0 {
			continue
		}
		key := line[:sep]
		v, isFloat, ok := amCell(bytes.TrimSpace(line[sep+2:]))
		if !ok {
			continue
		}
		fi, known := k.index[string(key)]
		if !known {
			nat := p.natureOf('I', string(key))
			if !amEmitted(nat) || identityFields[string(key)] {
				continue
			}
			fi = p.amField(k, key, nat)
		} else if !amEmitted(k.fields[fi].nature) {
			continue
		}
		if isFloat {
			k.fields[fi].float = true
		}
		k.add(e, fi, v, amMode(&k.fields[fi]))
	}
}

// amStats runs the all-metrics pass over the stat files the haproxystats pass used.
func (p *Processor) amStats(dir string) {
	am := p.am
	for _, name := range am.used {
		c := am.caches[name]
		if c == nil {
			c = &amRowCache{}
			am.caches[name] = c
		}
		if c.epoch != am.epoch {
			c.epoch, c.rows, c.names = am.epoch, c.rows[:0], c.names[:0]
		}
		c.used = am.gen
		am.cache, am.next = c, 0
		p.amStatFile(dir + "/" + name)
	}
	am.cache = nil
	for name, c := range am.caches {
		if c.used != am.gen {
			delete(am.caches, name)
		}
	}
}

func (p *Processor) amStatFile(path string) {
	if strings.HasSuffix(path, typedSuffix) { // transcoded again, as the haproxystats pass did
		f, err := spool.OpenSnapshotFile(path)
		if err != nil {
			return
		}
		defer f.Close()
		if err := p.tc.start(f); err != nil {
			return
		}
		p.rd.f, p.rd.src, p.rd.r, p.rd.w, p.rd.eof = nil, &p.tc, 0, 0, false
		defer func() { p.rd.src, p.rd.r, p.rd.w = nil, 0, 0 }()
	} else {
		if err := p.rd.open(path); err != nil {
			return // read a moment ago; it was logged if it is gone now
		}
		defer p.rd.close()
	}
	p.sc.setWant(headerFields)
	header := true
	for {
		data := p.rd.buf[p.rd.r:p.rd.w]
		n, nFields, _, st := p.sc.next(data, p.rd.eof)
		if st == scanNeedMore {
			if err := p.rd.fill(); err != nil {
				return
			}
			continue
		}
		if st == scanBadQuote || n == 0 {
			return
		}
		p.rd.r += n
		if nFields == 0 {
			continue
		}
		if header {
			if !p.amHeader() {
				return
			}
			header = false
			continue
		}
		p.amRow()
	}
}

// amHeader maps the columns of the current file to the fields of each kind.
func (p *Processor) amHeader() bool {
	am := p.am
	am.typeCol, am.svCol, am.statusCol = -1, -1, -1
	am.hdrGen++
	n := p.sc.kept
	afterDash := false
	for k := range am.colField {
		am.colField[k] = slices.Grow(am.colField[k][:0], n)[:n]
		am.colMode[k] = slices.Grow(am.colMode[k][:0], n)[:n]
	}
	for i := 0; i < n; i++ {
		name := p.sc.field(i)
		for k := range am.colField {
			am.colField[k][i] = -1
		}
		switch string(name) {
		case "type":
			if am.typeCol < 0 {
				am.typeCol = i
			}
			continue
		case "svname":
			if am.svCol < 0 {
				am.svCol = i
			}
			continue
		case "status":
			if am.statusCol < 0 {
				am.statusCol = i // for skip-maint-servers; a text column
			}
		case "-":
			afterDash = true
			continue
		}
		if i == 0 || len(name) == 0 || textColumns[string(name)] || identityFields[string(name)] {
			continue
		}
		for k := range am.colField {
			kind := am.kinds[k]
			field := p.amColumnName(name)
			nat := p.natureOf(kindObj[k], field)
			if nat == NatureUnknown && afterDash {
				nat = moduleNature(field)
			}
			if !amEmitted(nat) {
				continue
			}
			fi := p.amField(kind, name, nat)
			if f := &kind.fields[fi]; f.hdr != am.hdrGen { // a column given twice: the first counts
				f.hdr = am.hdrGen
				am.colField[k][i] = fi
				am.colMode[k][i] = amMode(f)
			}
		}
	}
	if am.typeCol < 0 || am.svCol < 0 {
		return false
	}
	p.sc.setWant(n)
	return true
}

// maxColumnNames bounds the interned column names (a header of garbage names churns them).
const maxColumnNames = 8192

// amColumnName returns name as a string, interned: the same columns come in every file.
func (p *Processor) amColumnName(name []byte) string {
	am := p.am
	if s, ok := am.colNames[string(name)]; ok {
		return s
	}
	s := string(name)
	if len(am.colNames) < maxColumnNames {
		am.colNames[s] = s
	}
	return s
}

// amRow adds the current row to its entity.
func (p *Processor) amRow() {
	am := p.am
	sc := &p.sc
	if sc.kept <= am.typeCol || sc.kept <= am.svCol {
		return
	}
	px, sv := sc.field(0), sc.field(am.svCol)
	if len(px) == 0 || len(sv) == 0 {
		return
	}
	var kind int
	switch t := sc.field(am.typeCol); {
	case len(t) == 1 && t[0] >= '0' && t[0] <= '3':
		kind = int(t[0] - '0')
	default:
		return
	}
	k, e, ok := p.amCachedEntity(kind, px, sv)
	if !ok {
		return
	}
	if kind == kindServer && p.opts.Filters.SkipMaintServers && am.statusCol >= 0 && am.statusCol < sc.kept {
		if st := sc.field(am.statusCol); len(st) >= 5 && string(st[:5]) == "MAINT" {
			return // as the haproxystats pass drops the row (filter.go)
		}
	}
	p.amAddRow(kind, k, e)
}

// amCachedRow is the entity of one row of a stat file, remembered by position: the rows of a
// process come in the same order in every snapshot, so comparing the raw names with the
// row at the same position the last time replaces sanitising them and looking them up.
type amCachedRow struct {
	kind         int8
	filtered     bool  // dropped by the cardinality controls (filter.go)
	parent, e    int32 // parent -1 for frontends and backends
	pxOff, pxLen int32 // in amRowCache.names; pxLen -1: not cached (a long name)
	svOff, svLen int32
}

type amRowCache struct {
	epoch uint32
	used  uint32
	names []byte
	rows  []amCachedRow
}

// amCachedEntity returns the entity of the current row (kind, pxname, svname), activated
// with its parent, or false when the row is excluded.
func (p *Processor) amCachedEntity(kind int, px, sv []byte) (*amKind, int32, bool) {
	am := p.am
	c := am.cache
	j := am.next
	am.next++
	top := kindFrontend
	if kind == kindBackend || kind == kindServer {
		top = kindBackend
	}
	tk, k := am.kinds[top], am.kinds[kind]
	if j < len(c.rows) {
		r := &c.rows[j]
		if r.pxLen >= 0 && int(r.kind) == kind &&
			string(c.names[r.svOff:r.svOff+r.svLen]) == string(sv) &&
			string(c.names[r.pxOff:r.pxOff+r.pxLen]) == string(px) {
			if r.filtered {
				return nil, 0, false
			}
			t := r.e
			if r.parent >= 0 {
				t = r.parent
			}
			tk.activate(t, am.gen)
			if p.amExcluded(top, tk.names[t]) {
				return nil, 0, false
			}
			k.activate(r.e, am.gen)
			return k, r.e, true
		}
		c.names = c.names[:r.pxOff]
		c.rows = c.rows[:j]
	}
	t := p.amEntity(tk, -1, px)
	r := amCachedRow{kind: int8(kind), parent: -1, e: t, pxLen: -1}
	excluded := p.amExcluded(top, tk.names[t])
	r.filtered = !excluded && !p.amKept(kind, px, sv)
	if !excluded && !r.filtered && kind != top {
		r.parent, r.e = t, p.amEntity(k, t, sv)
	}
	if j == len(c.rows) {
		r.pxOff = int32(len(c.names))
		if len(px) <= p.maxComponent && len(sv) <= p.maxComponent && !excluded {
			r.pxLen = int32(len(px))
			c.names = append(c.names, px...)
			r.svOff, r.svLen = int32(len(c.names)), int32(len(sv))
			c.names = append(c.names, sv...)
		}
		c.rows = append(c.rows, r)
	}
	if excluded || r.filtered {
		return nil, 0, false
	}
	return k, r.e, true
}

// amKept applies the name filters (filter.go) to a row: listeners follow their frontend,
// servers their backend and their own "<backend>/<server>" patterns.
func (p *Processor) amKept(kind int, px, sv []byte) bool {
	if !p.filt.names {
		return true
	}
	switch kind {
	case kindFrontend, kindListener:
		return p.keepFrontend(px)
	case kindBackend:
		return p.keepBackend(px)
	}
	return p.keepBackend(px) && p.keepServer(px, sv)
}

// amAddRow adds the cells of the current row to entity e of kind k.
func (p *Processor) amAddRow(kind int, k *amKind, e int32) {
	am := p.am
	sc := &p.sc
	cols, modes := am.colField[kind], am.colMode[kind]
	n := min(sc.kept, len(cols))
	acc := k.acc[e]
	if len(acc) < len(k.fields) { // fields first seen after the entity was activated
		acc = append(acc, make([]amAcc, len(k.fields)-len(acc))...)
		k.acc[e] = acc
	}
	base := sc.rec
	if sc.quoted {
		base = sc.unquoted
	}
	starts, ends := sc.start[:n], sc.end[:n]
	for i, fi := range cols[:n] {
		if fi < 0 || starts[i] == ends[i] {
			continue
		}
		b := base[starts[i]:ends[i]]
		v, ok := parseUint(b)
		if !ok {
			var isFloat bool
			if v, isFloat, ok = amCell(b); !ok {
				continue
			}
			if isFloat {
				k.fields[fi].float = true
			}
		}
		a := &acc[fi]
		switch modes[i] {
		case amModeSum:
			a.a += v
			a.n++
		case amModeMax:
			if a.n == 0 || v > a.a {
				a.a = v
			}
			a.b += v
			a.n++
		case amModeMin:
			if a.n == 0 || v < a.a {
				a.a = v
			}
			a.n++
		default:
			k.add(e, fi, v, modes[i])
		}
	}
}

// amExcluded reports whether a frontend or backend is in its exclude file.
func (p *Processor) amExcluded(kind int, name string) bool {
	if kind == kindFrontend {
		_, ok := p.exclFe[name]
		return ok
	}
	_, ok := p.exclBe[name]
	return ok
}

// amPaths sets the default path of the next all-metrics lines (never a group path).
func (p *Processor) amPaths(suffix ...string) {
	p.setPaths(groupNone, nil, suffix...)
	p.checkLines = len(p.dpath)+p.am.slack > p.maxLine
}

// emitAllMetrics writes the all-metrics lines: the daemon, each frontend and its listeners,
// each backend and its servers, entities in name order, fields in the order first seen.
func (p *Processor) emitAllMetrics() {
	am := p.am
	if d := am.kinds[kindDaemon]; len(d.live) > 0 && p.ch.Err() == nil {
		p.amPaths("daemon.")
		p.amPoints(d, d.live[0])
	}
	p.amEmitTree(kindFrontend, kindListener, "frontend.", ".listener.")
	p.amEmitTree(kindBackend, kindServer, "backend.", ".server.")
}

// amEmitTree writes the entities of kind top and their children of kind sub.
func (p *Processor) amEmitTree(top, sub int, prefix, middle string) {
	am := p.am
	tk, sk := am.kinds[top], am.kinds[sub]
	tnames, snames := tk.names, sk.names
	am.order = append(am.order[:0], tk.live...)
	slices.SortFunc(am.order, func(a, b int32) int { return strings.Compare(tnames[a], tnames[b]) })
	am.children = append(am.children[:0], sk.live...)
	parent := sk.parent
	slices.SortFunc(am.children, func(a, b int32) int {
		if c := strings.Compare(tnames[parent[a]], tnames[parent[b]]); c != 0 {
			return c
		}
		return strings.Compare(snames[a], snames[b])
	})
	j := 0
	for _, e := range am.order {
		if p.ch.Err() != nil {
			return
		}
		p.amPaths(prefix, tnames[e], ".")
		p.amPoints(tk, e)
		for ; j < len(am.children) && parent[am.children[j]] == e; j++ {
			c := am.children[j]
			p.amPaths(prefix, tnames[e], middle, snames[c], ".")
			p.amPoints(sk, c)
		}
	}
}

// amPoints writes the lines of entity e of kind k at the current path.
func (p *Processor) amPoints(k *amKind, e int32) {
	acc := k.acc[e]
	b, n := p.ch.Start(), 0
	for fi := range acc {
		a := &acc[fi]
		if a.n == 0 {
			continue
		}
		f := &k.fields[fi]
		for _, o := range f.outs {
			var v float64
			isFloat := f.float
			switch o.op {
			case amSum, amMax, amMin:
				v = a.a
			case amSumB:
				v = a.b
			case amMean:
				v, isFloat = a.a/float64(a.n), true
			}
			b, n = p.point(b, n, o.name, v, isFloat)
		}
		if f.extras != nil {
			vals := k.vals[k.valIndex[uint64(uint32(e))<<32|uint64(uint32(fi))]]
			for x, fn := range f.extras {
				if v, isFloat, ok := amFunc(fn, vals, f.float); ok {
					b, n = p.point(b, n, f.extraNames[x], v, isFloat)
				}
			}
		}
	}
	p.ch.EndLines(b, n)
}

// amFunc computes an all-metrics-aggregate function over the per-process values, as package
// aggregate does (stddev: sample, n − 1, at least 2 values; pNN: nearest rank,
// round-half-even((n − 1)·NN/100)). vals is sorted in place for a percentile.
func amFunc(fn aggregate.Func, vals []float64, intFloat bool) (float64, bool, bool) {
	n := len(vals)
	if n == 0 {
		return 0, false, false
	}
	switch fn.Op {
	case aggregate.Sum:
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return s, intFloat, true
	case aggregate.Avg:
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return s / float64(n), true, true
	case aggregate.Min:
		return slices.Min(vals), intFloat, true
	case aggregate.Max:
		return slices.Max(vals), intFloat, true
	case aggregate.Count:
		return float64(n), false, true
	case aggregate.Stddev:
		if n < 2 {
			return 0, false, false
		}
		mean, m2 := 0.0, 0.0
		for i, v := range vals { // Welford
			d := v - mean
			mean += d / float64(i+1)
			m2 += d * (v - mean)
		}
		return math.Sqrt(m2 / float64(n-1)), true, true
	case aggregate.Percentile:
		slices.Sort(vals)
		q := float64(fn.P) / 100
		return vals[int(math.RoundToEven(q*float64(n-1)))], intFloat, true
	}
	return 0, false, false
}

var _ = metric.Component // (the names are sanitised by p.names, a metric.Names)
