package httpebpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources/ebpfmaps"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// The process half. Each map's body (the ebpf-maps entry form, decoded at pull time with the
// program's declared types) is read whole — the entries of one PID are not adjacent in a
// hash map, and the maps are bounded by max-entries — into counters per PID, and each PID is
// one aggregation instance, named by its PID, whose samples are named
//
//	<program>.requests                       every request
//	<program>.requests.method.<METHOD>       GET, POST, … (the program's list)
//	<program>.responses                      every response
//	<program>.responses.code.<code>          the codes enum http_status names (Scope's list)
//	<program>.responses.code.other           any other code
//	<program>.responses.class.<n>xx          1xx … 5xx
//	not_counted.requests_map_full            events the program could not count: a new key
//	not_counted.responses_map_full           in a full map (one instance, http_drops)
//
// where <program> is the PID's /proc/<pid>/comm recorded by stats-pull ("_unknown" when the
// process had ended). So the engine's sum at each path is the program's, across its PIDs.
// With rate = true each of them also has <name>.rate: the per-second increase since the
// previous snapshot of the same source this stats-process processed.

const unknownComm = "_unknown"

// maxPIDs bounds the processes one map's body may hold (the pull side's max-entries bounds
// the entries; this bounds what a spoiled body could make this side keep).
const maxPIDs = 1 << 20

// maxLine bounds one entry's line.
const maxLine = 1 << 20

var errMulti = errors.New("http-ebpf maps are parsed per process (ParseMulti)")

type parser struct {
	r      ebpfmaps.EntryReader
	st     processSettings
	source string
	ts     int64
	buf    []byte // the line scanner's
	slab   []counters
	pids   []uint64
	prefix []byte // "<program>."
	inst   []byte
	name   []byte
	s      sample.Sample
}

// Configure implements httpsource.Configurable.
func (p *parser) Configure(st httpsource.ProcessSettings) {
	if s, ok := st.(processSettings); ok {
		p.st = s
	}
}

// BeginSnapshot implements httpsource.SnapshotParser.
func (p *parser) BeginSnapshot(source string, ts int64) { p.source, p.ts = source, ts }

func (p *parser) Parse(spool.InstanceMeta, io.Reader, sample.Func) error { return errMulti }

