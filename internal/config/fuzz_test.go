package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary text through the reader, -P, validation for both programs and the
// -P round trip. Nothing may panic, and whatever Print writes must read back to the same text.
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
	} {
		f.Add([]byte(seed))
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "rich.conf")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newLoaded()
		stubSystem(l)
		if err := l.parse("fuzz.conf", data); err != nil {
			asConfigError(t, err)
			return
		}
		l.loadWarnings = l.unknownWarnings()
		for _, prog := range []Program{PullProgram, ProcessProgram} {
			if _, err := l.Config(prog); err != nil {
				asConfigError(t, err)
			}
			var first bytes.Buffer
			if err := l.Print(&first, prog); err != nil {
				asConfigError(t, err)
				continue
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
