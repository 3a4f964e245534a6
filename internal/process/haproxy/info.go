package haproxy

import (
	"bytes"
	"strconv"
)

// Daemon keys we keep from a `show info` reply: DaemonMetrics, then DaemonAvgMetrics, then
// Process_num. Every other key is ignored without allocating.
var daemonKeys = concat(concat(DaemonMetrics, DaemonAvgMetrics), []string{"Process_num"})

var (
	daemonKeyIndex = func() map[string]int {
		m := make(map[string]int, len(daemonKeys))
		for i, k := range daemonKeys {
			m[k] = i
		}
		return m
	}()
	keyProcessNum = daemonKeyIndex["Process_num"]
	keyIdlePct    = daemonKeyIndex["Idle_pct"]
)

// nDaemonKeys is len(daemonKeys): 37 sums, 2 means, Process_num (checked in init).
const nDaemonKeys = 40

func init() {
	if len(daemonKeys) != nDaemonKeys {
		panic("haproxy: nDaemonKeys does not match the daemon metric lists")
	}
}

// infoValues holds the daemon keys of one `show info` reply.
type infoValues struct {
	vals [nDaemonKeys]int64
	has  [nDaemonKeys]bool
	// numeric counts the `Key: <integer>` lines of any key: a reply without one is not a
	// `show info` reply (upstream: "failed to parse daemon statistics").
	numeric int
}

// parseInfo reads a `show info` reply the way haproxystats does: a line takes part only if it
// contains ": "; it is split at the first one and the value must be a decimal integer (Python
// int(): surrounding whitespace and a sign allowed). Keys keep their spaces. A key given twice
// keeps its last value.
func parseInfo(data []byte, iv *infoValues) {
	*iv = infoValues{}
	for len(data) > 0 {
		var line []byte
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl], data[nl+1:]
		} else {
			line, data = data, nil
		}
		sep := bytes.Index(line, []byte(": "))
		if sep < 0 {
			continue
		}
		v, ok := parseDecimal(line[sep+2:])
		if !ok {
			continue
		}
		iv.numeric++
		if k, found := daemonKeyIndex[string(line[:sep])]; found {
			iv.vals[k] = v
			iv.has[k] = true
		}
	}
}

// parseDecimal parses what Python's int() accepts from a str in base 10, except '_' digit
// separators: optional whitespace, an optional sign, ASCII digits, optional whitespace.
func parseDecimal(b []byte) (int64, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	switch b[0] {
	case '-':
		neg = true
		b = b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	if len(b) <= 18 {
		var n int64
		for _, c := range b {
			d := c - '0'
			if d > 9 {
				return 0, false
			}
			n = n*10 + int64(d)
		}
		if neg {
			n = -n
		}
		return n, true
	}
	for _, c := range b {
		if c-'0' > 9 {
			return 0, false
		}
	}
	// Long values: let strconv detect int64 overflow. Rare, so its allocation is fine.
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
