// Package lograte keeps log lines about one ongoing fault from flooding the log: the first
// line goes through, then at most one per interval, and the ones held back are counted so that
// the next line can say how many there were.
package lograte

import "time"

// Window is the state of one kind of line. Its zero value lets the next line through. It is
// not safe for concurrent use: callers hold their own lock.
type Window struct {
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged at now, given at most one per every. When it may,
// suppressed is the number of lines held back since the last one logged, and the count restarts.
func (w *Window) Allow(now time.Time, every time.Duration) (ok bool, suppressed int) {
	if !w.last.IsZero() && now.Sub(w.last) < every {
		w.suppressed++
		return false, 0
	}
	n := w.suppressed
	w.last, w.suppressed = now, 0
	return true, n
}

// TakePending returns the number of lines held back since the last one logged, and forgets
// them (for a final summary line).
func (w *Window) TakePending() int {
	n := w.suppressed
	w.suppressed = 0
	return n
}
