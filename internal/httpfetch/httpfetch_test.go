package httpfetch

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustNew(t testing.TB, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdle)
	return c
}

// testdata reads a real payload of the parser's testdata (see internal/promtext/testdata/README.md).
func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "promtext", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlainBodyByteExact(t *testing.T) {
	body := testdata(t, "node_exporter.metrics")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(body)
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	var got bytes.Buffer
	res, err := c.Fetch(context.Background(), ts.URL+"/metrics", &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("body differs: got %d bytes, want %d", got.Len(), len(body))
	}
	if res.Bytes != int64(len(body)) || res.WireBytes != int64(len(body)) || res.Status != 200 ||
		res.ContentType != "text/plain; version=0.0.4; charset=utf-8" || res.ContentEncoding != "" ||
		res.URL != ts.URL+"/metrics" || res.Duration <= 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestGzipBodyDecoded(t *testing.T) {
	body := testdata(t, "node_exporter.metrics")
	zbody := gz(t, body)
	var gotAE atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAE.Store(r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(zbody)
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	var got bytes.Buffer
	res, err := c.Fetch(context.Background(), ts.URL, &got)
	if err != nil {
		t.Fatal(err)
	}
	if gotAE.Load() != "gzip" {
		t.Fatalf("Accept-Encoding %q", gotAE.Load())
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("decoded body differs")
	}
	if res.ContentEncoding != "gzip" || res.Bytes != int64(len(body)) || res.WireBytes != int64(len(zbody)) || res.WireBytes >= res.Bytes {
		t.Fatalf("result %+v (compressed %d)", res, len(zbody))
	}
}

func TestBadGzip(t *testing.T) {
	zbody := gz(t, []byte(strings.Repeat("metric 1\n", 1000)))
	cases := map[string][]byte{
		"not gzip":  []byte("metric 1\nmetric 2\n"),
		"truncated": zbody[:len(zbody)/2],
		"checksum":  append(append([]byte{}, zbody[:len(zbody)-8]...), 0, 0, 0, 0, 0, 0, 0, 0),
	}
	want := map[string]string{"not gzip": "gzip: invalid header", "truncated": "gzip: truncated stream after ", "checksum": "gzip: invalid checksum"}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				w.Write(b)
			}))
			defer ts.Close()
			c := mustNew(t, Options{})
			_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
			if err == nil || !strings.Contains(err.Error(), want[name]) || !strings.HasPrefix(err.Error(), "GET "+ts.URL+": ") {
				t.Fatalf("err %v, want %q", err, want[name])
			}
		})
	}
}

func TestUnsupportedEncoding(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		w.Write([]byte("x"))
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err == nil || !strings.Contains(err.Error(), `unsupported Content-Encoding "br"`) {
		t.Fatalf("err %v", err)
	}
}

// countWriter counts and discards, so a test can bound what reached the writer.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestGzipBombStopsAtLimit(t *testing.T) {
	const limit = 1 << 20
	// 256 MiB of zeros in about 260 KB: 64 gzip members of 4 MiB each (one member of 256 MiB
	// takes seconds to compress under -race; the decoder treats both alike).
	member := gz(t, make([]byte, 4<<20))
	bomb := bytes.Repeat(member, 64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb)
	}))
	defer ts.Close()
	c := mustNew(t, Options{MaxBodySize: limit})
	var cw countWriter
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.Fetch(context.Background(), ts.URL, &cw)
	runtime.ReadMemStats(&after)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != limit {
		t.Fatalf("err %v, want TooLargeError", err)
	}
	if !strings.Contains(err.Error(), "body larger than max-body-size 1048576 bytes") {
		t.Fatalf("message %q", err)
	}
	if cw.n != limit {
		t.Fatalf("writer got %d bytes, want exactly the limit %d", cw.n, limit)
	}
	// The whole process allocated far less than the 256 MiB the bomb expands to (the server's
	// side included), so nothing held the body.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("allocated %d bytes during the fetch", alloc)
	}
}

func TestGzipWireBound(t *testing.T) {
	// Empty gzip members expand to nothing: only the wire bound stops them.
	empty := gz(t, nil)
	const limit = 1 << 10
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		for i := 0; i < 10000; i++ {
			if _, err := w.Write(empty); err != nil {
				return
			}
		}
	}))
	defer ts.Close()
	c := mustNew(t, Options{MaxBodySize: limit})
	res, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !tl.Wire {
		t.Fatalf("err %v, want a wire TooLargeError", err)
	}
	if res.WireBytes > 2*limit+1 {
		t.Fatalf("read %d wire bytes", res.WireBytes)
	}
}

