package graphite

import (
	"net"
	"syscall"
	"unsafe"
)

// connFD returns the socket descriptor of a TCP connection. It is only used while the writer
// goroutine, which alone closes the connection, holds it open.
func connFD(conn net.Conn) (uintptr, bool) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var fd uintptr
	if err := raw.Control(func(f uintptr) { fd = f }); err != nil {
		return 0, false
	}
	if _, ok := unackedBytes(fd); !ok {
		return 0, false
	}
	return fd, true
}

// unackedBytes is SIOCOUTQ: bytes written to the socket that the peer has not acknowledged
// yet (write_seq − snd_una; a reset does not clear it).
func unackedBytes(fd uintptr) (int, bool) {
	var n int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return 0, false
	}
	return int(n), true
}
