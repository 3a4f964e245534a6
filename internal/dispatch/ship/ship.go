// Package ship sends an edge host's raw spool snapshots to a Kafka topic for the central tier
// (issue 12), and reassembles them on the consuming side (Assembler).
//
// # Framing (a wire contract between edges and central consumers)
//
// A snapshot is one spool.Pack archive (a tar stream whose first entry, statspipe-edge.json,
// names the edge host). The archive is cut into fragments of at most batch-max-bytes − 16 KiB
// (at least 64 KiB), so that a record fits the producer's batch and the broker's
// message.max.bytes; each fragment is one record:
//
//	key                 the edge's host name (the same for every fragment, so that the default
//	                    key-hash partitioner puts every fragment of a host on one partition,
//	                    in order)
//	value               the fragment's bytes; the archive is the values of fragments 1..n
//	                    concatenated
//	statspipe-snapshot  "<host>/<snapshot directory name>", e.g. "lb1.example.com/1700000000"
//	statspipe-fragment  "<i>/<n>": this is fragment i of n, 1-based, plain decimal
//	statspipe-format    "1"; a consumer refuses any other value
//
// Fragments of one snapshot are produced in order to one partition; fragments of several
// snapshots of one host may interleave there (several workers ship at once). A snapshot
// counts as shipped (done(nil)) only once Kafka acknowledged every fragment with acks=all;
// otherwise it stays in the spool and is shipped again whole later, so a consumer may see a
// snapshot's first fragments twice (it restarts the snapshot at a repeated fragment 1) and
// may see a whole snapshot twice (at-least-once delivery: processing it twice is harmless, a
// line being identified by path and timestamp).
//
// # Consuming
//
// A consumer feeds every record to an Assembler (Add), which returns an Archive once its last
// fragment arrives; it then checks that spool.Unpack's Edge names the same host and snapshot
// as the headers. It commits a partition no further than Assembler.Oldest (the first fragment
// of a snapshot still partial), skips or quarantines the records an *Error lists, calls Drop
// for a revoked partition and Expire for snapshots left partial too long (an edge that gave
// one up after some fragments reached Kafka). If the topic's partition count changes while a
// snapshot is being shipped, its fragments may land on two partitions: the consumer then sees
// an ErrOrder error on one and an abandoned partial snapshot on the other; the edge ships it
// again only if it failed, so such a snapshot can be lost to the central tier.
package ship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/dispatch/kafka"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/spool"
)

// The record headers of the framing.
const (
	HeaderSnapshot = "statspipe-snapshot"
	HeaderFragment = "statspipe-fragment"
	HeaderFormat   = "statspipe-format"
	// Format is the only statspipe-format value written and read.
	Format = "1"
)

const (
	// DefaultMaxArchiveBytes bounds one packed snapshot.
	DefaultMaxArchiveBytes = 256 << 20
	// recordOverhead is left free in a batch for the key, headers and record framing.
	recordOverhead = 16 << 10
	minFragment    = 64 << 10
)

// Options are what New needs besides the [kafka] section.
type Options struct {
	// Host is the edge's host name: written into every archive and used as the record key.
	Host string
	// MaxArchiveBytes bounds a packed snapshot; 0 means DefaultMaxArchiveBytes.
	MaxArchiveBytes int
	// Extra are kgo options appended last (tests: quicker metadata refresh and retries).
	Extra []kgo.Opt
}

// Dispatcher ships snapshots; it implements dispatch.SnapshotShipper.
type Dispatcher struct {
	cl       *kgo.Client
	host     string
	key      []byte
	fragment int
	maxBytes int
	// timeout: a snapshot not acknowledged for this long fails even when franz-go cannot fail
	// its records (a request in flight on a broken connection); 1.5 × delivery-timeout, so
	// franz-go's own timeout comes first whenever it can.
	timeout time.Duration
	log     *slog.Logger
	units   kafka.Units
	failLog kafka.FailureLog
}

var _ dispatch.SnapshotShipper = (*Dispatcher)(nil)

