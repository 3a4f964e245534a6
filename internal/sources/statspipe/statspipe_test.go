package statspipe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/dispatch"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/selfmetrics"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"

	_ "github.com/statspipe/statspipe/internal/sources/haproxy"
)

var replies = testrig.FakeReply{
	"show info": []byte("Name: HAProxy\nProcess_num: 1\n\n"),
	"show stat": []byte("# pxname,svname,\nfe,FRONTEND,\n\n"),
}

// Rounds with [pull] self-metrics: every published snapshot has the statspipe part, written
// after the other sources with the values as of then; a round whose real sources all fail
// publishes nothing (the part never publishes a snapshot by itself); stats-process's half turns
// the body into lines below <namespace>.<host>.statspipe.
func TestSelfMetricsPartRoundTrip(t *testing.T) {
	reg := selfmetrics.New("pull")
	m := selfmetrics.NewPull(reg)
	selfmetrics.SetDefault(reg)
	defer selfmetrics.SetDefault(nil)

	dir := t.TempDir()
	fake := testrig.ServeFakeStats(t, "tcp", "127.0.0.1:0", replies, false)
	conf := strings.Replace(sourcetest.BaseConf(dir), "[process]", "servers = tcp://"+fake.Address+"\nself-metrics = true\n[process]", 1)
	cfg := sourcetest.LoadConfig(t, conf, config.PullProgram)
	log, logs := testrig.Logger()
	ps, err := sources.Providers(cfg, log)
	if err != nil || len(ps) != 2 {
		t.Fatalf("providers %v %v", ps, err)
	}
	w, err := spool.NewWriter(cfg.Pull.DstDir, cfg.Pull.TmpDstDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	loop, err := pull.NewLoop(w, ps, pull.Options{Interval: time.Hour, Timeout: 5 * time.Second, Metrics: m}, log)
	if err != nil {
		t.Fatal(err)
	}
	name := fake.Address // the HAProxy files are named host:port
	info := int64(len(replies["show info"]) + len(replies["show stat"]))

	snap := loop.Once(context.Background())
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	snap = moveAway(t, snap, dir) // so that the next round may take the same second
	body := read(t, filepath.Join(snap, "statspipe", BodyFile))
	for _, want := range []string{
		"pull.snapshots_published 0.0\n", "pull.rounds_without_snapshot 0.0\n",
		"pull.source.haproxy.bytes " + itoa(info) + ".0\n", "pull.source.haproxy.failures 0.0\n",
		"pull.source.haproxy.duration_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "source.statspipe.") {
		t.Errorf("the part counts itself as a source:\n%s", body)
	}
	if !strings.Contains(read(t, filepath.Join(snap, "statspipe", spool.SourceInfoFile)), `"kind":"statspipe"`) {
		t.Error("no source.json of kind statspipe")
	}
	if _, err := os.Stat(filepath.Join(snap, name+"_stat")); err != nil {
		t.Error(err)
	}

	// The process half.
	pcfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir), config.ProcessProgram)
	lines, err := sourcetest.ProcessPart(t, newFormat, pcfg, filepath.Join(snap, "statspipe"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lines, "loadbalancers.vm.statspipe.pull.snapshots_published 0.0 1700000000\n") ||
		!strings.Contains(lines, "loadbalancers.vm.statspipe.pull.source.haproxy.bytes "+itoa(info)+".0 1700000000\n") ||
		strings.Count(lines, "\n") != strings.Count(body, "\n") {
		t.Errorf("lines:\n%s\nof body:\n%s", lines, body)
	}

	snap2 := loop.Once(context.Background())
	if snap2 == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	snap2 = moveAway(t, snap2, dir)
	body = read(t, filepath.Join(snap2, "statspipe", BodyFile))
	if !strings.Contains(body, "pull.snapshots_published 1.0\n") || !strings.Contains(body, "pull.source.haproxy.bytes "+itoa(2*info)+".0\n") {
		t.Errorf("second body:\n%s", body)
	}

	fake.Close()
	if s := loop.Once(context.Background()); s != "" {
		t.Fatalf("published %s with every real source failing", s)
	}
	if ok, why := m.Health(); ok || !strings.Contains(why, "every source failed") {
		t.Errorf("health after a failed round: %v %q", ok, why)
	}
	if v, _ := reg.Get("rounds_without_snapshot"); v != 1 {
		t.Errorf("rounds_without_snapshot = %v", v)
	}
	if v, _ := reg.Get("source.haproxy.failures"); v != 1 {
		t.Errorf("failures = %v", v)
	}
}

func TestMalformedBodyLinesAreRejected(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	part := filepath.Join(dir, "statspipe")
	os.MkdirAll(part, 0o755)
	os.WriteFile(filepath.Join(part, BodyFile), []byte("pull.a 1\nnot a line\npull.b x\nother.c 2\npull..d 3\npull.e 2.5\n"), 0o644)
	cfg := sourcetest.LoadConfig(t, sourcetest.BaseConf(dir), config.ProcessProgram)
	lines, err := sourcetest.ProcessPart(t, newFormat, cfg, part)
	var rej dispatch.Rejected
	if !errors.As(err, &rej) || !strings.Contains(rej.Rejected(), `line 2: "not a line"`) {
		t.Fatalf("error %v", err)
	}
	want := "loadbalancers.vm.statspipe.pull.a 1.0 1700000000\nloadbalancers.vm.statspipe.pull.e 2.5 1700000000\n"
	if lines != want {
		t.Errorf("lines %q, want %q", lines, want)
	}
	os.Remove(filepath.Join(part, BodyFile))
	if _, err := sourcetest.ProcessPart(t, newFormat, cfg, part); err == nil {
		t.Error("a part without its body was accepted")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// moveAway moves a published snapshot out of dst-dir, into dir, and returns its new path.
func moveAway(t *testing.T, snap, dir string) string {
	t.Helper()
	dest := filepath.Join(dir, "kept-"+strconv.Itoa(kept))
	kept++
	if err := os.Rename(snap, dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

var kept int

// Without a registry (a configuration check builds the providers too) the provider still
// works, with nothing to write.
func TestProviderWithoutRegistry(t *testing.T) {
	selfmetrics.SetDefault(nil)
	p, err := newProvider(nil, nil, nil)
	if err != nil || !p.Info().Late || p.Info().Source != config.SelfMetricsSourceName {
		t.Fatalf("%v %v", p, err)
	}
}
