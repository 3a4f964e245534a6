package ebpfmaps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// The process half: a MultiParser over <map>.body's entries (no BTF needed: the entries are
// self-describing), read by scan.go's allocation-free reader. Each numeric value field of each entry is one sample named
//
//	<map>[.<program>].<key field>.<key value>….<value field>
//
// where the key fields are the decoded key's leaves in order (an enum by its name, a char
// array as its string, a key that is itself a scalar under the field name "key"), the value
// field is the leaf's dotted path in the value ("value" for a scalar value), and each part has
// its dots made '_'. Enums in values count as their integer and bools as 0/1; strings and hex
// leaves of values are not samples. Per-CPU maps: the sum over CPUs, or with per-cpu each
// CPU's value under …cpu.<n>.<value field>.
//
// Without group-by the map is one aggregation instance (<map>). With group-by the key field it
// names is not a path part: its value (a PID) selects the instance <map>_<pid>, and the
// program's name (/proc/<pid>/comm, recorded by stats-pull as extra "pid:<pid>"; "_unknown"
// when the process had ended) is the part after <map>, so that the engine's sum and its
// functions across instances are across the processes of one program. Entries whose key has
// no such field stay in the instance <map>, not grouped.

const unknownComm = "_unknown"

// maxLine bounds one entry's line (a key and a value of at most 4096 fields each, and the hex).
const maxLine = 16 << 20

type parser struct {
	name []byte
	s    sample.Sample
	sc   scanner
	e    rawEntry
}

// Parse feeds every entry as one instance.
func (p *parser) Parse(meta spool.InstanceMeta, body io.Reader, fn sample.Func) error {
	return p.parse(meta, body, nil, fn)
}

// ParseMulti feeds each group-by value as one instance.
func (p *parser) ParseMulti(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances) error {
	return p.parse(meta, body, in, nil)
}

var errBadInstance = errors.New("the instance name is not a map pin name")

type groupLine struct {
	group string // the group-by field's value ("" when the key has no such field)
	line  []byte
}

func (p *parser) parse(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances, fn sample.Func) error {
	mapName := meta.Instance
	if mapName == "" || instanceName(mapName) != mapName {
		return errBadInstance
	}
	groupBy := meta.Extra["group_by"]
	perCPU := meta.Extra["per_cpu"] == "true"
	emit := func(s *sample.Sample) error {
		if in != nil {
			in.Add(s)
			return nil
		}
		return fn(s)
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	if groupBy == "" {
		// One instance: the entries stream through, none is kept.
		if in != nil {
			in.Begin(mapName)
		}
		for sc.Scan() {
			line++
			err := p.sc.entry(sc.Bytes(), &p.e)
			if err == nil {
				err = p.entry(mapName, "", "", perCPU, emit)
			}
			if err != nil {
				if in != nil {
					in.End(false)
				}
				return fmt.Errorf("line %d: %w", line, err)
			}
		}
		if err := sc.Err(); err != nil {
			if in != nil {
				in.End(false)
			}
			return fmt.Errorf("line %d: %w", line+1, err)
		}
		if in != nil {
			in.End(true)
		}
		return nil
	}
	// Entries of one process are not adjacent in a hash map: keep the lines (max-entries bounds
	// them), then feed each group as one instance.
	var lines []groupLine
	for sc.Scan() {
		line++
		if err := p.sc.entry(sc.Bytes(), &p.e); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		gl := groupLine{line: bytes.Clone(sc.Bytes())}
		if pid, ok := rawFieldNum(p.e.key, groupBy); ok {
			gl.group = pid
		}
		lines = append(lines, gl)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	slices.SortStableFunc(lines, func(a, b groupLine) int { return strings.Compare(a.group, b.group) })
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j].group == lines[i].group {
			j++
		}
		group := lines[i].group
		comm := "" // entries without the group-by field are not grouped
		inst := mapName
		if group != "" {
			comm = unknownComm
			if c := meta.Extra["pid:"+group]; c != "" {
				comm = c
			}
			inst += "_" + group
		}
		if in != nil {
			in.Begin(inst)
		}
		for _, gl := range lines[i:j] {
			err := p.sc.entry(gl.line, &p.e)
			if err == nil {
				err = p.entry(mapName, comm, groupBy, perCPU, emit)
			}
			if err != nil {
				if in != nil {
					in.End(false)
				}
				return err
			}
		}
		if in != nil {
			in.End(true)
		}
		i = j
	}
	return nil
}

func rawFieldNum(fs []rawField, name string) (string, bool) {
	for _, f := range fs {
		if string(f.name) == name {
			switch string(f.kind) {
			case KindUint, KindInt, KindEnum:
				return string(f.num), true
			}
		}
	}
	return "", false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// entry emits the samples of the entry parsed last (p.e).
func (p *parser) entry(mapName, comm, groupBy string, perCPU bool, emit sample.Func) error {
	e := &p.e
	p.name = sample.AppendPart(p.name[:0], mapName)
	if comm != "" {
		p.name = append(p.name, '.')
		p.name = sample.AppendPart(p.name, comm)
	}
	if len(e.key) == 0 {
		p.name = append(p.name, ".key."...)
		p.name = append(p.name, e.rawKey...)
	}
	for _, f := range e.key {
		if groupBy != "" && string(f.name) == groupBy {
			continue
		}
		p.name = append(p.name, '.')
		if len(f.name) == 0 || isDigit(f.name[0]) { // a scalar or an array key
			p.name = append(p.name, "key"...)
			if len(f.name) != 0 {
				p.name = append(p.name, '.')
				p.name = append(p.name, f.name...)
			}
		} else {
			p.name = append(p.name, f.name...) // a dotted path of parts without dots
		}
		p.name = append(p.name, '.')
		switch k := string(f.kind); {
		case k == KindEnum && len(f.str) != 0, k == KindString, k == KindHex:
			if len(f.str) == 0 {
				p.name = append(p.name, '_')
			}
			p.name = appendPartBytes(p.name, f.str)
		default:
			p.name = appendPartBytes(p.name, f.num)
		}
	}
	base := len(p.name)
	if perCPU && e.nCPU > 0 {
		for cpu, fs := range e.perCPU[:e.nCPU] {
			p.name = append(p.name[:base], ".cpu."...)
			p.name = strconv.AppendInt(p.name, int64(cpu), 10)
			if err := p.values(len(p.name), fs, emit); err != nil {
				return err
			}
		}
		return nil
	}
	return p.values(base, e.value, emit)
}

func (p *parser) values(base int, fs []rawField, emit sample.Func) error {
	for _, f := range fs {
		switch string(f.kind) {
		case KindUint, KindInt, KindBool, KindEnum, KindFloat:
		default:
			continue
		}
		v, err := strconv.ParseFloat(string(f.num), 64)
		if err != nil {
			continue
		}
		p.name = append(p.name[:base], '.')
		if len(f.name) == 0 || isDigit(f.name[0]) { // a scalar or an array value
			p.name = append(p.name, "value"...)
			if len(f.name) != 0 {
				p.name = append(p.name, '.')
				p.name = append(p.name, f.name...)
			}
		} else {
			p.name = append(p.name, f.name...)
		}
		p.s = sample.Sample{Family: p.name, Name: p.name, Kind: sample.Gauge, Value: v}
		if err := emit(&p.s); err != nil {
			return err
		}
	}
	return nil
}

func appendPartBytes(dst, s []byte) []byte {
	for _, c := range s {
		if c == '.' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
