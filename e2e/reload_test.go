package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// SIGHUP makes stats-process re-read its configuration (haproxystats stopped): RELOADING=1,
// then READY=1 with the status. A reload that adds an exclude list and a source section (whose
// options replace those the snapshots recorded) changes the lines of the next snapshot; the snapshots queued while it happens are all delivered; an
// invalid file is rejected and the running configuration goes on.
func TestProcessReload(t *testing.T) {
	notify := testrig.ListenNotify(t)
	base := t.TempDir()
	in := filepath.Join(base, "incoming")
	os.MkdirAll(in, 0o755)
	store := filepath.Join(base, "store")
	input := filepath.Join(goldenDir, "A-real-default", "input", "1795312594")
	exclude := filepath.Join(base, "exclude-frontends")
	os.WriteFile(exclude, []byte("fe_main\n"), 0o644)
	common := "[paths]\nbase-dir = " + base + "\n[process]\nsrc-dir = ${paths:base-dir}/incoming\nworkers = 2\n" +
		"[graphite]\nenabled = false\nhostname = vm\nnamespace = lb\n[local-store]\ndir = " + store + "\n"
	conf := writeConfig(t, base, common)
	rewrite := func(text string) {
		t.Helper()
		if err := os.WriteFile(conf+".new", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(conf+".new", conf); err != nil {
			t.Fatal(err)
		}
	}
	p := startWithEnv(t, []string{"NOTIFY_SOCKET=" + notify.Path}, "stats-process", "-f", conf)
	next := func(prefix string) string {
		t.Helper()
		for i := 0; i < 100; i++ {
			if m := notify.Next(t, 15*time.Second); strings.HasPrefix(m, prefix) {
				return m
			} else if !strings.HasPrefix(m, "STATUS=") {
				t.Fatalf("notification %q, want %s", m, prefix)
			}
		}
		t.Fatalf("no %s", prefix)
		return ""
	}
	if m := next("READY=1"); !strings.Contains(m, "STATUS=watching "+in) {
		t.Fatalf("READY %q", m)
	}
	// snapshot publishes the golden input as snapshot ts (built beside, renamed in).
	ts := int64(1795312594)
	// Each snapshot also has a part of the http-ebpf kind (its worked example), recorded with
	// per-instance-metrics = true.
	ebpfExample := filepath.Join("..", "internal", "sources", "httpebpf", "testdata", "example")
	snapshot := func() int64 {
		t.Helper()
		ts += 10
		tmp := filepath.Join(base, fmt.Sprintf(".tmp-%d", ts))
		copyTree(t, input, tmp)
		part := filepath.Join(tmp, "http")
		copyTree(t, ebpfExample, part)
		for _, f := range []string{"source.conf", "expected.txt"} {
			os.Remove(filepath.Join(part, f))
		}
		info, _ := json.Marshal(spool.NewSourceInfo("http-ebpf", "http", []spool.Option{{Key: "per-instance-metrics", Value: "true"}}))
		os.WriteFile(filepath.Join(part, spool.SourceInfoFile), info, 0o644)
		if err := os.Rename(tmp, filepath.Join(in, fmt.Sprint(ts))); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	lines := func(ts int64) string {
		t.Helper()
		var b []byte
		waitUntil(t, 30*time.Second, fmt.Sprintf("snapshot %d in the local store", ts), func() bool {
			var err error
			b, err = os.ReadFile(filepath.Join(store, fmt.Sprint(ts), "stats"))
			return err == nil
		})
		return string(b)
	}
	const feMain = "lb.vm.haproxy.frontend.fe_main."
	const perPID = "lb.vm.http.instance.1001.nginx.requests "
	const respMax = "lb.vm.http.nginx.responses.max "
	first := snapshot()
	out := lines(first)
	if !strings.Contains(out, feMain) || !strings.Contains(out, perPID) || strings.Contains(out, respMax) {
		t.Fatalf("before the reload: fe_main or the per-PID lines missing, or a max of responses:\n%s", out)
	}
	// One info line per delivered snapshot, with its lines and each dispatcher's time.
	wantLog := fmt.Sprintf(`level=INFO msg="snapshot delivered" program=stats-process snapshot=%d lines=%d bytes=%d seconds=`,
		first, strings.Count(out, "\n"), len(out))
	waitUntil(t, 10*time.Second, "the delivery log line", func() bool {
		return strings.Contains(p.out.String(), wantLog) && strings.Contains(p.out.String(), "local-store_seconds=")
	})

	// Queue several snapshots, then reload at once with fe_main excluded.
	var queued []int64
	for i := 0; i < 6; i++ {
		queued = append(queued, snapshot())
	}
	rewrite(strings.Replace(common, "workers = 2\n", "workers = 2\nexclude-frontends = "+exclude+"\n", 1) +
		"[source.http]\ntype = http-ebpf\naggregate.*.responses = sum max\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	if m := next("READY=1"); !strings.Contains(m, "STATUS=watching "+in) {
		t.Fatalf("READY after the reload %q", m)
	}
	for _, q := range queued { // none lost: each delivered, by one configuration or the other
		lines(q)
	}
	if out := lines(snapshot()); strings.Contains(out, feMain) || !strings.Contains(out, "lb.vm.haproxy.frontend.fe_dotted_name.") ||
		strings.Contains(out, perPID) || !strings.Contains(out, respMax+"32.0 ") {
		t.Fatalf("after the reload: fe_main or per-PID lines still there, or the rest missing:\n%s", out)
	}

	// An invalid file: rejected with the error; the running configuration (fe_main excluded)
	// processes the next snapshot.
	rewrite(strings.Replace(common, "workers = 2\n", "workers = two\n", 1))
	p.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	if m := next("READY=1"); !strings.Contains(m, "reload rejected") || !strings.Contains(m, "workers") {
		t.Fatalf("READY after a rejected reload %q", m)
	}
	if out := lines(snapshot()); strings.Contains(out, feMain) || !strings.Contains(out, respMax) {
		t.Fatalf("the rejected configuration was applied:\n%s", out)
	}
	waitUntil(t, 10*time.Second, "the rejection in the log", func() bool {
		return strings.Contains(p.out.String(), "reload rejected: the running configuration stays")
	})
	if left := snapshotsIn(t, in); len(left) != 0 {
		t.Fatalf("snapshots left in the spool: %v", left)
	}
	p.stop(t)
}
