// Package httpfetch is the HTTP client shared by every HTTP-based source kind (OpenMetrics and
// Prometheus text targets, Envoy admin, Mesos, Weave Scope plugins over UNIX sockets). It GETs
// a URL and streams the body, decompressed, into an io.Writer (a snapshot file), with a bounded
// time, a bounded size and bounded memory, and one-line errors that say what failed.
//
// Decisions that callers rely on:
//   - Redirects: at most MaxRedirects (5) are followed, never from https to http. Go drops
//     the Authorization header (basic or bearer) when a redirect leaves the original host.
//     Result.URL is the URL that answered.
//   - Proxies: none. The environment's HTTP_PROXY is ignored: targets are instances the
//     collector reaches directly, and a proxy picked up from a service's environment would
//     silently change what is measured.
//   - Any 2xx status is success (the body is streamed); anything else is a *StatusError and the
//     writer gets nothing. A caller that needs exactly 200 (Scope) checks Result.Status.
//   - Content-Encoding gzip (and x-gzip) is decoded here; identity or none is copied as is;
//     any other encoding is an error. The transport's own decompression is off, so
//     Result.ContentEncoding is what the server sent.
//   - On an error other than *StatusError the writer may hold a partial body; the caller
//     discards it (the pull loop removes the files of a failed source).
package httpfetch

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	neturl "net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

const (
	// DefaultTimeout bounds a fetch (connect, headers and body) when Options.Timeout is ≤ 0.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBodySize bounds the decompressed body when Options.MaxBodySize is ≤ 0.
	DefaultMaxBodySize = 64 << 20
	// DefaultMaxIdleConnsPerHost is how many idle connections to one instance are kept for the
	// next round when Options.MaxIdleConnsPerHost is ≤ 0. One fetch at a time per target needs
	// one; two covers a fetch that overlaps the previous round's.
	DefaultMaxIdleConnsPerHost = 2
	// MaxRedirects is how many redirects one fetch follows.
	MaxRedirects = 5
	// MaxSecretFileSize bounds a password or token file: they are read at every fetch.
	MaxSecretFileSize = 64 << 10
	// SnippetSize bounds StatusError.Snippet.
	SnippetSize = 512

	// AcceptOpenMetrics asks for OpenMetrics 1.0 first and Prometheus text 0.0.4 second
	// (formats.md §5.2). It lists only formats statspipe parses.
	AcceptOpenMetrics = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

	// idleConnTimeout keeps a connection across rounds of the usual pull intervals (10 s to
	// 60 s) while letting connections to instances that went away be closed eventually.
	idleConnTimeout = 2 * time.Minute
	// copyBufferSize is the size of the pooled buffers bodies are copied through.
	copyBufferSize = 32 << 10
	// drainSize is how much of an error reply is read, so the connection can be reused.
	drainSize = 4 << 10
)

// Options configures a Client. The option names in error messages are those of the
// configuration file (tls-ca-file, bearer-token-file, ...).
type Options struct {
	// Timeout bounds the whole request including the body; ≤ 0 means DefaultTimeout. The
	// caller's ctx deadline also applies: the earlier one wins.
	Timeout time.Duration
	// MaxBodySize bounds the decompressed body in bytes; ≤ 0 means DefaultMaxBodySize.
	// Exceeding it is a *TooLargeError. A compressed body is also bounded on the wire, to twice
	// this size, so a stream of empty gzip members cannot run until the timeout.
	MaxBodySize int64
	// Accept is sent as the Accept header; "" sends none.
	Accept string
	// Headers are extra request headers, in order; a repeated name sends several values. A
	// "Host" entry sets the Host header. Accept-Encoding and User-Agent cannot be set here,
	// nor Authorization when basic or bearer auth is configured.
	Headers [][2]string
	// BasicAuthUser and BasicAuthPasswordFile configure basic auth. The password file is read
	// at every fetch (so it can be rotated), its trailing newline trimmed. A password file
	// without a user is an error; a user without a file sends an empty password.
	BasicAuthUser         string
	BasicAuthPasswordFile string
	// BearerTokenFile is read at every fetch, trailing newline trimmed, and sent as
	// "Authorization: Bearer <token>". Setting it along with basic auth is an error.
	BearerTokenFile string
	// TLS for https URLs. TLSCertFile and TLSKeyFile go together (a client certificate). The
	// files are read once, by New.
	TLSCAFile, TLSCertFile, TLSKeyFile, TLSServerName string
	TLSSkipVerify                                     bool
	// UnixSocket, when set, carries every request over this UNIX socket; the URL's host is
	// then only the Host header (Weave Scope plugins: http://plugin/report).
	UnixSocket string
	// UserAgent is sent as User-Agent; "" means "statspipe/<module version>".
	UserAgent string
	// MaxIdleConnsPerHost is how many idle keep-alive connections to one host are kept between
	// rounds; ≤ 0 means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
}

