package spool

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// withSyncFS replaces syncfs for one test.
func withSyncFS(t *testing.T, f func(*os.File) error) {
	t.Helper()
	old := syncFS
	syncFS = f
	t.Cleanup(func() { syncFS = old })
}

// The one sync of a snapshot (batchSync) happens after every file is complete and closed and
// before the rename: at the moment of the sync the snapshot is whole in tmp-dst-dir and absent
// from dst-dir. Its files, the partial record and a part directory are all there, so the one
// syncfs covers them.
func TestBatchSyncBeforeRenameCoversEveryFile(t *testing.T) {
	w, dst, tmp := newWriter(t)
	if !w.batchSync {
		t.Skipf("no batch sync on this system (%s): files are fsynced one by one", runtime.GOOS)
	}
	want := map[string]string{
		"admin1.sock_info": "Name: HAProxy\n",
		"admin1.sock_stat": "# pxname,svname,\n\n",
		"apps/a.body":      "up 1\n",
	}
	calls := 0
	withSyncFS(t, func(d *os.File) error {
		calls++
		snap := filepath.Join(tmp, "1795312744")
		if d.Name() != snap {
			t.Errorf("synced through %s, want the snapshot directory %s", d.Name(), snap)
		}
		if _, err := os.Lstat(filepath.Join(dst, "1795312744")); !os.IsNotExist(err) {
			t.Errorf("snapshot visible in dst-dir before its sync: %v", err)
		}
		for name, content := range want {
			if got, err := os.ReadFile(filepath.Join(snap, name)); err != nil || string(got) != content {
				t.Errorf("%s at the sync: %q %v, want %q", name, got, err, content)
			}
		}
		if _, err := os.Stat(filepath.Join(snap, PartialFile)); err != nil {
			t.Errorf("partial record not written before the sync: %v", err)
		}
		return syncFSDefault(d)
	})
	b, err := w.Begin(1795312744)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	for name, content := range want {
		writeFile(t, b, name, content)
	}
	if calls != 0 {
		t.Fatalf("synced %d times before Publish", calls)
	}
	final, err := b.Publish([]FailedSource{{Name: "admin2.sock", Err: "refused"}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Publish synced %d times, want once", calls)
	}
	if got := names(t, final); !reflect.DeepEqual(got, []string{"admin1.sock_info", "admin1.sock_stat", "apps", PartialFile}) {
		t.Fatalf("published %v", got)
	}
}

// A failed sync (a page of the snapshot that did not reach the disk, reported by syncfs)
// fails the Publish: nothing appears in dst-dir, and Abort removes the snapshot.
func TestFailedBatchSyncPublishesNothing(t *testing.T) {
	w, dst, tmp := newWriter(t)
	if !w.batchSync {
		t.Skipf("no batch sync on this system (%s)", runtime.GOOS)
	}
	eio := errors.New("input/output error")
	withSyncFS(t, func(*os.File) error { return eio })
	b, err := w.Begin(1795312744)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, "admin1.sock_stat", "# pxname,svname,\n\n")
	if _, err := b.Publish(nil); !errors.Is(err, eio) {
		t.Fatalf("Publish after a failed sync: %v", err)
	}
	if got := names(t, dst); len(got) != 0 {
		t.Fatalf("dst-dir after a failed sync: %v", got)
	}
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, tmp); !reflect.DeepEqual(got, []string{lockFileName}) {
		t.Fatalf("tmp-dst-dir after Abort: %v", got)
	}
}

// Without batch sync (kernels before 5.8, other systems) each file is fsynced at Commit and
// syncfs is never called; the snapshot is published the same way.
func TestPerFileSyncWithoutBatchSync(t *testing.T) {
	w, dst, _ := newWriter(t)
	w.batchSync = false
	withSyncFS(t, func(*os.File) error {
		t.Error("syncfs called without batch sync")
		return nil
	})
	b, err := w.Begin(1795312744)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	writeFile(t, b, "admin1.sock_stat", "x\n\n")
	if _, err := b.Publish([]FailedSource{{Name: "admin2.sock", Err: "refused"}}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(dst, "1795312744")); !reflect.DeepEqual(got, []string{"admin1.sock_stat", PartialFile}) {
		t.Fatalf("published %v", got)
	}
}
