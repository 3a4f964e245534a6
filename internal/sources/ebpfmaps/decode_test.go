package ebpfmaps

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// The types of the tests' maps, built by hand as a loader's BTF would have them.
var (
	tU8     = &btf.Int{Name: "unsigned char", Size: 1}
	tU16    = &btf.Typedef{Name: "__u16", Type: &btf.Int{Name: "unsigned short", Size: 2}}
	tU32    = &btf.Typedef{Name: "__u32", Type: &btf.Int{Name: "unsigned int", Size: 4}}
	tS32    = &btf.Typedef{Name: "__s32", Type: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}}
	tU64    = &btf.Typedef{Name: "__u64", Type: &btf.Int{Name: "unsigned long long", Size: 8}}
	tChar   = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	tBool   = &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	tStatus = &btf.Enum{Name: "status", Size: 2, Values: []btf.EnumValue{{Name: "HTTP_200", Value: 200}, {Name: "HTTP_404", Value: 404}}}
	tLevel  = &btf.Enum{Name: "level", Size: 4, Signed: true, Values: []btf.EnumValue{{Name: "LOW", Value: 0}, {Name: "NEG", Value: ^uint64(0)}}}

	// struct http_key { __u32 pid; enum status code; __u8 flags:3, kind:5; char comm[6]; bool tls; __u16 _pad; } (16 bytes)
	tHTTPKey = &btf.Struct{Name: "http_key", Size: 16, Members: []btf.Member{
		{Name: "pid", Type: tU32, Offset: 0},
		{Name: "code", Type: tStatus, Offset: 32},
		{Name: "flags", Type: tU8, Offset: 48, BitfieldSize: 3},
		{Name: "kind", Type: tU8, Offset: 51, BitfieldSize: 5},
		{Name: "comm", Type: &btf.Array{Index: tU32, Type: tChar, Nelems: 6}, Offset: 56},
		{Name: "tls", Type: tBool, Offset: 104},
		{Name: "_pad", Type: tU16, Offset: 112},
	}}
	// struct http_val { __u64 count, bytes; struct { __s32 delta; __u32 hist[2]; } lat; enum level last; } (32 bytes)
	tHTTPVal = &btf.Struct{Name: "http_val", Size: 32, Members: []btf.Member{
		{Name: "count", Type: tU64, Offset: 0},
		{Name: "bytes", Type: tU64, Offset: 64},
		{Name: "lat", Type: &btf.Struct{Name: "", Size: 12, Members: []btf.Member{
			{Name: "delta", Type: tS32, Offset: 0},
			{Name: "hist", Type: &btf.Array{Index: tU32, Type: tU32, Nelems: 2}, Offset: 32},
		}}, Offset: 128},
		{Name: "last", Type: tLevel, Offset: 224},
	}}
	// struct stats { __u64 packets, bytes; } (per-CPU values)
	tStats = &btf.Struct{Name: "stats", Size: 16, Members: []btf.Member{
		{Name: "packets", Type: tU64, Offset: 0}, {Name: "bytes", Type: tU64, Offset: 64}}}
)

// httpKey encodes a http_key the way a C program lays it out.
func httpKey(pid uint32, code uint16, flags, kind uint8, comm string, tls bool) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], pid)
	binary.LittleEndian.PutUint16(b[4:], code)
	b[6] = flags&7 | kind<<3
	copy(b[7:13], comm)
	if tls {
		b[13] = 1
	}
	return b
}

func httpVal(count, bytes uint64, delta int32, h0, h1 uint32, last int32) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint64(b[0:], count)
	binary.LittleEndian.PutUint64(b[8:], bytes)
	binary.LittleEndian.PutUint32(b[16:], uint32(delta))
	binary.LittleEndian.PutUint32(b[20:], h0)
	binary.LittleEndian.PutUint32(b[24:], h1)
	binary.LittleEndian.PutUint32(b[28:], uint32(last))
	return b
}

