package ship

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/spool"
)

// Limits bound what an Assembler holds.
type Limits struct {
	Bytes     int64 // fragments of partial snapshots held, all partitions; default 1 GiB
	Snapshots int   // partial snapshots held, all partitions; default 1024
}

// Archive is a whole shipped snapshot: spool.Unpack reads Data.
type Archive struct {
	Host, Snapshot string // from statspipe-snapshot: the edge and the snapshot's directory name
	Data           []byte
	Partition      int32
	Offsets        []int64 // every fragment's record offset, ascending
}

// The reasons of an Error (errors.Is).
var (
	ErrMalformed = errors.New("not a statspipe snapshot fragment")
	ErrFormat    = errors.New("unknown statspipe-format")
	ErrOrder     = errors.New("fragment out of order")
	ErrLimit     = errors.New("assembler limit reached")
	ErrAbandoned = errors.New("partial snapshot expired")
)

// Error is a record the Assembler refuses. Offsets are the records to skip (quarantine): the
// refused record's and, when the error dropped a partial snapshot, those of its fragments
// held so far, ascending.
type Error struct {
	Partition int32
	Offsets   []int64
	Snapshot  string // "<host>/<snapshot>", or "" when the record does not say
	Err       error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("ship: partition %d offset %d", e.Partition, e.Offsets[len(e.Offsets)-1])
	if e.Snapshot != "" {
		s += ", snapshot " + e.Snapshot
	}
	s += ": " + e.Err.Error()
	if len(e.Offsets) > 1 {
		s += fmt.Sprintf(" (the partial snapshot is dropped: records at offsets %v)", e.Offsets)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// partial is a snapshot some of whose fragments arrived.
type partial struct {
	id      string // "<host>/<snapshot>"
	n, next int    // fragments in all, the one expected next
	data    []byte
	offsets []int64
}

// Assembler puts fragments back together into archives, per partition (fragments of one
// snapshot all come from one partition, in order). It holds no Kafka client and is not safe
// for concurrent use.
type Assembler struct {
	l     Limits
	held  int64 // capacity of every partial's data: the memory actually reserved
	open  int
	parts map[int32]map[string]*partial
}

// NewAssembler returns an Assembler bounded by l (zero fields take their defaults).
func NewAssembler(l Limits) *Assembler {
	if l.Bytes <= 0 {
		l.Bytes = 1 << 30
	}
	if l.Snapshots <= 0 {
		l.Snapshots = 1024
	}
	return &Assembler{l: l, parts: map[int32]map[string]*partial{}}
}

// fragment is what a record's headers say.
type fragment struct {
	id, host, snapshot string
	i, n               int
}

// Add takes the record at offset of partition. It returns the archive this record completes,
// nil and nil while its snapshot is incomplete, or an *Error. A repeated fragment 1 of a
// snapshot in progress (the edge shipping it again, or the consumer reading it again)
// restarts that snapshot. The archive of a single-fragment snapshot is value itself.
func (a *Assembler) Add(partition int32, offset int64, key []byte, headers []kgo.RecordHeader, value []byte) (*Archive, error) {
	f, err := parseHeaders(headers)
	fail := func(p *partial, err error) error {
		e := &Error{Partition: partition, Snapshot: f.id, Err: err}
		if p != nil {
			e.Offsets = append(e.Offsets, p.offsets...)
			a.forget(partition, p)
		}
		e.Offsets = append(e.Offsets, offset)
		return e
	}
	if err != nil {
		return nil, fail(nil, err)
	}
	if string(key) != f.host {
		return nil, fail(nil, fmt.Errorf("%w: record key %q is not the host of %s %q", ErrMalformed, key, HeaderSnapshot, f.id))
	}
	p := a.parts[partition][f.id]
	if f.i == 1 {
		if p != nil {
			a.forget(partition, p) // shipped or read again: start over
		}
		if f.n == 1 {
			return &Archive{Host: f.host, Snapshot: f.snapshot, Data: value, Partition: partition, Offsets: []int64{offset}}, nil
		}
		if a.open >= a.l.Snapshots {
			return nil, fail(nil, fmt.Errorf("%w: %d partial snapshots held already", ErrLimit, a.open))
		}
		// Reserve room for the whole archive if it fits, as the fragments but the last are
		// all as large as the first.
		want := min(int64(len(value))*int64(f.n), a.l.Bytes-a.held)
		if want < int64(len(value)) {
			return nil, fail(nil, fmt.Errorf("%w: %d bytes held already, %d more do not fit in %d", ErrLimit, a.held, len(value), a.l.Bytes))
		}
		p = &partial{id: f.id, n: f.n, next: 2, data: make([]byte, 0, want), offsets: []int64{offset}}
		p.data = append(p.data, value...)
		a.held += want
		a.open++
		if a.parts[partition] == nil {
			a.parts[partition] = map[string]*partial{}
		}
		a.parts[partition][f.id] = p
		return nil, nil
	}
	switch {
	case p == nil:
		return nil, fail(nil, fmt.Errorf("%w: fragment %d/%d without the fragments before it", ErrOrder, f.i, f.n))
	case f.n != p.n || f.i != p.next:
		return nil, fail(p, fmt.Errorf("%w: fragment %d/%d where %d/%d was expected", ErrOrder, f.i, f.n, p.next, p.n))
	case offset <= p.offsets[len(p.offsets)-1]:
		return nil, fail(p, fmt.Errorf("%w: offset not after the previous fragment's %d", ErrOrder, p.offsets[len(p.offsets)-1]))
	}
	if !a.grow(p, len(value)) {
		return nil, fail(p, fmt.Errorf("%w: %d bytes held already, %d more do not fit in %d", ErrLimit, a.held, len(value), a.l.Bytes))
	}
	p.data = append(p.data, value...)
	p.offsets = append(p.offsets, offset)
	p.next++
	if p.next <= p.n {
		return nil, nil
	}
	ar := &Archive{Host: f.host, Snapshot: f.snapshot, Data: p.data, Partition: partition, Offsets: p.offsets}
	a.forget(partition, p)
	return ar, nil
}

// grow makes room for n more bytes in p.data within the Bytes limit.
func (a *Assembler) grow(p *partial, n int) bool {
	need := int64(len(p.data)) + int64(n)
	have := int64(cap(p.data))
	if need <= have {
		return true
	}
	newCap := min(max(2*have, need), have+a.l.Bytes-a.held)
	if newCap < need {
		return false
	}
	data := make([]byte, len(p.data), newCap)
	copy(data, p.data)
	p.data = data
	a.held += newCap - have
	return true
}

func (a *Assembler) forget(partition int32, p *partial) {
	a.held -= int64(cap(p.data))
	a.open--
	delete(a.parts[partition], p.id)
	if len(a.parts[partition]) == 0 {
		delete(a.parts, partition)
	}
}

// Drop forgets the partial snapshots of partition (revoked from this consumer: whoever gets it
// reads them again from the committed offset).
func (a *Assembler) Drop(partition int32) {
	for _, p := range a.parts[partition] {
		a.forget(partition, p)
	}
}

// Expire drops the partial snapshots of partition whose first fragment is at an offset below
// before and returns an error for each, with the offsets to skip. A snapshot whose edge never
// finishes it (the edge gave the snapshot up, or is gone) would otherwise stay partial, hold
// the partition's commits back (Oldest) and count against the limits forever; the caller
// chooses how far behind (records, or time through the record timestamps) is abandoned.
func (a *Assembler) Expire(partition int32, before int64) []*Error {
	var errs []*Error
	for _, p := range a.parts[partition] {
		if p.offsets[0] < before {
			errs = append(errs, &Error{Partition: partition, Offsets: p.offsets, Snapshot: p.id,
				Err: fmt.Errorf("%w: fragments %d to %d of %d never came", ErrAbandoned, p.next, p.n, p.n)})
			a.forget(partition, p)
		}
	}
	slices.SortFunc(errs, func(x, y *Error) int { return cmp.Compare(x.Offsets[0], y.Offsets[0]) })
	return errs
}

// Oldest is the lowest offset of a fragment of a partial snapshot held for partition: the
// consumer must not commit it or anything after it, or a restart would lose that snapshot.
func (a *Assembler) Oldest(partition int32) (offset int64, ok bool) {
	for _, p := range a.parts[partition] {
		if !ok || p.offsets[0] < offset {
			offset, ok = p.offsets[0], true
		}
	}
	return offset, ok
}

// parseHeaders reads the framing headers; f.id is set as soon as statspipe-snapshot is.
func parseHeaders(headers []kgo.RecordHeader) (f fragment, err error) {
	var snapshot, frag, format *string
	for _, h := range headers {
		var dst **string
		switch h.Key {
		case HeaderSnapshot:
			dst = &snapshot
		case HeaderFragment:
			dst = &frag
		case HeaderFormat:
			dst = &format
		default:
			continue
		}
		if *dst != nil {
			return f, fmt.Errorf("%w: header %s twice", ErrMalformed, h.Key)
		}
		v := string(h.Value)
		*dst = &v
	}
	if snapshot != nil && len(*snapshot) <= 512 {
		f.id = *snapshot
	}
	switch {
	case format == nil:
		return f, fmt.Errorf("%w: no %s header", ErrMalformed, HeaderFormat)
	case *format != Format:
		return f, fmt.Errorf("%w %.20q, this program reads %s", ErrFormat, *format, Format)
	case snapshot == nil:
		return f, fmt.Errorf("%w: no %s header", ErrMalformed, HeaderSnapshot)
	case frag == nil:
		return f, fmt.Errorf("%w: no %s header", ErrMalformed, HeaderFragment)
	}
	host, dir, _ := strings.Cut(*snapshot, "/")
	if _, ok := spool.TimestampOf(dir); !ok || host == "" || len(host) > 255 || strings.ContainsAny(host, " \t\r\n") {
		return f, fmt.Errorf("%w: %s %.300q is not <host>/<epoch>", ErrMalformed, HeaderSnapshot, *snapshot)
	}
	is, ns, _ := strings.Cut(*frag, "/")
	i, iok := decimal(is)
	n, nok := decimal(ns)
	if !iok || !nok || i < 1 || i > n {
		return f, fmt.Errorf("%w: %s %.40q is not <i>/<n> with 1 ≤ i ≤ n", ErrMalformed, HeaderFragment, *frag)
	}
	f.host, f.snapshot, f.i, f.n = host, dir, i, n
	return f, nil
}

// decimal parses a plain decimal of at most 9 digits (no sign, no spaces).
func decimal(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
