package openmetrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/promtext"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

// The pull half: every round, each instance's body is streamed into <instance>.body (as
// received, decompressed) and, through a pipe, into the parser, which checks it on the way: a
// body that does not parse (an OpenMetrics body without its final "# EOF" is a truncated one)
// fails the instance, like a refused connection, so a snapshot holds only bodies that parse.
// <instance>.meta.json records the URL, content type, status, duration and sizes.

type provider struct {
	info    pull.ProviderInfo
	targets []httpfetch.Target
	client  *httpfetch.Client
	log     *slog.Logger
}

func newProvider(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	st, ok := src.Settings.(pullSettings)
	if !ok {
		return nil, errors.New("source was not validated for stats-pull")
	}
	c, err := httpfetch.New(st.fetch)
	if err != nil {
		return nil, err
	}
	p := &provider{info: sources.Info(src), client: c, log: log}
	p.targets = st.targets
	return p, nil
}

func (p *provider) Info() pull.ProviderInfo { return p.info }

func (p *provider) Sources(context.Context) ([]pull.Source, error) {
	out := make([]pull.Source, len(p.targets))
	for i, t := range p.targets {
		out[i] = &instance{p: p, target: t}
	}
	return out, nil
}

type instance struct {
	p      *provider
	target httpfetch.Target
}

func (in *instance) Name() string { return in.target.Name }

// bodyBuffer is the write buffer in front of the body file: the file's writes are not buffered.
const bodyBuffer = 64 << 10

func (in *instance) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	body, err := snap.Create(in.target.Name + spool.BodySuffix)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(body, bodyBuffer)
	check := newChecker()
	res, err := in.p.client.Fetch(ctx, in.target.URL, &teeWriter{file: bw, check: check})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := check.finish(); err == nil && cerr != nil {
		err = fmt.Errorf("GET %s: the body does not parse (%s): %w", in.target.URL, check.format, cerr)
	}
	if err != nil {
		return err // the loop removes the uncommitted file
	}
	if err := body.Commit(); err != nil {
		return err
	}
	meta, err := snap.Create(in.target.Name + spool.MetaSuffix)
	if err != nil {
		return err
	}
	if err := spool.WriteJSON(meta, spool.InstanceMeta{
		Instance:        in.target.Name,
		URL:             res.URL,
		ContentType:     res.ContentType,
		ContentEncoding: res.ContentEncoding,
		Status:          res.Status,
		DurationSeconds: res.Duration.Seconds(),
		Bytes:           res.Bytes,
		WireBytes:       res.WireBytes,
	}); err != nil {
		return err
	}
	return meta.Commit()
}

// teeWriter writes the body to the file and to the checker, which learns the format from the
// response headers (httpfetch.HeaderWriter) before the first byte.
type teeWriter struct {
	file  io.Writer
	check *checker
}

func (t *teeWriter) WriteHeader(res httpfetch.Result) error {
	f, err := promtext.FormatOf(res.ContentType)
	if err != nil {
		return err
	}
	t.check.start(f)
	return nil
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if _, err := t.file.Write(b); err != nil {
		return 0, err
	}
	t.check.write(b)
	return len(b), nil
}

// checker parses a body as it streams by, in its own goroutine, through a pipe. After a parse
// error it keeps draining the pipe, so the fetch never blocks on it.
type checker struct {
	format promtext.Format
	pw     *io.PipeWriter
	done   chan error
}

func newChecker() *checker { return &checker{} }

// parsers are reused across instances and rounds: a parser owns a read buffer and its tables.
var parsers = sync.Pool{New: func() any { return promtext.NewParser(0) }}

func (c *checker) start(f promtext.Format) {
	c.format = f
	pr, pw := io.Pipe()
	c.pw, c.done = pw, make(chan error, 1)
	go func() {
		p := parsers.Get().(*promtext.Parser)
		err := p.Parse(pr, f, func(*sample.Sample) error { return nil })
		parsers.Put(p)
		_, _ = io.Copy(io.Discard, pr)
		c.done <- err
	}()
}

func (c *checker) write(b []byte) {
	if c.pw != nil {
		_, _ = c.pw.Write(b)
	}
}

// finish ends the body and returns the parser's verdict (nil when the fetch never started a
// body: the fetch error says why).
func (c *checker) finish() error {
	if c.pw == nil {
		return nil
	}
	c.pw.Close()
	return <-c.done
}