func fieldsJSON(t *testing.T, fs []Field) string {
	t.Helper()
	b, err := json.Marshal(fs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeKeyAndValue(t *testing.T) {
	k, err := Decode(tHTTPKey, httpKey(42, 404, 5, 17, "curl", true))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"pid","kind":"uint","num":42},{"name":"code","kind":"enum","num":404,"str":"HTTP_404"},` +
		`{"name":"flags","kind":"uint","num":5},{"name":"kind","kind":"uint","num":17},{"name":"comm","kind":"string","str":"curl"},` +
		`{"name":"tls","kind":"bool","num":1},{"name":"_pad","kind":"uint","num":0}]`
	if got := fieldsJSON(t, k); got != want {
		t.Errorf("key\n got %s\nwant %s", got, want)
	}
	v, err := Decode(tHTTPVal, httpVal(7, 1<<40, -3, 1, 2, -1))
	if err != nil {
		t.Fatal(err)
	}
	want = `[{"name":"count","kind":"uint","num":7},{"name":"bytes","kind":"uint","num":1099511627776},` +
		`{"name":"lat.delta","kind":"int","num":-3},{"name":"lat.hist.0","kind":"uint","num":1},{"name":"lat.hist.1","kind":"uint","num":2},` +
		`{"name":"last","kind":"enum","num":-1,"str":"NEG"}]`
	if got := fieldsJSON(t, v); got != want {
		t.Errorf("value\n got %s\nwant %s", got, want)
	}
}

func TestDecodeScalarsUnionsAndErrors(t *testing.T) {
	f, err := Decode(tU64, []byte{1, 0, 0, 0, 0, 0, 0, 0x80})
	if err != nil || fieldsJSON(t, f) != `[{"name":"","kind":"uint","num":9223372036854775809}]` {
		t.Errorf("u64: %s %v", fieldsJSON(t, f), err)
	}
	u := &btf.Union{Name: "u", Size: 4, Members: []btf.Member{{Name: "a", Type: tU32}, {Name: "b", Type: tS32}}}
	f, err = Decode(u, []byte{0xff, 0xff, 0xff, 0xff})
	if err != nil || fieldsJSON(t, f) != `[{"name":"a","kind":"uint","num":4294967295},{"name":"b","kind":"int","num":-1}]` {
		t.Errorf("union: %s %v", fieldsJSON(t, f), err)
	}
	// A signed bitfield is sign-extended; an enum with no name for its value keeps the number.
	sb := &btf.Struct{Name: "s", Size: 4, Members: []btf.Member{
		{Name: "x", Type: tS32, Offset: 4, BitfieldSize: 4}, {Name: "e", Type: tStatus, Offset: 16}}}
	f, err = Decode(sb, []byte{0xf0, 0, 7, 0})
	if err != nil || fieldsJSON(t, f) != `[{"name":"x","kind":"int","num":-1},{"name":"e","kind":"enum","num":7}]` {
		t.Errorf("bitfield: %s %v", fieldsJSON(t, f), err)
	}
	if _, err := Decode(tHTTPKey, make([]byte, 15)); err == nil {
		t.Error("short bytes decoded")
	}
	ptr := &btf.Pointer{Target: tU32}
	f, err = Decode(ptr, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil || fieldsJSON(t, f) != `[{"name":"","kind":"hex","str":"0102030405060708"}]` {
		t.Errorf("pointer: %s %v", fieldsJSON(t, f), err)
	}
	// Arrays of empty structs: no field, but the walk is bounded.
	empty := &btf.Struct{Name: "e", Size: 0}
	var nested btf.Type = empty
	for i := 0; i < 6; i++ {
		nested = &btf.Array{Index: tU32, Type: nested, Nelems: 4096}
	}
	huge := &btf.Struct{Name: "h", Size: 4, Members: []btf.Member{{Name: "n", Type: nested}, {Name: "x", Type: tU32}}}
	if _, err := Decode(huge, make([]byte, 4)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("huge type: %v", err)
	}
	// A member name with a dot stays one path part.
	dot := &btf.Struct{Name: "d", Size: 4, Members: []btf.Member{{Name: "a.b", Type: tU32}}}
	f, _ = Decode(dot, make([]byte, 4))
	if f[0].Name != "a_b" {
		t.Errorf("dotted member: %q", f[0].Name)
	}
}

func TestSumFields(t *testing.T) {
	a, _ := Decode(tStats, []byte{1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0})
	b, _ := Decode(tStats, []byte{2, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0})
	got := fieldsJSON(t, SumFields([][]Field{a, b}))
	if got != `[{"name":"packets","kind":"uint","num":3},{"name":"bytes","kind":"uint","num":300}]` {
		t.Errorf("sum %s", got)
	}
	big, _ := Decode(tU64, []byte{0, 0, 0, 0, 0, 0, 0, 0x80})
	if got := fieldsJSON(t, SumFields([][]Field{big, big})); got != `[{"name":"","kind":"float","num":1.8446744073709552e+19}]` {
		t.Errorf("overflow %s", got)
	}
}

func TestParseLayout(t *testing.T) {
	l, err := ParseLayout("key=u32:pid,u16:code,pad2 value=u64:count,s32:delta,char4:tag")
	if err != nil {
		t.Fatal(err)
	}
	if sizeOf(l.Key) != 8 || sizeOf(l.Value) != 16 {
		t.Fatalf("sizes %d %d", sizeOf(l.Key), sizeOf(l.Value))
	}
	k, err := Decode(l.Key, []byte{42, 0, 0, 0, 200, 0, 9, 9})
	if err != nil || fieldsJSON(t, k) != `[{"name":"pid","kind":"uint","num":42},{"name":"code","kind":"uint","num":200}]` {
		t.Errorf("key %s %v", fieldsJSON(t, k), err)
	}
	v, err := Decode(l.Value, []byte{7, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 'a', 'b', 0, 'x'})
	if err != nil || fieldsJSON(t, v) != `[{"name":"count","kind":"uint","num":7},{"name":"delta","kind":"int","num":-2},{"name":"tag","kind":"string","str":"ab"}]` {
		t.Errorf("value %s %v", fieldsJSON(t, v), err)
	}
	l, err = ParseLayout("value=u64")
	if err != nil || l.Key != nil || sizeOf(l.Value) != 8 {
		t.Fatalf("scalar: %+v %v", l, err)
	}
	for _, bad := range []string{"", "key", "key=u31", "key=u32:a,u32:a", "key=u32,u32", "key=pad0", "key=u32 key=u32", "foo=u32",
		"key=pad2:x", "key=u32:a.b", "key=char99999", "value=u8 key=u8 x=u8"} {
		if _, err := ParseLayout(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseLayout("key=" + strings.Repeat("u8,", 300) + "u8"); err == nil {
		t.Error("300 fields accepted")
	}
}

func FuzzParseLayout(f *testing.F) {
	f.Add("key=u32:pid,u16:code,pad2 value=u64:count,u64:bytes", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add("value=char8", []byte("abc\x00defg"))
	f.Fuzz(func(t *testing.T, layout string, data []byte) {
		l, err := ParseLayout(layout)
		if err != nil {
			return
		}
		for _, typ := range []btf.Type{l.Key, l.Value} {
			if typ == nil {
				continue
			}
			fs, err := Decode(typ, data)
			if err == nil && len(data) != int(sizeOf(typ)) {
				t.Fatalf("decoded %d bytes as a %d-byte type: %v", len(data), sizeOf(typ), fs)
			}
		}
	})
}

// FuzzDecode decodes arbitrary bytes with the tests' types and checks it never panics and
// fails exactly when the size does not match.
func FuzzDecode(f *testing.F) {
	f.Add(httpKey(1, 200, 1, 2, "x", false), uint8(0))
	f.Add(httpVal(1, 2, 3, 4, 5, 6), uint8(1))
	types := []btf.Type{tHTTPKey, tHTTPVal, tStats, tU64, tStatus, tLevel, defaultValue(24)}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		typ := types[int(which)%len(types)]
		fs, err := Decode(typ, data)
		if (err == nil) != (len(data) == int(sizeOf(typ))) {
			t.Fatalf("size %d of %d: %v %v", len(data), sizeOf(typ), fs, err)
		}
		if err == nil {
			if _, err := json.Marshal(fs); err != nil {
				t.Fatal(err)
			}
		}
	})
}
