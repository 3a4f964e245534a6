package ship

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// checkArchive unpacks a and compares it with files, the snapshot it was shipped from.
func checkArchive(t *testing.T, a *Archive, snapshot string, files map[string]string) {
	t.Helper()
	if a.Host != testHost || a.Snapshot != snapshot {
		t.Fatalf("archive of %s/%s, want %s/%s", a.Host, a.Snapshot, testHost, snapshot)
	}
	edge, dir, err := spool.Unpack(bytes.NewReader(a.Data), t.TempDir(), spool.ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if edge.Host != testHost || edge.Snapshot != snapshot {
		t.Errorf("unpacked edge %+v", edge)
	}
	n := 0
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			n++
		}
		return nil
	})
	if n != len(files) {
		t.Errorf("unpacked %d files, want %d", n, len(files))
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || string(got) != body {
			t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(body))
		}
	}
}

// A snapshot with HAProxy files and a part directory reaches a consumer as one record that
// the Assembler turns back into the same files; a chunk that is not Last ships nothing.
func TestShipRoundTrip(t *testing.T) {
	c := testrig.StartKafka(t, 3, testTopic)
	d := newDispatcher(t, testConfig(c), Options{})
	files := smallSnapshot("round trip")
	dir := makeSnapshot(t, t.TempDir(), 1700000000, files)
	r := testrig.NewDoneCalls(2)
	if err := d.Submit(context.Background(), &metric.Batch{Source: dir, Data: []byte("a.b 1 1700000000\n"), Lines: 1}, r.Done); err != nil {
		t.Fatal(err)
	}
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
		t.Fatal(err)
	}
	for _, err := range r.Wait(t, 2, waitLimit, "snapshots") {
		if err != nil {
			t.Fatal(err)
		}
	}
	archives, records := consumeArchives(t, c, 1)
	if len(archives) != 1 || records != 1 {
		t.Fatalf("%d archives from %d records, want 1 from 1", len(archives), records)
	}
	checkArchive(t, archives[0], "1700000000", files)
	if err := d.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); !errors.Is(err, dispatch.ErrClosed) {
		t.Errorf("Submit after Close: %v, want ErrClosed", err)
	}
}

// A 3 MB snapshot with batch-max-bytes 256 KiB travels as fragments of 240 KiB, reassembled
// byte for byte into the archive Pack makes (Pack is reproducible).
func TestShipLargeSnapshot(t *testing.T) {
	c := testrig.StartKafka(t, 3, testTopic)
	cfg := testConfig(c)
	cfg.BatchMaxBytes = 256 << 10
	d := newDispatcher(t, cfg, Options{})
	reg := selfmetrics.New("process")
	d.SetMetrics(selfmetrics.NewProcess(reg).Dispatcher(d.Name()))
	files := smallSnapshot("large")
	files["apps/a.body"] = bigText(3<<20, 1)
	dir := makeSnapshot(t, t.TempDir(), 1700000060, files)
	r := testrig.NewDoneCalls(1)
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(t, 1, waitLimit, "snapshots")[0]; err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := spool.Pack(&want, dir, testHost); err != nil {
		t.Fatal(err)
	}
	frag := cfg.BatchMaxBytes - recordOverhead
	n := (want.Len() + frag - 1) / frag
	archives, records := consumeArchives(t, c, 1)
	if len(archives) != 1 || records != n || n < 10 {
		t.Fatalf("%d archives from %d records, want 1 from %d", len(archives), records, n)
	}
	if !bytes.Equal(archives[0].Data, want.Bytes()) {
		t.Fatalf("reassembled %d bytes differ from the %d packed", len(archives[0].Data), want.Len())
	}
	if len(archives[0].Offsets) != n {
		t.Errorf("offsets %v, want %d", archives[0].Offsets, n)
	}
	checkArchive(t, archives[0], "1700000060", files)
	get := func(name string) float64 { v, _ := reg.Get("dispatcher.ship." + name); return v }
	if get("bytes") != float64(want.Len()) || get("lines") != 0 || get("errors") != 0 {
		t.Errorf("self-metrics bytes %v lines %v errors %v, want %d 0 0", get("bytes"), get("lines"), get("errors"), want.Len())
	}
}

