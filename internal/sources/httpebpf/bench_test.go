package httpebpf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/ebpfmaps"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var benchTS int64 = 1700000000

// BenchmarkProcess: the process half on a snapshot of 2,000 PIDs of 20 programs, each with 4
// methods and 6 codes (20,000 entries), with rates.
func BenchmarkProcess(b *testing.B) {
	types, err := bpf.MapTypes()
	if err != nil {
		b.Fatal(err)
	}
	le := binary.LittleEndian
	bodies := map[string]*bytes.Buffer{bpf.RequestsMap: {}, bpf.ResponsesMap: {}, bpf.DropsMap: {}}
	write := func(m string, key, val []byte) {
		e := ebpfmaps.Entry{RawKey: hex.EncodeToString(key), RawValue: hex.EncodeToString(val)}
		e.Key, _ = ebpfmaps.Decode(types[m].Key, key)
		e.Value, _ = ebpfmaps.Decode(types[m].Value, val)
		spool.WriteJSON(bodies[m], &e)
	}
	extra := map[string]string{"types": "declared", "group_by": "pid"}
	for pid := uint32(1000); pid < 3000; pid++ {
		extra["pid:"+strconv.Itoa(int(pid))] = "prog" + strconv.Itoa(int(pid%20))
		for _, m := range []string{"GET", "POST", "PUT", "HEAD"} {
			k := le.AppendUint32(nil, pid)
			k = append(k, make([]byte, 8)...)
			copy(k[4:], m)
			write(bpf.RequestsMap, k, le.AppendUint64(nil, uint64(pid)))
		}
		for _, code := range []uint32{200, 201, 304, 404, 418, 503} {
			write(bpf.ResponsesMap, le.AppendUint32(le.AppendUint32(nil, pid), code), le.AppendUint64(nil, uint64(pid)))
		}
	}
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := sourcetest.LoadConfig(b, sourcetest.BaseConf(dir)+"[source.http]\ntype = http-ebpf\nrate = true\n", config.ProcessProgram)
	part := filepath.Join(dir, "1700000000", "http")
	os.MkdirAll(part, 0o755)
	sourcetest.WriteJSON(b, filepath.Join(part, spool.SourceInfoFile), spool.NewSourceInfo(Kind, "http", sources.Recorded(&cfg.Sources[0])))
	size := 0
	for m, body := range bodies {
		os.WriteFile(filepath.Join(part, m+spool.BodySuffix), body.Bytes(), 0o644)
		sourcetest.WriteJSON(b, filepath.Join(part, m+spool.MetaSuffix), spool.InstanceMeta{Instance: m, Extra: extra})
		size += body.Len()
	}
	ctor, err := processHalf.NewFormat(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	f := ctor()
	lines := 0
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lines = 0
		benchTS += 10
		err := f.Process(part, benchTS, func(batch *metric.Batch) error {
			lines += bytes.Count(batch.Data, []byte("\n"))
			metric.Recycle(batch)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines), "lines/snapshot")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20000, "ns/entry")
}
