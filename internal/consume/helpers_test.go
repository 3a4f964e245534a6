package consume

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/testrig"
)

const (
	testTopic = "graphite-lines"
	// waitLimit bounds every wait of these tests.
	waitLimit = 60 * time.Second
)

// fast makes kgo notice rebalances and retry quickly (defaults: 3 s heartbeats, metadata at
// most every 5 s, 5 s fetch long-poll).
var fast = append(testrig.KafkaQuick(), kgo.HeartbeatInterval(100*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond))

// newClient is a plain client of the cluster, for producing and for asking it questions.
func newClient(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(testTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes perPartition records to every one of partitions partitions, the value of
// each naming its partition and sequence, padded to size bytes.
func produce(t testing.TB, cl *kgo.Client, partitions int32, perPartition, size int) {
	t.Helper()
	if err := produceErr(cl, partitions, perPartition, size); err != nil {
		t.Fatal(err)
	}
}

func produceErr(cl *kgo.Client, partitions int32, perPartition, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range perPartition {
		for p := range partitions {
			v := fmt.Appendf(make([]byte, 0, size), "p%d.m%d %d 1700000000\n", p, i, i)
			for len(v) < size {
				v = append(v, 'x')
			}
			wg.Add(1)
			rec := &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "k%d", i), Value: v,
				Headers: []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}}}
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return fmt.Errorf("produce: %w", *err)
	}
	return nil
}

// endOffsets is every partition's end offset (its record count: nothing is deleted), failing
// the test unless the topic has exactly partitions partitions.
func endOffsets(t testing.TB, cl *kgo.Client, partitions int32) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	end := testrig.KafkaEndOffsets(t, ctx, cl, testTopic)
	if len(end) != int(partitions) {
		t.Fatalf("topic %s has end offsets %v, want %d partitions", testTopic, end, partitions)
	}
	return end
}

// groupCommitted is the group's committed offset per partition, as the broker has it.
func groupCommitted(t testing.TB, cl *kgo.Client, group string) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if resp.ErrorCode == kerr.GroupIDNotFound.Code {
		return map[int32]int64{} // nothing committed yet
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("offset fetch of group %s: %v", group, err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic == testTopic && rp.Offset >= 0 {
				out[rp.Partition] = rp.Offset
			}
		}
	}
	return out
}

// running is a Consumer whose Run is going on in a goroutine.
type running struct {
	*Consumer
	cancel context.CancelFunc
	ret    chan error
	once   sync.Once
}

// start runs a consumer of the cluster's testTopic in group with handler h; it is stopped at
// the end of the test unless stopped before.
func start(t testing.TB, c *kfake.Cluster, group string, h Handler, extra ...kgo.Opt) *running {
	t.Helper()
	co, err := New(Options{Conn: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ClientID("consume-test")},
		Topic: testTopic, Group: group, CommitInterval: 50 * time.Millisecond, Log: testLog(t),
		Extra: slices.Concat(fast, extra)}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Consumer: co, cancel: cancel, ret: make(chan error, 1)}
	go func() { r.ret <- co.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return nil.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.ret:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return within %s of its context's end", waitLimit)
		}
	})
}

