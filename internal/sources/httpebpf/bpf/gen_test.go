package bpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedIsCurrent compiles http_stats.bpf.c with bpf2go into a temporary directory and
// compares the object and the Go bindings byte for byte with the committed ones (bpf2go's
// output is reproducible), so a change to the C source without scripts/gen-ebpf fails here.
func TestGeneratedIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang is not installed (apt-get install clang llvm libbpf-dev, or run scripts/gen-ebpf): the committed bpf2go output is not compared")
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("libbpf-dev is not installed (bpf/bpf_helpers.h): the committed bpf2go output is not compared")
	}
	// The go:generate line of gen.go, run here with its output sent to a temporary directory.
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate go tool bpf2go "); ok {
			args = strings.Fields(rest)
		}
	}
	if len(args) == 0 {
		t.Fatal("gen.go has no bpf2go go:generate line")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"tool", "bpf2go", "-output-dir", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=bpf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go: %v\n%s", err, out)
	}
	for _, f := range []string{"httpstats_bpfel.o", "httpstats_bpfel.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what http_stats.bpf.c compiles to now: run scripts/gen-ebpf and commit the output", f)
		}
	}
}
