package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/process"
)

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		s       process.Summary
		elapsed time.Duration
		want    string
	}{
		{process.Summary{Listed: 500, Delivered: 100, Lines: 450000}, 10 * time.Second, "100/500 snapshots, 45000 lines/s, ETA 40s"},
		{process.Summary{Listed: 10, Delivered: 7, Quarantined: 2, Failed: 1, Lines: 10}, time.Second, "10/10 snapshots (2 quarantined, 1 kept), 10 lines/s"},
		{process.Summary{Listed: 3}, time.Second, "0/3 snapshots, 0 lines/s"},
	} {
		if got := progressLine(c.s, c.elapsed); got != c.want {
			t.Errorf("progressLine(%+v, %v) = %q, want %q", c.s, c.elapsed, got, c.want)
		}
	}
}

// The progress goroutine writes lines and clears the last one when stopped.
func TestShowProgress(t *testing.T) {
	var b strings.Builder
	stop := showProgress(&lockedWriter{b: &b}, func() process.Summary { return process.Summary{Listed: 2, Delivered: 1} }, time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w(&b), "1/2 snapshots") {
		if time.Now().After(deadline) {
			t.Fatal("no progress line")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if out := w(&b); !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("the progress line was not cleared: %q", out)
	}
}

var progressMu sync.Mutex

type lockedWriter struct{ b *strings.Builder }

func (l *lockedWriter) Write(p []byte) (int, error) {
	progressMu.Lock()
	defer progressMu.Unlock()
	return l.b.Write(p)
}

func w(b *strings.Builder) string {
	progressMu.Lock()
	defer progressMu.Unlock()
	return b.String()
}
