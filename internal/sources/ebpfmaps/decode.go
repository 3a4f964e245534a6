package ebpfmaps

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Field is one decoded leaf of a key or a value: its dotted path inside the key or value
// (struct members by name, array elements by index; "" for a key or value that is itself a
// scalar) and its value. It is the self-describing form the snapshot keeps, so that
// stats-process needs no BTF. Num is the exact decimal text of an integer (or a float's
// shortest text); Str is an enum's name, a char array up to its first NUL, or the hex of a
// pointer or of a type the decoder does not know.
type Field struct {
	Name string      `json:"name"`
	Kind string      `json:"kind"` // one of the Kind* constants
	Num  json.Number `json:"num,omitempty"`
	Str  string      `json:"str,omitempty"`
}

type jsonNumber = json.Number

// The kinds of a Field.
const (
	KindUint   = "uint"
	KindInt    = "int"
	KindBool   = "bool"   // Num is 0 or 1
	KindEnum   = "enum"   // Num the integer, Str its name ("" when the value has no name)
	KindFloat  = "float"  // Num
	KindString = "string" // Str: a char array up to its first NUL
	KindHex    = "hex"    // Str: bytes the decoder does not interpret (pointers, unknown types)
)

// Bounds of the decoder: a hostile or huge type must not make an entry unbounded.
const (
	maxDepth  = 16
	maxFields = 4096
	maxSteps  = 1 << 16
)

var errTooManyFields = errors.New("more than 4096 fields in one key or value")

// decoder flattens bytes through a BTF type into Fields.
type decoder struct {
	out   []Field
	steps int // types visited: arrays of empty structs add no field but still cost
}

// Decode flattens b, of type t, into fields. An error means b does not fit t (the caller
// keeps the raw hex only).
func Decode(t btf.Type, b []byte) ([]Field, error) {
	var d decoder
	size, err := btf.Sizeof(t)
	if err != nil {
		return nil, err
	}
	if size != len(b) {
		return nil, fmt.Errorf("type is %d bytes, data %d", size, len(b))
	}
	if err := d.walk("", t, b, 0, 0, 0); err != nil {
		return nil, err
	}
	return d.out, nil
}

func join(prefix, name string) string {
	name = strings.ReplaceAll(name, ".", "_")
	if prefix == "" {
		return name
	}
	if name == "" {
		return prefix
	}
	return prefix + "." + name
}

func (d *decoder) add(f Field) error {
	if len(d.out) >= maxFields {
		return errTooManyFields
	}
	d.out = append(d.out, f)
	return nil
}

// walk decodes the type t at bit offset bitOff of b; bitSize > 0 for a bitfield.
func (d *decoder) walk(name string, t btf.Type, b []byte, bitOff, bitSize uint32, depth int) error {
	if depth > maxDepth {
		return errors.New("types nested too deep")
	}
	if d.steps++; d.steps > maxSteps {
		return errors.New("type too large to decode")
	}
	t = btf.UnderlyingType(t)
	if bitSize == 0 && bitOff%8 != 0 {
		return fmt.Errorf("%s: member not byte aligned", name)
	}
	off := bitOff / 8
	switch t := t.(type) {
	case *btf.Int:
		if bitSize > 0 {
			return d.bitfield(name, t.Encoding, b, bitOff, bitSize)
		}
		raw, err := slice(b, off, t.Size)
		if err != nil {
			return err
		}
		return d.integer(name, t.Encoding, raw)
	case *btf.Enum:
		var u uint64
		var s int64
		if bitSize > 0 {
			if bitSize > 64 || uint64(bitOff)+uint64(bitSize) > uint64(len(b))*8 {
				return errors.New("bitfield out of range")
			}
			u = bits(b, bitOff, bitSize)
			s = signExtend(u, bitSize)
		} else {
			raw, err := slice(b, off, t.Size)
			if err != nil {
				return err
			}
			if len(raw) > 8 {
				return errors.New("enum wider than 8 bytes")
			}
			u = le(raw)
			s = signExtend(u, uint32(len(raw))*8)
		}
		f := Field{Name: name, Kind: KindEnum}
		if t.Signed {
			f.Num = jsonNumber(strconv.FormatInt(s, 10))
			u = uint64(s)
		} else {
			f.Num = jsonNumber(strconv.FormatUint(u, 10))
		}
		for _, v := range t.Values {
			if v.Value == u {
				f.Str = v.Name
				break
			}
		}
		return d.add(f)
	case *btf.Float:
		raw, err := slice(b, off, t.Size)
		if err != nil {
			return err
		}
		var v float64
		switch len(raw) {
		case 4:
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw)))
		case 8:
			v = math.Float64frombits(binary.LittleEndian.Uint64(raw))
		default:
			return d.add(Field{Name: name, Kind: KindHex, Str: hex.EncodeToString(raw)})
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return d.add(Field{Name: name, Kind: KindHex, Str: hex.EncodeToString(raw)})
		}
		return d.add(Field{Name: name, Kind: KindFloat, Num: jsonNumber(strconv.FormatFloat(v, 'g', -1, 64))})
	case *btf.Array:
		elem := btf.UnderlyingType(t.Type)
		esize, err := btf.Sizeof(elem)
		if err != nil {
			return err
		}
		if i, ok := elem.(*btf.Int); ok && i.Size == 1 && (i.Encoding == btf.Char || isCharName(i.Name)) {
			raw, err := slice(b, off, t.Nelems)
			if err != nil {
				return err
			}
			if n := strings.IndexByte(string(raw), 0); n >= 0 {
				raw = raw[:n]
			}
			return d.add(Field{Name: name, Kind: KindString, Str: string(raw)})
		}
		if uint64(t.Nelems) > maxFields {
			return errTooManyFields
		}
		for i := uint32(0); i < t.Nelems; i++ {
			if err := d.walk(join(name, strconv.FormatUint(uint64(i), 10)), elem, b, bitOff+i*uint32(esize)*8, 0, depth+1); err != nil {
				return err
			}
		}
		return nil
	case *btf.Struct:
		return d.members(name, t.Members, b, bitOff, depth)
	case *btf.Union:
		return d.members(name, t.Members, b, bitOff, depth)
	default:
		size, err := btf.Sizeof(t)
		if err != nil {
			return err
		}
		raw, err := slice(b, off, uint32(size))
		if err != nil {
			return err
		}
		return d.add(Field{Name: name, Kind: KindHex, Str: hex.EncodeToString(raw)})
	}
}