// rawRecords reads want records of the topic from the start.
func rawRecords(t *testing.T, brokers []string, want int) []*kgo.Record {
	t.Helper()
	cl := testrig.KafkaReader(t, brokers, testTopic)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// Fragments of two snapshots of one host interleaved on their partition (two workers
// shipping at once) come out as the two archives.
func TestAssembleInterleaved(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	cfg := testConfig(c)
	cfg.BatchMaxBytes = 256 << 10
	d := newDispatcher(t, cfg, Options{})
	parent := t.TempDir()
	snaps := map[string]map[string]string{}
	r := testrig.NewDoneCalls(2)
	for i, epoch := range []int64{1700000000, 1700000060} {
		files := smallSnapshot("interleaved")
		files["apps/a.body"] = bigText(1<<20, i)
		dir := makeSnapshot(t, parent, epoch, files)
		snaps[filepath.Base(dir)] = files
		if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range r.Wait(t, 2, waitLimit, "snapshots") {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Both snapshots took 5 records: read them all, then deal them out alternately.
	recs := rawRecords(t, c.ListenAddrs(), 10)
	var bySnap [2][]*kgo.Record
	for _, rec := range recs {
		i := 0
		if strings.HasSuffix(string(rec.Headers[0].Value), "1700000060") {
			i = 1
		}
		bySnap[i] = append(bySnap[i], rec)
	}
	if len(bySnap[0]) < 2 || len(bySnap[1]) < 2 {
		t.Fatalf("fragments per snapshot: %d and %d", len(bySnap[0]), len(bySnap[1]))
	}
	asm := NewAssembler(Limits{})
	var got []*Archive
	for i := 0; i < max(len(bySnap[0]), len(bySnap[1])); i++ {
		for _, s := range bySnap {
			if i >= len(s) {
				continue
			}
			a, err := asm.Add(s[i].Partition, s[i].Offset, s[i].Key, s[i].Headers, s[i].Value)
			if err != nil {
				t.Fatal(err)
			}
			if a != nil {
				got = append(got, a)
			}
		}
		if i == 0 {
			if off, ok := asm.Oldest(0); !ok || off != min(bySnap[0][0].Offset, bySnap[1][0].Offset) {
				t.Errorf("Oldest = %d %v with both snapshots partial", off, ok)
			}
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d archives, want 2", len(got))
	}
	for _, a := range got {
		checkArchive(t, a, a.Snapshot, snaps[a.Snapshot])
	}
	if _, ok := asm.Oldest(0); ok || asm.held != 0 || asm.open != 0 {
		t.Errorf("the Assembler still holds %d bytes of %d snapshots", asm.held, asm.open)
	}
}

// While every Produce fails (a leader election that does not end), the snapshot is not
// answered; once the brokers answer again it is, and the topic holds it exactly once.
func TestShipOutage(t *testing.T) {
	c := testrig.StartKafka(t, 3, testTopic)
	cfg := testConfig(c)
	cfg.BatchMaxBytes = 256 << 10
	d := newDispatcher(t, cfg, Options{})
	files := smallSnapshot("outage")
	files["apps/a.body"] = bigText(1<<20, 7)
	dir := makeSnapshot(t, t.TempDir(), 1700000120, files)
	o := testrig.KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
	r := testrig.NewDoneCalls(1)
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
		t.Fatal(err)
	}
	testrig.WaitFor(t, waitLimit, "refused produce requests", func() bool { return o.Refused() >= 5 })
	if n := r.Calls(); n != 0 {
		t.Fatalf("done called %d times during the outage", n)
	}
	o.End()
	if err := r.Wait(t, 1, waitLimit, "snapshots")[0]; err != nil {
		t.Fatal(err)
	}
	archives, _ := consumeArchives(t, c, 1)
	if len(archives) != 1 {
		t.Fatalf("%d archives, want 1", len(archives))
	}
	checkArchive(t, archives[0], "1700000120", files)
}

// A snapshot Kafka never acknowledges fails with a delivery timeout (not Rejected: it is
// shipped again later).
func TestShipDeliveryTimeout(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	cfg := testConfig(c)
	cfg.DeliveryTimeout = time.Second // the least franz-go and the configuration allow
	d := newDispatcher(t, cfg, Options{})
	dir := makeSnapshot(t, t.TempDir(), 1700000180, smallSnapshot("timeout"))
	testrig.KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
	r := testrig.NewDoneCalls(1)
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
		t.Fatal(err)
	}
	err := r.Wait(t, 1, waitLimit, "snapshots")[0]
	var rej dispatch.Rejected
	if !errors.Is(err, kgo.ErrRecordTimeout) || errors.As(err, &rej) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("done(%v), want a delivery timeout naming %s", err, dir)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Logf("Close: %v", err) // the failure was reported already
	}
}

// A snapshot that cannot be packed: too large or unsafe is Rejected (quarantined), a
// directory that is gone is an error to retry on.
func TestShipPackFailures(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	d := newDispatcher(t, testConfig(c), Options{MaxArchiveBytes: 64 << 10})
	reg := selfmetrics.New("process")
	d.SetMetrics(selfmetrics.NewProcess(reg).Dispatcher(d.Name()))
	parent := t.TempDir()
	big := smallSnapshot("big")
	big["apps/a.body"] = bigText(100<<10, 3)
	tooBig := makeSnapshot(t, parent, 1700000000, big)
	unsafe := makeSnapshot(t, parent, 1700000060, smallSnapshot("unsafe"))
	if err := os.Symlink("/etc/passwd", filepath.Join(unsafe, "x.sock_stat")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir      string
		rejected bool
		mention  string
	}{
		{tooBig, true, "65536 bytes"},
		{unsafe, true, "x.sock_stat"},
		{filepath.Join(parent, "1700000120"), false, "1700000120"},
	} {
		r := testrig.NewDoneCalls(1)
		if err := d.Submit(context.Background(), lastChunk(tc.dir), r.Done); err != nil {
			t.Fatal(err)
		}
		err := r.Wait(t, 1, waitLimit, "snapshots")[0]
		var rej dispatch.Rejected
		if err == nil || errors.As(err, &rej) != tc.rejected || !strings.Contains(err.Error(), tc.dir) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: done(%v), want rejected=%v naming it and %q", tc.dir, err, tc.rejected, tc.mention)
		}
	}
	if v, _ := reg.Get("dispatcher.ship.errors"); v != 3 {
		t.Errorf("self-metrics errors %v, want 3", v)
	}
}