func TestPlainOverLimit(t *testing.T) {
	const limit = 1000
	t.Run("chunked", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 100; i++ {
				w.Write(bytes.Repeat([]byte("x"), 100))
				w.(http.Flusher).Flush()
			}
		}))
		defer ts.Close()
		c := mustNew(t, Options{MaxBodySize: limit})
		var cw countWriter
		_, err := c.Fetch(context.Background(), ts.URL, &cw)
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.ContentLength != -1 || cw.n != limit {
			t.Fatalf("err %v, wrote %d", err, cw.n)
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat([]byte("x"), limit))
		}))
		defer ts.Close()
		c := mustNew(t, Options{MaxBodySize: limit})
		res, err := c.Fetch(context.Background(), ts.URL, io.Discard)
		if err != nil || res.Bytes != limit {
			t.Fatalf("err %v, res %+v", err, res)
		}
	})
	t.Run("content-length", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2000")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			// Send no body: a client that tried to read it would wait for its timeout.
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer ts.Close()
		c := mustNew(t, Options{MaxBodySize: limit, Timeout: 5 * time.Second})
		var cw countWriter
		_, err := c.Fetch(context.Background(), ts.URL, &cw)
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.ContentLength != 2000 || cw.n != 0 {
			t.Fatalf("err %v, wrote %d", err, cw.n)
		}
		if !strings.Contains(err.Error(), "(Content-Length 2000)") {
			t.Fatalf("message %q", err)
		}
	})
}

func TestStatusError(t *testing.T) {
	long := "line one\r\nline\ttwo\x00\x01 \xff" + strings.Repeat("y", 2000)
	for _, enc := range []string{"", "gzip"} {
		t.Run("encoding "+enc, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b := []byte(long)
				if enc == "gzip" {
					w.Header().Set("Content-Encoding", "gzip")
					b = gz(t, b)
				}
				w.WriteHeader(503)
				w.Write(b)
			}))
			defer ts.Close()
			c := mustNew(t, Options{})
			var cw countWriter
			_, err := c.Fetch(context.Background(), ts.URL, &cw)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != 503 {
				t.Fatalf("err %v", err)
			}
			if cw.n != 0 {
				t.Fatalf("writer got %d bytes", cw.n)
			}
			if !strings.HasPrefix(se.Snippet, "line one line two y") || len(se.Snippet) > SnippetSize || strings.ContainsAny(se.Snippet, "\r\n\t\x00") {
				t.Fatalf("snippet %q", se.Snippet)
			}
			if !strings.HasPrefix(err.Error(), "GET "+ts.URL+": HTTP status 503 Service Unavailable: line one") {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestTimeoutWhileReadingBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial 1\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c := mustNew(t, Options{Timeout: 200 * time.Millisecond})
	_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Phase != "reading the body" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a TimeoutError while reading the body", err)
	}
	if want := "timeout after 200ms reading the body"; !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("message %q, want suffix %q", err, want)
	}
}

func TestTimeoutWaitingForHeaders(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c := mustNew(t, Options{Timeout: 100 * time.Millisecond})
	_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Phase != "waiting for the response headers" {
		t.Fatalf("err %v", err)
	}
}

func TestCallerCancel(t *testing.T) {
	headersSent := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial 1\n"))
		w.(http.Flusher).Flush()
		close(headersSent)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c := mustNew(t, Options{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, ts.URL, io.Discard)
		done <- err
	}()
	<-headersSent
	cancel()
	select {
	case err := <-done:
		var te *TimeoutError
		if !errors.Is(err, context.Canceled) || errors.As(err, &te) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch did not return after cancel")
	}
}

