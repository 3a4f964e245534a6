package ebpfmaps

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/spool"
)

// BenchmarkDecode decodes one http_key and one http_val (13 leaves) per op.
func BenchmarkDecode(b *testing.B) {
	k, v := httpKey(42, 200, 5, 17, "curl", true), httpVal(7, 700, -3, 1, 2, -1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(tHTTPKey, k); err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(tHTTPVal, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse10k parses a body of 10,000 entries of 1,000 PIDs, grouped by pid.
func BenchmarkParse10k(b *testing.B) {
	var body bytes.Buffer
	for i := 0; i < 10000; i++ {
		kb, vb := httpKey(uint32(i%1000), 200, 1, 2, "x", false), httpVal(uint64(i), 1, 2, 3, 4, 0)
		kf, _ := Decode(tHTTPKey, kb)
		vf, _ := Decode(tHTTPVal, vb)
		line, _ := json.Marshal(Entry{Key: kf, Value: vf, RawKey: hex.EncodeToString(kb), RawValue: hex.EncodeToString(vb)})
		body.Write(line)
		body.WriteByte('\n')
	}
	for _, groupBy := range []string{"", "pid"} {
		b.Run("group-by="+groupBy, func(b *testing.B) {
			meta := spool.InstanceMeta{Instance: "http_counts", Extra: map[string]string{"group_by": groupBy}}
			var p parser
			n := 0
			b.ReportAllocs()
			b.SetBytes(int64(body.Len()))
			for b.Loop() {
				n = 0
				if err := p.ParseMulti(meta, bytes.NewReader(body.Bytes()), countInstances{&n}); err != nil {
					b.Fatal(err)
				}
			}
			if n != 10000*6 {
				b.Fatalf("%d samples", n)
			}
		})
	}
}

type countInstances struct{ n *int }

func (c countInstances) Begin(string)       {}
func (c countInstances) Add(*sample.Sample) { *c.n++ }
func (c countInstances) End(bool)           {}

// BenchmarkPull10k reads a pinned hash of 10,000 http_key → http_val entries (root only).
func BenchmarkPull10k(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := b.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		b.Skip(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "http_counts", Type: ebpf.Hash, KeySize: 16, ValueSize: 32, MaxEntries: 10000,
		Key: tHTTPKey, Value: tHTTPVal})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := 0; i < 10000; i++ {
		if err := m.Put(httpKey(uint32(i), 200, 1, 2, "x", false), httpVal(uint64(i), 1, 2, 3, 4, 0)); err != nil {
			b.Fatal(err)
		}
	}
	pinPath := filepath.Join(dir, "http_counts")
	if err := m.Pin(pinPath); err != nil {
		b.Fatal(err)
	}
	p := &provider{st: pullSettings{pins: []string{pinPath}, maxEntries: 100000}, log: slog.New(slog.DiscardHandler)}
	in := &instance{p: p, pin: mapPin{name: "http_counts", path: pinPath}}
	b.ReportAllocs()
	for b.Loop() {
		var snap memSnap
		if err := in.Pull(context.Background(), &snap); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseBody feeds arbitrary bodies to the process half: no panic.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`{"key":[{"name":"pid","kind":"uint","num":1}],"value":[{"name":"","kind":"uint","num":5}],"per_cpu":[[{"name":"","kind":"uint","num":5}]],"raw_key":"01000000"}`+"\n"), true, true)
	f.Add([]byte("{\"key\":\n"), false, false)
	f.Fuzz(func(t *testing.T, body []byte, groupBy, perCPU bool) {
		meta := spool.InstanceMeta{Instance: "m", Extra: map[string]string{"pid:1": "x"}}
		if groupBy {
			meta.Extra["group_by"] = "pid"
		}
		if perCPU {
			meta.Extra["per_cpu"] = "true"
		}
		var p parser
		n := 0
		_ = p.ParseMulti(meta, bytes.NewReader(body), countInstances{&n})
		_ = p.Parse(meta, bytes.NewReader(body), func(*sample.Sample) error { return nil })
	})
}
