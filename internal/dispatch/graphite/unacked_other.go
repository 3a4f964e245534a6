//go:build !linux

package graphite

import "net"

// connFD reports that acknowledged bytes cannot be queried here: a chunk then counts as
// delivered once it is written to the socket.
func connFD(net.Conn) (uintptr, bool) { return 0, false }

func unackedBytes(uintptr) (int, bool) { return 0, false }

func peerWindow(uintptr) (acked, window int64, ok bool) { return 0, 0, false }
