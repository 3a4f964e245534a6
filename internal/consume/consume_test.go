package consume

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/testrig"
)

func TestNewChecksOptions(t *testing.T) {
	h := newRecorder(t, false)
	for _, o := range []Options{{Group: "g"}, {Topic: "t"}, {Topic: "t", Group: "g", CommitInterval: -1}} {
		if _, err := New(o, h); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
	if _, err := New(Options{Topic: "t", Group: "g"}, nil); err == nil {
		t.Error("New without a handler = nil error")
	}
}

// Lines produced equal records consumed: every record is handled once and the commits reach
// the end offsets.
func TestEveryRecordConsumed(t *testing.T) {
	const parts, per = 4, 2500
	c := testrig.StartKafka(t, parts, testTopic)
	cl := newClient(t, c)
	produce(t, cl, parts, per, 100)
	end := endOffsets(t, cl, parts)

	h := newRecorder(t, false)
	h.checkRecords = true
	co := start(t, c, "all", h)
	committedEqual(t, cl, "all", end, co.Consumer)
	co.stop(t)

	seen := h.seenCopy()
	for p := range int32(parts) {
		if len(seen[p]) != per {
			t.Errorf("partition %d: %d records handled, want %d", p, len(seen[p]), per)
		}
		for i, off := range seen[p] {
			if off != int64(i) {
				t.Fatalf("partition %d: record %d handled has offset %d (out of order, a gap or a duplicate)", p, i, off)
			}
		}
	}
	if n := h.mismatches.Load(); n > 0 {
		t.Errorf("%d records handled do not hold what was produced at their partition and offset", n)
	}
	if got := h.revokedCount(); got != parts {
		t.Errorf("%d partitions revoked at stop, want %d", got, parts)
	}
	if ps := h.owned(); len(ps) != 0 {
		t.Errorf("partitions %v still owned after Run returned", ps)
	}
}

// A restarted consumer resumes exactly at the committed offsets: nothing done is read again,
// nothing is skipped.
func TestRestartResumesAtCommitted(t *testing.T) {
	const parts, per, half = 4, 1000, 500
	c := testrig.StartKafka(t, parts, testTopic)
	cl := newClient(t, c)
	produce(t, cl, parts, per, 100)
	end := endOffsets(t, cl, parts)

	first := newRecorder(t, false)
	first.doneBelow = half
	co1 := start(t, c, "restart", first)
	testrig.WaitFor(t, waitLimit, "the first consumer to handle every record", func() bool { return first.handledCount() == parts*per })
	halfway := map[int32]int64{0: half, 1: half, 2: half, 3: half}
	committedEqual(t, cl, "restart", halfway, co1.Consumer)
	co1.stop(t)
	// Stopping committed nothing beyond what was done.
	if got := groupCommitted(t, cl, "restart"); !maps.Equal(got, halfway) {
		t.Fatalf("after stop the group committed %v, want %v", got, halfway)
	}

	second := newRecorder(t, false)
	co2 := start(t, c, "restart", second)
	committedEqual(t, cl, "restart", end, co2.Consumer)
	co2.stop(t)
	for p := range int32(parts) {
		if f := second.firsts[p]; len(f) != 1 || f[0] != half {
			t.Errorf("partition %d: the restarted consumer's first offsets per assignment %v, want [%d]", p, f, half)
		}
	}
	checkCovered(t, end, first, second)
}

// Two consumers, one joining midway and the first leaving later, while records are produced
// and done asynchronously: every record is done by a consumer that owned it, records revoked
// before they were done are consumed again by the new owner, and the commits reach the end.
func TestRebalanceLosesNothing(t *testing.T) {
	const parts = 6
	c := testrig.StartKafka(t, parts, testTopic)
	cl := newClient(t, c)
	produce(t, cl, parts, 200, 100)

	a, b := newRecorder(t, true), newRecorder(t, true)
	// The producer writes batches until told to stop (at most maxBatches), keeping at most
	// maxAhead records ahead of what the consumers handled, so that they keep up.
	const maxBatches, maxAhead = 20000, 3000
	stopProducing := make(chan struct{})
	var produced sync.WaitGroup
	var batches atomic.Int64
	produced.Go(func() {
		deadline := time.Now().Add(waitLimit)
		for n := 0; batches.Load() < maxBatches; {
			select {
			case <-stopProducing:
				return
			default:
			}
			if n-a.handledCount()-b.handledCount() > maxAhead {
				if time.Now().After(deadline) {
					t.Error("the consumers stopped handling records")
					return
				}
				time.Sleep(time.Millisecond)
				continue
			}
			if err := produceErr(cl, parts, 10, 100); err != nil {
				t.Error(err)
				return
			}
			n += parts * 10
			batches.Add(1)
		}
	})
	stop := sync.OnceFunc(func() { close(stopProducing); produced.Wait() })
	defer stop()

	ca := start(t, c, "rebalance", a)
	testrig.WaitFor(t, waitLimit, "the first consumer to own every partition and mark 1000 records done", func() bool {
		return len(a.owned()) == parts && a.effectiveCount() >= 1000
	})

	cb := start(t, c, "rebalance", b)
	testrig.WaitFor(t, waitLimit, "the partitions to be shared and the second consumer to mark 500 records done", func() bool {
		return a.revokedCount() > 0 && len(b.owned()) > 0 && len(a.owned()) > 0 && b.effectiveCount() >= 500
	})

	// The first consumer stops marking done, so that records it handled are not done, then
	// leaves: they must reach the second one.
	a.hold()
	testrig.WaitFor(t, waitLimit, "the first consumer to hold records handled but not done", func() bool {
		return a.handledCount() > a.effectiveCount()
	})
	ca.stop(t)
	a.release() // its late done calls must change nothing
	stop()
	if batches.Load() == maxBatches {
		t.Fatal("the producer ran out of batches before the test was through")
	}
	end := endOffsets(t, cl, parts)
	committedEqual(t, cl, "rebalance", end, nil)
	cb.stop(t)

	checkCovered(t, end, a, b)
	pending := 0
	for p, offs := range a.seenCopy() {
		for _, off := range offs {
			if !a.covers(p, off) {
				pending++
				if !b.saw(p, off) {
					t.Errorf("partition %d offset %d was revoked from the first consumer before done, and never reached the second", p, off)
				}
			}
		}
	}
	if pending == 0 {
		t.Error("the first consumer had no record pending at its stop; the test proved nothing about redelivery")
	}
	t.Logf("%d records produced; %d pending at the first consumer's stop, consumed again by the second", testrig.SumOffsets(end), pending)
}

// Broker outages (commits refused, then fetches and commits on dropped connections): the
// consumer goes on afterwards, nothing is lost and the commits land.
func TestBrokerOutage(t *testing.T) {
	const parts, per = 4, 250
	c := testrig.StartKafka(t, parts, testTopic)
	cl := newClient(t, c)
	h := newRecorder(t, false)
	co := start(t, c, "outage", h)
	produce(t, cl, parts, per, 100)
	end := endOffsets(t, cl, parts)
	committedEqual(t, cl, "outage", end, co.Consumer)

	commits := testrig.KafkaRefuse(t, c, kmsg.OffsetCommit, kerr.CoordinatorLoadInProgress)
	produce(t, cl, parts, per, 100)
	testrig.WaitFor(t, waitLimit, "the records produced during the commit outage to be handled, and 3 commits refused", func() bool {
		return h.handledCount() == 2*parts*per && commits.Refused() >= 3
	})
	if got := groupCommitted(t, cl, "outage"); !maps.Equal(got, end) {
		t.Fatalf("a commit landed during the outage: %v, want %v", got, end)
	}
	commits.End()
	end = endOffsets(t, cl, parts)
	committedEqual(t, cl, "outage", end, co.Consumer)

	fetches := testrig.KafkaDrop(c, kmsg.Fetch)
	commits = testrig.KafkaDrop(c, kmsg.OffsetCommit)
	// A fetch long-polling since before the outage would still return new records.
	testrig.WaitFor(t, waitLimit, "3 fetches refused", func() bool { return fetches.Refused() >= 3 })
	produce(t, cl, parts, per, 100)
	testrig.WaitFor(t, waitLimit, "3 more fetches refused", func() bool { return fetches.Refused() >= 6 })
	if n := h.handledCount(); n != 2*parts*per {
		t.Fatalf("%d records handled during the fetch outage, want %d", n, 2*parts*per)
	}
	fetches.End()
	testrig.WaitFor(t, waitLimit, "the records produced during the fetch outage to be handled, and 3 commits refused", func() bool {
		return h.handledCount() >= 3*parts*per && commits.Refused() >= 3
	})
	commits.End()
	end = endOffsets(t, cl, parts)
	committedEqual(t, cl, "outage", end, co.Consumer)
	co.stop(t)
	checkCovered(t, end, h)
}

// done calls after a partition is revoked, or for an older assignment of a partition that came
// back, commit nothing.
func TestDoneAfterRevokeIgnored(t *testing.T) {
	const parts, per = 4, 100
	const bogus = int64(1) << 40
	c := testrig.StartKafka(t, parts, testTopic)
	cl := newClient(t, c)
	produce(t, cl, parts, per, 100)
	end := endOffsets(t, cl, parts)

	// Every offset any commit request carries.
	var mu sync.Mutex
	var offered []int64
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.(*kmsg.OffsetCommitRequest).Topics {
			for _, rp := range rt.Partitions {
				offered = append(offered, rp.Offset)
			}
		}
		return nil, nil, false
	})
	noBogus := func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if slices.Contains(offered, bogus) {
			t.Fatalf("a commit request carried offset %d, given to done after revoke", bogus)
		}
	}

	a := newRecorder(t, false)
	a.manual = true
	ca := start(t, c, "late", a)
	testrig.WaitFor(t, waitLimit, "the first consumer to handle every record", func() bool { return a.handledCount() == parts*per })

	b := newRecorder(t, false)
	cb := start(t, c, "late", b)
	testrig.WaitFor(t, waitLimit, "the second consumer to take partitions and commit them to the end", func() bool {
		ps := b.owned()
		if len(ps) == 0 || len(a.owned()) == 0 {
			return false
		}
		got := groupCommitted(t, cl, "late")
		for _, p := range ps {
			if got[p] != end[p] {
				return false
			}
		}
		return true
	})
	moved, kept := b.owned(), a.owned()
	a.mu.Lock()
	oldDone := map[int32]func(int64){}
	for _, p := range moved {
		oldDone[p] = a.doneFuncs[p][0]
	}
	keptDone := a.doneFuncs[kept[0]][0]
	a.mu.Unlock()
	for _, p := range moved {
		oldDone[p](bogus)
	}
	// A commit of a partition still owned proves a commit round ran after the late calls.
	keptDone(end[kept[0]])
	testrig.WaitFor(t, waitLimit, "the first consumer to commit its kept partition", func() bool {
		return ca.Committed()[kept[0]] == end[kept[0]]
	})
	for _, p := range moved {
		if off, ok := ca.Committed()[p]; ok {
			t.Errorf("partition %d moved away, but the first consumer committed it (offset %d)", p, off)
		}
	}
	noBogus()

	// The moved partitions come back: the done funcs of their first assignment stay dead.
	cb.stop(t)
	testrig.WaitFor(t, waitLimit, "the moved partitions to come back", func() bool { return len(a.owned()) == parts })
	for _, p := range moved {
		oldDone[p](bogus)
	}
	a.mu.Lock()
	for _, p := range moved {
		a.doneFuncs[p][len(a.doneFuncs[p])-1](end[p])
	}
	for _, p := range kept[1:] {
		a.doneFuncs[p][0](end[p])
	}
	a.mu.Unlock()
	committedEqual(t, cl, "late", end, nil)
	testrig.WaitFor(t, waitLimit, "the first consumer to commit the partitions that came back", func() bool {
		got := ca.Committed()
		for _, p := range moved {
			if got[p] != end[p] {
				return false
			}
		}
		return true
	})
	ca.stop(t)
	noBogus()
	for p, off := range groupCommitted(t, cl, "late") {
		if off != end[p] {
			t.Errorf("partition %d committed at %d, want %d", p, off, end[p])
		}
	}
}