// Client fetches URLs with one set of Options. It is safe for concurrent use; make one per
// source so that connections are kept per source.
type Client struct {
	opts      Options
	timeout   time.Duration
	maxBody   int64
	userAgent string
	hostHdr   string
	headers   [][2]string // without Host
	transport *http.Transport
	client    *http.Client
}

// Result describes one successful fetch.
type Result struct {
	URL             string // the URL that answered (after redirects)
	Status          int
	ContentType     string // as received
	ContentEncoding string // as received
	Bytes           int64  // decompressed body bytes written to w
	WireBytes       int64  // body bytes read off the connection (compressed)
	Duration        time.Duration
}

// TooLargeError is a body over the limit.
type TooLargeError struct {
	Limit int64
	// ContentLength is the announced length when that alone made the fetch fail (the body was
	// not read), else -1.
	ContentLength int64
	// Wire is set when the compressed body exceeded its own bound (twice Limit).
	Wire bool
}

func (e *TooLargeError) Error() string {
	switch {
	case e.ContentLength >= 0:
		return fmt.Sprintf("body larger than max-body-size %d bytes (Content-Length %d)", e.Limit, e.ContentLength)
	case e.Wire:
		return fmt.Sprintf("compressed body larger than twice max-body-size %d bytes", e.Limit)
	}
	return fmt.Sprintf("body larger than max-body-size %d bytes", e.Limit)
}

// StatusError is a reply with a status other than 2xx.
type StatusError struct {
	Status int
	// Snippet is the start of the body (at most SnippetSize bytes), decompressed when it could
	// be, sanitised to printable text on one line.
	Snippet string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("HTTP status %d %s", e.Status, http.StatusText(e.Status))
	if e.Snippet != "" {
		s += ": " + e.Snippet
	}
	return s
}

// TimeoutError is a fetch that ran out of Options.Timeout. (A deadline of the caller's ctx is
// reported as that ctx's error instead.)
type TimeoutError struct {
	After time.Duration
	Phase string // "connecting", "waiting for the response headers" or "reading the body"
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timeout after %s %s", e.After, e.Phase)
}

// Timeout makes it a net.Error-style timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Is makes errors.Is(err, context.DeadlineExceeded) true.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// errFetchTimeout is the cause of our own deadline, told apart from the caller's.
var errFetchTimeout = errors.New("httpfetch: fetch timeout")

// redirectError is a redirect not followed; CheckRedirect returns it and describe reports it
// without a phase.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// gzipReaders keeps gzip readers (about 40 KB of decompressor state each) across fetches.
var gzipReaders sync.Pool