func TestCallerDeadlineEarlier(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	c := mustNew(t, Options{Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Fetch(ctx, ts.URL, io.Discard)
	var te *TimeoutError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) {
		t.Fatalf("err %v, want the caller's deadline", err)
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := mustNew(t, Options{})
	url := "http://" + addr + "/metrics"
	_, err = c.Fetch(context.Background(), url, io.Discard)
	if err == nil || err.Error() != "GET "+url+": connect: connection refused" {
		t.Fatalf("err %v", err)
	}
	// A password in the URL stays out of the message.
	_, err = c.Fetch(context.Background(), "http://u:secret@"+addr+"/", io.Discard)
	if err == nil || err.Error() != "GET http://u:xxxxx@"+addr+"/: connect: connection refused" {
		t.Fatalf("err %v", err)
	}
	_, err = c.Fetch(context.Background(), "http://h\x7f/", io.Discard)
	if err == nil || err.Error() != `GET "http://h\x7f/": invalid URL: net/url: invalid control character in URL` {
		t.Fatalf("err %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBasicAuthFileRotation(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		mu.Lock()
		seen = append(seen, fmt.Sprint(u, ":", p, ":", ok))
		mu.Unlock()
	}))
	defer ts.Close()
	pw := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pw, "first\n")
	c := mustNew(t, Options{BasicAuthUser: "stats", BasicAuthPasswordFile: pw})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pw, "second")
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := []string{"stats:first:true", "stats:second:true"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("server saw %v, want %v", seen, want)
	}
	os.Remove(pw)
	_, err := c.Fetch(context.Background(), ts.URL, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "basic-auth-password-file "+pw+": no such file or directory") {
		t.Fatalf("err %v", err)
	}
	if len(seen) != 2 {
		t.Fatalf("a request was sent without the password")
	}
}

func TestBearerToken(t *testing.T) {
	var got atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
	}))
	defer ts.Close()
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, "abc.def\n")
	c := mustNew(t, Options{BearerTokenFile: tok})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "Bearer abc.def" {
		t.Fatalf("Authorization %q", got.Load())
	}
	writeFile(t, tok, strings.Repeat("x", MaxSecretFileSize+1))
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err == nil || !strings.Contains(err.Error(), "bearer-token-file "+tok+": larger than") {
		t.Fatalf("err %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "secret\n")
	notPEM := filepath.Join(dir, "ca.pem")
	writeFile(t, notPEM, "hello\n")
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"basic and bearer", Options{BasicAuthUser: "u", BasicAuthPasswordFile: f, BearerTokenFile: f}, "both set"},
		{"password without user", Options{BasicAuthPasswordFile: f}, "without basic-auth-user"},
		{"missing token", Options{BearerTokenFile: filepath.Join(dir, "nope")}, "bearer-token-file " + filepath.Join(dir, "nope") + ": no such file"},
		{"ca not pem", Options{TLSCAFile: notPEM}, "tls-ca-file " + notPEM + ": no PEM certificate found"},
		{"ca missing", Options{TLSCAFile: filepath.Join(dir, "x")}, "tls-ca-file " + filepath.Join(dir, "x") + ": no such file"},
		{"cert without key", Options{TLSCertFile: f}, "without tls-key-file"},
		{"bad cert", Options{TLSCertFile: f, TLSKeyFile: f}, "tls-cert-file " + f + ", tls-key-file " + f + ":"},
		{"accept-encoding header", Options{Headers: [][2]string{{"Accept-Encoding", "br"}}}, "Accept-Encoding cannot be set"},
		{"bad header name", Options{Headers: [][2]string{{"X Bad", "v"}}}, "invalid name"},
		{"header value newline", Options{Headers: [][2]string{{"X-A", "a\r\nB: c"}}}, "control character"},
		{"authorization conflict", Options{BearerTokenFile: f, Headers: [][2]string{{"authorization", "x"}}}, "conflicts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHeadersAndAccept(t *testing.T) {
	var got atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(fmt.Sprint(r.Header.Get("Accept"), "|", r.Header.Values("X-Scope-Orgid"), "|", r.Header.Get("X-Other"), "|", r.Host, "|", r.UserAgent()))
	}))
	defer ts.Close()
	c := mustNew(t, Options{
		Accept:    AcceptOpenMetrics,
		Headers:   [][2]string{{"X-Scope-OrgID", "t1"}, {"x-other", "o"}, {"X-Scope-OrgID", "t2"}, {"Host", "app.example"}},
		UserAgent: "statspipe/test",
	})
	if _, err := c.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := AcceptOpenMetrics + "|[t1 t2]|o|app.example|statspipe/test"
	if got.Load() != want {
		t.Fatalf("server saw %q, want %q", got.Load(), want)
	}
	c2 := mustNew(t, Options{})
	if _, err := c2.Fetch(context.Background(), ts.URL, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := got.Load().(string); !strings.HasPrefix(s, "|[]||127.0.0.1:") || !strings.HasSuffix(s, "|statspipe/devel") {
		t.Fatalf("defaults: server saw %q", s)
	}
}