// Submit blocks while the producer's buffer is full (back-pressure) and returns the
// context's error when it ends first; done is then never called.
func TestShipSubmitCanceled(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	cfg := testConfig(c)
	cfg.BatchMaxBytes = 256 << 10
	cfg.MaxBufferedBytes = 1 << 20
	d := newDispatcher(t, cfg, Options{})
	files := smallSnapshot("canceled")
	files["apps/a.body"] = bigText(3<<20, 5)
	dir := makeSnapshot(t, t.TempDir(), 1700000240, files)
	o := testrig.KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
	ctx, cancel := context.WithCancel(context.Background())
	r := testrig.NewDoneCalls(1)
	returned := make(chan error, 1)
	go func() { returned <- d.Submit(ctx, lastChunk(dir), r.Done) }()
	testrig.WaitFor(t, waitLimit, "refused produce requests", func() bool { return o.Refused() >= 2 })
	select {
	case err := <-returned:
		t.Fatalf("Submit returned (%v) with the buffer full", err)
	default:
	}
	cancel()
	if err := testrig.Receive(t, returned, waitLimit, "Submit's return after its context ended"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit: %v, want context.Canceled", err)
	}
	o.End()
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	d.Close(ctx2) // waits for every record to settle
	if n := r.Calls(); n != 0 {
		t.Fatalf("done called %d times for an abandoned Submit", n)
	}
}

// Close during an outage gives up when its context ends: the snapshot gets done(err) and
// Close says it was not acknowledged.
func TestShipCloseDuringOutage(t *testing.T) {
	c := testrig.StartKafka(t, 1, testTopic)
	d := newDispatcher(t, testConfig(c), Options{})
	dir := makeSnapshot(t, t.TempDir(), 1700000300, smallSnapshot("close"))
	o := testrig.KafkaRefuse(t, c, kmsg.Produce, kerr.NotLeaderForPartition)
	r := testrig.NewDoneCalls(1)
	if err := d.Submit(context.Background(), lastChunk(dir), r.Done); err != nil {
		t.Fatal(err)
	}
	testrig.WaitFor(t, waitLimit, "a refused produce request", func() bool { return o.Refused() >= 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing can be flushed during the outage anyway
	if err := d.Close(ctx); err == nil || !strings.Contains(err.Error(), "1 snapshots not acknowledged") {
		t.Errorf("Close: %v, want 1 snapshot not acknowledged", err)
	}
	if err := r.Wait(t, 1, waitLimit, "snapshots")[0]; err == nil {
		t.Error("done(nil) for a snapshot Kafka never acknowledged")
	}
}
