// Command check_statspipe_queue_size is the Nagios check of stats-pull's queue: how many
// snapshots wait in dst-dir. It replaces haproxystats' check_haproxystats_queue_size.py with the
// same options and output (see internal/nagios).
package main

import (
	"os"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/nagios"
)

func main() { os.Exit(nagios.QueueSize(os.Args[1:], cli.Version, os.Stdout)) }
