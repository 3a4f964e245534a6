package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// fakeSource writes its files, or fails, or blocks until ctx is done (or ignores ctx).
type fakeSource struct {
	name  string
	files map[string]string
	err   error
	block bool // wait for ctx, then fail with ctx.Err()
	// ignoreCtx, when set, makes Pull wait for it to be closed regardless of ctx, then try to
	// write; the outcome of that attempt is sent on late.
	ignoreCtx chan struct{}
	late      chan error
	calls     chan time.Time
}

func (s *fakeSource) Name() string { return s.name }

func (s *fakeSource) Pull(ctx context.Context, snap SnapshotWriter) error {
	if s.calls != nil {
		s.calls <- time.Now()
	}
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := snap.Create(n)
		if err != nil {
			return err
		}
		f.Write([]byte(s.files[n]))
		if s.err != nil {
			return s.err // leaves the file uncommitted, like a failed read would
		}
		if err := f.Commit(); err != nil {
			return err
		}
	}
	if s.ignoreCtx != nil {
		<-s.ignoreCtx
		f, err := snap.Create(s.name + "_late")
		if err == nil {
			err = f.Commit()
			if err == nil {
				err = errors.New("wrote after being abandoned")
			}
		}
		s.late <- err
		return err
	}
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.err
}

type fakeProvider struct {
	info    ProviderInfo
	sources []Source
	err     error
}

func (p *fakeProvider) Info() ProviderInfo { return p.info }
func (p *fakeProvider) Sources(context.Context) ([]Source, error) {
	return p.sources, p.err
}

type rig struct {
	dst, tmp string
	loop     *Loop
	log      *testrig.Buffer
}

// newRig pulls sources as one top-level source (like HAProxy's) that discards the round when
// one of them fails; newPartialRig's keeps those that answered.
func newRig(t *testing.T, opt Options, sources ...Source) *rig {
	t.Helper()
	return newRigOf(t, opt, &fakeProvider{info: ProviderInfo{Source: "fake", Kind: "fake", TopLevel: true}, sources: sources})
}

func newPartialRig(t *testing.T, opt Options, sources ...Source) *rig {
	t.Helper()
	return newRigOf(t, opt, &fakeProvider{info: ProviderInfo{Source: "fake", Kind: "fake", TopLevel: true, AllowPartial: true}, sources: sources})
}

