package haproxy

import "bytes"

// Server states as numbers (Options.ServerStates, a statspipe extension; README "Server states
// as numbers"). A server row's `status`, `check_status` and `agent_status` text becomes a code
// per server, and every backend gets the count of its servers in each state beside
// TotalServers. The codes are fixed here, not HAProxy's internal enums, which differ across
// versions.
//
// `status` (the forms of HAProxy's stats code, 1.6 to 3.x):
//
//	0 DOWN, DOWN (agent)          5 no check
//	1 UP                          6 UP n/m     (up, going down)
//	2 NOLB                        7 DOWN n/m   (down, going up)
//	3 MAINT, MAINT (via …),       8 NOLB n/m   (nolb, going down)
//	  MAINT (resolution)          9 DRAIN n/m  (drain, going down)
//	4 DRAIN, DRAIN (agent)       -1 any other text
//
// Across the *_stat files of a snapshot (processes, sockets) a server takes its worst state,
// in this order from best to worst: other text, UP, no check, UP n/m, NOLB, NOLB n/m, DRAIN,
// DRAIN n/m, MAINT, DOWN n/m, DOWN. A server is then counted by its current state, so "UP 1/3"
// is up and "DOWN 1/2" is down.
//
// `check_status` and `agent_status` (a leading "* ", a check in progress, is ignored): the
// code groups the result, passed < neutral < failed, so that across files the highest code,
// the worst result, wins.
//
//	passed   1 L4OK   2 L6OK   3 L7OK   4 L7OKC   5 PROCOK
//	neutral 10 INI   11 UNK   12 CHECKED   19 any other text
//	failed  20 HANA  21 SOCKERR  22 L4TOUT  23 L4CON  24 L6TOUT  25 L6RSP  26 L7TOUT
//	        27 L7RSP 28 L7STS    29 PROCERR 30 PROCTOUT
//
// An empty cell (no check or agent configured, a disabled server) gives no line.

// Status codes (the values emitted as status_code).
const (
	statusOther     = -1
	statusDown      = 0
	statusUp        = 1
	statusNolb      = 2
	statusMaint     = 3
	statusDrain     = 4
	statusNoCheck   = 5
	statusUpGoing   = 6 // UP n/m: going down
	statusDownGoing = 7 // DOWN n/m: going up
	statusNolbGoing = 8
	statusDrainGo   = 9
)

// statusRank orders the status codes from best (1) to worst for the cross-file maximum; 0 is
// kept for "no status seen". Indexed by code+1.
var statusRank = [...]float64{
	statusOther + 1:     1,
	statusUp + 1:        2,
	statusNoCheck + 1:   3,
	statusUpGoing + 1:   4,
	statusNolb + 1:      5,
	statusNolbGoing + 1: 6,
	statusDrain + 1:     7,
	statusDrainGo + 1:   8,
	statusMaint + 1:     9,
	statusDownGoing + 1: 10,
	statusDown + 1:      11,
}

// statusOfRank inverts statusRank.
var statusOfRank = func() [len(statusRank) + 1]int {
	var out [len(statusRank) + 1]int
	for i, r := range statusRank {
		out[int(r)] = i - 1
	}
	return out
}()

// The per-backend counts, in emission order, and the state each status code counts as.
const (
	countUp = iota
	countDown
	countMaint
	countDrain
	countNolb
	countNoCheck
	nCounts
)

var countNames = [nCounts]string{"ServersUp", "ServersDown", "ServersMaint", "ServersDrain", "ServersNolb", "ServersNoCheck"}

// countOfStatus is indexed by status code+1; -1 counts nowhere (other text).
var countOfStatus = [...]int{
	statusOther + 1:     -1,
	statusDown + 1:      countDown,
	statusUp + 1:        countUp,
	statusNolb + 1:      countNolb,
	statusMaint + 1:     countMaint,
	statusDrain + 1:     countDrain,
	statusNoCheck + 1:   countNoCheck,
	statusUpGoing + 1:   countUp,
	statusDownGoing + 1: countDown,
	statusNolbGoing + 1: countNolb,
	statusDrainGo + 1:   countDrain,
}

// The state accumulators at the end of a server's accumulators (the cross-file maxima).
const (
	stateStatus = iota // statusRank of the worst status, 0 if none
	stateCheck         // worst check code, 0 if none
	stateAgent         // worst agent code, 0 if none
	nStates
)

var stateNames = [nStates]string{"status_code", "check_status_code", "agent_status_code"}

// stateColumns are the header names of the state cells, in state order.
var stateColumns = [nStates]string{"status", "check_status", "agent_status"}

// statusCode returns the code of a `status` cell.
func statusCode(b []byte) int {
	switch string(b) {
	case "UP":
		return statusUp
	case "DOWN", "DOWN (agent)":
		return statusDown
	case "NOLB":
		return statusNolb
	case "MAINT":
		return statusMaint
	case "DRAIN", "DRAIN (agent)":
		return statusDrain
	case "no check":
		return statusNoCheck
	}
	switch {
	case bytes.HasPrefix(b, []byte("MAINT")):
		return statusMaint // MAINT (via be/srv), MAINT (resolution), and 1.x's MAINT(via)
	case hasCounts(b, "UP "):
		return statusUpGoing
	case hasCounts(b, "DOWN "):
		return statusDownGoing
	case hasCounts(b, "NOLB "):
		return statusNolbGoing
	case hasCounts(b, "DRAIN "):
		return statusDrainGo
	}
	return statusOther
}

// hasCounts reports whether b is prefix followed by "<digits>/<digits>".
func hasCounts(b []byte, prefix string) bool {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return false
	}
	b = b[len(prefix):]
	slash := bytes.IndexByte(b, '/')
	return slash > 0 && slash < len(b)-1 && allDigits(b[:slash]) && allDigits(b[slash+1:])
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkCode returns the code of a check_status or agent_status cell, 0 for an empty one.
func checkCode(b []byte) int {
	if len(b) >= 2 && b[0] == '*' && b[1] == ' ' {
		b = b[2:] // a check is running; the result shown is the last one
	}
	switch string(b) {
	case "":
		return 0
	case "L4OK":
		return 1
	case "L6OK":
		return 2
	case "L7OK":
		return 3
	case "L7OKC":
		return 4
	case "PROCOK":
		return 5
	case "INI":
		return 10
	case "UNK":
		return 11
	case "CHECKED":
		return 12
	case "HANA":
		return 20
	case "SOCKERR":
		return 21
	case "L4TOUT":
		return 22
	case "L4CON":
		return 23
	case "L6TOUT":
		return 24
	case "L6RSP":
		return 25
	case "L7TOUT":
		return 26
	case "L7RSP":
		return 27
	case "L7STS":
		return 28
	case "PROCERR":
		return 29
	case "PROCTOUT":
		return 30
	}
	return 19
}

// addStates folds the state cells of the current server row (at the offsets recorded by the
// scan, in base) into the server's state accumulators: the maximum over the snapshot's files.
func (p *Processor) addStates(e int32, base []byte) {
	acc := p.srv.accOf(e)[p.srv.width-nStates:]
	if s, end := p.stateS[stateStatus], p.stateE[stateStatus]; end > s {
		acc[stateStatus] = max(acc[stateStatus], statusRank[statusCode(base[s:end])+1])
	}
	for _, k := range [...]int{stateCheck, stateAgent} {
		if s, end := p.stateS[k], p.stateE[k]; end > s {
			acc[k] = max(acc[k], float64(checkCode(base[s:end])))
		}
	}
}
