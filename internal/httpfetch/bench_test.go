package httpfetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchBody is Prometheus text of about size bytes, built by repeating a real payload so that
// gzip sees a realistic ratio.
func benchBody(b *testing.B, size int) []byte {
	unit := testdata(b, "node_exporter.metrics")
	out := bytes.Repeat(unit, size/len(unit)+1)
	return out[:size]
}

// BenchmarkFetch measures a fetch over loopback, plain and gzip, at two sizes. Plain allocs/op
// are the same at both sizes (nothing is allocated per byte or per buffer refill). gzip adds
// about one allocation per deflate block: compress/flate's huffmanDecoder.init allocates its
// link tables for every dynamic-Huffman block, which the standard library offers no way to
// avoid; the gzip.Reader itself and the copy buffer are pooled.
func BenchmarkFetch(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		body := benchBody(b, size)
		zbody := gz(b, body)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/gz" {
				w.Header().Set("Content-Encoding", "gzip")
				w.Write(zbody)
				return
			}
			w.Write(body)
		}))
		for _, enc := range []string{"plain", "gzip"} {
			b.Run(fmt.Sprintf("%s/%dKiB", enc, size>>10), func(b *testing.B) {
				c := mustNew(b, Options{})
				url := ts.URL + "/plain"
				if enc == "gzip" {
					url = ts.URL + "/gz"
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					res, err := c.Fetch(context.Background(), url, io.Discard)
					if err != nil || res.Bytes != int64(size) {
						b.Fatalf("err %v, bytes %d", err, res.Bytes)
					}
				}
			})
		}
		ts.Close()
	}
}