func newRigOf(t *testing.T, opt Options, providers ...Provider) *rig {
	t.Helper()
	base := t.TempDir()
	r := &rig{dst: filepath.Join(base, "incoming"), tmp: filepath.Join(base, "incoming.tmp")}
	var log *slog.Logger
	log, r.log = testrig.Logger()
	w, err := spool.NewWriter(r.dst, r.tmp, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if opt.Interval == 0 {
		opt.Interval = time.Second
	}
	r.loop, err = NewLoop(w, providers, opt, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) snapshots(t *testing.T) []spool.Entry {
	t.Helper()
	es, err := spool.List(r.dst)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// tmpSnapshots lists what is left in tmp-dst-dir besides the lock file.
func (r *rig) tmpSnapshots(t *testing.T) []string {
	t.Helper()
	des, err := os.ReadDir(r.tmp)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	return out
}

func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, de := range des {
		b, _ := os.ReadFile(filepath.Join(dir, de.Name()))
		out[de.Name()] = string(b)
	}
	return out
}

var tick0 = time.Unix(1795312744, 0)

func good(name string) *fakeSource {
	return &fakeSource{name: name, files: map[string]string{name + "_info": "Name: HAProxy\n", name + "_stat": "# pxname,svname,\n\n"}}
}

func TestRoundPublishesEverySourcesFiles(t *testing.T) {
	r := newRig(t, Options{}, good("a.sock"), good("127.0.0.1:5555"))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 || es[0].Name != "1795312744" {
		t.Fatalf("snapshots %v", es)
	}
	want := map[string]string{
		"a.sock_info": "Name: HAProxy\n", "a.sock_stat": "# pxname,svname,\n\n",
		"127.0.0.1:5555_info": "Name: HAProxy\n", "127.0.0.1:5555_stat": "# pxname,svname,\n\n",
	}
	if got := dirFiles(t, es[0].Path); !reflect.DeepEqual(got, want) {
		t.Fatalf("files %v", got)
	}
	if left := r.tmpSnapshots(t); len(left) != 0 {
		t.Fatalf("tmp-dst-dir not empty: %v", left)
	}
	if r.log.Count("statistics are stored in "+es[0].Path) != 1 {
		t.Fatalf("log: %s", r.log)
	}
}

func TestRoundAllOrNothing(t *testing.T) {
	bad := &fakeSource{name: "bad.sock", files: map[string]string{"bad.sock_info": "half"}, err: errors.New("read: connection reset")}
	r := newRig(t, Options{}, good("a.sock"), bad)
	r.loop.round(context.Background(), tick0)
	if es := r.snapshots(t); len(es) != 0 {
		t.Fatalf("published despite a failed source: %v", es)
	}
	if left := r.tmpSnapshots(t); len(left) != 0 {
		t.Fatalf("tmp-dst-dir not empty: %v", left)
	}
	if !strings.Contains(r.log.String(), "source=bad.sock") || r.log.Count("failed to pull stats") != 1 {
		t.Fatalf("log: %s", r.log)
	}
}

func TestRoundAllowPartialPublishesWithRecord(t *testing.T) {
	bad := &fakeSource{name: "bad.sock", files: map[string]string{"bad.sock_info": "half"}, err: errors.New("received zero data")}
	r := newPartialRig(t, Options{}, good("a.sock"), bad)
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	files := dirFiles(t, es[0].Path)
	if _, ok := files["bad.sock_info"]; ok || files["a.sock_stat"] == "" {
		t.Fatalf("files of a partial snapshot: %v", files)
	}
	rec, err := spool.PartialRecord(es[0].Path)
	if err != nil || len(rec) != 1 || rec[0].Name != "bad.sock" || rec[0].Err != "received zero data" {
		t.Fatalf("record %v %v", rec, err)
	}

	// All sources failed: nothing to publish even with allow-partial.
	r2 := newPartialRig(t, Options{}, bad)
	r2.loop.round(context.Background(), tick0)
	if es := r2.snapshots(t); len(es) != 0 {
		t.Fatalf("published a snapshot without data: %v", es)
	}
}

func TestRoundHonoursFractionalPullTimeout(t *testing.T) {
	hung := &fakeSource{name: "hung.sock", block: true}
	r := newRig(t, Options{Timeout: 300 * time.Millisecond}, good("a.sock"), hung)
	start := time.Now()
	r.loop.round(context.Background(), tick0)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("round took %s with pull-timeout 300ms", took)
	}
	if es := r.snapshots(t); len(es) != 0 {
		t.Fatalf("published: %v", es)
	}
	if !strings.Contains(r.log.String(), "pull-timeout of 300ms reached") {
		t.Fatalf("log: %s", r.log)
	}

	// A longer deadline here: the good source's fsyncs must not miss it on a loaded machine.
	rp := newPartialRig(t, Options{Timeout: 1500 * time.Millisecond}, good("a.sock"), hung)
	rp.loop.round(context.Background(), tick0)
	es := rp.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("allow-partial: snapshots %v", es)
	}
	rec, _ := spool.PartialRecord(es[0].Path)
	if len(rec) != 1 || rec[0].Name != "hung.sock" || !strings.Contains(rec[0].Err, "pull-timeout") {
		t.Fatalf("record %v", rec)
	}
}

