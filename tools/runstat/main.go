// Command runstat runs a program and prints the CPU time, peak RSS and wall time it used, from
// the kernel's rusage at wait4, with microsecond resolution. /usr/bin/time rounds CPU to 10 ms,
// which is a quarter of what one stats-process snapshot costs, so the benchmark scripts use this.
//
//	runstat -o FILE -- program args...
//
// FILE receives one line: "cpu_ms user_ms sys_ms maxrss_kib wall_ms". The total CPU is exact;
// the kernel splits it into user and sys in proportion to tick samples, so the split is only
// indicative. The program's exit status is passed on; its standard streams are inherited.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	out := flag.String("o", "", "file receiving the figures (default: standard error)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: runstat [-o FILE] -- program [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		os.Exit(127)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "runstat: no rusage on this platform")
		os.Exit(127)
	}
	user := time.Duration(ru.Utime.Nano())
	sys := time.Duration(ru.Stime.Nano())
	line := fmt.Sprintf("%.1f %.1f %.1f %d %.1f\n", ms(user+sys), ms(user), ms(sys), ru.Maxrss, ms(wall))
	if *out == "" {
		fmt.Fprint(os.Stderr, line)
	} else if err := os.WriteFile(*out, []byte(line), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		os.Exit(127)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
