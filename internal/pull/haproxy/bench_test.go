package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/testrig"
)

// BenchmarkPull64Sockets measures one whole round (pull loop, 64 fake UNIX stats sockets, spool
// publish with fsync) at two `show stat` reply sizes. B/op must not grow with the reply size:
// replies are streamed through the workers' reused buffers.
//
// The spool goes to a temporary directory; set STATSPIPE_BENCH_DIR (e.g. to a directory in
// /dev/shm) to take the disk out of the measurement.
func BenchmarkPull64Sockets(b *testing.B) {
	for _, size := range []int{1 << 20, 5 << 20} {
		b.Run(fmt.Sprintf("reply=%dMB", size>>20), func(b *testing.B) { benchmarkPull(b, 64, size) })
	}
}

// statReply is a CSV-looking reply of exactly size bytes ending with the blank line HAProxy
// sends.
func statReply(size int) []byte {
	row := []byte("be_app,app1,0,0,0,1,,4,335,1055,,0,,0,0,0,0,UP,100,1,0,1,1,19,4,,1,4,1,,4,,2,0,,4,L7OK,200,0,0,3,0,1,\n")
	out := bytes.Repeat(row, size/len(row)+1)[:size]
	out[size-2], out[size-1] = '\n', '\n'
	return out
}

func benchmarkPull(b *testing.B, sockets, size int) {
	sockDir := shortDir(b)
	replies := testrig.FakeReply{"show info": golden(b, "admin5.sock_info"), "show stat": statReply(size)}
	for i := range sockets {
		testrig.ServeFakeStats(b, "unix", filepath.Join(sockDir, fmt.Sprintf("admin%d.sock", i)), replies, false)
	}
	base := b.TempDir()
	if d := os.Getenv("STATSPIPE_BENCH_DIR"); d != "" {
		var err error
		if base, err = os.MkdirTemp(d, "bench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(base) })
	}
	log := slog.New(slog.DiscardHandler)
	w, err := spool.NewWriter(filepath.Join(base, "incoming"), filepath.Join(base, "incoming.tmp"), log)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	p := New(Options{SocketDir: sockDir, Retries: 1, Timeout: time.Second, Interval: 100 * time.Millisecond, BufferLimit: 6291456, Workers: 8}, log)
	loop, err := pull.NewLoop(w, []pull.Provider{p}, pull.Options{Interval: time.Hour, Timeout: time.Minute}, log)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sockets * (size + len(replies["show info"]))))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		path := loop.Once(context.Background())
		if path == "" {
			b.Fatal("round published nothing")
		}
		b.StopTimer()
		if st, err := os.Stat(filepath.Join(path, "admin63.sock_stat")); err != nil || st.Size() != int64(size) {
			b.Fatalf("admin63.sock_stat: %v %v", st, err)
		}
		if err := spool.Remove(path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
