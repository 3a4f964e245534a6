package tier

import (
	"sync"
	"time"

	"github.com/statspipe/statspipe/internal/lograte"
)

// logLimit bounds the log lines of one ongoing fault: per kind, at most one per interval,
// carrying the number suppressed since the previous one.
type logLimit struct {
	every time.Duration
	mu    sync.Mutex
	kinds map[string]*lograte.Window
}

func newLogLimit(every time.Duration) *logLimit {
	return &logLimit{every: every, kinds: map[string]*lograte.Window{}}
}

// Do calls log (with the count suppressed before it) unless a line of kind was logged within
// the interval.
func (l *logLimit) Do(kind string, log func(suppressed int)) {
	l.mu.Lock()
	w := l.kinds[kind]
	if w == nil {
		w = &lograte.Window{}
		l.kinds[kind] = w
	}
	ok, n := w.Allow(time.Now(), l.every)
	l.mu.Unlock()
	if ok {
		log(n)
	}
}
