package graphite

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

// Offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h).
const (
	tcpInfoBytesAcked = 120 // __u64 tcpi_bytes_acked: bytes the peer acknowledged (RFC 4898)
	tcpInfoSndWnd     = 228 // __u32 tcpi_snd_wnd: the peer's advertised receive window, scaled
	tcpInfoNeed       = tcpInfoSndWnd + 4
)

// peerWindow reads TCP_INFO: how many bytes of this connection the peer acknowledged, and the
// receive window it advertised last. ok is false when the kernel does not report the window
// (before Linux 6.2) or the call fails.
func peerWindow(fd uintptr) (acked, window int64, ok bool) {
	var buf [256]byte
	n := uint32(len(buf))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 || n < tcpInfoNeed {
		return 0, 0, false
	}
	acked = int64(binary.NativeEndian.Uint64(buf[tcpInfoBytesAcked:]))
	window = int64(binary.NativeEndian.Uint32(buf[tcpInfoSndWnd:]))
	return acked, window, true
}
