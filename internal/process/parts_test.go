package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

// kindFormat emits, for a part, two chunks (three lines) naming the part's directory and kind,
// each with its own Seq from 0 and Last on its final chunk, as a kind's Format does; or an
// Unusable error for the parts listed in bad.
type kindFormat struct {
	kind string
	bad  map[string]bool
	mu   *sync.Mutex
	seqs *[]int
}

func (f kindFormat) Process(dir string, ts int64, flush metric.FlushFunc) error {
	part := filepath.Base(dir)
	if f.bad[part] {
		return unusableErr("instance i1: garbage at line 3")
	}
	first := fmt.Sprintf("%s.%s.a 1 %d\n%s.%s.b 2 %d\n", f.kind, part, ts, f.kind, part, ts)
	if err := flush(&metric.Batch{Timestamp: ts, Source: dir, Seq: 0, Data: []byte(first), Lines: 2}); err != nil {
		return err
	}
	last := fmt.Sprintf("%s.%s.c 3 %d\n", f.kind, part, ts)
	return flush(&metric.Batch{Timestamp: ts, Source: dir, Seq: 1, Last: true, Data: []byte(last), Lines: 1})
}

// seqDispatcher records every chunk's Seq, Last and Source.
type seqDispatcher struct {
	fakeDispatcher
	chunks []string
}

func (d *seqDispatcher) Submit(ctx context.Context, b *metric.Batch, done func(error)) error {
	d.mu.Lock()
	d.chunks = append(d.chunks, fmt.Sprintf("%d:%v:%s", b.Seq, b.Last, filepath.Base(b.Source)))
	d.mu.Unlock()
	return d.fakeDispatcher.Submit(ctx, b, done)
}

// mkParts makes a snapshot with HAProxy files at its top and one directory per named source.
func mkParts(t *testing.T, src, name string, parts map[string]string) string {
	t.Helper()
	p := mkSnapshot(t, src, name)
	for source, kind := range parts {
		dir := filepath.Join(p, source)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, spool.SourceInfoFile))
		if err != nil {
			t.Fatal(err)
		}
		if kind != "" {
			spool.WriteJSON(f, spool.NewSourceInfo(kind, source, nil))
		}
		f.Close()
	}
	return p
}

func partsRunner(t *testing.T, src string, bad map[string]bool, ds ...dispatch.Dispatcher) (*Runner, *logRecords) {
	t.Helper()
	mu := new(sync.Mutex)
	formats := map[string]Format{
		"haproxy": kindFormat{kind: "haproxy", bad: bad, mu: mu},
		"om":      kindFormat{kind: "om", bad: bad, mu: mu},
	}
	return recordingRunner(t, Options{SrcDir: src, Workers: 1, Dispatchers: ds,
		NewFormats: func() func(string) (Format, bool) {
			return func(kind string) (Format, bool) { f, ok := formats[kind]; return f, ok }
		}})
}

// Every part goes to its kind's Format, and the runner joins their chunks into one sequence:
// Seq 0, 1, 2, … and Last only on the snapshot's final chunk.
func TestPartsRoutedInOneChunkSequence(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkParts(t, src, "1700000000", map[string]string{"apps": "om", "web": "om"})
	d := &seqDispatcher{}
	r, _ := partsRunner(t, src, nil, d)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Delivered != 1 || s.Quarantined != 0 {
		t.Fatalf("summary %+v", s)
	}
	want := "0:false:1700000000 1:false:1700000000 2:false:1700000000 3:false:1700000000 4:false:1700000000 5:true:1700000000"
	if got := strings.Join(d.chunks, " "); got != want {
		t.Fatalf("chunks\n got %s\nwant %s", got, want)
	}
	for _, line := range []string{"haproxy.1700000000.a 1 1700000000", "om.apps.c 3", "om.web.b 2"} {
		if !strings.Contains(d.lines(), line) {
			t.Errorf("missing %q in\n%s", line, d.lines())
		}
	}
}

// One unusable part: the others are delivered, then the snapshot is quarantined with the
// part named in the reason (nothing is lost, nothing is sent twice).
func TestBadPartDeliversTheOthersThenQuarantines(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkParts(t, src, "1700000000", map[string]string{"apps": "om", "web": "om"})
	d := &seqDispatcher{}
	r, logs := partsRunner(t, src, map[string]bool{"apps": true}, d)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Quarantined != 1 || s.Delivered != 0 {
		t.Fatalf("summary %+v", s)
	}
	if got := d.lines(); !strings.Contains(got, "om.web.c 3") || !strings.Contains(got, "haproxy.1700000000.a") || strings.Contains(got, "om.apps") {
		t.Fatalf("delivered\n%s", got)
	}
	reason, err := os.ReadFile(filepath.Join(spool.QuarantineDir(src), "1700000000", spool.ReasonFile))
	if err != nil || !strings.Contains(string(reason), "source apps: instance i1: garbage at line 3") {
		t.Fatalf("REASON %q %v", reason, err)
	}
	if logs.count("part of the snapshot unusable") != 1 {
		t.Fatalf("the bad part was not logged once")
	}
}

// Parts that cannot be routed: a directory without source.json, one naming a kind this
// program has no processor for. With the top-level part usable, they are reported and kept.
func TestUnroutablePartsAreQuarantinedAfterTheRest(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	mkParts(t, src, "1700000000", map[string]string{"stray": "", "future": "ebpf-maps"})
	d := &seqDispatcher{}
	r, _ := partsRunner(t, src, nil, d)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Quarantined != 1 {
		t.Fatalf("summary %+v", s)
	}
	if !strings.Contains(d.lines(), "haproxy.1700000000.c 3") {
		t.Fatalf("the usable part was not delivered:\n%s", d.lines())
	}
	reason, _ := os.ReadFile(filepath.Join(spool.QuarantineDir(src), "1700000000", spool.ReasonFile))
	for _, want := range []string{`no processor for source kind "ebpf-maps"`, "source stray:"} {
		if !strings.Contains(string(reason), want) {
			t.Errorf("REASON lacks %q:\n%s", want, reason)
		}
	}
}

// No part usable: quarantined as unusable, nothing handed to the dispatchers.
func TestNoUsablePartQuarantinesAtOnce(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	p := mkParts(t, src, "1700000000", map[string]string{"apps": "om"})
	os.Remove(filepath.Join(p, "admin1.sock_info")) // no top-level part
	d := &seqDispatcher{}
	r, _ := partsRunner(t, src, map[string]bool{"apps": true}, d)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Quarantined != 1 {
		t.Fatalf("summary %+v", s)
	}
	if len(d.chunks) != 0 {
		t.Fatalf("chunks handed over: %v", d.chunks)
	}
}

// A snapshot with only named sources (no HAProxy files) is delivered.
func TestOnlyNamedSources(t *testing.T) {
	src := filepath.Join(t.TempDir(), "incoming")
	p := mkParts(t, src, "1700000000", map[string]string{"apps": "om"})
	os.Remove(filepath.Join(p, "admin1.sock_info"))
	d := &seqDispatcher{}
	r, _ := partsRunner(t, src, nil, d)
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Summary(); s.Delivered != 1 {
		t.Fatalf("summary %+v", s)
	}
	if got := strings.Join(d.chunks, " "); got != "0:false:1700000000 1:true:1700000000" {
		t.Fatalf("chunks %s", got)
	}
}
