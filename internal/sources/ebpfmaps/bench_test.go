package ebpfmaps

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

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
	meta := spool.InstanceMeta{Instance: "http_counts", Extra: map[string]string{"group_by": "pid"}}
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
}

type countInstances struct{ n *int }

func (c countInstances) Begin(string)       {}
func (c countInstances) Add(*sample.Sample) { *c.n++ }
func (c countInstances) End(bool)           {}
