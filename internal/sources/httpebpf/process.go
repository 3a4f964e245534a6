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

// counters are one PID's (or the map's, for http_drops) counters by sample name suffix.
type counters map[string]float64

func (p *parser) ParseMulti(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances) error {
	var entry func(byPID map[uint64]counters) error
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
	byPID := map[uint64]counters{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
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
	var rates map[string]float64
	if p.st.rate {
		rates = book.rates(p.source+"\x00"+meta.Instance, p.ts, byPID)
	}
	pids := make([]uint64, 0, len(byPID))
	for pid := range byPID {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	var names []string
	for _, pid := range pids {
		prefix := ""
		inst := meta.Instance // http_drops: one instance, its names not per program
		if meta.Instance != bpf.DropsMap {
			id := strconv.FormatUint(pid, 10)
			inst = id
			prefix = meta.Extra["pid:"+id]
			if prefix == "" {
				prefix = unknownComm
			}
		}
		names = names[:0]
		for n := range byPID[pid] {
			names = append(names, n)
		}
		slices.Sort(names)
		in.Begin(inst)
		for _, n := range names {
			p.emit(in, prefix, n, "", byPID[pid][n])
			if r, ok := rates[rateKey(pid, n)]; ok {
				p.emit(in, prefix, n, ".rate", r)
			}
		}
		in.End(true)
	}
	return nil
}

func (p *parser) emit(in httpsource.Instances, prefix, name, suffix string, v float64) {
	p.name = p.name[:0]
	if prefix != "" {
		p.name = appendPart(p.name, prefix)
		p.name = append(p.name, '.')
	}
	p.name = append(p.name, name...)
	p.name = append(p.name, suffix...)
	p.s = sample.Sample{Family: p.name, Name: p.name, Kind: sample.Counter, Value: v}
	in.Add(&p.s)
}

// appendPart appends a program name as one path component (its dots made '_').
func appendPart(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
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

func (p *parser) counters(byPID map[uint64]counters, pid uint64) (counters, error) {
	c := byPID[pid]
	if c == nil {
		if len(byPID) >= maxPIDs {
			return nil, fmt.Errorf("more than %d processes", maxPIDs)
		}
		c = counters{}
		byPID[pid] = c
	}
	return c, nil
}

func (p *parser) request(byPID map[uint64]counters) error {
	pid, err := p.pidOf()
	if err != nil {
		return err
	}
	_, _, method, ok := p.r.KeyField("method")
	if !ok || !validMethod(method) {
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
	c["requests"] += v
	c["requests.method."+string(method)] += v
	return nil
}

// validMethod: the program's methods are upper-case letters; anything else in a body is a
// spoiled file, not a path component.
func validMethod(m []byte) bool {
	if len(m) == 0 || len(m) > 8 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (p *parser) response(byPID map[uint64]counters) error {
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
	c["responses"] += v
	// A code the C enum names has its own path; the program's list is the one place that
	// says which codes those are (the snapshot carries the names, decoded from its BTF).
	if len(name) > 0 {
		c["responses.code."+string(num)] += v
	} else {
		c["responses.code.other"] += v
	}
	if code >= 100 && code <= 599 {
		c["responses.class."+strconv.FormatUint(code/100, 10)+"xx"] += v
	}
	return nil
}

func (p *parser) drop(byPID map[uint64]counters) error {
	kind, num, _, ok := p.r.KeyField("")
	if !ok || string(kind) != ebpfmaps.KindEnum {
		return errors.New("the key is not a decoded drop_reason")
	}
	var name string
	switch string(num) {
	case "0":
		name = "not_counted.requests_map_full"
	case "1":
		name = "not_counted.responses_map_full"
	default:
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
	c[name] += v
	return nil
}

func rateKey(pid uint64, name string) string { return strconv.FormatUint(pid, 10) + "\x00" + name }

// rateBook keeps, per source and map, the counters of the newest snapshot processed, for
// the rates of the next. Shared by the workers; snapshots processed out of order get rates
// only against an older one.
type rateBook struct {
	mu sync.Mutex
	m  map[string]*rateState
}

type rateState struct {
	ts     int64
	values map[string]float64
}

var book = &rateBook{m: map[string]*rateState{}}

// maxRateStates bounds the sources×maps kept.
const maxRateStates = 1024

// rates returns the per-second rates of byPID's counters against the previous snapshot of
// key, by rateKey, and keeps byPID when ts is the newest. A counter that went down (its
// process's entries pruned, a PID reused, the loader's maps recreated) has no rate; one that
// is new counts from 0, since a key appears in the maps at its first event.
func (b *rateBook) rates(key string, ts int64, byPID map[uint64]counters) map[string]float64 {
	cur := make(map[string]float64)
	for pid, c := range byPID {
		for n, v := range c {
			cur[rateKey(pid, n)] = v
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.m[key]
	var out map[string]float64
	if prev != nil && prev.ts < ts {
		dt := float64(ts - prev.ts)
		out = make(map[string]float64, len(cur))
		for k, v := range cur {
			if pv := prev.values[k]; v >= pv {
				out[k] = (v - pv) / dt
			}
		}
	}
	if prev == nil || ts > prev.ts {
		if prev == nil && len(b.m) >= maxRateStates {
			clear(b.m)
		}
		b.m[key] = &rateState{ts: ts, values: cur}
	}
	return out
}
