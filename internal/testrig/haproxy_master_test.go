package testrig

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// A held request keeps the old worker after a reload; released, the old worker leaves.
func TestHAProxyMasterReloadKeepsOldWorker(t *testing.T) {
	h := StartHAProxyMaster(t)
	first := h.CurrentPid(t)
	h.SendTraffic(t, 5)
	release := h.HoldConnection(t)
	second := h.Reload(t)
	if second == first {
		t.Fatalf("reload kept worker %d", first)
	}
	if old := h.OldPids(t); len(old) != 1 || old[0] != first {
		t.Fatalf("old workers %v, want [%d]:\n%s", old, first, h.Command(t, "show proc"))
	}
	for _, w := range h.Workers(t) {
		if w.Old && w.Reloads != 1 {
			t.Errorf("old worker %+v: reloads %d, want 1", w, w.Reloads)
		}
	}
	// the old worker still answers through the master, with its own counters
	stat := h.Command(t, "@!"+strconv.Itoa(first)+" show stat")
	if !strings.Contains(stat, "\nbe_app,BACKEND,") {
		t.Fatalf("old worker's show stat: %.300q", stat)
	}
	release()
	h.WaitOldWorkers(t, 0, 10*time.Second)
	if got := h.CurrentPid(t); got != second {
		t.Fatalf("current worker %d, want %d", got, second)
	}
}
