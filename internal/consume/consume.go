// Package consume is the central tier's Kafka consumer engine: instances in one consumer group
// share a topic's partitions, hand every record to a Handler in offset order, and commit a
// partition's offset only once the handler says the records before it are done. It never knows
// what the records mean.
//
// At-least-once: the offset committed for a partition is the largest next that the handler
// passed to done for the current assignment of that partition, so every record below a
// committed offset had its effect delivered. A record that is handled but not done when the
// consumer stops, crashes or loses the partition is consumed again by the next owner:
// duplicates are possible (and harmless downstream), loss is not.
//
// Start at the earliest offset: a group (or a partition) with no committed offset starts at the
// log start, and so does a committed offset that retention has already deleted, or a position
// the broker lost data under where kgo cannot tell where the loss began: nothing that is in
// the topic is skipped; the price is reading the retained log again (duplicates).
//
// Rebalances: Assigned, Handle and Revoked are never called concurrently (kgo's
// BlockRebalanceOnPoll: a rebalance waits until the records of the last poll are handled). When
// partitions are taken away, Revoked is called first (done calls made before it returns still
// count), then what is done is committed synchronously, before the partitions are given up;
// done calls after that, or for an older assignment of the partition, are ignored, and no commit
// ever names a partition this consumer does not own. Lost partitions (the group session
// expired, so another member may already own them) are not committed. A Handle that blocks for
// longer than the group's rebalance timeout gets this member thrown out of the group (its
// partitions lost, then rejoined): back-pressure must stay shorter than that.
package consume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/lograte"
)

const (
	defaultCommitInterval = time.Second
	// maxPollRecords bounds one poll: a rebalance waits for at most this many Handle calls.
	maxPollRecords = 1000
	// Fetch limits bound the memory of records fetched but not yet handled to about
	// maxConcurrentFetches × fetchMaxBytes (compressed; kgo's default is 50 MiB per broker,
	// unbounded in number); a batch larger than a limit is still returned whole, so a big
	// record never stalls consuming. A larger partition limit than kgo's 1 MiB made 256 KiB
	// records slower, not faster (BenchmarkConsume).
	fetchMaxBytes          = 16 << 20
	fetchMaxPartitionBytes = 1 << 20
	maxConcurrentFetches   = 3
	// commitTimeout bounds one commit (retried at the next interval), and so how long a
	// rebalance or a stop waits for a commit during a broker outage.
	commitTimeout = 10 * time.Second
	// leaveTimeout bounds leaving the group at stop (the final revoke and commit included).
	leaveTimeout = 2*commitTimeout + 5*time.Second
	// errorLogEvery is the least time between two log lines about one kind of error.
	errorLogEvery = 10 * time.Second
)

// Options configure a Consumer.
type Options struct {
	Conn  []kgo.Opt // how to reach the brokers: kafka.ConnOptions
	Topic string
	Group string
	// CommitInterval is how often done offsets are committed (default 1 s); they are also
	// committed when partitions are revoked and at stop.
	CommitInterval time.Duration
	Log            *slog.Logger // default slog.Default()
	// Extra are appended to the consumer's kgo options (tests: faster heartbeats, session
	// timeouts, retry backoff).
	Extra []kgo.Opt
}

// Record is one consumed record. The handler may keep it and its slices.
type Record struct {
	Partition  int32
	Offset     int64
	Key, Value []byte
	Headers    []kgo.RecordHeader
	Timestamp  time.Time
}

// Handler is what the records mean. Assigned, Handle and Revoked are never called concurrently.
type Handler interface {
	// Assigned: partition p is now this consumer's. done(next) says every record of p before
	// offset next is handled (its effect delivered); it may be called from any goroutine, any
	// number of times; a smaller next than before is ignored; calls after p is revoked (or for
	// an older assignment of p) are ignored. next must not exceed the last handled offset + 1.
	Assigned(p int32, done func(next int64))
	// Handle is called for every record, in offset order per partition, from one goroutine. It
	// may block (back-pressure) but must return when ctx ends.
	Handle(ctx context.Context, r *Record)
	// Revoked: these partitions are taken away (rebalance, lost, or stop). Called before their
	// final commit; the handler drops its state for them (records not done are consumed again
	// by the next owner).
	Revoked(ps []int32)
}

// Consumer is one member of a consumer group on one topic.
type Consumer struct {
	o       Options
	h       Handler
	log     *slog.Logger
	started atomic.Bool
	// stopping silences the broker error log while the client shuts its connections.
	stopping atomic.Bool

	// commitMu is held across every commit and every taking away of partitions, so that a
	// commit never names a partition that is being, or has been, revoked.
	commitMu sync.Mutex

	mu        sync.Mutex
	parts     map[int32]*partition // the current assignment
	committed map[int32]int64      // last offset this consumer committed, per partition

	logMu   sync.Mutex
	logWins map[string]*lograte.Window
}

