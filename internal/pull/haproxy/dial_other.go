//go:build !linux

package haproxy

import (
	"context"
	"net"
)

func dialUnix(ctx context.Context, path string) (stream, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}
