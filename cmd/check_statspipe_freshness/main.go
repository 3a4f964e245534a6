// Command check_statspipe_freshness is the Nagios check of the pipeline's liveness: the age of
// stats-pull's last publish and of stats-process's last delivery (from their status files),
// the age of the oldest queued snapshot and the quarantine count, each with monitoring-plugins
// thresholds (see internal/nagios and internal/status).
package main

import (
	"os"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/nagios"
)

func main() { os.Exit(nagios.Freshness(os.Args[1:], cli.Version, os.Stdout)) }
