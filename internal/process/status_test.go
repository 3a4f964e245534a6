package process

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

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