func (d *decoder) members(name string, ms []btf.Member, b []byte, bitOff uint32, depth int) error {
	for i, m := range ms {
		mname := m.Name
		if mname == "" { // an anonymous struct or union: its members belong to the parent
			switch btf.UnderlyingType(m.Type).(type) {
			case *btf.Struct, *btf.Union:
			default:
				mname = "_" + strconv.Itoa(i)
			}
		}
		if err := d.walk(join(name, mname), m.Type, b, bitOff+uint32(m.Offset), uint32(m.BitfieldSize), depth+1); err != nil {
			return err
		}
	}
	return nil
}

func isCharName(n string) bool {
	return n == "char" || n == "signed char" || n == "unsigned char"
}

func (d *decoder) integer(name string, enc btf.IntEncoding, raw []byte) error {
	if len(raw) > 8 { // __int128 and the like
		return d.add(Field{Name: name, Kind: KindHex, Str: hex.EncodeToString(raw)})
	}
	u := le(raw)
	switch {
	case enc&btf.Bool != 0:
		if u != 0 {
			u = 1
		}
		return d.add(Field{Name: name, Kind: KindBool, Num: jsonNumber(strconv.FormatUint(u, 10))})
	case enc&btf.Signed != 0:
		return d.add(Field{Name: name, Kind: KindInt, Num: jsonNumber(strconv.FormatInt(signExtend(u, uint32(len(raw))*8), 10))})
	}
	return d.add(Field{Name: name, Kind: KindUint, Num: jsonNumber(strconv.FormatUint(u, 10))})
}

func (d *decoder) bitfield(name string, enc btf.IntEncoding, b []byte, bitOff, bitSize uint32) error {
	if bitSize > 64 || uint64(bitOff)+uint64(bitSize) > uint64(len(b))*8 {
		return errors.New("bitfield out of range")
	}
	u := bits(b, bitOff, bitSize)
	switch {
	case enc&btf.Bool != 0:
		if u != 0 {
			u = 1
		}
		return d.add(Field{Name: name, Kind: KindBool, Num: jsonNumber(strconv.FormatUint(u, 10))})
	case enc&btf.Signed != 0:
		return d.add(Field{Name: name, Kind: KindInt, Num: jsonNumber(strconv.FormatInt(signExtend(u, bitSize), 10))})
	}
	return d.add(Field{Name: name, Kind: KindUint, Num: jsonNumber(strconv.FormatUint(u, 10))})
}

// bits reads bitSize bits at bitOff, in the little-endian bit order BTF offsets use on the
// little-endian machines statspipe runs on (amd64, arm64).
func bits(b []byte, bitOff, bitSize uint32) uint64 {
	var u uint64
	for i := uint32(0); i < bitSize; i++ {
		p := bitOff + i
		if b[p/8]>>(p%8)&1 != 0 {
			u |= 1 << i
		}
	}
	return u
}

func signExtend(u uint64, width uint32) int64 {
	if width == 0 || width >= 64 {
		return int64(u)
	}
	shift := 64 - width
	return int64(u<<shift) >> shift
}

func le(raw []byte) uint64 {
	var u uint64
	for i := len(raw) - 1; i >= 0; i-- {
		u = u<<8 | uint64(raw[i])
	}
	return u
}

func slice(b []byte, off, size uint32) ([]byte, error) {
	end := uint64(off) + uint64(size)
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("field at byte %d of %d bytes is past the end (%d)", off, size, len(b))
	}
	return b[off:end], nil
}