// New builds the dispatcher for cfg (cfg.RecordKey is ignored: the key is always o.Host).
// Connecting to the brokers happens in the background.
func New(cfg config.Kafka, o Options, log *slog.Logger) (*Dispatcher, error) {
	if o.Host == "" {
		return nil, errors.New("ship: no host name")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	frag := min(cfg.BatchMaxBytes, cfg.MaxBufferedBytes) - recordOverhead
	if cfg.MaxBufferedBytes <= 0 {
		frag = cfg.BatchMaxBytes - recordOverhead
	}
	d := &Dispatcher{host: o.Host, key: []byte(o.Host), fragment: max(frag, minFragment),
		maxBytes: o.MaxArchiveBytes, timeout: (cfg.DeliveryTimeout + cfg.Linger) * 3 / 2, log: log}
	if d.maxBytes <= 0 {
		d.maxBytes = DefaultMaxArchiveBytes
	}
	opts, err := kafka.ProducerOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.WithHooks(kafka.NewReconnectHook(d.units.Metrics)))
	d.cl, err = kgo.NewClient(append(opts, o.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("ship: %w", err)
	}
	return d, nil
}

// Name implements dispatch.Dispatcher.
func (d *Dispatcher) Name() string { return "ship" }

// ShipsSnapshots implements dispatch.SnapshotShipper.
func (d *Dispatcher) ShipsSnapshots() {}

// SetMetrics makes the dispatcher count, in m, the archive bytes of every snapshot Kafka
// acknowledged (as bytes; no lines: none are shipped), every snapshot that failed, and
// connections made again after one closed.
func (d *Dispatcher) SetMetrics(m *selfmetrics.Dispatcher) { d.units.SetMetrics(m) }

func (d *Dispatcher) logFailure(source string, err error) {
	ok, n := d.failLog.Allow()
	if !ok {
		return
	}
	d.log.Warn("snapshot not shipped", "source", source, "err", err.Error(), "suppressed", n)
}

// shipment is the Unit of one snapshot's fragments.
type shipment struct {
	kafka.Unit
	d      *Dispatcher
	source string
	buf    *archiveBuf // the archive the records point into
	size   int         // len(buf.b), kept for Delivered as buf is released first
}

// Submit implements dispatch.Dispatcher. A chunk that is not Last is answered at once (its
// lines are not shipped). The Last one's Source is packed and produced as fragments, blocking
// while the producer holds max-buffered-records or max-buffered-bytes (back-pressure); done
// is called once Kafka acknowledged every fragment (nil) or with the first error.
func (d *Dispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	if err := d.units.Admit(ctx); err != nil {
		return err
	}
	if !b.Last {
		d.units.Done()
		done(nil)
		return nil
	}

	buf := getArchiveBuf(d.maxBytes)
	if err := spool.Pack(buf, b.Source, d.host); err != nil {
		putArchiveBuf(buf)
		err = d.packError(b.Source, err)
		d.units.Failed()
		d.logFailure(b.Source, err)
		d.units.Done()
		done(err)
		return nil
	}

	data := buf.b
	n := (len(data) + d.fragment - 1) / d.fragment
	s := &shipment{d: d, source: b.Source, buf: buf, size: len(data)}
	rctx := s.Begin(ctx, &d.units, s, done)
	snapshot := []byte(d.host + "/" + filepath.Base(b.Source))
	format := []byte(Format)
	recs := make([]kgo.Record, n)
	for i := 0; i < n && rctx.Err() == nil; i++ {
		end := min(len(data), (i+1)*d.fragment)
		recs[i] = kgo.Record{Key: d.key, Value: data[i*d.fragment : end], Headers: []kgo.RecordHeader{
			{Key: HeaderSnapshot, Value: snapshot},
			{Key: HeaderFragment, Value: []byte(strconv.Itoa(i+1) + "/" + strconv.Itoa(n))},
			{Key: HeaderFormat, Value: format},
		}}
		if s.Failing() {
			// A fragment after a failed one is of no use to a consumer: the snapshot is
			// shipped again whole.
			break
		}
		s.Add()
		d.cl.Produce(rctx, &recs[i], s.Settle)
	}
	return s.End(ctx, d.timeout)
}

// The shipment's kafka.Owner methods: the archive is released once franz-go is done with every
// record; a shipped snapshot counts its archive's bytes and no lines (none are shipped).
func (s *shipment) Release()                            { putArchiveBuf(s.buf) }
func (s *shipment) Delivered(m *selfmetrics.Dispatcher) { m.Delivered(0, s.size) }
func (s *shipment) LogFailure(err error)                { s.d.logFailure(s.source, err) }
func (s *shipment) Describe(err error) error {
	return kafka.DescribeRecordError(err,
		"ship: kafka refuses a fragment of snapshot "+s.source+" (is batch-max-bytes above the topic's max.message.bytes?)",
		"ship: snapshot "+s.source+" not acknowledged within delivery-timeout", "ship: snapshot "+s.source)
}

func (s *shipment) Expired() error {
	return fmt.Errorf("ship: snapshot %s not acknowledged within %s: %w", s.source, s.d.timeout, kgo.ErrRecordTimeout)
}

// packError classifies a Pack failure: a snapshot too large or not a safe snapshot directory
// cannot get better (Rejected); anything else (a read error, the directory gone) is retried.
func (d *Dispatcher) packError(source string, err error) error {
	var unsafe *spool.UnsafeError
	switch {
	case errors.Is(err, errTooLarge):
		return kafka.Reject(fmt.Errorf("ship: snapshot %s packs into more than %d bytes (the archive limit)", source, d.maxBytes))
	case errors.As(err, &unsafe):
		return kafka.Reject(fmt.Errorf("ship: snapshot %s: %w", source, err))
	}
	return fmt.Errorf("ship: packing snapshot %s: %w", source, err)
}

// Close implements dispatch.Dispatcher: it flushes what the producer holds until ctx ends,
// then fails the rest (done(err)) and closes the connections.
func (d *Dispatcher) Close(ctx context.Context) error {
	if n, flushErr := d.units.Close(ctx, d.cl); n > 0 || flushErr != nil {
		return fmt.Errorf("ship: %d snapshots not acknowledged when closing", n)
	}
	return nil
}

// errTooLarge is what an archiveBuf returns past its limit.
var errTooLarge = errors.New("archive too large")

// archiveBuf is an io.Writer into a reusable byte slice that refuses to grow past limit.
type archiveBuf struct {
	b     []byte
	limit int
}

func (w *archiveBuf) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.limit {
		return 0, errTooLarge
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// archiveBufs keeps archive buffers for reuse, so that a steady stream of snapshots of
// similar size allocates none; the pool drops them at garbage collections.
var archiveBufs sync.Pool

func getArchiveBuf(limit int) *archiveBuf {
	w, _ := archiveBufs.Get().(*archiveBuf)
	if w == nil {
		w = &archiveBuf{}
	}
	w.b, w.limit = w.b[:0], limit
	return w
}

func putArchiveBuf(w *archiveBuf) { archiveBufs.Put(w) }
