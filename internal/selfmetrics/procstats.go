package selfmetrics

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/statspipe/statspipe/internal/spool"
)

// AddProcessStats registers cpu_seconds (user + system, getrusage), rss_bytes
// (/proc/self/statm) and open_fds (entries of /proc/self/fd), read at every collection.
func (r *Registry) AddProcessStats() {
	cpu := r.Counter("cpu_seconds", "CPU time used by the program, user and system, in seconds")
	rss := r.Gauge("rss_bytes", "resident set size of the program in bytes")
	fds := r.Gauge("open_fds", "file descriptors the program has open")
	r.Before(func() {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			cpu.Set(tvSeconds(ru.Utime) + tvSeconds(ru.Stime))
		}
		if n, ok := residentBytes(); ok {
			rss.Set(float64(n))
		}
		if n, ok := countFDs(); ok {
			fds.Set(float64(n))
		}
	})
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// residentBytes reads the second field of /proc/self/statm (pages).
func residentBytes() (int64, bool) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(data)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// countFDs counts /proc/self/fd in batches (no slice of every name), minus the descriptor
// that reads it.
func countFDs() (int, bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(256)
		n += len(names)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, false
		}
	}
	return max(n-1, 0), true
}

// AddQueue registers queue_length and oldest_snapshot_age_seconds of the spool directory dir()
// returns (it may change with a reload), read at every collection with spool.List.
func (r *Registry) AddQueue(dir func() string) {
	length := r.Gauge("queue_length", "snapshots waiting in the spool (dst-dir / src-dir)")
	age := r.Gauge("oldest_snapshot_age_seconds", "age of the oldest snapshot waiting in the spool, 0 when it is empty")
	r.Before(func() {
		entries, err := spool.List(dir())
		if err != nil {
			return
		}
		length.Set(float64(len(entries)))
		a := 0.0
		if len(entries) > 0 {
			if ts, ok := spool.TimestampOf(entries[0].Name); ok {
				a = max(float64(time.Now().Unix()-ts), 0)
			}
		}
		age.Set(a)
	})
}
