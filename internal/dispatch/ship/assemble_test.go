package ship

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// frag is one record as the Dispatcher writes it.
type frag struct {
	partition int32
	offset    int64
	key       string
	headers   []kgo.RecordHeader
	value     []byte
}

func mkFrag(offset int64, snapshot string, i, n int, value string) frag {
	return frag{offset: offset, key: testHost, value: []byte(value), headers: []kgo.RecordHeader{
		{Key: HeaderSnapshot, Value: []byte(testHost + "/" + snapshot)},
		{Key: HeaderFragment, Value: fmt.Appendf(nil, "%d/%d", i, n)},
		{Key: HeaderFormat, Value: []byte(Format)},
	}}
}

// with replaces (or, with an empty value and del, removes) header key of f.
func (f frag) with(key, value string, del bool) frag {
	var hs []kgo.RecordHeader
	for _, h := range f.headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	if !del {
		hs = append(hs, kgo.RecordHeader{Key: key, Value: []byte(value)})
	}
	f.headers = hs
	return f
}

func (a *Assembler) add(f frag) (*Archive, error) {
	return a.Add(f.partition, f.offset, []byte(f.key), f.headers, f.value)
}

const s1, s2 = "1700000000", "1700000060"

func TestAssemblerRecords(t *testing.T) {
	type step struct {
		f       frag
		err     error   // the sentinel wanted, nil for none
		offsets []int64 // of the Error, or of the Archive when data != ""
		data    string  // the archive completed
	}
	dup := mkFrag(1, s1, 1, 1, "x")
	dup.headers = append(dup.headers, kgo.RecordHeader{Key: HeaderFormat, Value: []byte(Format)})
	wrongKey := mkFrag(1, s1, 1, 1, "x")
	wrongKey.key = "lb2.example.com"
	for _, tc := range []struct {
		name   string
		limits Limits
		steps  []step
	}{
		{"single fragment", Limits{}, []step{{f: mkFrag(7, s1, 1, 1, "whole"), offsets: []int64{7}, data: "whole"}}},
		{"three fragments", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 3, "ab")}, {f: mkFrag(2, s1, 2, 3, "cd")},
			{f: mkFrag(4, s1, 3, 3, "e"), offsets: []int64{1, 2, 4}, data: "abcde"}}},
		{"no format", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFormat, "", true), err: ErrMalformed, offsets: []int64{3}}}},
		{"format 2", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFormat, "2", false), err: ErrFormat, offsets: []int64{3}}}},
		{"no snapshot", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderSnapshot, "", true), err: ErrMalformed, offsets: []int64{3}}}},
		{"no fragment", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFragment, "", true), err: ErrMalformed, offsets: []int64{3}}}},
		{"header twice", Limits{}, []step{{f: dup, err: ErrMalformed, offsets: []int64{1}}}},
		{"snapshot without host", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderSnapshot, "/"+s1, false), err: ErrMalformed, offsets: []int64{3}}}},
		{"snapshot not an epoch", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderSnapshot, testHost+"/x1", false), err: ErrMalformed, offsets: []int64{3}}}},
		{"snapshot without slash", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderSnapshot, testHost, false), err: ErrMalformed, offsets: []int64{3}}}},
		{"fragment 0", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFragment, "0/3", false), err: ErrMalformed, offsets: []int64{3}}}},
		{"fragment past n", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFragment, "4/3", false), err: ErrMalformed, offsets: []int64{3}}}},
		{"fragment with sign", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFragment, "+1/3", false), err: ErrMalformed, offsets: []int64{3}}}},
		{"fragment without n", Limits{}, []step{{f: mkFrag(3, s1, 1, 1, "x").with(HeaderFragment, "1/", false), err: ErrMalformed, offsets: []int64{3}}}},
		{"key is not the host", Limits{}, []step{{f: wrongKey, err: ErrMalformed, offsets: []int64{1}}}},
		{"without its start", Limits{}, []step{{f: mkFrag(5, s1, 2, 3, "x"), err: ErrOrder, offsets: []int64{5}}}},
		{"fragment skipped", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 3, "a")}, {f: mkFrag(2, s1, 3, 3, "c"), err: ErrOrder, offsets: []int64{1, 2}},
			// the partial snapshot is gone: its next fragment has no start
			{f: mkFrag(3, s1, 2, 3, "b"), err: ErrOrder, offsets: []int64{3}}}},
		{"fragment twice", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 3, "a")}, {f: mkFrag(2, s1, 2, 3, "b")},
			{f: mkFrag(3, s1, 2, 3, "b"), err: ErrOrder, offsets: []int64{1, 2, 3}}}},
		{"n changes", Limits{}, []step{{f: mkFrag(1, s1, 1, 3, "a")}, {f: mkFrag(2, s1, 2, 4, "b"), err: ErrOrder, offsets: []int64{1, 2}}}},
		{"offset goes back", Limits{}, []step{{f: mkFrag(10, s1, 1, 2, "a")}, {f: mkFrag(5, s1, 2, 2, "b"), err: ErrOrder, offsets: []int64{10, 5}}}},
		{"fragment 1 again restarts", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 2, "old")}, {f: mkFrag(5, s1, 1, 2, "a")},
			{f: mkFrag(6, s1, 2, 2, "b"), offsets: []int64{5, 6}, data: "ab"}}},
		{"1/1 again replaces a partial", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 2, "old")}, {f: mkFrag(2, s1, 1, 1, "new"), offsets: []int64{2}, data: "new"}}},
		{"interleaved", Limits{}, []step{
			{f: mkFrag(1, s1, 1, 2, "a")}, {f: mkFrag(2, s2, 1, 2, "A")},
			{f: mkFrag(3, s2, 2, 2, "B"), offsets: []int64{2, 3}, data: "AB"},
			{f: mkFrag(4, s1, 2, 2, "b"), offsets: []int64{1, 4}, data: "ab"}}},
		{"bytes limit", Limits{Bytes: 100}, []step{
			{f: mkFrag(1, s1, 1, 3, string(make([]byte, 60)))},
			{f: mkFrag(2, s1, 2, 3, string(make([]byte, 60))), err: ErrLimit, offsets: []int64{1, 2}}}},
		{"bytes limit at the start", Limits{Bytes: 100}, []step{
			{f: mkFrag(1, s1, 1, 3, string(make([]byte, 101))), err: ErrLimit, offsets: []int64{1}}}},
		{"snapshots limit", Limits{Snapshots: 1}, []step{
			{f: mkFrag(1, s1, 1, 2, "a")}, {f: mkFrag(2, s2, 1, 2, "A"), err: ErrLimit, offsets: []int64{2}},
			{f: mkFrag(3, s1, 2, 2, "b"), offsets: []int64{1, 3}, data: "ab"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAssembler(tc.limits)
			for i, st := range tc.steps {
				ar, err := a.add(st.f)
				var e *Error
				switch {
				case st.err != nil:
					if !errors.Is(err, st.err) || !errors.As(err, &e) || !slices.Equal(e.Offsets, st.offsets) || ar != nil {
						t.Fatalf("step %d: %v (%+v), want %v with offsets %v", i, err, e, st.err, st.offsets)
					}
					if e.Partition != st.f.partition || !bytes.Contains([]byte(err.Error()), fmt.Appendf(nil, "offset %d", st.f.offset)) {
						t.Errorf("step %d: %q does not name the partition and offset", i, err)
					}
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				case st.data != "":
					if ar == nil || string(ar.Data) != st.data || !slices.Equal(ar.Offsets, st.offsets) || ar.Host != testHost {
						t.Fatalf("step %d: archive %+v, want %q at %v", i, ar, st.data, st.offsets)
					}
				case ar != nil:
					t.Fatalf("step %d: an archive (%q) before the last fragment", i, ar.Data)
				}
			}
		})
	}
}

