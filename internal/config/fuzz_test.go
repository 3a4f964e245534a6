package config

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Per input, FuzzLoad allows this much: far above what the bounds permit (every read stops at
// 64 MiB of values and 10^6 substitutions, a file at 16 MiB), far below what an unbounded
// expansion takes (an interpolation bomb of a few hundred bytes asks for terabytes).
const (
	fuzzMaxAlloc = 4 << 30
	fuzzMaxTime  = 2 * time.Minute
)

// FuzzLoad feeds arbitrary text through the reader, -P, validation for both programs and the
// -P round trip. Nothing may panic, whatever Print writes must read back to the same text, and
// no input may take unbounded time or memory.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"[pull]\nworkers = 4 # x\n",
		"[DEFAULT]\na = ${b}\nb = $$\n[s]\nc = ${DEFAULT:a}${s:c}\n",
		"[pull]\nservers = unix:///a,\n  tcp://[::1]:1,\n\n  tcp://h:2\n",
		"[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = 1\n[backend-groups]\na = ^x$$\n",
		"[local-store]\ndir = ${paths:base-dir}\n[graphite]\nenabled = no\n",
		"[a]\nb = ]\n[c = ${b}\n",
		"\ufeff[ x ]\r\nK: v\r  cont\r\n",
		"[pull]\nworkers = 2147483647\npull-interval = 0.000001\n",
		"[graphite]\ninterval = 0\ndelay = 0\nretries = -1\nbackoff = 1e308\n",
		fanoutLiteral("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy") + "[pull]\nworkers = ${s:k0}\n",
		fanout("") + "[DEFAULT]\na = ${s:k1}\nb = ${s:k1}\nc = ${s:k1}\n",
		"[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = 1\n[server-groups]\na = (a{1000}|b{1000}|c{1000}){1000}\n",
	} {
		f.Add([]byte(seed))
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "rich.conf")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		defer func() {
			runtime.ReadMemStats(&after)
			if alloc, took := after.TotalAlloc-before.TotalAlloc, time.Since(start); alloc > fuzzMaxAlloc || took > fuzzMaxTime {
				t.Fatalf("one input took %s and allocated %d MiB", took, alloc>>20)
			}
		}()
		l := newLoaded()
		stubSystem(l)
		if err := l.parse("fuzz.conf", data); err != nil {
			asConfigError(t, err)
			return
		}
		l.loadWarnings, l.unknown = l.unknownWarnings()
		for _, prog := range []Program{PullProgram, ProcessProgram} {
			if _, err := l.Config(prog); err != nil {
				asConfigError(t, err)
			}
			var first bytes.Buffer
			if err := l.Print(&first, prog); err != nil {
				asConfigError(t, err)
				continue
			}
			if first.Len() > maxReadBytes+maxExpandedSize {
				t.Fatalf("-P wrote %d bytes, more than the bound of all reads", first.Len())
			}
			again := newLoaded()
			stubSystem(again)
			if err := again.parse("printed.conf", first.Bytes()); err != nil {
				t.Fatalf("-P output does not load: %v\n%s", err, first.String())
			}
			var second bytes.Buffer
			if err := again.Print(&second, prog); err != nil {
				t.Fatalf("-P output does not print: %v\n%s", err, first.String())
			}
			if first.String() != second.String() {
				t.Fatalf("Print → Load → Print differs\nfirst:\n%q\nsecond:\n%q", first.String(), second.String())
			}
		}
	})
}