func TestRoundAbandonsSourceIgnoringDeadline(t *testing.T) {
	rude := &fakeSource{name: "rude", ignoreCtx: make(chan struct{}), late: make(chan error, 1)}
	r := newPartialRig(t, Options{Timeout: 100 * time.Millisecond}, good("a.sock"), rude)
	start := time.Now()
	r.loop.round(context.Background(), tick0)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("round waited %s for a source that ignores its deadline", took)
	}
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	close(rude.ignoreCtx) // the round is over: now the rude source tries to write
	select {
	case err := <-rude.late:
		if err == nil || !strings.Contains(err.Error(), "source was abandoned") {
			t.Fatalf("the abandoned source's late write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the rude source never tried its late write")
	}
	if _, err := os.Stat(filepath.Join(es[0].Path, "rude_late")); err == nil {
		t.Fatal("an abandoned source wrote into the published snapshot")
	}
	if left := r.tmpSnapshots(t); len(left) != 0 {
		t.Fatalf("tmp-dst-dir not empty: %v", left)
	}
}

func TestRoundZeroSources(t *testing.T) {
	r := newRig(t, Options{})
	for i := 0; i < 3; i++ {
		r.loop.round(context.Background(), tick0.Add(time.Duration(i)*time.Second))
	}
	if n := r.log.Count("found zero sources"); n != 3 {
		t.Fatalf("zero-source error logged %d times in 3 rounds: %s", n, r.log)
	}
	if es := r.snapshots(t); len(es) != 0 {
		t.Fatalf("published: %v", es)
	}
	if left := r.tmpSnapshots(t); len(left) != 0 {
		t.Fatalf("tmp-dst-dir not empty: %v", left)
	}
}

func TestRoundNameClashSkips(t *testing.T) {
	r := newRig(t, Options{}, good("a.sock"))
	r.loop.round(context.Background(), tick0)
	before := dirFiles(t, filepath.Join(r.dst, "1795312744"))
	r.loop.round(context.Background(), tick0.Add(300*time.Millisecond))
	if r.log.Count("snapshot name already taken") != 1 {
		t.Fatalf("log: %s", r.log)
	}
	if got := dirFiles(t, filepath.Join(r.dst, "1795312744")); !reflect.DeepEqual(got, before) {
		t.Fatal("existing snapshot changed")
	}
}

func TestQueueFullSuspendsAndResumes(t *testing.T) {
	src := good("a.sock")
	r := newRig(t, Options{QueueSize: 2}, src)
	for _, d := range []string{"100", "101", ".hidden", "x" + spool.QuarantineSuffix} {
		os.MkdirAll(filepath.Join(r.dst, d), 0o755)
	}
	os.WriteFile(filepath.Join(r.dst, "a-file"), nil, 0o644)
	for i := 0; i < 3; i++ {
		r.loop.round(context.Background(), tick0.Add(time.Duration(i)*time.Second))
	}
	if n := len(r.snapshots(t)); n != 2 {
		t.Fatalf("pulled while the queue was full: %d snapshots", n)
	}
	if n := r.log.Count("queue reached max size of 2, pulling statistics is suspended"); n != 1 {
		t.Fatalf("suspension warned %d times: %s", n, r.log)
	}
	os.Remove(filepath.Join(r.dst, "100"))
	r.loop.round(context.Background(), tick0.Add(10*time.Second))
	r.loop.round(context.Background(), tick0.Add(11*time.Second))
	if n := r.log.Count("pulling statistics is resumed"); n != 1 {
		t.Fatalf("resumption logged %d times: %s", n, r.log)
	}
	if n := r.log.Count("is suspended"); n != 2 {
		t.Fatalf("second suspension logged %d times in total: %s", n, r.log)
	}
	if es := r.snapshots(t); len(es) != 2 || es[1].Name != "1795312754" {
		t.Fatalf("after resuming: %v", es)
	}
}

func TestRoundRecreatesVanishedDstDir(t *testing.T) {
	r := newRig(t, Options{QueueSize: 1}, good("a.sock"))
	os.RemoveAll(r.dst)
	r.loop.round(context.Background(), tick0)
	if len(r.snapshots(t)) != 1 || r.log.Count("dst-dir had disappeared") != 1 {
		t.Fatalf("log: %s", r.log)
	}
}