// New checks the options, reads the TLS files and builds a Client.
func New(o Options) (*Client, error) {
	c := &Client{opts: o, timeout: o.Timeout, maxBody: o.MaxBodySize, userAgent: o.UserAgent}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodySize
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent()
	}
	if err := checkHeaderValue("user-agent", c.userAgent); err != nil {
		return nil, err
	}
	if err := checkHeaderValue("accept", o.Accept); err != nil {
		return nil, err
	}
	basic := o.BasicAuthUser != "" || o.BasicAuthPasswordFile != ""
	if basic && o.BearerTokenFile != "" {
		return nil, errors.New("basic-auth-user/basic-auth-password-file and bearer-token-file are both set: use one")
	}
	if o.BasicAuthPasswordFile != "" && o.BasicAuthUser == "" {
		return nil, fmt.Errorf("basic-auth-password-file %s is set without basic-auth-user", o.BasicAuthPasswordFile)
	}
	if strings.Contains(o.BasicAuthUser, ":") {
		return nil, errors.New("basic-auth-user must not contain ':'")
	}
	// Check the secret files now so that a typo fails at start; they are read again at every fetch.
	if o.BasicAuthPasswordFile != "" {
		if _, err := readSecret("basic-auth-password-file", o.BasicAuthPasswordFile); err != nil {
			return nil, err
		}
	}
	if o.BearerTokenFile != "" {
		if _, err := readSecret("bearer-token-file", o.BearerTokenFile); err != nil {
			return nil, err
		}
	}
	for i, h := range o.Headers {
		name, value := h[0], h[1]
		if !validHeaderName(name) {
			return nil, fmt.Errorf("header %d: invalid name %q", i+1, name)
		}
		if err := checkHeaderValue("header "+name, value); err != nil {
			return nil, err
		}
		switch strings.ToLower(name) {
		case "host":
			c.hostHdr = value
			continue
		case "accept-encoding":
			return nil, errors.New("header Accept-Encoding cannot be set: the client asks for gzip itself")
		case "user-agent":
			return nil, errors.New("header User-Agent cannot be set here: use the user-agent option")
		case "authorization":
			if basic || o.BearerTokenFile != "" {
				return nil, errors.New("header Authorization conflicts with basic-auth-user/bearer-token-file")
			}
		case "accept":
			if o.Accept != "" {
				return nil, errors.New("header Accept conflicts with the accept option")
			}
		}
		c.headers = append(c.headers, [2]string{http.CanonicalHeaderKey(name), value})
	}
	tlsConfig, err := buildTLS(o)
	if err != nil {
		return nil, err
	}
	idle := o.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = DefaultMaxIdleConnsPerHost
	}
	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	c.transport = &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    c.timeout,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    idle,
		MaxIdleConns:           0, // no global cap: a source with many instances keeps each one's
		IdleConnTimeout:        idleConnTimeout,
		ResponseHeaderTimeout:  0, // the request context bounds it
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	if o.UnixSocket != "" {
		sock := o.UnixSocket
		c.transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
	}
	c.client = &http.Client{
		Transport: c.transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return &redirectError{fmt.Sprintf("stopped after %d redirects (at %s)", MaxRedirects, redact(req.URL.String()))}
			}
			if req.URL.Scheme == "http" && via[len(via)-1].URL.Scheme == "https" {
				return &redirectError{"redirect from https to http refused (to " + redact(req.URL.String()) + ")"}
			}
			return nil
		},
	}
	return c, nil
}

func buildTLS(o Options) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         o.TLSServerName,
		InsecureSkipVerify: o.TLSSkipVerify, //nolint:gosec // operator's explicit choice
		MinVersion:         tls.VersionTLS12,
	}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-ca-file %s: %w", o.TLSCAFile, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca-file %s: no PEM certificate found", o.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.TLSCertFile != "" && o.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls-cert-file %s, tls-key-file %s: %v", o.TLSCertFile, o.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.TLSCertFile != "":
		return nil, fmt.Errorf("tls-cert-file %s is set without tls-key-file", o.TLSCertFile)
	case o.TLSKeyFile != "":
		return nil, fmt.Errorf("tls-key-file %s is set without tls-cert-file", o.TLSKeyFile)
	}
	return cfg, nil
}

func defaultUserAgent() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "statspipe/" + v
}

// HeaderWriter is a body writer that wants the response's status and headers first: when the
// w given to Fetch implements it, WriteHeader is called once a 2xx response has arrived, before
// the first body byte (Bytes, WireBytes and Duration are not known yet). An error ends the fetch
// with it, and w gets no body. A parser that dispatches on the Content-Type uses it.
type HeaderWriter interface {
	io.Writer
	WriteHeader(Result) error
}

// CloseIdle closes the kept-alive connections, e.g. when the source is dropped or reconfigured.
func (c *Client) CloseIdle() { c.transport.CloseIdleConnections() }

