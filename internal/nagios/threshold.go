package nagios

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Range is a threshold in the monitoring-plugins' range syntax
// (https://www.monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT): the check alerts
// when the value is outside start:end, or inside it with a leading '@'.
//
//	10      alert if < 0 or > 10
//	10:     alert if < 10
//	~:10    alert if > 10
//	10:20   alert if < 10 or > 20
//	@10:20  alert if ≥ 10 and ≤ 20
type Range struct {
	Text   string // as given, for perfdata
	start  float64
	end    float64
	inside bool
}

// ParseRange reads a threshold.
func ParseRange(s string) (Range, error) {
	r := Range{Text: s, start: 0, end: math.Inf(1)}
	body := strings.TrimSpace(s)
	if strings.HasPrefix(body, "@") {
		r.inside, body = true, body[1:]
	}
	bad := fmt.Errorf("threshold %q is not a range (N, N:, ~:N, N:M or @N:M)", s)
	if body == "" {
		return Range{}, bad
	}
	lo, hi, hasColon := strings.Cut(body, ":")
	if !hasColon {
		lo, hi = "0", body
	}
	switch lo {
	case "~":
		r.start = math.Inf(-1)
	case "":
		return Range{}, bad
	default:
		v, err := strconv.ParseFloat(lo, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Range{}, bad
		}
		r.start = v
	}
	if hi != "" {
		v, err := strconv.ParseFloat(hi, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Range{}, bad
		}
		r.end = v
	}
	if r.start > r.end {
		return Range{}, fmt.Errorf("threshold %q: the start of the range is above its end", s)
	}
	return r, nil
}

// Alert reports whether v is outside the range (inside, for an '@' range).
func (r Range) Alert(v float64) bool {
	in := v >= r.start && v <= r.end
	return in == r.inside
}

// Evaluate is the state of v against the warning and critical ranges.
func Evaluate(v float64, warn, crit Range) State {
	switch {
	case crit.Alert(v):
		return Critical
	case warn.Alert(v):
		return Warning
	}
	return OK
}

// Worse is the more severe of two states: CRITICAL > WARNING > UNKNOWN > OK, as Nagios ranks
// a host's services.
func Worse(a, b State) State {
	rank := func(s State) int {
		switch s {
		case Critical:
			return 3
		case Warning:
			return 2
		case Unknown:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}
