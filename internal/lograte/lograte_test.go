package lograte

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	var w Window
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},                   // the first line goes through
		{time.Second, false, 0},        // within the interval: held back
		{9 * time.Second, false, 0},    // still within
		{10 * time.Second, true, 2},    // the next one says how many were held back
		{10*time.Second + 1, false, 0}, // a new interval starts
		{25 * time.Second, true, 1},
		{60 * time.Second, true, 0}, // nothing held back since
	}
	for i, s := range steps {
		ok, n := w.Allow(t0.Add(s.at), 10*time.Second)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d (+%v): Allow = %v, %d; want %v, %d", i, s.at, ok, n, s.ok, s.suppressed)
		}
	}
	w.Allow(t0.Add(61*time.Second), 10*time.Second)
	w.Allow(t0.Add(62*time.Second), 10*time.Second)
	if n := w.TakePending(); n != 2 {
		t.Errorf("TakePending = %d, want 2", n)
	}
	if n := w.TakePending(); n != 0 {
		t.Errorf("TakePending again = %d, want 0", n)
	}
}
