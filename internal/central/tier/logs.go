package tier

import (
	"context"
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

// Retry bounds the pause before a failed delivery is tried again: Min, doubling up to Max
// (defaults 1 s and 30 s).
type Retry struct{ Min, Max time.Duration }

func (r Retry) orDefaults() Retry {
	if r.Min <= 0 {
		r.Min = time.Second
	}
	if r.Max < r.Min {
		r.Max = max(30*time.Second, r.Min)
	}
	return r
}

// after calls again(the next pause) after wait, unless ctx ends first.
func (r Retry) after(ctx context.Context, wait time.Duration, again func(next time.Duration)) {
	t := time.AfterFunc(wait, func() { again(min(2*wait, r.Max)) })
	context.AfterFunc(ctx, func() { t.Stop() })
}
