package haproxy

import (
	"context"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// dialUnix connects to the UNIX stream socket at path with two system calls, socket(2) and a
// non-blocking connect(2) (which completes at once or fails at once: a UNIX connect never
// waits), and returns the descriptor as a pollable *os.File (reads and writes through the
// runtime's poller, deadlines honoured). net.Dial adds getsockname(2), getpeername(2) and the
// allocations of a net.UnixConn, about a tenth of a 64-socket round's CPU, for addresses this
// program never reads. Its errors read like net.Dial's: "dial unix <path>: connect: …".
func dialUnix(_ context.Context, path string) (stream, error) {
	fail := func(call string, err error) error {
		return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: os.NewSyscallError(call, err)}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fail("socket", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fail("connect", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
