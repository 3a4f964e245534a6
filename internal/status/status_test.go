package status

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

func TestWriteReplacesAtomicallyAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, PullFile)
	for i := range 3 {
		if err := Write(path, &Pull{Format: Format, RoundsWithoutPublish: i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadPull(path)
	if err != nil || got.RoundsWithoutPublish != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != PullFile {
		t.Fatalf("directory holds %v", entries)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm()&0o044 != 0o044 {
		t.Fatalf("mode %v: the check's user must be able to read it", fi.Mode())
	}
	// What a kill between the write and the rename leaves is replaced by the next write.
	os.WriteFile(tempName(path), []byte("half"), 0o644)
	if err := Write(path, &Pull{Format: Format}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a leftover temporary stayed: %v", entries)
	}
	if tempName(path) != filepath.Join(dir, PullFile+".tmp") || tempName("/x/y") != "/x/.y.tmp" {
		t.Fatalf("temporary names %s %s", tempName(path), tempName("/x/y"))
	}
	if err := Write(filepath.Join(dir, "missing", PullFile), &Pull{}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a failed write left %v", entries)
	}
}

func TestReadRejectsWhatIsNotARecord(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPull(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for name, text := range map[string]string{
		"empty":     "",
		"torn":      `{"format":1,"program":"stats-pu`,
		"format 2":  `{"format":2}`,
		"no format": `{"program":"stats-pull"}`,
		"huge":      `{"format":1,"program":"` + strings.Repeat("x", maxSize) + `"}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(text), 0o644)
		if _, err := ReadProcess(p); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPullRecorder(t *testing.T) {
	dir := t.TempDir()
	log, buf := testrig.Logger()
	r := NewPullRecorder(dir, log)
	clock := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return clock }

	r.Published("1796191200", nil)
	clock = clock.Add(time.Second)
	r.Failed("found zero sources to pull from; nothing published this round", nil)
	clock = clock.Add(time.Second)
	r.Failed("failed to pull stats; nothing published this round", []Failure{{"admin1.sock", "dial unix: no such file"}})
	st, err := ReadPull(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastPublish == nil || st.LastPublish.Snapshot != "1796191200" || !st.LastPublish.Time.Equal(clock.Add(-2*time.Second)) ||
		st.RoundsWithoutPublish != 2 || !st.Updated.Equal(clock) || st.PID != os.Getpid() ||
		st.LastError == nil || st.LastError.Error != "failed to pull stats; nothing published this round (admin1.sock: dial unix: no such file)" {
		t.Fatalf("%+v %+v", st, st.LastError)
	}

	// Bounded: many failed sources and a long error.
	var many []Failure
	for range 3 * maxNames {
		many = append(many, Failure{"s", strings.Repeat("e", 100)})
	}
	r.Published("1796191203", many)
	st, _ = ReadPull(r.Path())
	if len(st.LastPublish.FailedSources) != maxNames+1 || len(st.LastError.Error) > maxText+len("…") {
		t.Fatalf("not bounded: %d names, %d bytes of error", len(st.LastPublish.FailedSources), len(st.LastError.Error))
	}

	// A failing directory is logged once, and its recovery once.
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if f, err := os.CreateTemp(dir, "probe"); err == nil { // root ignores the mode
		f.Close()
		os.Remove(f.Name())
		t.Log("running as root: the unwritable-directory part is not tested")
		return
	}
	for range 3 {
		r.Failed("x", nil)
	}
	os.Chmod(dir, 0o755)
	r.Failed("y", nil)
	if n := buf.Count("cannot write the status file"); n != 1 {
		t.Fatalf("write failure logged %d times: %s", n, buf)
	}
	if n := buf.Count("the status file is written again"); n != 1 {
		t.Fatalf("recovery logged %d times: %s", n, buf)
	}
}

func TestRecordersCarryOverTheLastSuccess(t *testing.T) {
	dir := t.TempDir()
	log, buf := testrig.Logger()
	p := NewPullRecorder(dir, log)
	p.Published("1796191200", nil)
	p.Failed("nothing published this round", nil)
	q := NewProcessRecorder(dir, log)
	q.Delivered("1796191200", 1500*time.Millisecond)

	p2 := NewPullRecorder(dir, log)
	st, _ := ReadPull(p2.Path())
	if st.LastPublish == nil || st.LastPublish.Snapshot != "1796191200" || st.LastError == nil || st.RoundsWithoutPublish != 0 {
		t.Fatalf("pull after a restart: %+v", st)
	}
	q2 := NewProcessRecorder(dir, log)
	pr, _ := ReadProcess(q2.Path())
	if pr.LastDelivery == nil || pr.LastDelivery.Snapshot != "1796191200" || pr.LastDelivery.Seconds != 1.5 || pr.Delivered != 0 {
		t.Fatalf("process after a restart: %+v", pr)
	}

	// An unreadable record is replaced, with a warning.
	os.WriteFile(p.Path(), []byte("garbage"), 0o644)
	NewPullRecorder(dir, log)
	if buf.Count("ignoring an unreadable status file") != 1 {
		t.Fatalf("log: %s", buf)
	}
	if _, err := ReadPull(p.Path()); err != nil {
		t.Fatal(err)
	}
}
