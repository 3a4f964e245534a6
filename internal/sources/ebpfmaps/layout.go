package ebpfmaps

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// A layout describes the key and the value of a map without BTF, e.g.
//
//	key=u32:pid,u16:code,pad2 value=u64:count,u64:bytes
//
// Each part is `key=` or `value=` and a comma-separated list of fields `<type>[:<name>]`, laid
// out in order with no implicit padding, in host byte order. Types: u8 u16 u32 u64 (unsigned),
// s8 s16 s32 s64 (signed), char<N> (a string up to its first NUL), pad<N> (N bytes skipped).
// A part with one unnamed field is a scalar. The layout is turned into BTF types, so that
// such a map is decoded exactly as a map with BTF.

// Layout is a parsed layout; a nil Key or Value is not described.
type Layout struct {
	Key, Value btf.Type
}

// maxLayoutFields bounds one part of a layout.
const maxLayoutFields = 256

// ParseLayout parses a layout option's value.
func ParseLayout(s string) (Layout, error) {
	var l Layout
	parts := strings.Fields(s)
	if len(parts) == 0 || len(parts) > 2 {
		return l, fmt.Errorf("want key=<fields> and/or value=<fields>, got %q", s)
	}
	for _, p := range parts {
		which, fields, ok := strings.Cut(p, "=")
		if !ok {
			return l, fmt.Errorf("%q: want key=… or value=…", p)
		}
		t, err := parseFields(fields)
		if err != nil {
			return l, fmt.Errorf("%s: %w", which, err)
		}
		switch which {
		case "key":
			if l.Key != nil {
				return l, fmt.Errorf("key given twice")
			}
			l.Key = t
		case "value":
			if l.Value != nil {
				return l, fmt.Errorf("value given twice")
			}
			l.Value = t
		default:
			return l, fmt.Errorf("%q: want key=… or value=…", p)
		}
	}
	return l, nil
}

func parseFields(s string) (btf.Type, error) {
	list := strings.Split(s, ",")
	if len(list) > maxLayoutFields {
		return nil, fmt.Errorf("more than %d fields", maxLayoutFields)
	}
	var members []btf.Member
	var off uint32
	seen := map[string]bool{}
	for _, f := range list {
		typ, name, _ := strings.Cut(f, ":")
		t, size, err := layoutType(typ)
		if err != nil {
			return nil, err
		}
		if t == nil { // padding
			if name != "" {
				return nil, fmt.Errorf("%q: padding has no name", f)
			}
			off += size
			continue
		}
		if strings.ContainsAny(name, ". \t") || seen[name] {
			return nil, fmt.Errorf("%q: a field name is unique and has no dot or space", f)
		}
		seen[name] = true
		members = append(members, btf.Member{Name: name, Type: t, Offset: btf.Bits(off * 8)})
		off += size
	}
	if len(members) == 1 && members[0].Name == "" && members[0].Offset == 0 && off == sizeOf(members[0].Type) {
		return members[0].Type, nil
	}
	for i, m := range members {
		if m.Name == "" {
			if len(members) > 1 {
				return nil, fmt.Errorf("field %d has no name (only a single field may be unnamed)", i+1)
			}
			members[i].Name = "value"
		}
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("no field")
	}
	return &btf.Struct{Name: "layout", Size: off, Members: members}, nil
}

func sizeOf(t btf.Type) uint32 {
	n, _ := btf.Sizeof(t)
	return uint32(n)
}

// layoutType returns the BTF type and size of a layout type; a nil type is padding.
func layoutType(s string) (btf.Type, uint32, error) {
	switch s {
	case "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64":
		n, _ := strconv.Atoi(s[1:])
		enc := btf.Unsigned
		if s[0] == 's' {
			enc = btf.Signed
		}
		return &btf.Int{Name: s, Size: uint32(n / 8), Encoding: enc}, uint32(n / 8), nil
	}
	for _, p := range []string{"char", "pad"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			n, err := strconv.ParseUint(rest, 10, 16)
			if err != nil || n == 0 || n > 4096 {
				return nil, 0, fmt.Errorf("%q: want %s<N>, N from 1 to 4096", s, p)
			}
			if p == "pad" {
				return nil, uint32(n), nil
			}
			return &btf.Array{Index: &btf.Int{Name: "u32", Size: 4}, Type: &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}, Nelems: uint32(n)}, uint32(n), nil
		}
	}
	return nil, 0, fmt.Errorf("%q: unknown type (u8…u64, s8…s64, char<N>, pad<N>)", s)
}

// defaultValue is the type of a value without BTF and without a layout: one unsigned 64-bit
// counter per 8 bytes (the usual shape of a counter map), at most 64 of them; nil otherwise
// (the value is then kept as hex only).
func defaultValue(size uint32) btf.Type {
	u64 := &btf.Int{Name: "u64", Size: 8}
	switch {
	case size == 8:
		return u64
	case size%8 == 0 && size > 0 && size <= 8*64:
		return &btf.Array{Index: &btf.Int{Name: "u32", Size: 4}, Type: u64, Nelems: size / 8}
	}
	return nil
}
