package httpsource

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/spool"
)

// The pull half: every round, each instance's body is streamed into <instance>.body (as
// received, decompressed) and, through a pipe, into the kind's check, which parses it on the
// way: a body that does not parse fails the instance, like a refused connection, so a snapshot
// holds only bodies that parse. <instance>.meta.json records the URL, content type, status,
// duration and sizes.

// Check starts checking one body, once the response's status and headers are known: the
// returned function gets the body and returns the verdict. An error refuses the body at once
// (an unknown media type). A nil Check accepts every 2xx body.
type Check func(res httpfetch.Result) (func(body io.Reader) error, error)

// FetchSettings is implemented by what a kind's CheckPull stores in config.Source.Settings.
type FetchSettings interface {
	FetchSettings() Fetch
}

// FetchSettings makes Fetch its own settings.
func (f Fetch) FetchSettings() Fetch { return f }

// Provider returns the sources.Kind.NewProvider of a kind whose pull half is this package's:
// every target fetched and its body checked by check.
func Provider(check Check) func(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
	return func(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
		st, ok := src.Settings.(FetchSettings)
		if !ok {
			return nil, errors.New("source was not validated for stats-pull")
		}
		return NewProvider(src, st.FetchSettings(), check, log)
	}
}

type provider struct {
	info    pull.ProviderInfo
	targets []httpfetch.Target
	client  *httpfetch.Client
	check   Check
	log     *slog.Logger
}

// NewProvider returns the pull half of a source: f's targets fetched with f's client options,
// each body checked by check.
func NewProvider(src *config.Source, f Fetch, check Check, log *slog.Logger) (pull.Provider, error) {
	c, err := httpfetch.New(f.Client)
	if err != nil {
		return nil, err
	}
	return &provider{info: sources.Info(src), targets: f.Targets, client: c, check: check, log: log}, nil
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
	return PullBody(ctx, snap, in.p.client, in.target.Name, in.target.URL, in.p.check, nil)
}

// PullBody fetches url with client into snap as the instance name: <name>.body, streamed as
// received (decompressed) and checked on the way by check, then <name>.meta.json, with the
// Extra that extra (if not nil) returns once the body is in. An error leaves the files
// uncommitted, for the pull loop to remove. Kinds with their own discovery (Scope) use it for
// each instance they find.
func PullBody(ctx context.Context, snap pull.SnapshotWriter, client *httpfetch.Client, name, url string,
	check Check, extra func() map[string]string) error {
	body, err := snap.Create(name + spool.BodySuffix)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(body, bodyBuffer)
	tee := &teeWriter{file: bw, check: check}
	res, err := client.Fetch(ctx, url, tee)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tee.finish(); err == nil && cerr != nil {
		err = fmt.Errorf("GET %s: the body does not parse: %w", url, cerr)
	}
	if err != nil {
		return err
	}
	if err := body.Commit(); err != nil {
		return err
	}
	meta, err := snap.Create(name + spool.MetaSuffix)
	if err != nil {
		return err
	}
	m := spool.InstanceMeta{
		Instance:        name,
		URL:             res.URL,
		ContentType:     res.ContentType,
		ContentEncoding: res.ContentEncoding,
		Status:          res.Status,
		DurationSeconds: res.Duration.Seconds(),
		Bytes:           res.Bytes,
		WireBytes:       res.WireBytes,
	}
	if extra != nil {
		m.Extra = extra()
	}
	if err := spool.WriteJSON(meta, m); err != nil {
		return err
	}
	return meta.Commit()
}

// teeWriter writes the body to the file and, through a pipe, to the check, started from the
// response headers (httpfetch.HeaderWriter) before the first byte. After a failed check the
// pipe is drained, so the fetch never blocks on it.
type teeWriter struct {
	file  io.Writer
	check Check
	pw    *io.PipeWriter
	done  chan error
}

func (t *teeWriter) WriteHeader(res httpfetch.Result) error {
	if t.check == nil {
		return nil
	}
	run, err := t.check(res)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	t.pw, t.done = pw, make(chan error, 1)
	go func() {
		err := run(pr)
		_, _ = io.Copy(io.Discard, pr)
		t.done <- err
	}()
	return nil
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if _, err := t.file.Write(b); err != nil {
		return 0, err
	}
	if t.pw != nil {
		_, _ = t.pw.Write(b)
	}
	return len(b), nil
}

// finish ends the body and returns the check's verdict (nil when no body was started: the
// fetch error says why).
func (t *teeWriter) finish() error {
	if t.pw == nil {
		return nil
	}
	t.pw.Close()
	return <-t.done
}
