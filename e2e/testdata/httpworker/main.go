// Command httpworker is a loopback HTTP/1.1 server for the http-ebpf end-to-end test, started
// as several processes of one program. It prints its address on stdout, then answers:
// GET /ok 200, GET /missing 404, GET /unavailable 503, GET /teapot 418, any other method 501.
// It exits when its standard input closes.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "ok\n")
		case "/unavailable":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		default:
			http.NotFound(w, r)
		}
	})}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	srv.Serve(l)
}