// methods are the request methods the program counts (http_stats.bpf.c's list).
var methods = [...]string{"GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

func methodIndex(m []byte) int {
	for i, name := range methods {
		if string(m) == name {
			return i
		}
	}
	return -1
}

// codeCount is one response code's count.
type codeCount struct {
	code   uint32
	listed bool // enum http_status names it
	n      float64
}

// counters are one PID's counters (or, for http_drops, the map's). A zero field with its
// has* flag unset has no sample: a map's keys appear at their first event.
type counters struct {
	requests, responses, other     float64
	hasRequests, hasResp, hasOther bool
	methods                        [len(methods)]float64
	hasMethod                      [len(methods)]bool
	class                          [5]float64
	hasClass                       [5]bool
	codes                          []codeCount // few per process: searched linearly
	codeBuf                        [8]codeCount
	drops                          [2]float64
	hasDrop                        [2]bool
}

func (c *counters) code(code uint32, listed bool) *codeCount {
	for i := range c.codes {
		if c.codes[i].code == code {
			return &c.codes[i]
		}
	}
	c.codes = append(c.codes, codeCount{code: code, listed: listed})
	return &c.codes[len(c.codes)-1]
}

// A field of counters, for rates: which counter, and its index or code.
type fieldKind uint8

const (
	fRequests fieldKind = iota
	fMethod
	fResponses
	fCode
	fOther
	fClass
	fDrop
)

type fieldID struct {
	kind fieldKind
	i    uint32
}

// each calls fn for every counter that has a sample, in name order within its group.
func (c *counters) each(fn func(id fieldID, v float64)) {
	if c.hasRequests {
		fn(fieldID{fRequests, 0}, c.requests)
	}
	for i := range c.methods {
		if c.hasMethod[i] {
			fn(fieldID{fMethod, uint32(i)}, c.methods[i])
		}
	}
	if c.hasResp {
		fn(fieldID{fResponses, 0}, c.responses)
	}
	for i := range c.class {
		if c.hasClass[i] {
			fn(fieldID{fClass, uint32(i)}, c.class[i])
		}
	}
	for _, cc := range c.codes {
		if cc.listed {
			fn(fieldID{fCode, cc.code}, cc.n)
		}
	}
	if c.hasOther {
		fn(fieldID{fOther, 0}, c.other)
	}
	for i := range c.drops {
		if c.hasDrop[i] {
			fn(fieldID{fDrop, uint32(i)}, c.drops[i])
		}
	}
}

// get returns a counter's value (0 when it has none).
func (c *counters) get(id fieldID) float64 {
	switch id.kind {
	case fRequests:
		return c.requests
	case fMethod:
		return c.methods[id.i]
	case fResponses:
		return c.responses
	case fOther:
		return c.other
	case fClass:
		return c.class[id.i]
	case fDrop:
		return c.drops[id.i]
	case fCode:
		for _, cc := range c.codes {
			if cc.code == id.i && cc.listed {
				return cc.n
			}
		}
	}
	return 0
}

// appendName appends a counter's sample name (without the program).
func appendName(dst []byte, id fieldID) []byte {
	switch id.kind {
	case fRequests:
		return append(dst, "requests"...)
	case fMethod:
		return append(append(dst, "requests.method."...), methods[id.i]...)
	case fResponses:
		return append(dst, "responses"...)
	case fCode:
		return strconv.AppendUint(append(dst, "responses.code."...), uint64(id.i), 10)
	case fOther:
		return append(dst, "responses.code.other"...)
	case fClass:
		return append(strconv.AppendUint(append(dst, "responses.class."...), uint64(id.i)+1, 10), "xx"...)
	case fDrop:
		return append(dst, [2]string{"not_counted.requests_map_full", "not_counted.responses_map_full"}[id.i]...)
	}
	return dst
}

func (p *parser) ParseMulti(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances) error {
	var entry func(byPID map[uint64]*counters) error
	switch meta.Instance {
	case bpf.RequestsMap:
		entry = p.request
	case bpf.ResponsesMap:
		entry = p.response
	case bpf.DropsMap:
		entry = p.drop
	default:
		return fmt.Errorf("instance %q is not a map of the HTTP statistics program (%s, %s, %s)", meta.Instance, bpf.RequestsMap, bpf.ResponsesMap, bpf.DropsMap)
	}
	if t := meta.Extra["types"]; t == "default" {
		return fmt.Errorf("the map's entries were not decoded (types %q): the snapshot does not come from the http-ebpf pull half", t)
	}
	byPID := map[uint64]*counters{}
	p.slab = nil
	if p.buf == nil {
		p.buf = make([]byte, 0, 4096)
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(p.buf, maxLine)
	line := 0
	for sc.Scan() {
		line++
		if err := p.r.Parse(sc.Bytes()); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := entry(byPID); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	var prev map[uint64]*counters
	var prevTS int64
	if p.st.rate {
		prev, prevTS = book.swap(p.source+"\x00"+meta.Instance, p.ts, byPID)
	}
	p.pids = p.pids[:0]
	for pid := range byPID {
		p.pids = append(p.pids, pid)
	}
	slices.Sort(p.pids)
	for _, pid := range p.pids {
		p.prefix = p.prefix[:0]
		p.inst = p.inst[:0]
		if meta.Instance == bpf.DropsMap { // one instance, its names not per program
			p.inst = append(p.inst, meta.Instance...)
		} else {
			p.inst = strconv.AppendUint(p.inst, pid, 10)
			comm := meta.Extra["pid:"+string(p.inst)]
			if comm == "" {
				comm = unknownComm
			}
			p.prefix = sample.AppendPart(p.prefix, comm)
			p.prefix = append(p.prefix, '.')
		}
		c := byPID[pid]
		in.Begin(string(p.inst))
		var pc *counters
		if prev != nil {
			pc = prev[pid]
			if pc == nil {
				pc = &counters{} // new since the previous snapshot: from 0
			}
		}
		c.each(func(id fieldID, v float64) {
			p.emit(in, id, "", v)
			if pc != nil {
				if pv := pc.get(id); v >= pv {
					p.emit(in, id, ".rate", (v-pv)/float64(p.ts-prevTS))
				}
			}
		})
		in.End(true)
	}
	return nil
}

func (p *parser) emit(in httpsource.Instances, id fieldID, suffix string, v float64) {
	p.name = append(p.name[:0], p.prefix...)
	p.name = appendName(p.name, id)
	p.name = append(p.name, suffix...)
	p.s = sample.Sample{Family: p.name, Name: p.name, Kind: sample.Counter, Value: v}
	in.Add(&p.s)
}

// pidOf returns the entry's pid key field.
func (p *parser) pidOf() (uint64, error) {
	kind, num, _, ok := p.r.KeyField("pid")
	if !ok || string(kind) != ebpfmaps.KindUint {
		return 0, errors.New("the key has no decoded pid")
	}
	return strconv.ParseUint(string(num), 10, 32)
}

// value returns the entry's (scalar) value.
func (p *parser) value() (float64, error) {
	kind, num, _, ok := p.r.ValueField("")
	if !ok || string(kind) != ebpfmaps.KindUint {
		return 0, errors.New("the value is not a decoded counter")
	}
	return strconv.ParseFloat(string(num), 64)
}

func (p *parser) counters(byPID map[uint64]*counters, pid uint64) (*counters, error) {
	c := byPID[pid]
	if c == nil {
		if len(byPID) >= maxPIDs {
			return nil, fmt.Errorf("more than %d processes", maxPIDs)
		}
		// From a slab: one allocation per 256 processes. A new slab per body, since the
		// rates keep the previous body's counters.
		if len(p.slab) == cap(p.slab) {
			p.slab = make([]counters, 0, 256)
		}
		p.slab = p.slab[:len(p.slab)+1]
		c = &p.slab[len(p.slab)-1]
		c.codes = c.codeBuf[:0]
		byPID[pid] = c
	}
	return c, nil
}

func (p *parser) request(byPID map[uint64]*counters) error {
	pid, err := p.pidOf()
	if err != nil {
		return err
	}
	_, _, method, ok := p.r.KeyField("method")
	i := methodIndex(method)
	if !ok || i < 0 {
		return fmt.Errorf("method %q is not one the program counts", method)
	}
	v, err := p.value()
	if err != nil {
		return err
	}
	c, err := p.counters(byPID, pid)
	if err != nil {
		return err
	}
	c.requests += v
	c.methods[i] += v
	c.hasRequests, c.hasMethod[i] = true, true
	return nil
}

func (p *parser) response(byPID map[uint64]*counters) error {
	pid, err := p.pidOf()
	if err != nil {
		return err
	}
	kind, num, name, ok := p.r.KeyField("code")
	if !ok || string(kind) != ebpfmaps.KindEnum {
		return errors.New("the key has no decoded code (enum http_status)")
	}
	code, err := strconv.ParseUint(string(num), 10, 32)
	if err != nil {
		return fmt.Errorf("code %q: %v", num, err)
	}
	v, err := p.value()
	if err != nil {
		return err
	}
	c, err := p.counters(byPID, pid)
	if err != nil {
		return err
	}
	c.responses += v
	c.hasResp = true
	// A code the C enum names has its own path; the program's list is the one place that
	// says which codes those are (the snapshot carries the names, decoded from its BTF).
	if len(name) > 0 {
		c.code(uint32(code), true).n += v
	} else {
		c.other += v
		c.hasOther = true
	}
	if code >= 100 && code <= 599 {
		c.class[code/100-1] += v
		c.hasClass[code/100-1] = true
	}
	return nil
}

func (p *parser) drop(byPID map[uint64]*counters) error {
	kind, num, _, ok := p.r.KeyField("")
	if !ok || string(kind) != ebpfmaps.KindEnum {
		return errors.New("the key is not a decoded drop_reason")
	}
	i, err := strconv.ParseUint(string(num), 10, 32)
	if err != nil || i >= 2 {
		return nil // DROP_REASONS and beyond count nothing
	}
	v, err := p.value()
	if err != nil {
		return err
	}
	c, err := p.counters(byPID, 0)
	if err != nil {
		return err
	}
	c.drops[i] += v
	c.hasDrop[i] = true
	return nil
}

// rateBook keeps, per source and map, the counters of the newest snapshot processed, for
// the rates of the next. Shared by the workers; snapshots processed out of order get rates
// only against an older one.
type rateBook struct {
	mu sync.Mutex
	m  map[string]*rateState
}

type rateState struct {
	ts    int64
	byPID map[uint64]*counters
}

var book = &rateBook{m: map[string]*rateState{}}

// maxRateStates bounds the sources×maps kept.
const maxRateStates = 1024

// swap returns the counters of the previous snapshot of key when it is older than ts (nil
// otherwise: no rates), and keeps byPID when ts is the newest. A counter that went down (its
// process's entries pruned, a PID reused, the loader's maps recreated) has no rate; one that
// is new counts from 0, since a key appears in the maps at its first event. It returns the
// previous counters and their timestamp.
func (b *rateBook) swap(key string, ts int64, byPID map[uint64]*counters) (map[uint64]*counters, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.m[key]
	if prev == nil || ts > prev.ts {
		if prev == nil && len(b.m) >= maxRateStates {
			clear(b.m)
		}
		b.m[key] = &rateState{ts: ts, byPID: byPID}
	}
	if prev != nil && prev.ts < ts {
		return prev.byPID, prev.ts
	}
	return nil, 0
}
