package haproxy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The processor opens only regular files directly in a real snapshot directory, even when it is
// handed a snapshot that the runner's check did not see (a race, or another caller): a FIFO is
// refused without blocking, a symlink is not followed, and dot files are not data at all.
func TestProcessOpensOnlyRegularFilesAndIgnoresDotFiles(t *testing.T) {
	rows := [][]string{{"# pxname", "svname", "bin", "type"}, {"fe", "FRONTEND", "10", "0"}}
	dir := writeSnapshot(t, map[string]string{"a.sock_stat": statCSV(rows)})
	outside := filepath.Join(t.TempDir(), "b.sock_stat")
	os.WriteFile(outside, []byte(statCSV([][]string{{"# pxname", "svname", "bin", "type"}, {"fe", "FRONTEND", "1000", "0"}})), 0o644)
	os.Symlink(outside, filepath.Join(dir, "b.sock_stat"))
	for _, name := range []string{"c.sock_stat", ".hidden.sock_stat", ".d_info"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan result, 1)
	go func() { done <- run(t, dir, 1700000000, Options{Prefix: "ns"}) }()
	var got result
	select {
	case got = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Process blocked on a FIFO for more than 5 s")
	}
	if got.err != nil {
		t.Fatalf("%v\n%s", got.err, got.log)
	}
	if v := paths(got.lines)["ns.frontend.fe.bin"]; v != "10" {
		t.Errorf("fe.bin = %q, want 10: only a.sock_stat is data", v)
	}
	for _, want := range []string{"b.sock_stat: not opened: it is a symlink to", "c.sock_stat: not opened: it is a FIFO"} {
		if !strings.Contains(got.log, want) {
			t.Errorf("the log does not say %q:\n%s", want, got.log)
		}
	}
	if strings.Contains(got.log, "hidden") || strings.Contains(got.log, ".d_info") {
		t.Errorf("dot files are not data, not even worth a log line:\n%s", got.log)
	}
	if got.stats.FilesUsed != 1 || got.stats.FilesSkipped != 2 {
		t.Errorf("files used %d, skipped %d; want 1 and 2", got.stats.FilesUsed, got.stats.FilesSkipped)
	}
}

// A snapshot directory that is a symlink is not listed through.
func TestProcessRefusesASymlinkedSnapshotDirectory(t *testing.T) {
	dir := writeSnapshot(t, map[string]string{"a.sock_info": "Name: HAProxy\nProcess_num: 1\n"})
	link := filepath.Join(t.TempDir(), "1700000000")
	os.Symlink(dir, link)
	got := run(t, link, 1700000000, Options{Prefix: "ns"})
	if got.err == nil || !strings.Contains(got.err.Error(), "is a symlink") || len(got.batches) != 0 {
		t.Fatalf("Process through a symlink: %v, %d batches", got.err, len(got.batches))
	}
}
