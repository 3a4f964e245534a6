// Command pullfloor measures what the kernel alone costs for a pull round in haproxystats'
// layout, for scripts/bench-pull: every UNIX socket of a directory asked `show info;show stat`
// on one non-blocking connection, the replies split at the end of `show info`'s and written
// into <socket>_info and <socket>_stat of a new snapshot directory, one syncfs(2), one
// rename(2) into dst-dir, every interval, from a single goroutine locked to its thread with its
// own epoll instance: no runtime poller, no goroutine per socket, no allocation per round but
// the socket table. It is the least any puller of these files does (no retries, no limits, no
// error handling beyond stopping); what stats-pull costs above it is stats-pull's own.
//
//	pullfloor -sockets DIR -dst DIR -tmp DIR [-rounds N] [-interval D]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

type sock struct {
	fd, info, stat int
	name           string
	inStat, done   bool
	lastNL         bool
}

func main() {
	sockets := flag.String("sockets", "", "directory of UNIX stats sockets")
	dst := flag.String("dst", "", "dst-dir: snapshots are renamed into it")
	tmp := flag.String("tmp", "", "tmp-dst-dir: snapshots are built in it (same filesystem as dst)")
	rounds := flag.Int("rounds", 20, "rounds to run")
	interval := flag.Duration("interval", time.Second, "time between rounds")
	flag.Parse()
	if *sockets == "" || *dst == "" || *tmp == "" || *rounds < 1 || *rounds > 100000 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*sockets, *dst, *tmp, *rounds, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "pullfloor:", err)
		os.Exit(1)
	}
}

func run(sockDir, dst, tmp string, rounds int, interval time.Duration) error {
	runtime.LockOSThread()
	for _, d := range []string{dst, tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(sockDir)
	if err != nil {
		return err
	}
	if len(ents) == 0 || len(ents) > 4096 {
		return fmt.Errorf("%d sockets in %s", len(ents), sockDir)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	evs := make([]unix.EpollEvent, 128)
	socks := make([]sock, len(ents))
	cmd := []byte("show info;show stat\n")
	for r := 0; r < rounds; r++ {
		tick := time.Now().Truncate(interval).Add(interval)
		time.Sleep(time.Until(tick))
		name := strconv.FormatInt(tick.Unix(), 10)
		snap := filepath.Join(tmp, name)
		if err := unix.Mkdir(snap, 0o750); err != nil {
			return err
		}
		dfd, err := unix.Open(snap, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		left := 0
		for i, e := range ents {
			s := &socks[i]
			*s = sock{name: e.Name()}
			if s.fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			if err := unix.Connect(s.fd, &unix.SockaddrUnix{Name: filepath.Join(sockDir, s.name)}); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if _, err := unix.Write(s.fd, cmd); err != nil {
				return err
			}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, s.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
				return err
			}
			left++
		}
		deadline := time.Now().Add(interval)
		for left > 0 {
			wait := time.Until(deadline)
			if wait <= 0 {
				return fmt.Errorf("round %s: %d sockets did not finish within %v", name, left, interval)
			}
			n, err := unix.EpollWait(ep, evs, int(wait/time.Millisecond)+1)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			for _, ev := range evs[:n] {
				s := &socks[ev.Fd]
				if err := s.drain(dfd, buf); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				if s.done {
					left--
				}
			}
		}
		if err := unix.Syncfs(dfd); err != nil {
			return err
		}
		unix.Close(dfd)
		if err := unix.Rename(snap, filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

// drain reads what the socket has into buf, then writes it out in one piece per file.
func (s *sock) drain(dfd int, buf []byte) error {
	filled := 0
	for filled < len(buf) {
		n, err := unix.Read(s.fd, buf[filled:])
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			s.done = true
			break
		}
		filled += n
	}
	b := buf[:filled]
	if !s.inStat {
		if s.info == 0 {
			fd, err := unix.Openat(dfd, s.name+"_info", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o640)
			if err != nil {
				return err
			}
			s.info = fd
		}
		end := -1
		if s.lastNL && len(b) > 0 && b[0] == '\n' {
			end = 1
		} else if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
			end = i + 2
		}
		if end < 0 {
			if len(b) > 0 {
				s.lastNL = b[len(b)-1] == '\n'
			}
			return s.finish(write(s.info, b))
		}
		if err := write(s.info, b[:end]); err != nil {
			return err
		}
		unix.Close(s.info)
		b = b[end:]
		s.inStat = true
		fd, err := unix.Openat(dfd, s.name+"_stat", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o640)
		if err != nil {
			return err
		}
		s.stat = fd
	}
	return s.finish(write(s.stat, b))
}

func (s *sock) finish(err error) error {
	if err != nil || !s.done {
		return err
	}
	if !s.inStat {
		return fmt.Errorf("the reply ended inside show info's")
	}
	unix.Close(s.stat)
	return unix.Close(s.fd) // also leaves the epoll set
}

func write(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