// testLog logs to the test's output while it runs, and nowhere after.
func testLog(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() { w.mu.Lock(); w.w = io.Discard; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// recorder is a Handler that remembers what it was given and which records it marked done
// while their assignment was current. With async, Handle queues records (a bounded queue:
// back-pressure) and a worker goroutine marks them done later, in batches; otherwise Handle
// marks each done itself, if below doneBelow (when set).
type recorder struct {
	async     bool
	doneBelow int64 // 0: no limit
	manual    bool  // mark nothing done; the test calls the done funcs itself
	// checkRecords: the topic holds only what produce wrote, so a record's offset says what
	// it holds; mismatches counts the records that hold something else.
	checkRecords bool
	mismatches   atomic.Int64

	mu        sync.Mutex
	gen       map[int32]int // the partition's current assignment (0: not owned)
	gens      int
	doneFuncs map[int32][]func(int64) // per partition, one per assignment, in order
	seen      map[int32][]int64       // every offset handled, in order
	firsts    map[int32][]int64       // per partition, the first offset handled after each Assigned
	fresh     map[int32]bool          // Assigned, nothing handled since
	effective map[int32]map[int64]bool
	revoked   map[int32]int // times revoked
	handled   int
	gate      chan struct{} // the worker waits on it while held (open: closed channel)

	queue    chan queued
	stopWork chan struct{}
	workDone chan struct{}
}

type queued struct {
	p    int32
	off  int64
	gen  int
	done func(int64)
}

func newRecorder(t testing.TB, async bool) *recorder {
	r := &recorder{async: async, gen: map[int32]int{}, doneFuncs: map[int32][]func(int64){}, seen: map[int32][]int64{},
		firsts: map[int32][]int64{}, fresh: map[int32]bool{}, effective: map[int32]map[int64]bool{}, revoked: map[int32]int{},
		gate: make(chan struct{})}
	close(r.gate)
	if async {
		r.queue, r.stopWork, r.workDone = make(chan queued, 256), make(chan struct{}), make(chan struct{})
		go r.work()
		t.Cleanup(func() { close(r.stopWork); <-r.workDone })
	}
	return r
}

func (r *recorder) Assigned(p int32, done func(int64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens++
	r.gen[p] = r.gens
	r.doneFuncs[p] = append(r.doneFuncs[p], done)
	r.fresh[p] = true
}

func (r *recorder) Handle(ctx context.Context, rec *Record) {
	r.mu.Lock()
	p := rec.Partition
	gen := r.gen[p]
	if gen == 0 {
		r.mu.Unlock()
		panic(fmt.Sprintf("Handle of partition %d offset %d, which is not assigned", p, rec.Offset))
	}
	if r.fresh[p] {
		r.firsts[p] = append(r.firsts[p], rec.Offset)
		r.fresh[p] = false
	}
	r.seen[p] = append(r.seen[p], rec.Offset)
	if r.checkRecords && !wellFormed(rec) {
		r.mismatches.Add(1)
	}
	r.handled++
	done := r.doneFuncs[p][len(r.doneFuncs[p])-1]
	if !r.async {
		if !r.manual && (r.doneBelow == 0 || rec.Offset < r.doneBelow) {
			r.markLocked(p, rec.Offset, gen, done)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	select {
	case r.queue <- queued{p, rec.Offset, gen, done}:
	case <-ctx.Done():
	}
}

// wellFormed reports whether rec holds what produce wrote at its offset.
func wellFormed(rec *Record) bool {
	seq := strconv.FormatInt(rec.Offset, 10)
	return strings.HasPrefix(string(rec.Value), fmt.Sprintf("p%d.m%s %s ", rec.Partition, seq, seq)) &&
		string(rec.Key) == "k"+seq && len(rec.Headers) == 1 && rec.Headers[0].Key == "seq" &&
		string(rec.Headers[0].Value) == seq && time.Since(rec.Timestamp).Abs() < time.Hour
}

// markLocked calls done for the record at off if its assignment gen is current, and counts it.
// Holding mu makes the call happen before a concurrent Revoked returns, so the count and the
// engine agree.
func (r *recorder) markLocked(p int32, off int64, gen int, done func(int64)) {
	if r.gen[p] != gen {
		return
	}
	done(off + 1)
	if r.effective[p] == nil {
		r.effective[p] = map[int64]bool{}
	}
	r.effective[p][off] = true
}

func (r *recorder) Revoked(ps []int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if r.gen[p] == 0 {
			panic(fmt.Sprintf("Revoked partition %d, which is not assigned", p))
		}
		r.gen[p] = 0
		r.revoked[p]++
	}
}

// work marks queued records done in batches of up to 64, a short delay after they were
// queued, like a delivery.
func (r *recorder) work() {
	defer close(r.workDone)
	var batch []queued
	for {
		select {
		case q := <-r.queue:
			batch = append(batch[:0], q)
		case <-r.stopWork:
			return
		}
	more:
		for len(batch) < 64 {
			select {
			case q := <-r.queue:
				batch = append(batch, q)
			default:
				break more
			}
		}
		time.Sleep(time.Millisecond) // the delivery's delay; not for correctness
		r.mu.Lock()
		gate := r.gate
		r.mu.Unlock()
		select {
		case <-gate:
		case <-r.stopWork:
			return
		}
		r.mu.Lock()
		for _, q := range batch {
			r.markLocked(q.p, q.off, q.gen, q.done)
		}
		r.mu.Unlock()
	}
}

// hold stops the worker marking anything done until release.
func (r *recorder) hold() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) release() {
	r.mu.Lock()
	close(r.gate)
	r.mu.Unlock()
}

func (r *recorder) owned() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []int32
	for p, g := range r.gen {
		if g != 0 {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func (r *recorder) handledCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handled
}

func (r *recorder) effectiveCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.effective {
		n += len(m)
	}
	return n
}

func (r *recorder) revokedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.revoked {
		n += c
	}
	return n
}

// covers reports whether offset off of partition p was marked done while current.
func (r *recorder) covers(p int32, off int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.effective[p][off]
}

// saw reports whether offset off of partition p was handled.
func (r *recorder) saw(p int32, off int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.seen[p], off)
}

// seenCopy is every partition's handled offsets.
func (r *recorder) seenCopy() map[int32][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int32][]int64{}
	for p, s := range r.seen {
		out[p] = slices.Clone(s)
	}
	return out
}

// checkCovered fails the test for every offset below end that no recorder marked done.
func checkCovered(t *testing.T, end map[int32]int64, rs ...*recorder) {
	t.Helper()
	missing := 0
	for _, p := range slices.Sorted(maps.Keys(end)) {
		for off := range end[p] {
			if !slices.ContainsFunc(rs, func(r *recorder) bool { return r.covers(p, off) }) {
				if missing < 10 {
					t.Errorf("partition %d offset %d: no consumer marked it done while it owned the partition", p, off)
				}
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d records never done", missing)
	}
}

// committedEqual waits until the broker's committed offsets for group (and, if co is set, the
// consumer's Committed) equal want.
func committedEqual(t *testing.T, cl *kgo.Client, group string, want map[int32]int64, co *Consumer) {
	t.Helper()
	var got, mine map[int32]int64
	deadline := time.Now().Add(waitLimit)
	for {
		got = groupCommitted(t, cl, group)
		if co != nil {
			mine = co.Committed()
		}
		if maps.Equal(got, want) && (co == nil || maps.Equal(mine, want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %v (consumer's Committed %v), want %v", group, got, mine, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
