// Command tcpsink accepts Graphite plaintext connections on a loopback address, counts lines
// and bytes, and rewrites a one-line report file after every connection closes. It is the
// receiving end of scripts/bench-process.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2003", "address to listen on")
	report := flag.String("report", "", "file to write the counts to after each connection")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var lines, size int64
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			start := time.Now()
			buf := make([]byte, 1<<20)
			var n, l int64
			for {
				k, err := c.Read(buf)
				n += int64(k)
				l += int64(bytes.Count(buf[:k], []byte{'\n'}))
				if err == io.EOF {
					break
				}
				if err != nil {
					log.Print(err)
					break
				}
			}
			mu.Lock()
			lines += l
			size += n
			if *report != "" {
				msg := fmt.Sprintf("%d lines, %d bytes in all; last connection %d lines in %.3fs\n",
					lines, size, l, time.Since(start).Seconds())
				os.WriteFile(*report, []byte(msg), 0o644)
			}
			mu.Unlock()
		}()
	}
}
