// Command gensnapshot writes a synthetic HAProxy snapshot directory (what stats-pull captures
// from a fleet of HAProxy 2.6 processes) for benchmarks and load tests:
//
//	go run ./tools/gensnapshot -dir /tmp/spool/1700000000 -procs 4 -backends 1000 -servers 10
//
// The directory is created if needed; its name is the snapshot timestamp stats-process uses.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/statspipe/statspipe/internal/process/haproxy/synthetic"
)

func main() {
	cfg := synthetic.DefaultConfig
	dir := flag.String("dir", "", "snapshot directory to create (its base name should be an epoch timestamp)")
	flag.IntVar(&cfg.Procs, "procs", cfg.Procs, "HAProxy processes (file pairs)")
	flag.IntVar(&cfg.Backends, "backends", cfg.Backends, "backends per process")
	flag.IntVar(&cfg.Servers, "servers", cfg.Servers, "servers per backend")
	flag.IntVar(&cfg.Frontends, "frontends", cfg.Frontends, "frontends per process")
	flag.Float64Var(&cfg.Idle, "idle", cfg.Idle, "share of frontends and backends without traffic")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gensnapshot -dir <snapshot dir> [-procs N] [-backends N] [-servers N] [-frontends N] [-idle F] [-seed N]")
		os.Exit(2)
	}
	if cfg.Procs < 1 || cfg.Backends < 0 || cfg.Servers < 0 || cfg.Frontends < 0 || cfg.Idle < 0 || cfg.Idle > 1 {
		fmt.Fprintln(os.Stderr, "gensnapshot: counts must be ≥ 0 (procs ≥ 1) and idle within [0, 1]")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gensnapshot:", err)
		os.Exit(1)
	}
	if err := synthetic.Write(*dir, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gensnapshot:", err)
		os.Exit(1)
	}
}
