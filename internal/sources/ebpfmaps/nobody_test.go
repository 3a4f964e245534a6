package ebpfmaps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/pull"
)

// memSnap is a SnapshotWriter in memory.
type memSnap struct {
	mu    sync.Mutex
	files map[string]*bytes.Buffer
}

type memFile struct{ *bytes.Buffer }

func (memFile) Commit() error { return nil }

func (s *memSnap) Create(name string) (pull.SnapshotFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string]*bytes.Buffer{}
	}
	b := &bytes.Buffer{}
	s.files[name] = b
	return memFile{b}, nil
}

// A user without privileges (nobody, no capabilities) reads a readable pin, but not its BTF:
// the layout is used instead, with one warning; an unreadable pin fails with the reason.
func TestNobody(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	// Every directory on the way must be open to nobody.
	dir, err := os.MkdirTemp("", "ebpfmaps-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bpffs := filepath.Join(dir, "bpffs")
	os.Mkdir(bpffs, 0o755)
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0755"); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	m := newMap(t, &ebpf.MapSpec{Name: "http_counts", Type: ebpf.Hash, KeySize: 16, ValueSize: 32, MaxEntries: 4,
		Key: tHTTPKey, Value: tHTTPVal}, filepath.Join(bpffs, "http_counts"))
	put(t, m, httpKey(42, 200, 5, 17, "curl", true), httpVal(7, 700, -3, 1, 2, -1))
	os.Chmod(filepath.Join(bpffs, "http_counts"), 0o644)
	newMap(t, &ebpf.MapSpec{Name: "secret", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}, filepath.Join(bpffs, "secret")) // 0600

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ebpfmaps.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(pin string) string {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
			bin, "-test.run=^TestNobodyHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "EBPFMAPS_NOBODY_PIN="+pin,
			"EBPFMAPS_NOBODY_LAYOUT=key=u32:pid,u16:code,u8:bits,char6:comm,u8:tls,u16:pad value=u64:count,u64:bytes,s32:delta,u32:h0,u32:h1,s32:last")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := run(filepath.Join(bpffs, "http_counts"))
	for _, want := range []string{
		"map has BTF but reading it needs CAP_SYS_ADMIN; falling back to the layout or hex",
		`"types":"layout"`,
		`{"key":[{"name":"pid","kind":"uint","num":42},{"name":"code","kind":"uint","num":200},{"name":"bits","kind":"uint","num":141},{"name":"comm","kind":"string","str":"curl"},{"name":"tls","kind":"uint","num":1},{"name":"pad","kind":"uint","num":0}],` +
			`"value":[{"name":"count","kind":"uint","num":7},{"name":"bytes","kind":"uint","num":700},{"name":"delta","kind":"int","num":-3},{"name":"h0","kind":"uint","num":1},{"name":"h1","kind":"uint","num":2},{"name":"last","kind":"int","num":-1}]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	out = run(filepath.Join(bpffs, "secret"))
	if want := "pin " + filepath.Join(bpffs, "secret") + " not readable by uid 65534 (mode 0600, chmod the pin"; !strings.Contains(out, want) {
		t.Errorf("missing %q in\n%s", want, out)
	}
}

// TestNobodyHelper is TestNobody's child, run as nobody: it pulls one pin and prints the files.
func TestNobodyHelper(t *testing.T) {
	pin := os.Getenv("EBPFMAPS_NOBODY_PIN")
	if pin == "" {
		t.Skip("only as TestNobody's child")
	}
	l, err := ParseLayout(os.Getenv("EBPFMAPS_NOBODY_LAYOUT"))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(pin)
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := &provider{st: pullSettings{pins: []string{pin}, maxEntries: 10, layouts: map[string]Layout{name: l}}, log: log}
	srcs, err := p.Sources(context.Background())
	if err != nil {
		fmt.Println("sources:", err)
		return
	}
	var snap memSnap
	for _, s := range srcs {
		if err := s.Pull(context.Background(), &snap); err != nil {
			fmt.Println("pull:", err)
		}
	}
	var names []string
	for n := range snap.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("== %s\n", n)
		io.Copy(os.Stdout, snap.files[n])
	}
}