// TestRunPhaseLockedAndSkipsOverrunTicks checks the schedule through the snapshot names, which
// come from the ticks, not from when the timers fired.
func TestRunPhaseLockedAndSkipsOverrunTicks(t *testing.T) {
	const interval = 100 * time.Millisecond
	round := 0
	var mu sync.Mutex
	src := sourceFunc(func(ctx context.Context, snap SnapshotWriter) error {
		mu.Lock()
		round++
		n := round
		mu.Unlock()
		if n == 3 {
			time.Sleep(250 * time.Millisecond) // overruns two ticks
		}
		f, err := snap.Create("s_stat")
		if err != nil {
			return err
		}
		f.Write([]byte("x"))
		return f.Commit()
	})
	r := newRig(t, Options{Interval: interval, Timeout: time.Second}, src)
	r.loop.snapshotName = func(tick time.Time) int64 { return tick.UnixMilli() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.loop.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.snapshots(t)) < 6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	es := r.snapshots(t)
	if len(es) < 6 {
		t.Fatalf("only %d snapshots in 5 s at a 100 ms interval", len(es))
	}
	var gaps []int64
	for i := 1; i < len(es); i++ {
		a, _ := spool.TimestampOf(es[i-1].Name)
		b, _ := spool.TimestampOf(es[i].Name)
		gaps = append(gaps, b-a)
	}
	for i, g := range gaps {
		if g%100 != 0 || g <= 0 {
			t.Fatalf("snapshot ticks not phase-locked to 100 ms: gaps %v", gaps)
		}
		if i == 2 && g < 300 {
			t.Fatalf("the round after an overrun did not skip to a later tick: gaps %v", gaps)
		}
	}
	if r.log.Count("skipping to the next tick") < 1 {
		t.Fatalf("overrun not warned: %s", r.log)
	}
}

type sourceFunc func(ctx context.Context, snap SnapshotWriter) error

func (f sourceFunc) Name() string { return "func" }
func (f sourceFunc) Pull(ctx context.Context, snap SnapshotWriter) error {
	return f(ctx, snap)
}

func TestNextTick(t *testing.T) {
	iv := 10 * time.Second
	offset := int64(3 * time.Second)
	for _, c := range []struct{ now, want int64 }{
		{1000_000, 1003_000}, // ms since epoch
		{1002_999, 1003_000},
		{1003_000, 1013_000}, // exactly on a tick: that tick is taken, the next one is due
		{1007_500, 1013_000},
	} {
		got := nextTick(time.UnixMilli(c.now), offset, iv)
		if got.UnixMilli() != c.want {
			t.Errorf("nextTick(%d) = %d, want %d", c.now, got.UnixMilli(), c.want)
		}
	}
}

// TestRunStopsPromptly covers shutdown in each state of the loop.
func TestRunStopsPromptly(t *testing.T) {
	cases := map[string]struct {
		opt     Options
		src     Source
		prepare func(r *rig)
		ready   func(t *testing.T, r *rig) bool
	}{
		"mid-pull": {
			opt: Options{Interval: time.Second, Timeout: time.Minute},
			src: &fakeSource{name: "hung", files: map[string]string{"hung_info": "x"}, block: true},
			ready: func(t *testing.T, r *rig) bool {
				m, _ := filepath.Glob(filepath.Join(r.tmp, "*", "hung_info"))
				return len(m) == 1
			},
		},
		"sleeping": {
			opt: Options{Interval: time.Minute},
			src: good("a.sock"),
			ready: func(t *testing.T, r *rig) bool {
				return r.log.Count("statistics are stored") == 1
			},
		},
		"suspended": {
			opt:     Options{Interval: time.Minute, QueueSize: 1},
			src:     good("a.sock"),
			prepare: func(r *rig) { os.Mkdir(filepath.Join(r.dst, "1"), 0o755) },
			ready: func(t *testing.T, r *rig) bool {
				return r.log.Count("is suspended") == 1
			},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, c.opt, c.src)
			if c.prepare != nil {
				c.prepare(r)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.loop.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for !c.ready(t, r) {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("never reached state %s: %s", name, r.log)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Second):
				t.Fatalf("Run did not return within 1 s of cancellation (%s)", name)
			}
			if left := r.tmpSnapshots(t); len(left) != 0 {
				t.Fatalf("tmp-dst-dir not empty after shutdown: %v", left)
			}
		})
	}
}

