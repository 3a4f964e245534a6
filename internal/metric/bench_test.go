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