// A single-fragment archive is the record's value itself, not a copy.
func TestAssemblerSingleFragmentNoCopy(t *testing.T) {
	f := mkFrag(1, s1, 1, 1, "whole archive")
	ar, err := NewAssembler(Limits{}).add(f)
	if err != nil || &ar.Data[0] != &f.value[0] {
		t.Fatalf("%v: the archive is a copy", err)
	}
}

// Oldest is the first offset of the oldest partial snapshot of a partition; Drop forgets a
// partition's partial snapshots and leaves the others.
func TestAssemblerDropOldest(t *testing.T) {
	a := NewAssembler(Limits{})
	at := func(p int32, f frag) frag { f.partition = p; return f }
	for _, f := range []frag{
		at(0, mkFrag(10, s1, 1, 3, "a")), at(0, mkFrag(11, s2, 1, 2, "A")), at(0, mkFrag(12, s1, 2, 3, "b")),
		at(1, mkFrag(40, s1, 1, 2, "x")),
	} {
		if ar, err := a.add(f); ar != nil || err != nil {
			t.Fatal(ar, err)
		}
	}
	if off, ok := a.Oldest(0); !ok || off != 10 {
		t.Errorf("Oldest(0) = %d %v, want 10", off, ok)
	}
	if _, err := a.add(at(0, mkFrag(13, s1, 3, 3, "c"))); err != nil {
		t.Fatal(err)
	}
	if off, ok := a.Oldest(0); !ok || off != 11 {
		t.Errorf("Oldest(0) = %d %v after %s completed, want 11", off, ok, s1)
	}
	a.Drop(0)
	if off, ok := a.Oldest(0); ok {
		t.Errorf("Oldest(0) = %d after Drop(0)", off)
	}
	if off, ok := a.Oldest(1); !ok || off != 40 {
		t.Errorf("Oldest(1) = %d %v after Drop(0), want 40", off, ok)
	}
	if _, err := a.add(at(0, mkFrag(14, s2, 2, 2, "B"))); !errors.Is(err, ErrOrder) {
		t.Errorf("a dropped snapshot's next fragment: %v, want ErrOrder", err)
	}
	if errs := a.Expire(1, 40); len(errs) != 0 {
		t.Errorf("Expire(1, 40) dropped %v", errs)
	}
	errs := a.Expire(1, 41)
	if len(errs) != 1 || !errors.Is(errs[0], ErrAbandoned) || !slices.Equal(errs[0].Offsets, []int64{40}) || errs[0].Snapshot != testHost+"/"+s1 {
		t.Errorf("Expire(1, 41) = %v, want the partial snapshot at 40", errs)
	}
	if _, ok := a.Oldest(1); ok {
		t.Error("Oldest(1) still finds a partial snapshot after it expired")
	}
	a.Drop(1)
	if a.held != 0 || a.open != 0 || len(a.parts) != 0 {
		t.Errorf("after dropping everything: %d bytes, %d snapshots, %d partitions", a.held, a.open, len(a.parts))
	}
}