// Fetch GETs url and streams the body, decompressed, into w. See the package comment for
// redirects, statuses and encodings. Errors are one line starting with "GET <url>: ".
func (c *Client) Fetch(ctx context.Context, url string, w io.Writer) (Result, error) {
	start := time.Now()
	res := Result{URL: url}
	shown := redact(url)
	if strings.ContainsFunc(shown, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		shown = strconv.Quote(shown) // keep the error on one line
	}
	fail := func(err error) (Result, error) {
		return res, fmt.Errorf("GET %s: %w", shown, err)
	}

	fctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errFetchTimeout)
	defer cancel()
	var gotConn atomic.Bool
	fctx = httptrace.WithClientTrace(fctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, url, nil)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(fmt.Errorf("invalid URL: %s", oneLine(err.Error())))
	}
	if err := c.prepare(req); err != nil {
		return fail(err)
	}

	resp, err := c.client.Do(req)
	if err != nil {
		phase := "connecting"
		if gotConn.Load() {
			phase = "waiting for the response headers"
		}
		return fail(c.describe(ctx, fctx, phase, err))
	}
	defer resp.Body.Close()
	res.URL = redact(resp.Request.URL.String())
	res.Status = resp.StatusCode
	res.ContentType = resp.Header.Get("Content-Type")
	res.ContentEncoding = resp.Header.Get("Content-Encoding")

	wire := &countingReader{r: resp.Body}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		serr := &StatusError{Status: resp.StatusCode, Snippet: snippet(wire, res.ContentEncoding)}
		res.WireBytes = wire.n
		res.Duration = time.Since(start)
		return fail(serr)
	}

	var body io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(res.ContentEncoding)); enc {
	case "", "identity":
		if resp.ContentLength > c.maxBody {
			return fail(&TooLargeError{Limit: c.maxBody, ContentLength: resp.ContentLength})
		}
		wire.limit = c.maxBody + 1 // one byte over tells "too large" from "exactly the limit"
		body = wire
	case "gzip", "x-gzip":
		wire.limit = 2*c.maxBody + 1
		zr, err := getGzipReader(wire)
		if err != nil {
			res.WireBytes = wire.n
			if wire.err == nil && fctx.Err() == nil {
				return fail(fmt.Errorf("gzip: %s", trimGzip(err)))
			}
			return fail(c.bodyError(ctx, fctx, wire, "reading the body: "+oneLine(err.Error())))
		}
		defer gzipReaders.Put(zr)
		body = zr
	default:
		return fail(fmt.Errorf("unsupported Content-Encoding %q", res.ContentEncoding))
	}

	if hw, ok := w.(HeaderWriter); ok {
		if err := hw.WriteHeader(res); err != nil {
			res.Duration = time.Since(start)
			return fail(err)
		}
	}
	n, rerr, werr := copyBounded(w, body, c.maxBody)
	res.Bytes = n
	res.WireBytes = wire.n
	res.Duration = time.Since(start)
	switch {
	case werr != nil:
		return fail(fmt.Errorf("writing the body after %d bytes: %s", n, oneLine(werr.Error())))
	case rerr == errBodyTooLarge:
		return fail(&TooLargeError{Limit: c.maxBody, ContentLength: -1})
	case rerr != nil:
		if body != io.Reader(wire) && wire.err == nil && fctx.Err() == nil {
			// The connection was fine, so the gzip stream itself is bad.
			return fail(fmt.Errorf("gzip: %s after %d bytes", trimGzip(rerr), n))
		}
		return fail(c.bodyError(ctx, fctx, wire, fmt.Sprintf("reading the body after %d bytes: %s", n, oneLine(rerr.Error()))))
	}
	return res, nil
}

