package metric

import "testing"

// benchNames are typical HAProxy proxy and server names: what the processor sanitises once per
// new entity.
var benchNames = [][]byte{
	[]byte("be_app_042"),
	[]byte("fe_main"),
	[]byte("srv-10.0.0.17:8080"),
	[]byte("backend.with.dots.example.com"),
	[]byte("naïve-ünïcode"),
}

func BenchmarkAppendComponent(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range benchNames {
			buf = AppendComponent(buf[:0], n)
		}
	}
}

// BenchmarkNamesAppend is the bounded form the processor uses: the same cost for names within
// the bound.
func BenchmarkNamesAppend(b *testing.B) {
	buf := make([]byte, 0, 256)
	n := Names{MaxLength: DefaultMaxComponentLength}
	b.ReportAllocs()
	for b.Loop() {
		for _, name := range benchNames {
			buf, _ = n.Append(buf[:0], name)
		}
	}
}

// BenchmarkNamesAppendLong shortens a 1 MiB name: sanitising stops at the bound, the SHA-256
// of the whole name is the cost.
func BenchmarkNamesAppendLong(b *testing.B) {
	name := make([]byte, 1<<20)
	for i := range name {
		name[i] = 'a' + byte(i%26)
	}
	buf := make([]byte, 0, 256)
	n := Names{MaxLength: DefaultMaxComponentLength}
	b.SetBytes(int64(len(name)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = n.Append(buf[:0], name)
	}
}
