// Package kafka delivers Graphite plaintext lines to a Kafka topic with franz-go (kgo): the
// [kafka] dispatcher.
//
// Framing. Every record value is Graphite plaintext, each line "path value timestamp\n" with
// its newline, so a consumer that parses values as lines (go-carbon's Kafka receiver with
// parse-protocol = "plain", which rejects a value whose last line has no '\n' as an
// "unfinished line"; kcat -C printing values one per line) reads them as carbon would:
//   - record-key = path: one record per line, keyed by the line's metric path. The default
//     partitioner hashes the key (Kafka's murmur2), so one series always lands on one
//     partition (ordered per series) and the series spread evenly over the partitions.
//   - record-key = series: as path, keyed by the path without its host component (the
//     <rest> of <namespace>.<host>.<rest>), so every host's line of one series lands on one
//     partition: the central tier's line-topic, whose consumers aggregate across hosts.
//   - record-key = host: one record per chunk (many lines, up to 256 KiB), keyed by the host
//     prefix (<namespace>.<host>). Far fewer records, so cheaper for producer, broker and
//     consumer; a host's lines stay ordered, but one host's lines all go to one partition.
//
// Delivery rule. The producer is franz-go's idempotent producer with acks=all: a chunk's done
// is called with nil only once Kafka acknowledged every record of it from every in-sync
// replica. While brokers are down franz-go retries; a record not acknowledged within
// delivery-timeout fails its chunk (done(err)), which keeps the snapshot in the spool to be
// processed again later. Delivery is therefore at-least-once: a snapshot that failed on one
// record is sent again whole, so consumers may see some lines twice (a line is identified by
// path and timestamp, so storing it twice is harmless).
package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// maxSecretFileSize bounds sasl-password-file, as the project's other secret files.
const maxSecretFileSize = 64 << 10

// Dispatcher produces chunks to one topic. It implements dispatch.Dispatcher.
type Dispatcher struct {
	cl *kgo.Client
	// timeout: a chunk not acknowledged for this long fails even when franz-go cannot fail its
	// records (see Unit.End); 1.5 × delivery-timeout, so that franz-go's own timeout, which
	// fails every record buffered for the partition, comes first whenever it can.
	timeout  time.Duration
	topic    string
	byHost   bool
	bySeries bool   // record-key = series: the path without the host component
	nsDot    []byte // "<namespace>."
	hostKey  []byte
	log      *slog.Logger
	units    Units
	failLog  FailureLog
}

// logFailure logs a failed chunk, at most once a minute with the number suppressed.
func (d *Dispatcher) logFailure(b *metric.Batch, err error) {
	ok, n := d.failLog.Allow()
	if !ok {
		return
	}
	d.log.Warn("chunk not delivered; the snapshot stays in the spool", "source", b.Source, "seq", b.Seq,
		"err", err.Error(), "suppressed", n)
}

// Options are what New needs besides the [kafka] section.
type Options struct {
	// HostKey is the record key with record-key = host: the host prefix of the lines
	// (<namespace>.<host>, as metric.HostPrefix builds it).
	HostKey string
	// Namespace is the lines' namespace (metric.Namespace): with record-key = series the
	// component after it, the host, is left out of the key.
	Namespace string
	// Extra are kgo options appended last (tests: quicker metadata refresh and retries).
	Extra []kgo.Opt
}

// New builds the dispatcher. It reads the TLS files and checks the password file now, so
// that a mistake fails at start; connecting to the brokers happens in the background.
func New(cfg config.Kafka, o Options, log *slog.Logger) (*Dispatcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{timeout: (cfg.DeliveryTimeout + cfg.Linger) * 3 / 2, topic: cfg.Topic, byHost: cfg.RecordKey == "host",
		bySeries: cfg.RecordKey == "series", nsDot: []byte(o.Namespace + "."), hostKey: []byte(o.HostKey + "."), log: log}
	opts, err := ProducerOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.WithHooks(NewReconnectHook(d.units.Metrics)))
	opts = append(opts, o.Extra...)
	d.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return d, nil
}

// ProducerOptions are the kgo options of a producer for cfg: ConnOptions, then acks=all with
// the idempotent producer, compression, batching, buffering and the delivery timeout. The
// snapshot shipper uses them too.
func ProducerOptions(cfg config.Kafka) ([]kgo.Opt, error) {
	var codec kgo.CompressionCodec
	switch cfg.Compression {
	case "none", "":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("kafka: unknown compression %q", cfg.Compression)
	}
	opts, err := ConnOptions(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		// acks=all with the idempotent producer (franz-go's default, so no
		// DisableIdempotentWrite): no loss on a leader change, no duplicates from retries.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec, kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(int32(cfg.BatchMaxBytes)),
		kgo.ProducerLinger(cfg.Linger),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		// franz-go applies a batch's timeout from its first record, lingering included.
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout+cfg.Linger),
		// The topic must exist: a typo is retried, then fails with the delivery timeout.
		kgo.UnknownTopicRetries(-1),
	), nil
}