// FuzzAssemblerAdd feeds records decoded from the input: Add never panics, never holds more
// than its limits, returns archives with ascending offsets and errors naming the record.
func FuzzAssemblerAdd(f *testing.F) {
	f.Add([]byte{0, 0, 0x12, 30, 0, 0, 0x22, 30, 1, 1, 0x11, 5})
	f.Add([]byte{0, 1, 0x13, 50, 0, 2, 0x13, 50, 0, 1, 0x23, 50, 0, 2, 0x23, 50, 0, 1, 0x33, 50})
	f.Add([]byte{3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	snaps := []string{s1, s2, "1700000120", "bad"}
	const maxBytes, maxSnaps = 1000, 3
	f.Fuzz(func(t *testing.T, in []byte) {
		a := NewAssembler(Limits{Bytes: maxBytes, Snapshots: maxSnaps})
		next := map[int32]int64{}
		for ; len(in) >= 4; in = in[4:] {
			op, sel, frg, size := in[0], in[1], in[2], in[3]
			p := int32(op % 3)
			if op&0x80 != 0 {
				if sel&1 == 0 {
					a.Drop(p)
				} else {
					for _, e := range a.Expire(p, int64(size)) {
						if e.Partition != p || !ascending(e.Offsets) || e.Offsets[0] >= int64(size) {
							t.Fatalf("Expire(%d, %d): %v", p, size, e)
						}
					}
				}
				continue
			}
			off := next[p]
			next[p]++
			if op&0x40 != 0 {
				next[p] = max(0, off-int64(sel%4)) // a consumer reading again
			}
			rec := mkFrag(off, snaps[sel%4], int(frg>>4), int(frg&0xf), string(bytes.Repeat([]byte{sel}, int(size)*3)))
			rec.partition = p
			if sel&0x80 != 0 {
				rec.key = "other"
			}
			if op&0x20 != 0 {
				rec = rec.with(HeaderFormat, "", true)
			}
			ar, err := a.add(rec)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Partition != p || len(e.Offsets) == 0 || e.Offsets[len(e.Offsets)-1] != off || ar != nil {
					t.Fatalf("error %v (%+v) for partition %d offset %d", err, e, p, off)
				}
			}
			if ar != nil && (!ascending(ar.Offsets) || ar.Offsets[len(ar.Offsets)-1] != off || ar.Partition != p) {
				t.Fatalf("archive offsets %v, partition %d, for partition %d offset %d", ar.Offsets, ar.Partition, p, off)
			}
			var held int64
			open := 0
			for _, ps := range a.parts {
				for _, pa := range ps {
					held += int64(cap(pa.data))
					open++
				}
			}
			if held != a.held || open != a.open || held > maxBytes || open > maxSnaps {
				t.Fatalf("holds %d bytes (counted %d) of %d snapshots (counted %d); limits %d, %d", held, a.held, open, a.open, maxBytes, maxSnaps)
			}
		}
	})
}

func ascending(offsets []int64) bool {
	for i := 1; i < len(offsets); i++ {
		if offsets[i] <= offsets[i-1] {
			return false
		}
	}
	return len(offsets) > 0
}
