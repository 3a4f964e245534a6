package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/status"
)

// The status file records each delivered snapshot, and only those: a snapshot kept on disk
// (a dispatcher failed) or quarantined is no delivery.
func TestStatusFileRecordsDeliveries(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkSnapshot(t, src, "1700000010")
	failing := &fakeDispatcher{ackErr: errors.New("peer gone")}
	r := testRunner(t, src, 1, newFake(), failing)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(src, status.ProcessFile)
	st, err := status.ReadProcess(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Program != "stats-process" || st.LastDelivery != nil || st.Delivered != 0 {
		t.Fatalf("after a failed delivery: %+v", st)
	}

	mkSnapshot(t, src, "1700000020")
	f := newFake()
	f.unusable["1700000030"] = true
	mkSnapshot(t, src, "1700000030")
	r = testRunner(t, src, 2, f, &fakeDispatcher{})
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err = status.ReadProcess(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 2 || st.LastDelivery == nil || st.LastDelivery.Time.Before(st.Started) {
		t.Fatalf("after delivering 2 and quarantining 1: %+v %+v", st, st.LastDelivery)
	}
	if s := st.LastDelivery.Snapshot; s != "1700000010" && s != "1700000020" {
		t.Fatalf("last delivery %q", s)
	}
}

// Deliveries through Deliver and DeliverLines (the central tier: no spool) are recorded in the
// status file of StatusDir; a failed one is not.
func TestStatusFileRecordsDeliverCalls(t *testing.T) {
	src := t.TempDir()
	statusDir := t.TempDir()
	snap := mkSnapshot(t, src, "1700000010")
	d := &fakeDispatcher{}
	r, err := New(Options{SrcDir: filepath.Join(src, "unused"), StatusDir: statusDir, Workers: 1,
		NewFormat: func() Format { return newFake() }, Dispatchers: []dispatch.Dispatcher{d}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	deliver := func(call func(done func(error))) error {
		ch := make(chan error, 1)
		call(func(err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no outcome within 10 s")
			return nil
		}
	}
	read := func() *status.Process {
		st, err := status.ReadProcess(filepath.Join(statusDir, status.ProcessFile))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := read(); st.Delivered != 0 || st.LastDelivery != nil {
		t.Fatalf("at start: %+v", st)
	}
	if err := deliver(func(done func(error)) { r.Deliver(context.Background(), snap, 1700000010, nil, done) }); err != nil {
		t.Fatal(err)
	}
	if st := read(); st.Delivered != 1 || st.LastDelivery == nil || st.LastDelivery.Snapshot != "1700000010" {
		t.Fatalf("after Deliver: %+v %+v", st, st.LastDelivery)
	}
	d.mu.Lock()
	d.ackErr = errors.New("peer gone")
	d.mu.Unlock()
	lines := func() []*metric.Batch {
		return []*metric.Batch{{Timestamp: 1700000020, Data: []byte("a 1 1700000020\n"), Lines: 1, Last: true}}
	}
	if err := deliver(func(done func(error)) {
		r.DeliverLines(context.Background(), "cluster/1700000020", 1700000020, lines(), done)
	}); err == nil {
		t.Fatal("a failed delivery reported nil")
	}
	if st := read(); st.Delivered != 1 {
		t.Fatalf("a failed delivery was recorded: %+v", st)
	}
	d.mu.Lock()
	d.ackErr = nil
	d.mu.Unlock()
	if err := deliver(func(done func(error)) {
		r.DeliverLines(context.Background(), "cluster/1700000020", 1700000020, lines(), done)
	}); err != nil {
		t.Fatal(err)
	}
	if st := read(); st.Delivered != 2 || st.LastDelivery.Snapshot != "cluster/1700000020" {
		t.Fatalf("after DeliverLines: %+v %+v", st, st.LastDelivery)
	}
	if _, err := os.Stat(filepath.Join(src, "unused", status.ProcessFile)); err == nil {
		t.Error("a status file in SrcDir although StatusDir is set")
	}
}
