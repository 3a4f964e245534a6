package haproxy

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/spool"
)

// The exclude files are named by the operator and re-read for every snapshot by every worker,
// so a path that points at something other than a small regular file (/dev/zero, a FIFO, a
// log file that grows without end) must neither block a worker nor fill its memory. A file that
// cannot be used is logged and excludes nothing, as haproxystats did (haproxystats.md §5.3).

// MaxExcludeFileSize bounds an exclude file. Each worker parses it for every snapshot and holds
// its names as a set: 1 MiB is tens of thousands of real names, and at worst (one short name
// per line) 186k names, measured at 11 MB per worker and 40 ms per snapshot
// (TestExcludeFileCostAtTheLimit); 16 MiB of short names measured 170 MB and 1.5 s.
const MaxExcludeFileSize = 1 << 20

// excludeFileError says why an exclude file was not used. problem does not change while the
// cause stays the same (no size in it), so that ExcludeReports can tell a new problem from one
// it already logged.
type excludeFileError struct {
	path    string
	problem string
	err     error // the system error, if any
}

func (e *excludeFileError) Error() string { return e.path + ": " + e.problem }
func (e *excludeFileError) Unwrap() error { return e.err }

// readExcludeFile reads the exclude file path into buf (reused) and returns its contents. It
// follows a symlink (the operator chose the path) but opens nothing that is not a regular file:
// the type is checked before the open, which cannot block (O_NONBLOCK), and again on the opened
// file, as spool.OpenSnapshotFile does for snapshot files. A file larger than limit is refused,
// and never more than limit+1 bytes are read, even from a file that grows meanwhile.
func readExcludeFile(path string, limit int64, buf []byte) ([]byte, error) {
	fail := func(problem string, err error) ([]byte, error) {
		return buf[:0], &excludeFileError{path: path, problem: problem, err: err}
	}
	before, err := os.Stat(path)
	if err != nil {
		return fail(systemProblem(err), err)
	}
	if !before.Mode().IsRegular() {
		return fail("it is "+spool.Describe(path, before.Mode())+", not a regular file; it was not opened", nil)
	}
	if before.Size() > limit {
		return fail(fmt.Sprintf("it is larger than %d bytes, the limit for an exclude file", limit), nil)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("cannot open it: "+err.Error(), err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	after, err := f.Stat()
	if err != nil {
		return fail(systemProblem(err), err)
	}
	if !after.Mode().IsRegular() || !os.SameFile(before, after) {
		return fail("it was replaced while being opened; not read", nil)
	}
	// A regular file never blocks, and O_NONBLOCK has no effect on it. Room for the whole file
	// and one byte more (to see the end, or that it grew) is reserved at once.
	data := slices.Grow(buf[:0], int(min(after.Size(), limit)+1))
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, 4096)
		}
		room := min(int64(cap(data)), limit+1)
		n, err := f.Read(data[len(data):room])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return fail(fmt.Sprintf("it is larger than %d bytes, the limit for an exclude file (it grew while being read)", limit), nil)
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return fail("cannot read it: "+err.Error(), err)
		}
	}
}

// systemProblem is an os error without the path that the log line names anyway.
func systemProblem(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return "cannot " + pe.Op + " it: " + pe.Err.Error()
	}
	return err.Error()
}

// ExcludeReports remembers what was last logged about each exclude file, so that a file that
// stays unusable is logged once, not for every snapshot: again only when its problem changes,
// and once at info level when it is usable again. The Processors of one program (one per
// worker) share one through Options.ExcludeReports; the zero value is ready to use.
type ExcludeReports struct {
	mu      sync.Mutex
	problem map[string]string // path → the problem last logged ("" or absent: none)
}

// report logs err (an *excludeFileError, or nil when the file was read) for path unless it is
// what was last logged for it.
func (r *ExcludeReports) report(log *slog.Logger, path string, err error, names int) {
	problem := ""
	if err != nil {
		problem = err.Error()
		if e, ok := err.(*excludeFileError); ok {
			problem = e.problem
		}
	}
	r.mu.Lock()
	last := r.problem[path]
	if last != problem {
		if r.problem == nil {
			r.problem = map[string]string{}
		}
		r.problem[path] = problem
	}
	r.mu.Unlock()
	switch {
	case last == problem:
	case problem != "":
		log.Error("cannot read exclude file, excluding nothing until it is fixed (logged again only if the problem changes)",
			"file", path, "problem", problem)
	default:
		log.Info("exclude file is usable again", "file", path, "names", names)
	}
}

// loadExcludes re-reads the exclude files: one name per line, stripped; lines starting with
// '#' are comments; names are compared after sanitising, exactly. A file that cannot be used
// (see readExcludeFile) is logged once and excludes nothing.
func (p *Processor) loadExcludes() {
	p.readExcludes(p.opts.ExcludeFrontends, p.exclFe)
	p.readExcludes(p.opts.ExcludeBackends, p.exclBe)
}

func (p *Processor) readExcludes(path string, set map[string]struct{}) {
	clear(set)
	if path == "" {
		return
	}
	data, err := readExcludeFile(path, MaxExcludeFileSize, p.exclBuf)
	p.exclBuf = data[:0]
	if err == nil {
		for line := range bytes.Lines(data) {
			line = bytes.TrimSpace(line)
			if len(line) > 0 && line[0] == '#' {
				continue
			}
			name, _ := p.names.Append(nil, line)
			set[string(name)] = struct{}{}
		}
	}
	p.excludeReports.report(p.log, path, err, len(set))
}

// CheckExcludeFile reads the exclude file path as every snapshot does and returns why it
// cannot be used (nil when it can), and the lines that can never match a name: HAProxy proxy
// names have only letters, digits, '-', '_', '.' and ':', so a line with anything else (a
// regular expression or glob, which exclude files do not support) excludes nothing. For
// stats-process --check; it changes nothing.
func CheckExcludeFile(path string) (unmatchable []ExcludeLine, err error) {
	data, err := readExcludeFile(path, MaxExcludeFileSize, nil)
	if err != nil {
		return nil, err
	}
	n := 0
	for line := range bytes.Lines(data) {
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if i := bytes.IndexFunc(line, func(r rune) bool { return !proxyNameRune(r) }); i >= 0 {
			unmatchable = append(unmatchable, ExcludeLine{Line: n, Text: string(line)})
		}
	}
	return unmatchable, nil
}

// ExcludeLine is one line of an exclude file.
type ExcludeLine struct {
	Line int
	Text string
}

func proxyNameRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
}