// prepare sets the headers of one request, reading the secret files.
func (c *Client) prepare(req *http.Request) error {
	h := req.Header
	h.Set("User-Agent", c.userAgent)
	h.Set("Accept-Encoding", "gzip")
	if c.opts.Accept != "" {
		h.Set("Accept", c.opts.Accept)
	}
	for _, kv := range c.headers {
		h[kv[0]] = append(h[kv[0]], kv[1])
	}
	if c.hostHdr != "" {
		req.Host = c.hostHdr
	}
	if c.opts.BasicAuthUser != "" {
		var pw string
		if c.opts.BasicAuthPasswordFile != "" {
			var err error
			if pw, err = readSecret("basic-auth-password-file", c.opts.BasicAuthPasswordFile); err != nil {
				return err
			}
		}
		req.SetBasicAuth(c.opts.BasicAuthUser, pw)
	}
	if c.opts.BearerTokenFile != "" {
		tok, err := readSecret("bearer-token-file", c.opts.BearerTokenFile)
		if err != nil {
			return err
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// readSecret reads a small password or token file and trims its trailing newline.
func readSecret(option, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", option, path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", option, path, err)
	}
	if len(b) > MaxSecretFileSize {
		return "", fmt.Errorf("%s %s: larger than %d bytes", option, path, MaxSecretFileSize)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s %s: more than one line", option, path)
	}
	return s, nil
}

// describe turns an error of client.Do into one line naming what failed.
func (c *Client) describe(parent, fctx context.Context, phase string, err error) error {
	if ctxErr := c.ctxError(parent, fctx, phase); ctxErr != nil {
		return ctxErr
	}
	var re *redirectError
	if errors.As(err, &re) {
		return re
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		msg := oneLine(op.Err.Error())
		if c.opts.UnixSocket != "" {
			return fmt.Errorf("connect to unix socket %s: %s", c.opts.UnixSocket, strings.TrimPrefix(msg, "connect: "))
		}
		if !strings.HasPrefix(msg, "connect: ") && !strings.HasPrefix(msg, "lookup ") {
			msg = "connect: " + msg
		}
		return errors.New(msg)
	}
	// url.Error repeats the method and the URL; keep what is under it.
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	msg := oneLine(err.Error())
	if strings.HasPrefix(msg, "tls: ") {
		return errors.New(msg) // already says it is the handshake
	}
	return fmt.Errorf("%s: %s", phase, msg)
}

// bodyError is a failure while reading the body: our timeout, the caller's ctx, the wire bound,
// or what the connection said.
func (c *Client) bodyError(parent, fctx context.Context, wire *countingReader, msg string) error {
	if err := c.ctxError(parent, fctx, "reading the body"); err != nil {
		return err
	}
	if wire.exceeded {
		return &TooLargeError{Limit: c.maxBody, ContentLength: -1, Wire: true}
	}
	return errors.New(msg)
}

// ctxError reports fctx being done: as a *TimeoutError when our own timeout fired, or as the
// caller's ctx error (which errors.Is finds).
func (c *Client) ctxError(parent, fctx context.Context, phase string) error {
	if fctx.Err() == nil {
		return nil
	}
	if context.Cause(fctx) == errFetchTimeout {
		return &TimeoutError{After: c.timeout, Phase: phase}
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%s: %w", phase, perr)
	}
	return nil
}

var errBodyTooLarge = errors.New("body too large")

// copyBounded copies src to dst through a pooled buffer, at most limit bytes; a byte more is
// errBodyTooLarge. It reports read and write errors apart.
func copyBounded(dst io.Writer, src io.Reader, limit int64) (n int64, rerr, werr error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	empty := 0
	for {
		want := int64(len(buf))
		if left := limit + 1 - n; left < want {
			want = left
		}
		nr, err := src.Read(buf[:want])
		if nr == 0 && err == nil {
			// Readers may return nothing now and then, but not forever (io.Copy's rule).
			if empty++; empty >= 100 {
				return n, io.ErrNoProgress, nil
			}
			continue
		}
		empty = 0
		if nr > 0 {
			if n+int64(nr) > limit {
				// Write what fits, so the writer ends at exactly the limit.
				fit := limit - n
				if fit > 0 {
					wn, _ := dst.Write(buf[:fit])
					n += int64(wn)
				}
				return n, errBodyTooLarge, nil
			}
			wn, werr := dst.Write(buf[:nr])
			n += int64(wn)
			if werr == nil && wn != nr {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return n, nil, werr
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// countingReader counts the bytes read off the connection and bounds them; past the limit it
// fails (exceeded) instead of reading on.
type countingReader struct {
	r        io.Reader
	n        int64
	limit    int64 // 0: none
	exceeded bool
	err      error // the last error other than io.EOF, from the connection or the bound
}

var errWireTooLarge = errors.New("wire body too large")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 {
		left := c.limit - c.n
		if left <= 0 {
			c.exceeded = true
			c.err = errWireTooLarge
			return 0, c.err
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func getGzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(r); err != nil {
			gzipReaders.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

// trimGzip drops the "gzip: " that compress/gzip puts in front of its own errors.
func trimGzip(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "truncated stream"
	}
	return strings.TrimPrefix(oneLine(err.Error()), "gzip: ")
}

// snippet reads the start of an error reply for StatusError, decompressing gzip when it can,
// and drains a little more so the connection may be reused.
func snippet(wire *countingReader, encoding string) string {
	wire.limit = drainSize
	var buf [SnippetSize]byte
	var n int
	var r io.Reader = wire
	if e := strings.ToLower(strings.TrimSpace(encoding)); e == "gzip" || e == "x-gzip" {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return ""
		}
		r = zr
	}
	n, _ = io.ReadFull(r, buf[:])
	_, _ = io.Copy(io.Discard, wire)
	return sanitize(buf[:n])
}

// sanitize makes b printable on one line: control characters and invalid UTF-8 become spaces,
// runs of spaces collapse, and a rune cut at the end is dropped.
func sanitize(b []byte) string {
	var sb strings.Builder
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 && !utf8.FullRune(b) {
			break
		}
		b = b[size:]
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || r == ' ' || (r >= 0x80 && r < 0xa0) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return sb.String()
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// redact hides a password in a URL's user info (errors and Result.URL end up in logs).
func redact(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	u, err := parseHTTPURL(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func checkHeaderValue(what, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%s: control character in value", what)
		}
	}
	return nil
}