// partition is one assignment of a partition to this consumer: a new one at every Assigned,
// so done calls for an older assignment land in an orphan and are ignored.
type partition struct {
	done atomic.Int64 // the largest next given to done; -1: none
	// guarded by Consumer.mu:
	committed int64        // the last next committed in this assignment; -1: none
	epochs    []epochStart // where the records' leader epoch changes, ascending
}

// epochStart: the records from offset on (up to the next epochStart) have leader epoch epoch.
type epochStart struct {
	offset int64
	epoch  int32
}

func (s *partition) markDone(next int64) {
	for {
		cur := s.done.Load()
		if next <= cur || s.done.CompareAndSwap(cur, next) {
			return
		}
	}
}

// epochAt is the leader epoch of the record at offset off, which a commit carries so that the
// next owner can detect a log truncated under it; -1 (no check) if off was never fetched.
func (s *partition) epochAt(off int64) int32 {
	i, found := slices.BinarySearchFunc(s.epochs, off, func(e epochStart, off int64) int {
		return cmp.Compare(e.offset, off)
	})
	if found {
		return s.epochs[i].epoch
	}
	if i == 0 {
		return -1
	}
	return s.epochs[i-1].epoch
}

// noteEpochs records the epoch changes of records about to be handled.
func (s *partition) noteEpochs(rs []*kgo.Record) {
	for _, r := range rs {
		if n := len(s.epochs); n == 0 || s.epochs[n-1].epoch != r.LeaderEpoch {
			s.epochs = append(s.epochs, epochStart{r.Offset, r.LeaderEpoch})
		}
	}
}

// forgetEpochs drops the epoch changes that no commit at or beyond next needs.
func (s *partition) forgetEpochs(next int64) {
	i := 0
	for i+1 < len(s.epochs) && s.epochs[i+1].offset <= next-1 {
		i++
	}
	s.epochs = s.epochs[i:]
}

// New checks the options; nothing connects before Run.
func New(o Options, h Handler) (*Consumer, error) {
	switch {
	case o.Topic == "":
		return nil, errors.New("consume: no topic")
	case o.Group == "":
		return nil, fmt.Errorf("consume: topic %s: no consumer group", o.Topic)
	case h == nil:
		return nil, fmt.Errorf("consume: topic %s group %s: no handler", o.Topic, o.Group)
	case o.CommitInterval < 0:
		return nil, fmt.Errorf("consume: topic %s group %s: negative commit interval %v", o.Topic, o.Group, o.CommitInterval)
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = defaultCommitInterval
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Consumer{o: o, h: h, log: o.Log.With("topic", o.Topic, "group", o.Group),
		parts: map[int32]*partition{}, committed: map[int32]int64{}, logWins: map[string]*lograte.Window{}}, nil
}

// Run consumes until ctx ends; then commits what is done, calls Revoked for every partition,
// leaves the group and returns nil. Its only error is a setup failure (or a second Run);
// broker outages are retried by kgo and logged at most once per errorLogEvery per kind.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return fmt.Errorf("consume: topic %s group %s: Run called twice", c.o.Topic, c.o.Group)
	}
	opts := slices.Concat(c.o.Conn, []kgo.Opt{
		kgo.ConsumerGroup(c.o.Group),
		kgo.ConsumeTopics(c.o.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
		kgo.MaxConcurrentFetches(maxConcurrentFetches),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			c.takeAway(cl, m[c.o.Topic], "revoked", true)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			c.takeAway(cl, m[c.o.Topic], "lost", false)
		}),
		kgo.WithHooks(brokerHook{c}),
	}, c.o.Extra)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consume: topic %s group %s: %w", c.o.Topic, c.o.Group, err)
	}
	defer cl.Close()

	stop, stopped := make(chan struct{}), make(chan struct{})
	go c.commitEvery(cl, stop, stopped)
	c.poll(ctx, cl)
	cl.AllowRebalance()
	close(stop)
	<-stopped

	c.commitDone(cl)
	leaveCtx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	// Leaving revokes every partition (takeAway: Revoked, final commit) before the
	// LeaveGroup request, which lets the others take them over at once.
	if err := cl.LeaveGroupContext(leaveCtx); err != nil {
		c.log.Warn("kafka consumer group not left cleanly; its partitions wait for the session timeout", "error", err)
	}
	c.mu.Lock()
	rest := make([]int32, 0, len(c.parts))
	for p := range c.parts {
		rest = append(rest, p)
	}
	c.mu.Unlock()
	c.takeAway(cl, rest, "stopped", true) // what leaving did not revoke (it timed out)
	c.stopping.Store(true)
	return nil
}

// Committed returns the last offset this consumer committed per partition, including
// partitions it no longer owns.
func (c *Consumer) Committed() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.committed)
}

