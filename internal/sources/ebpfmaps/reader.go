package ebpfmaps

import (
	"log/slog"

	"github.com/cilium/ebpf/btf"

	"github.com/statspipe/statspipe/internal/pull"
)

// The pull half and the body reader for other kinds built on pinned maps (http-ebpf): the
// same discovery, decoding and snapshot form as type = ebpf-maps, configured by the kind.

// ReaderOptions configure NewReader.
type ReaderOptions struct {
	Pins       []string // pin files or bpffs directories
	GroupBy    string   // a key field holding PIDs ("" none)
	PerCPU     bool
	MaxEntries int
	// Declared are the key and value types of maps by instance name, as the program that
	// pins them declares them: used when a map's own BTF cannot be read (it needs
	// CAP_SYS_ADMIN) and their sizes fit; the snapshot says "types":"declared".
	Declared map[string]Declared
	// Missing is added to the error of a pin that does not exist ("is the loader running?").
	Missing string
}

// Declared is a map's key and value type.
type Declared struct {
	Key, Value btf.Type
}

// NewReader returns a provider reading the pinned maps of o every round.
func NewReader(info pull.ProviderInfo, o ReaderOptions, log *slog.Logger) pull.Provider {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	return &provider{info: info, log: log, st: pullSettings{
		pins: o.Pins, groupBy: o.GroupBy, perCPU: o.PerCPU, maxEntries: o.MaxEntries,
		declared: o.Declared, missing: o.Missing,
	}}
}

// EntryReader reads <map>.body lines (the Entry form) without allocating per line: the
// texts it returns are slices of the line (or of its scratch buffer), valid until the next
// Parse.
type EntryReader struct {
	sc scanner
	e  rawEntry
}

// Parse reads one line.
func (r *EntryReader) Parse(line []byte) error { return r.sc.entry(line, &r.e) }

// KeyField returns the key leaf of that name: its kind ("uint", "enum", "string", …), its
// number text (integers, enums) and its string (strings, an enum's name, hex).
func (r *EntryReader) KeyField(name string) (kind, num, str []byte, ok bool) {
	return field(r.e.key, name)
}

// ValueField is KeyField for the value (a per-CPU map's: the sum over CPUs); "" names a
// scalar value.
func (r *EntryReader) ValueField(name string) (kind, num, str []byte, ok bool) {
	return field(r.e.value, name)
}

// Decoded says whether the line had decoded key fields.
func (r *EntryReader) Decoded() bool { return len(r.e.key) > 0 }

func field(fs []rawField, name string) (kind, num, str []byte, ok bool) {
	for _, f := range fs {
		if string(f.name) == name {
			return f.kind, f.num, f.str, true
		}
	}
	return nil, nil, nil, false
}