// ConnOptions are the kgo options that reach cfg's brokers: seeds, client id, TLS and SASL
// (producers and consumers alike). It reads the TLS files and checks the password file now.
func ConnOptions(cfg config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID)}
	if cfg.TLS {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if cfg.SASLMechanism != "" {
		m, err := saslMechanism(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func tlsConfig(cfg config.Kafka) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka ca-file %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka cert-file/key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	// An empty ServerName: kgo sets each broker's own host name at every dial.
	return tc, nil
}

// saslMechanism reads the password file at every authentication, so it can be rotated.
func saslMechanism(cfg config.Kafka) (sasl.Mechanism, error) {
	if _, err := readSecret(cfg.SASLPasswordFile); err != nil {
		return nil, err
	}
	user, file := cfg.SASLUser, cfg.SASLPasswordFile
	switch cfg.SASLMechanism {
	case "PLAIN":
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			pw, err := readSecret(file)
			return plain.Auth{User: user, Pass: pw}, err
		}), nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		fn := func(context.Context) (scram.Auth, error) {
			pw, err := readSecret(file)
			return scram.Auth{User: user, Pass: pw}, err
		}
		if cfg.SASLMechanism == "SCRAM-SHA-256" {
			return scram.Sha256(fn), nil
		}
		return scram.Sha512(fn), nil
	}
	return nil, fmt.Errorf("kafka: unknown sasl-mechanism %q", cfg.SASLMechanism)
}

// readSecret reads a one-line secret file, its trailing newline trimmed.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sasl-password-file %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("sasl-password-file %s: %w", path, err)
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("sasl-password-file %s: larger than %d bytes", path, maxSecretFileSize)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("sasl-password-file %s: more than one line", path)
	}
	return s, nil
}

// SetMetrics makes the dispatcher count, in m, the lines and bytes of every chunk Kafka
// acknowledged, every chunk that failed, and connections made again after one closed.
func (d *Dispatcher) SetMetrics(m *selfmetrics.Dispatcher) { d.units.SetMetrics(m) }

// Name implements dispatch.Dispatcher.
func (d *Dispatcher) Name() string { return "kafka" }

// chunk is the Unit of one Submit.
type chunk struct {
	Unit
	d   *Dispatcher
	b   *metric.Batch
	buf *[]byte // the copy of b.Data the records point into
}

// Submit implements dispatch.Dispatcher. It hands the chunk's records to franz-go, blocking
// while the producer holds max-buffered-records or max-buffered-bytes (back-pressure); done
// is called once Kafka acknowledged every record (nil) or one of them failed.
func (d *Dispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := d.units.Admit(ctx); err != nil {
		return err
	}
	// The records point into a copy of the chunk: when Submit gives up half-way, the caller
	// reuses b.Data at once, while franz-go may still hold the records produced so far.
	buf := getBuf(len(b.Data))
	copy(*buf, b.Data)
	c := &chunk{d: d, b: b, buf: buf}
	rctx := c.Begin(ctx, &d.units, c, done)
	promise := c.Settle
	if d.byHost {
		c.Add()
		d.cl.Produce(rctx, &kgo.Record{Key: d.hostKey[:len(d.hostKey)-1], Value: *buf}, promise)
	} else {
		recs := make([]kgo.Record, 0, max(b.Lines, 1))
		data := *buf
		for len(data) > 0 && rctx.Err() == nil {
			n := bytes.IndexByte(data, '\n') + 1
			if n == 0 {
				n = len(data) // a chunk always ends with '\n'; be safe anyway
			}
			line := data[:n]
			data = data[n:]
			key := line
			if sp := bytes.IndexByte(line, ' '); sp >= 0 {
				key = line[:sp]
			}
			if d.bySeries {
				// Every host's line of one series gets the same key, so one partition (one
				// consumer of the central tier) sees all of them; the host is not always this
				// one's (the central tier writes its edges' lines).
				if rest, ok := bytes.CutPrefix(key, d.nsDot); ok {
					if dot := bytes.IndexByte(rest, '.'); dot >= 0 {
						key = rest[dot+1:]
					}
				}
			}
			recs = append(recs, kgo.Record{Key: key, Value: line})
			c.Add()
			d.cl.Produce(rctx, &recs[len(recs)-1], promise)
		}
	}
	return c.End(ctx, d.timeout)
}

// The chunk's Owner methods: its buffer is released once franz-go is done with every record.
func (c *chunk) Release()                            { putBuf(c.buf) }
func (c *chunk) Delivered(m *selfmetrics.Dispatcher) { m.Delivered(c.b.Lines, len(c.b.Data)) }
func (c *chunk) LogFailure(err error)                { c.d.logFailure(c.b, err) }
func (c *chunk) Describe(err error) error {
	return DescribeRecordError(err, "kafka refuses a record of the chunk", "kafka: not acknowledged within delivery-timeout", "kafka")
}

func (c *chunk) Expired() error {
	return fmt.Errorf("kafka: not acknowledged within delivery-timeout (%s): %w", c.d.timeout, kgo.ErrRecordTimeout)
}

// bufs holds chunk copies for reuse, so that a steady stream allocates none.
var bufs sync.Pool

func getBuf(n int) *[]byte {
	if p, _ := bufs.Get().(*[]byte); p != nil && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, max(n, metric.DefaultChunkSize))
	return &b
}

func putBuf(p *[]byte) { bufs.Put(p) }

// Close implements dispatch.Dispatcher: it flushes what the producer holds until ctx ends,
// then fails the rest (done(err)) and closes the connections.
func (d *Dispatcher) Close(ctx context.Context) error {
	if n, flushErr := d.units.Close(ctx, d.cl); n > 0 || flushErr != nil {
		return fmt.Errorf("kafka: %d chunks not acknowledged when closing", n)
	}
	return nil
}
