package haproxy

import "slices"

// table interns the entities of one kind (frontends, backends, servers in backends, servers
// across backends) and holds their accumulators. Entries outlive a snapshot: names repeat from
// one snapshot to the next, so after the first one a lookup allocates nothing. gen tells which
// entries belong to the current snapshot (pass); live lists them.
//
// Accumulators live in fixed-size slabs rather than one growing slice: a growing slice of a
// few MB is copied at every growth step (by 1.25× at that size), which for a one-shot run
// costs more in allocation and page faults than the aggregation itself.
type table struct {
	width int // accumulators per entity

	index  map[string]int32
	keys   []string
	names  []string // sanitised display name, bounded (metric.Names)
	short  []bool   // the name was shortened
	parent []int32  // servers in backends: the backend entity
	gen    []uint32
	group  []int32 // cached group index: groupUnknown, groupNone or an index
	excl   []bool  // excluded in the current snapshot
	rows   []int32 // rows aggregated in the current pass
	trows  []int32 // of which with lbtot > 0
	slabs  [][]float64
	live   []int32
	// anyShort is set once some entity has a shortened name (so that counting them costs
	// nothing in the common case)
	anyShort bool
	// epoch changes when the table is emptied, which invalidates entity indices kept
	// elsewhere (the row caches)
	epoch uint32
}

const (
	groupUnknown = -2
	groupNone    = -1

	slabShift = 8
	slabSize  = 1 << slabShift // entities per accumulator slab
)

func newTable(width int) *table {
	return &table{width: width, index: make(map[string]int32)}
}

// intern returns the entity for key, creating it if needed. The map lookup with string(key)
// does not allocate; only a new name does.
func (t *table) intern(key []byte) int32 {
	idx, ok := t.index[string(key)]
	if !ok {
		idx = t.add(string(key))
	}
	return idx
}

// activate makes entity idx part of pass gen, zeroing its accumulators on its first use in the
// pass, which it reports.
func (t *table) activate(idx int32, gen uint32) bool {
	if t.gen[idx] == gen {
		return false
	}
	t.gen[idx] = gen
	t.rows[idx] = 0
	t.trows[idx] = 0
	clear(t.accOf(idx))
	t.live = append(t.live, idx)
	return true
}

func (t *table) add(k string) int32 {
	idx := int32(len(t.keys))
	if len(t.keys) == cap(t.keys) {
		t.grow(max(64, 2*cap(t.keys)) - len(t.keys)) // doubling
	}
	t.index[k] = idx
	t.keys = append(t.keys, k)
	t.names = append(t.names, k)
	t.short = append(t.short, false)
	t.parent = append(t.parent, -1)
	t.gen = append(t.gen, 0)
	t.group = append(t.group, groupUnknown)
	t.excl = append(t.excl, false)
	t.rows = append(t.rows, 0)
	t.trows = append(t.trows, 0)
	if int(idx>>slabShift) == len(t.slabs) {
		t.slabs = append(t.slabs, make([]float64, slabSize*t.width))
	}
	return idx
}

// grow makes room for n more entities in every per-entity slice.
func (t *table) grow(n int) {
	t.keys = slices.Grow(t.keys, n)
	t.names = slices.Grow(t.names, n)
	t.short = slices.Grow(t.short, n)
	t.parent = slices.Grow(t.parent, n)
	t.gen = slices.Grow(t.gen, n)
	t.group = slices.Grow(t.group, n)
	t.excl = slices.Grow(t.excl, n)
	t.rows = slices.Grow(t.rows, n)
	t.trows = slices.Grow(t.trows, n)
}

// reserve makes room for n entities in all, and sizes an empty index for them (a map grown
// entry by entry rehashes every entry several times).
func (t *table) reserve(n int) {
	if n <= cap(t.keys) {
		return
	}
	if len(t.index) == 0 {
		t.index = make(map[string]int32, n)
	}
	t.grow(n - len(t.keys))
}

// startPass forgets which entities were seen. When the table holds many more names than were
// live in the last pass (names churn), it is emptied so that it cannot grow without bound; it
// reports whether it did, since keys of a child table refer to entity indices.
func (t *table) startPass() bool {
	emptied := false
	if len(t.keys) > 4*len(t.live)+4096 {
		t.reset()
		emptied = true
	}
	t.live = t.live[:0]
	return emptied
}

// reset empties the table (the slabs are kept for reuse).
func (t *table) reset() {
	t.epoch++
	clear(t.index)
	t.keys = t.keys[:0]
	t.names = t.names[:0]
	t.short = t.short[:0]
	t.anyShort = false
	t.parent = t.parent[:0]
	t.gen = t.gen[:0]
	t.group = t.group[:0]
	t.excl = t.excl[:0]
	t.rows = t.rows[:0]
	t.trows = t.trows[:0]
	t.live = t.live[:0]
}

func (t *table) accOf(idx int32) []float64 {
	s := t.slabs[idx>>slabShift]
	o := int(idx&(slabSize-1)) * t.width
	return s[o : o+t.width : o+t.width]
}

// markShort records that entity idx has a shortened name.
func (t *table) markShort(idx int32) {
	t.short[idx] = true
	t.anyShort = true
}

// liveShort counts the entities of the current pass whose name was shortened.
func (t *table) liveShort() int {
	if !t.anyShort {
		return 0
	}
	n := 0
	for _, e := range t.live {
		if t.short[e] {
			n++
		}
	}
	return n
}
