package ebpfmaps

import (
	"bufio"
	"encoding/json"
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
// self-describing). Each numeric value field of each entry is one sample named
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

type groupEntry struct {
	group string // the group-by field's value ("" without group-by)
	e     Entry
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
			var e Entry
			err := json.Unmarshal(sc.Bytes(), &e)
			if err == nil {
				err = p.entry(mapName, "", "", &e, perCPU, emit)
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
	// Entries of one process are not adjacent in a hash map: read them all (max-entries bounds
	// them), then feed each group as one instance.
	var entries []groupEntry
	for sc.Scan() {
		line++
		var ge groupEntry
		if err := json.Unmarshal(sc.Bytes(), &ge.e); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if groupBy != "" {
			if pid, ok := fieldNum(ge.e.Key, groupBy); ok {
				ge.group = pid
			}
		}
		entries = append(entries, ge)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	slices.SortStableFunc(entries, func(a, b groupEntry) int { return strings.Compare(a.group, b.group) })
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && entries[j].group == entries[i].group {
			j++
		}
		group := entries[i].group
		comm := "" // entries without the group-by field (or all, without group-by) are not grouped
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
		for _, ge := range entries[i:j] {
			if err := p.entry(mapName, comm, groupBy, &ge.e, perCPU, emit); err != nil {
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

// entry emits the samples of one entry.
func (p *parser) entry(mapName, comm, groupBy string, e *Entry, perCPU bool, emit sample.Func) error {
	p.name = appendPart(p.name[:0], mapName)
	if comm != "" {
		p.name = append(p.name, '.')
		p.name = appendPart(p.name, comm)
	}
	if len(e.Key) == 0 {
		p.name = append(p.name, ".key."...)
		p.name = append(p.name, e.RawKey...)
	}
	for _, f := range e.Key {
		if groupBy != "" && f.Name == groupBy {
			continue
		}
		p.name = append(p.name, '.')
		if f.Name == "" || f.Name[0] >= '0' && f.Name[0] <= '9' { // a scalar or an array key
			p.name = append(p.name, "key"...)
			if f.Name != "" {
				p.name = append(p.name, '.')
				p.name = append(p.name, f.Name...)
			}
		} else {
			p.name = append(p.name, f.Name...) // a dotted path of parts without dots
		}
		p.name = append(p.name, '.')
		switch {
		case f.Kind == KindEnum && f.Str != "", f.Kind == KindString, f.Kind == KindHex:
			if f.Str == "" {
				p.name = append(p.name, '_')
			}
			p.name = appendPart(p.name, f.Str)
		default:
			p.name = appendPart(p.name, string(f.Num))
		}
	}
	base := len(p.name)
	if perCPU && len(e.PerCPU) > 0 {
		for cpu, fs := range e.PerCPU {
			p.name = append(p.name[:base], ".cpu."...)
			p.name = strconv.AppendInt(p.name, int64(cpu), 10)
			if err := p.values(len(p.name), fs, emit); err != nil {
				return err
			}
		}
		return nil
	}
	return p.values(base, e.Value, emit)
}

func (p *parser) values(base int, fs []Field, emit sample.Func) error {
	for _, f := range fs {
		var v float64
		switch f.Kind {
		case KindUint, KindInt, KindBool, KindEnum, KindFloat:
			var err error
			if v, err = strconv.ParseFloat(string(f.Num), 64); err != nil {
				continue
			}
		default:
			continue
		}
		p.name = append(p.name[:base], '.')
		if f.Name == "" || f.Name[0] >= '0' && f.Name[0] <= '9' { // a scalar or an array value
			p.name = append(p.name, "value"...)
			if f.Name != "" {
				p.name = append(p.name, '.')
				p.name = append(p.name, f.Name...)
			}
		} else {
			p.name = append(p.name, f.Name...)
		}
		p.s = sample.Sample{Family: p.name, Name: p.name, Kind: sample.Gauge, Value: v}
		if err := emit(&p.s); err != nil {
			return err
		}
	}
	return nil
}

// appendPart appends one name part with its dots made '_', so that it stays one component.
// Field names are appended as they are: the decoder made them dotted paths of such parts.
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
