package haproxy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/metric"
)

// fuzzSeeds adds every golden file with the given suffix as a seed.
func fuzzSeeds(f *testing.F, suffix string) {
	err := filepath.WalkDir(goldenDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, suffix) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

// fuzzDir returns the snapshot directory the fuzz inputs are written to, on tmpfs when there
// is one: a file write on the test machines' disk costs ~0.5 ms, which would be most of an
// execution.
func fuzzDir(f *testing.F) string {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "spfuzz")
	if err != nil {
		dir, err = os.MkdirTemp("", "spfuzz")
	}
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	snap := filepath.Join(dir, "1700000000")
	if err := os.Mkdir(snap, 0o755); err != nil {
		f.Fatal(err)
	}
	return snap
}

// writeOnly (re)writes the one file of the fuzz snapshot.
func writeOnly(t *testing.T, dir, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// processForFuzz runs p and checks what must hold for any input: no panic, UnusableError
// without a flush, otherwise whole lines of exactly three fields, no NaN, no newline inside
// a line. It returns the non-timing lines.
func processForFuzz(t *testing.T, p *Processor, dir string) ([]string, error) {
	var data []byte
	flushed := 0
	_, err := p.Process(dir, 1700000000, func(b *metric.Batch) error {
		flushed++
		data = append(data, b.Data...)
		return nil
	})
	if err != nil {
		var ue *UnusableError
		if !errors.As(err, &ue) {
			t.Fatalf("unexpected error type: %v", err)
		}
		if flushed != 0 {
			t.Fatalf("UnusableError after %d flushes", flushed)
		}
		return nil, err
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("output does not end with a whole line")
	}
	var out []string
	for _, line := range strings.Split(string(data[:len(data)-1]), "\n") {
		f := strings.Split(line, " ")
		if len(f) != 3 || f[0] == "" || f[2] != "1700000000" {
			t.Fatalf("malformed line %q", line)
		}
		if _, err := strconv.ParseFloat(f[1], 64); err != nil || f[1] == "nan" {
			t.Fatalf("bad value in %q", line)
		}
		if !isTiming(f[0]) {
			out = append(out, line)
		}
	}
	return out, nil
}

// FuzzStatParser feeds arbitrary `show stat` replies. Besides the invariants of
// processForFuzz, a Processor reading through a 5-byte buffer (records straddle every refill)
// must produce exactly what one with the normal buffer produces.
func FuzzStatParser(f *testing.F) {
	fuzzSeeds(f, "_stat")
	f.Add([]byte("# pxname,svname,scur,type,\n\"fe,1\",FRONTEND,\"1\"\"\",0,\n\"be\nx\",BACKEND,2,1,\n"))
	f.Add([]byte("# pxname,svname,type,lbtot,rtime\nb,s,2,1,5\nb,BACKEND,1,1,\"7\r\n"))
	dir := fuzzDir(f)
	opts := Options{Prefix: "p", AggrServerMetrics: true, PerProcessMetrics: true}
	normal := NewProcessor(opts, nil)
	small := NewProcessor(opts, nil)
	f.Fuzz(func(t *testing.T, stat []byte) {
		writeOnly(t, dir, "a.sock_stat", stat)
		small.rd.buf = make([]byte, 5)
		a, errA := processForFuzz(t, normal, dir)
		b, errB := processForFuzz(t, small, dir)
		if (errA == nil) != (errB == nil) || !slices.Equal(a, b) {
			t.Fatalf("read buffer size changes the result:\n%v %v\n%q\n%q", errA, errB, a, b)
		}
	})
}

// FuzzInfoParser feeds arbitrary `show info` replies; parseDecimal must agree with strconv on
// every value it accepts.
func FuzzInfoParser(f *testing.F) {
	fuzzSeeds(f, "_info")
	f.Add([]byte("Process_num: 1\nIdle_pct: -5\nTasks: +7\nCurrConns:  12 \nMaxconn: 99999999999999999999\nx: 1.5\n"))
	dir := fuzzDir(f)
	p := NewProcessor(Options{Prefix: "p", PerProcessMetrics: true, CalculatePercentages: true}, nil)
	f.Fuzz(func(t *testing.T, info []byte) {
		var iv infoValues
		parseInfo(info, &iv)
		for line := range bytes.Lines(info) {
			_, value, ok := bytes.Cut(line, []byte(": "))
			if !ok {
				continue
			}
			got, ok := parseDecimal(value)
			want, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
			if ok != (err == nil) || ok && got != want {
				t.Fatalf("parseDecimal(%q) = %d, %v; strconv says %d, %v", value, got, ok, want, err)
			}
		}
		writeOnly(t, dir, "a.sock_info", info)
		if _, err := processForFuzz(t, p, dir); err == nil && iv.numeric == 0 {
			t.Fatal("a reply without a numeric line was used")
		}
	})
}