func TestKeepAlive(t *testing.T) {
	body := testdata(t, "node_exporter.metrics")
	zbody := gz(t, body)
	var newConns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gz" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zbody)
			return
		}
		if r.URL.Path == "/404" {
			// Longer than the snippet, so reusing the connection needs the drain.
			w.WriteHeader(404)
			w.Write(bytes.Repeat([]byte("not found\n"), 300))
			return
		}
		w.Write(body)
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	c := mustNew(t, Options{})
	for _, path := range []string{"/", "/", "/gz", "/gz", "/404", "/"} {
		_, err := c.Fetch(context.Background(), ts.URL+path, io.Discard)
		if err != nil && path != "/404" {
			t.Fatal(err)
		}
	}
	if n := newConns.Load(); n != 1 {
		t.Fatalf("%d connections for 6 sequential fetches, want 1", n)
	}
}

func TestRedirects(t *testing.T) {
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/r/%d", &n)
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
			return
		}
		w.Write([]byte("end\n"))
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	res, err := c.Fetch(context.Background(), ts.URL+"/r/5", io.Discard)
	if err != nil || res.URL != ts.URL+"/r/0" || res.Bytes != 4 {
		t.Fatalf("5 redirects: err %v, res %+v", err, res)
	}
	_, err = c.Fetch(context.Background(), ts.URL+"/r/6", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Fatalf("6 redirects: err %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "hf")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Host, r.URL.RequestURI())
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := mustNew(t, Options{UnixSocket: sock, Timeout: 500 * time.Millisecond, MaxBodySize: 50 << 20})
	var got bytes.Buffer
	if _, err := c.Fetch(context.Background(), "http://plugin/report?api_version=1&probe_id=p", &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "plugin /report?api_version=1&probe_id=p" {
		t.Fatalf("got %q", got.String())
	}
	srv.Close()
	os.Remove(sock)
	_, err = c.Fetch(context.Background(), "http://plugin/report", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "connect to unix socket "+sock+": ") {
		t.Fatalf("err %v", err)
	}
}

func TestConcurrentFetches(t *testing.T) {
	body := testdata(t, "node_exporter.metrics")
	zbody := gz(t, body)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gz") != "" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zbody)
			return
		}
		w.Write(body)
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := ts.URL + "/?gz=" + strings.Repeat("1", i%2)
			for j := 0; j < 5; j++ {
				var got bytes.Buffer
				if _, err := c.Fetch(context.Background(), url, &got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got.Bytes(), body) {
					errs <- fmt.Errorf("%s: body differs", url)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// headerRecorder is a HeaderWriter: it sees the headers before any byte, and may refuse.
type headerRecorder struct {
	bytes.Buffer
	gotHeader   Result
	bytesBefore int
	refuse      error
}

func (h *headerRecorder) WriteHeader(r Result) error {
	h.gotHeader = r
	h.bytesBefore = h.Len()
	return h.refuse
}

func TestHeaderWriterSeesHeadersFirst(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=0.0.1")
		w.Write([]byte("x 1\n# EOF\n"))
	}))
	defer ts.Close()
	c := mustNew(t, Options{})
	h := &headerRecorder{bytesBefore: -1}
	if _, err := c.Fetch(context.Background(), ts.URL, h); err != nil {
		t.Fatal(err)
	}
	if h.gotHeader.ContentType != "application/openmetrics-text; version=0.0.1" || h.gotHeader.Status != 200 || h.bytesBefore != 0 || h.String() != "x 1\n# EOF\n" {
		t.Fatalf("header %+v before=%d body %q", h.gotHeader, h.bytesBefore, h.String())
	}
	refused := &headerRecorder{refuse: errors.New("unsupported media type")}
	_, err := c.Fetch(context.Background(), ts.URL, refused)
	if err == nil || !strings.Contains(err.Error(), "unsupported media type") || refused.Len() != 0 {
		t.Fatalf("refused: %v, body %q", err, refused.String())
	}
}
