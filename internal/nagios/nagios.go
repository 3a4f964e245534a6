// Package nagios holds the Nagios checks shipped with statspipe. They follow the
// monitoring-plugins conventions: exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage
// errors included); one status line, perfdata after '|'.
package nagios

import (
	"fmt"
	"io"
)

// State is a Nagios service state, which is also the check's exit status.
type State int

const (
	OK       State = 0
	Warning  State = 1
	Critical State = 2
	Unknown  State = 3
)

func (s State) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// Result is what a check prints: "STATE: text|perfdata" then the long output lines.
type Result struct {
	State    State
	Text     string
	Perfdata string
	Long     []string
}

// Write prints r and returns its exit status.
func (r Result) Write(w io.Writer) int {
	line := r.State.String() + ": " + r.Text
	if r.Perfdata != "" {
		line += "|" + r.Perfdata
	}
	fmt.Fprintln(w, line)
	for _, l := range r.Long {
		fmt.Fprintln(w, l)
	}
	return int(r.State)
}
