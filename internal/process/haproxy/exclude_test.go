package haproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An exclude file that is not a small regular file excludes nothing, never blocks a worker or
// fills its memory, and is logged with the file and the problem once while it stays broken,
// however many snapshots and workers meet it; it is used again, with one info line, once fixed.
func TestExcludeFileThatCannotBeUsed(t *testing.T) {
	limitProblem := fmt.Sprintf("it is larger than %d bytes, the limit for an exclude file", MaxExcludeFileSize)
	for _, c := range []struct {
		name    string
		make    func(path string) error
		problem string
	}{
		{"/dev/zero (through a symlink)", func(path string) error { return os.Symlink("/dev/zero", path) },
			"it is a character device, not a regular file; it was not opened"},
		{"FIFO", func(path string) error { return syscall.Mkfifo(path, 0o644) },
			"it is a FIFO (named pipe), not a regular file; it was not opened"},
		{"directory", func(path string) error { return os.Mkdir(path, 0o755) },
			"it is a directory, not a regular file"},
		{"over the size limit", func(path string) error {
			// the excluded backend first, and one byte over the limit
			return os.WriteFile(path, []byte("be_app\n"+strings.Repeat("x", MaxExcludeFileSize-len("be_app\n")+1)), 0o644)
		}, limitProblem},
		{"missing", func(string) error { return nil }, "cannot stat it: no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "exclude-backends")
			if err := c.make(path); err != nil {
				t.Fatal(err)
			}
			ref := outputA(t, optsA(), "1")
			log, lb := newTestLogger()
			opts := optsA()
			opts.ExcludeBackends = path
			opts.ExcludeReports = &ExcludeReports{}
			workers := []*Processor{NewProcessor(opts, log), NewProcessor(opts, log)}
			for i := range 3 {
				for _, p := range workers {
					got := runBounded(t, p, lb)
					compareMultiset(t, ref, got.lines) // nothing excluded
				}
				if i == 0 {
					out := lb.String()
					if !strings.Contains(out, "cannot read exclude file") || !strings.Contains(out, "file="+path) ||
						!strings.Contains(out, c.problem) {
						t.Fatalf("the log does not name the file and the problem %q:\n%s", c.problem, out)
					}
				}
			}
			if n := strings.Count(lb.String(), "cannot read exclude file"); n != 1 {
				t.Errorf("logged %d times over 3 snapshots of 2 workers, want once:\n%s", n, lb.String())
			}

			// fixed: used at once, and said once
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("be_app\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				for _, p := range workers {
					got := runBounded(t, p, lb)
					for _, l := range got.lines {
						if strings.Contains(l.path, ".backend.be_app.") {
							t.Fatalf("be_app not excluded once the file is fixed: %s", l.path)
						}
					}
				}
			}
			if n := strings.Count(lb.String(), "exclude file is usable again"); n != 1 {
				t.Errorf("recovery logged %d times, want once:\n%s", n, lb.String())
			}
		})
	}
}

// runBounded processes golden A with p, failing instead of hanging if p blocks.
func runBounded(t *testing.T, p *Processor, lb *logBuffer) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- runWith(t, p, goldenA, 1, lb) }()
	select {
	case got := <-done:
		if got.err != nil {
			t.Fatal(got.err)
		}
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("Process blocked for more than 10 s")
	}
	return result{}
}

// A problem that changes is logged again; one that stays is not.
func TestExcludeReportsOncePerChange(t *testing.T) {
	log, lb := newTestLogger()
	var r ExcludeReports
	noFile := &excludeFileError{path: "/x", problem: "cannot stat it: no such file or directory"}
	fifo := &excludeFileError{path: "/x", problem: "it is a FIFO (named pipe), not a regular file; it was not opened"}
	for _, err := range []error{nil, noFile, noFile, fifo, fifo, nil, nil, noFile} {
		r.report(log, "/x", err, 0)
	}
	out := lb.String()
	if got := strings.Count(out, "cannot read exclude file"); got != 3 {
		t.Errorf("%d error lines, want 3 (missing, FIFO, missing again):\n%s", got, out)
	}
	if got := strings.Count(out, "usable again"); got != 1 {
		t.Errorf("%d recovery lines, want 1 (a file that was always fine is not news):\n%s", got, out)
	}
}

// A normal exclude file, also through a symlink (the operator chose the path), a file exactly
// at the size limit, and an empty file (which excludes nothing and is no problem).
func TestExcludeFileRegular(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "exclude")
	link := filepath.Join(tmp, "link")
	atLimit := filepath.Join(tmp, "at-limit")
	empty := filepath.Join(tmp, "empty")
	os.WriteFile(file, []byte("# comment\n be_app \n"), 0o644)
	os.Symlink(file, link)
	os.WriteFile(atLimit, []byte("be_app\n"+strings.Repeat("#", MaxExcludeFileSize-len("be_app\n"))), 0o644)
	os.WriteFile(empty, nil, 0o644)
	for _, path := range []string{file, link, atLimit} {
		log, lb := newTestLogger()
		opts := optsA()
		opts.ExcludeBackends = path
		p := NewProcessor(opts, log)
		got := runBounded(t, p, lb)
		for _, l := range got.lines {
			if strings.Contains(l.path, ".backend.be_app.") {
				t.Fatalf("%s: be_app not excluded: %s", path, l.path)
			}
		}
		if len(p.exclBe) != 1 {
			t.Errorf("%s: %d names, want 1", path, len(p.exclBe))
		}
		if strings.Contains(lb.String(), "exclude") {
			t.Errorf("%s: a usable file is not worth a log line:\n%s", path, lb.String())
		}
	}
	data, err := readExcludeFile(empty, MaxExcludeFileSize, nil)
	if err != nil || len(data) != 0 {
		t.Errorf("empty file: %q, %v", data, err)
	}
}

// What the largest exclude file costs for every snapshot and worker: the worst case is the
// most names, one short name per line.
func TestExcludeFileCostAtTheLimit(t *testing.T) {
	var sb strings.Builder
	for i := 0; sb.Len() < MaxExcludeFileSize-16; i++ {
		fmt.Fprintf(&sb, "%x\n", i)
	}
	path := filepath.Join(t.TempDir(), "exclude")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := NewProcessor(Options{Prefix: "ns", ExcludeBackends: path}, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	p.loadExcludes()
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(p.exclBe) < 100000 {
		t.Fatalf("%d names from %d bytes", len(p.exclBe), sb.Len())
	}
	t.Logf("a %d-byte exclude file of %d names: read and set in %v, %.1f MB held per worker",
		sb.Len(), len(p.exclBe), elapsed, float64(after.HeapAlloc-before.HeapAlloc)/1e6)
}

// CheckExcludeFile reads like a snapshot does and names the lines that can never match.
func TestCheckExcludeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exclude")
	os.WriteFile(path, []byte("# comment: anything goes *\nfe_www\n  fe-api.v2:1  \n\n^api-.*$\nfe www\n"), 0o644)
	lines, err := CheckExcludeFile(path)
	want := []ExcludeLine{{Line: 5, Text: "^api-.*$"}, {Line: 6, Text: "fe www"}}
	if err != nil || !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines %+v, error %v; want %+v", lines, err, want)
	}
	if _, err := CheckExcludeFile(dir); err == nil || err.Error() != dir+": it is a directory, not a regular file; it was not opened" {
		t.Fatalf("a directory: %v", err)
	}
	if _, err := CheckExcludeFile(filepath.Join(dir, "missing")); err == nil || !strings.HasSuffix(err.Error(), ": cannot stat it: no such file or directory") {
		t.Fatalf("a missing file: %v", err)
	}
}