// instance is a source of a named (non-top-level) source: it writes <name>.body.
func instance(name, body string) *fakeSource {
	return &fakeSource{name: name, files: map[string]string{name + ".body": body}}
}

func named(source string, allowPartial bool, sources ...Source) *fakeProvider {
	return &fakeProvider{info: ProviderInfo{Source: source, Kind: "test", AllowPartial: allowPartial,
		Options: []spool.Option{{Key: "aggregate", Value: "sum p95"}}}, sources: sources}
}

func top(sources ...Source) *fakeProvider {
	return &fakeProvider{info: ProviderInfo{Source: "haproxy", Kind: "haproxy", TopLevel: true}, sources: sources}
}

// A named source writes into its own directory with its description; the top-level one stays
// at the top, as haproxystats wrote it.
func TestRoundNamedSourcesWriteDirectories(t *testing.T) {
	r := newRigOf(t, Options{}, top(good("a.sock")), named("apps", false, instance("i1", "x 1\n"), instance("i2", "x 2\n")))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	if got := dirFiles(t, es[0].Path); got["a.sock_stat"] == "" || len(got) != 3 {
		t.Fatalf("top of the snapshot: %v", got)
	}
	files := dirFiles(t, filepath.Join(es[0].Path, "apps"))
	if files["i1.body"] != "x 1\n" || files["i2.body"] != "x 2\n" || len(files) != 3 {
		t.Fatalf("apps/: %v", files)
	}
	info, err := spool.ReadSourceInfo(filepath.Join(es[0].Path, "apps"))
	want := spool.NewSourceInfo("test", "apps", []spool.Option{{Key: "aggregate", Value: "sum p95"}})
	if err != nil || !reflect.DeepEqual(info, want) {
		t.Fatalf("source.json: %+v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(es[0].Path, spool.PartialFile)); !os.IsNotExist(err) {
		t.Fatalf("a complete snapshot has a partial record: %v", err)
	}
	if err := spool.CheckSnapshot(es[0].Path); err != nil {
		t.Fatalf("the published snapshot is not one the processor accepts: %v", err)
	}
}

// One failed instance of source A leaves A out of the round (its directory is removed), and
// never touches source B; the record names <source>/<instance>.
func TestRoundOneSourceFailureKeepsTheOthers(t *testing.T) {
	bad := &fakeSource{name: "i2", files: map[string]string{"i2.body": "half"}, err: errors.New("connection refused")}
	r := newRigOf(t, Options{}, top(good("a.sock")), named("apps", false, instance("i1", "x 1\n"), bad),
		named("web", false, instance("w1", "y 1\n")))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	if _, err := os.Stat(filepath.Join(es[0].Path, "apps")); !os.IsNotExist(err) {
		t.Fatalf("the failed source's directory is in the snapshot: %v", err)
	}
	if files := dirFiles(t, filepath.Join(es[0].Path, "web")); files["w1.body"] != "y 1\n" {
		t.Fatalf("web/: %v", files)
	}
	if files := dirFiles(t, es[0].Path); files["a.sock_stat"] == "" {
		t.Fatalf("top: %v", files)
	}
	rec, err := spool.PartialRecord(es[0].Path)
	if err != nil || len(rec) != 1 || rec[0].Name != "apps/i2" || rec[0].Err != "connection refused" {
		t.Fatalf("record %v %v", rec, err)
	}
	if r.log.Count("source left out of this round") != 1 {
		t.Fatalf("log: %s", r.log)
	}
	if left := r.tmpSnapshots(t); len(left) != 0 {
		t.Fatalf("tmp-dst-dir not empty: %v", left)
	}
}

// With allow-partial in its section, the source keeps the instances that answered.
func TestRoundSourceAllowPartialKeepsAnsweringInstances(t *testing.T) {
	bad := &fakeSource{name: "i2", files: map[string]string{"i2.body": "half"}, err: errors.New("timeout")}
	r := newRigOf(t, Options{}, named("apps", true, instance("i1", "x 1\n"), bad))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	files := dirFiles(t, filepath.Join(es[0].Path, "apps"))
	if files["i1.body"] != "x 1\n" || len(files) != 2 {
		t.Fatalf("apps/: %v", files)
	}
	if rec, err := spool.PartialRecord(es[0].Path); err != nil || len(rec) != 1 || rec[0].Name != "apps/i2" {
		t.Fatalf("record %v %v", rec, err)
	}
}

// A top-level source failing without allow-partial leaves only it out when others answered.
func TestRoundTopLevelFailureKeepsNamedSources(t *testing.T) {
	badSock := &fakeSource{name: "b.sock", files: map[string]string{"b.sock_info": "x"}, err: errors.New("reset")}
	r := newRigOf(t, Options{}, top(good("a.sock"), badSock), named("apps", false, instance("i1", "x 1\n")))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	files := dirFiles(t, es[0].Path)
	if _, ok := files["a.sock_stat"]; ok {
		t.Fatalf("the failed top-level source kept files: %v", files)
	}
	if rec, err := spool.PartialRecord(es[0].Path); err != nil || len(rec) != 1 || rec[0].Name != "b.sock" {
		t.Fatalf("record %v %v", rec, err)
	}
}

// A source that lists no instance, beside one that does, is recorded as failed.
func TestRoundSourceWithoutInstances(t *testing.T) {
	r := newRigOf(t, Options{}, top(), named("apps", false, instance("i1", "x 1\n")))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	if rec, err := spool.PartialRecord(es[0].Path); err != nil || len(rec) != 1 || rec[0].Name != "haproxy" {
		t.Fatalf("record %v %v", rec, err)
	}
}

// A source whose instances come and go (EmptyOK) lists none this round: no failure recorded.
func TestRoundEmptyOKSourceIsNoFailure(t *testing.T) {
	plugins := named("scope", false)
	plugins.info.EmptyOK = true
	r := newRigOf(t, Options{}, plugins, named("apps", false, instance("i1", "x 1\n")))
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v", es)
	}
	if rec, err := spool.PartialRecord(es[0].Path); err != nil || len(rec) != 0 {
		t.Fatalf("record %v %v", rec, err)
	}
	if _, err := os.Stat(filepath.Join(es[0].Path, "scope")); !os.IsNotExist(err) {
		t.Fatalf("an empty source left a directory: %v", err)
	}
}

// A source may discard a file, committed or not (Discarder): the snapshot is published without
// it, and the source is not failed for a file it no longer has.
func TestRoundSourceDiscardsFiles(t *testing.T) {
	src := sourceFunc(func(ctx context.Context, snap SnapshotWriter) error {
		for _, name := range []string{"keep_stat", "committed_stat", "open_stat"} {
			f, err := snap.Create(name)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte(name)); err != nil {
				return err
			}
			if name != "open_stat" {
				if err := f.Commit(); err != nil {
					return err
				}
			}
			if name == "keep_stat" {
				continue
			}
			d, ok := f.(Discarder)
			if !ok {
				return fmt.Errorf("%T is not a Discarder", f)
			}
			if err := d.Discard(); err != nil {
				return err
			}
		}
		return nil
	})
	r := newRig(t, Options{}, src)
	r.loop.round(context.Background(), tick0)
	es := r.snapshots(t)
	if len(es) != 1 {
		t.Fatalf("snapshots %v\n%s", es, r.log)
	}
	if got := dirFiles(t, es[0].Path); !reflect.DeepEqual(got, map[string]string{"keep_stat": "keep_stat"}) {
		t.Fatalf("files %v", got)
	}
}