func (c *Consumer) poll(ctx context.Context, cl *kgo.Client) {
	ended := ctx.Done()
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, maxPollRecords)
		fs.EachError(func(topic string, p int32, err error) {
			switch {
			case ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed):
			case topic == "": // not a partition's: the group session failed (kgo rejoins)
				c.logError("group", "kafka consumer group session failed", "error", err)
			default:
				c.logError("fetch", "kafka fetch failed", "partition", p, "error", err)
			}
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 || fp.Topic != c.o.Topic {
				return
			}
			c.mu.Lock()
			s := c.parts[fp.Partition]
			if s != nil {
				s.noteEpochs(fp.Records)
			}
			c.mu.Unlock()
			if s == nil {
				return // kgo drops what it buffered for revoked partitions; this is belt and braces
			}
			for _, r := range fp.Records {
				select {
				case <-ended:
					return
				default:
				}
				c.h.Handle(ctx, &Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
					Headers: r.Headers, Timestamp: r.Timestamp})
			}
		})
		cl.AllowRebalance()
	}
}

func (c *Consumer) commitEvery(cl *kgo.Client, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(c.o.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.commitDone(cl)
		}
	}
}

// commitDone commits every owned partition whose done offset moved since its last commit.
func (c *Consumer) commitDone(cl *kgo.Client) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	moved := map[int32]*partition{}
	for p, s := range c.parts {
		if s.done.Load() > s.committed {
			moved[p] = s
		}
	}
	c.mu.Unlock()
	c.commit(cl, moved)
}

// commit commits each partition's done offset with the leader epoch of the record before it,
// synchronously. The caller holds commitMu; a failure is logged and left to the next commit.
func (c *Consumer) commit(cl *kgo.Client, parts map[int32]*partition) {
	if len(parts) == 0 {
		return
	}
	offsets := make(map[int32]kgo.EpochOffset, len(parts))
	c.mu.Lock()
	for p, s := range parts {
		next := s.done.Load()
		offsets[p] = kgo.EpochOffset{Epoch: s.epochAt(next - 1), Offset: next}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.o.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				c.logError("commit", "kafka offset commit failed", "offsets", fmtOffsets(offsets), "error", err)
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					eo, ok := offsets[rp.Partition]
					if !ok || rt.Topic != c.o.Topic {
						continue
					}
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						c.logError("commit", "kafka offset commit failed", "partition", rp.Partition, "offset", eo.Offset, "error", err)
						continue
					}
					c.mu.Lock()
					s := parts[rp.Partition]
					s.committed = eo.Offset
					s.forgetEpochs(eo.Offset)
					c.committed[rp.Partition] = eo.Offset
					c.mu.Unlock()
				}
			}
		})
}

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := m[c.o.Topic]
	if len(ps) == 0 {
		return
	}
	slices.Sort(ps)
	c.mu.Lock()
	news := make([]*partition, len(ps))
	for i, p := range ps {
		s := &partition{committed: -1}
		s.done.Store(-1)
		c.parts[p], news[i] = s, s
	}
	owned := len(c.parts)
	c.mu.Unlock()
	for i, p := range ps {
		c.h.Assigned(p, news[i].markDone)
	}
	c.log.Info("kafka partitions assigned", "partitions", ps, "owned", owned)
}

// takeAway ends this consumer's assignment of the partitions ps that it owns: Revoked, then,
// if commit (not for lost partitions: they may be someone else's already), a final
// synchronous commit of what is done.
func (c *Consumer) takeAway(cl *kgo.Client, ps []int32, why string, commit bool) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	var owned []int32
	for _, p := range ps {
		if c.parts[p] != nil {
			owned = append(owned, p)
		}
	}
	c.mu.Unlock()
	if len(owned) == 0 {
		return
	}
	slices.Sort(owned)
	c.h.Revoked(owned)
	c.mu.Lock()
	final := map[int32]*partition{}
	for _, p := range owned {
		if s := c.parts[p]; commit && s.done.Load() > s.committed {
			final[p] = s
		}
		delete(c.parts, p)
	}
	left := len(c.parts)
	c.mu.Unlock()
	c.commit(cl, final)
	c.log.Info("kafka partitions "+why, "partitions", owned, "owned", left)
}

// logError logs msg unless a line of the same kind was logged less than errorLogEvery ago;
// the next line says how many were held back.
func (c *Consumer) logError(kind, msg string, args ...any) {
	c.logMu.Lock()
	w := c.logWins[kind]
	if w == nil {
		w = &lograte.Window{}
		c.logWins[kind] = w
	}
	ok, held := w.Allow(time.Now(), errorLogEvery)
	c.logMu.Unlock()
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	c.log.Warn(msg, args...)
}

func fmtOffsets(offsets map[int32]kgo.EpochOffset) string {
	ps := make([]int32, 0, len(offsets))
	for p := range offsets {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	b := []byte{}
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, offsets[p].Offset, 10)
	}
	return string(b)
}

// brokerHook logs failed connections and requests (an outage), which kgo itself retries.
type brokerHook struct{ c *Consumer }

func (h brokerHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil && !h.c.stopping.Load() {
		h.c.logError("broker", "kafka broker unreachable", "broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), "error", err)
	}
}

func (h brokerHook) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && !h.c.stopping.Load() && !errors.Is(err, context.Canceled) {
		h.c.logError("broker", "kafka request failed", "broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))),
			"request", kmsg.NameForKey(key), "error", err)
	}
}
