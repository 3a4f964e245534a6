package ebpfmaps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/statspipe/statspipe/internal/config"
)

// A path that is not on a bpffs fails the source with the mount hint (no "no maps found").
func TestNotBPFFS(t *testing.T) {
	dir := t.TempDir()
	conf := baseConf(dir) + "[source.maps]\ntype = ebpf-maps\npins = " + dir + "\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap != "" {
		if _, err := os.Stat(filepath.Join(snap, "maps")); err == nil {
			t.Fatalf("a source part was written for a plain directory")
		}
	}
	if !strings.Contains(logs.String(), "not on a bpf filesystem (mount one: mount -t bpf bpf "+dir) {
		t.Errorf("no mount hint:\n%s", logs)
	}
}

// max-entries bounds what one map writes, the rest is counted; a map that cannot be iterated
// is skipped by a walk, and fails its instance when named.
func TestBoundsAndUnsupported(t *testing.T) {
	needRoot(t)
	bpffs := mountBPFFS(t)
	m := newMap(t, &ebpf.MapSpec{Name: "many", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 50}, filepath.Join(bpffs, "many"))
	_ = m
	newMap(t, &ebpf.MapSpec{Name: "ring", Type: ebpf.RingBuf, MaxEntries: 4096}, filepath.Join(bpffs, "ring"))
	dir := t.TempDir()
	conf := baseConf(dir) + "[source.maps]\ntype = ebpf-maps\npins = " + bpffs + "\nmax-entries = 20\n"
	snap, logs := pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if snap == "" {
		t.Fatalf("nothing published:\n%s", logs)
	}
	lines := bodyLines(t, filepath.Join(snap, "maps", "many.body"))
	if len(lines) != 20 {
		t.Errorf("%d entries written, want 20", len(lines))
	}
	meta, _ := os.ReadFile(filepath.Join(snap, "maps", "many.meta.json"))
	if !strings.Contains(string(meta), `"entries_left_out":"30"`) {
		t.Errorf("left-out count missing: %s", meta)
	}
	if !strings.Contains(logs.String(), `map skipped: its type cannot be read entry by entry" source=maps kind=ebpf-maps path=`+filepath.Join(bpffs, "ring")+" map_type=RingBuf") {
		t.Errorf("ring buffer not reported:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(snap, "maps", "ring.meta.json")); err == nil {
		t.Error("the ring buffer was written")
	}
	// Named as a pin file, it fails its instance with the reason.
	dir = t.TempDir() // a fresh spool: the same second's snapshot name is taken
	conf = baseConf(dir) + "[source.maps]\ntype = ebpf-maps\npins = " + filepath.Join(bpffs, "ring") + "\n"
	_, logs = pullOnce(t, loadConfig(t, conf, config.PullProgram))
	if !strings.Contains(logs.String(), "ring: map type RingBuf cannot be read entry by entry (not supported)") {
		t.Errorf("ring buffer named in pins not reported:\n%s", logs)
	}
}

// sample.conf is a valid section for both programs (its bpffs need not exist to be checked).
func TestSampleConf(t *testing.T) {
	b, err := os.ReadFile("sample.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	for _, prog := range []config.Program{config.PullProgram, config.ProcessProgram} {
		cfg := loadConfig(t, baseConf(dir)+string(b), prog)
		if len(cfg.Sources) != 1 || cfg.Sources[0].Kind != Kind {
			t.Fatalf("sources %+v", cfg.Sources)
		}
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"pins = \n", "pins = /x\nlayout.m = key=u31\n", "pins = /x\nmax-entries = 0\n", "pins = /x\nper-cpu = maybe\n"} {
		path := filepath.Join(t.TempDir(), "c.conf")
		os.WriteFile(path, []byte(baseConf(dir)+"[source.m]\ntype = ebpf-maps\n"+bad), 0o644)
		l, err := config.Load(path, true, "")
		if err == nil {
			_, err = l.Config(config.PullProgram)
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
