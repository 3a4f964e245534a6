package httpebpf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/statspipe/statspipe/internal/sources/ebpfmaps"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example's bodies and expected.txt")

// The example's maps, as raw bytes: two nginx workers (1001, 1002), a python3 (2001) and a
// process that had ended (3003).
var (
	exampleRequests = []struct {
		pid    uint32
		method string
		n      uint64
	}{{1001, "GET", 30}, {1001, "POST", 2}, {1002, "GET", 10}, {2001, "GET", 5}, {2001, "HEAD", 1}, {3003, "GET", 1}}
	exampleResponses = []struct {
		pid, code uint32
		n         uint64
	}{{1001, 200, 28}, {1001, 404, 3}, {1001, 503, 1}, {1002, 200, 9}, {1002, 418, 1},
		{2001, 200, 5}, {2001, 501, 1}, {3003, 202, 1}}
	exampleComm = map[string]string{"pid:1001": "nginx", "pid:1002": "nginx", "pid:2001": "python3"}
)

// exampleEntries encodes the example's maps with the program's declared types, exactly as
// the pull half does (ebpfmaps.Decode on the raw bytes), one body per map.
func exampleEntries(t *testing.T) map[string][]byte {
	t.Helper()
	types, err := bpf.MapTypes()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	bodies := map[string][]byte{}
	add := func(m string, key []byte, vals ...[]byte) {
		kt := types[m]
		e := ebpfmaps.Entry{RawKey: hex.EncodeToString(key)}
		var err error
		if e.Key, err = ebpfmaps.Decode(kt.Key, key); err != nil {
			t.Fatal(err)
		}
		if m == bpf.DropsMap { // per CPU
			for _, v := range vals {
				f, err := ebpfmaps.Decode(kt.Value, v)
				if err != nil {
					t.Fatal(err)
				}
				e.PerCPU = append(e.PerCPU, f)
				e.RawValues = append(e.RawValues, hex.EncodeToString(v))
			}
			e.Value = ebpfmaps.SumFields(e.PerCPU)
		} else {
			e.RawValue = hex.EncodeToString(vals[0])
			if e.Value, err = ebpfmaps.Decode(kt.Value, vals[0]); err != nil {
				t.Fatal(err)
			}
		}
		var b bytes.Buffer
		spool.WriteJSON(&b, &e)
		bodies[m] = append(bodies[m], b.Bytes()...)
	}
	u64 := func(n uint64) []byte { return le.AppendUint64(nil, n) }
	for _, r := range exampleRequests {
		k := le.AppendUint32(nil, r.pid)
		k = append(k, make([]byte, 8)...)
		copy(k[4:], r.method)
		add(bpf.RequestsMap, k, u64(r.n))
	}
	for _, r := range exampleResponses {
		add(bpf.ResponsesMap, le.AppendUint32(le.AppendUint32(nil, r.pid), r.code), u64(r.n))
	}
	add(bpf.DropsMap, le.AppendUint32(nil, 0), u64(0), u64(0))
	add(bpf.DropsMap, le.AppendUint32(nil, 1), u64(1), u64(2))
	return bodies
}

func exampleMeta(m string, entries int) spool.InstanceMeta {
	extra := map[string]string{"path": DefaultPinDir + "/" + m, "map_name": m, "types": "declared",
		"entries": strconv.Itoa(entries)}
	if m != bpf.DropsMap {
		extra["map_type"], extra["group_by"] = "Hash", "pid"
		for k, v := range exampleComm {
			extra[k] = v
		}
	} else {
		extra["map_type"], extra["per_cpu_map"] = "PerCPUArray", "true"
	}
	return spool.InstanceMeta{Instance: m, URL: "file://" + DefaultPinDir + "/" + m, Extra: extra}
}

// TestWorkedExample: README's worked example. Its bodies must be what the pull half makes of
// the raw bytes, and its lines must equal testdata/example/expected.txt.
func TestWorkedExample(t *testing.T) {
	ex := filepath.Join("testdata", "example")
	bodies := exampleEntries(t)
	for _, m := range Maps {
		path := filepath.Join(ex, m+spool.BodySuffix)
		if *update {
			os.WriteFile(path, bodies[m], 0o644)
			sourcetest.WriteJSON(t, filepath.Join(ex, m+spool.MetaSuffix), exampleMeta(m, bytes.Count(bodies[m], []byte("\n"))))
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bodies[m]) {
			t.Errorf("%s is not what the pull half makes of the example's raw bytes:\n%s\nwant\n%s", path, got, bodies[m])
		}
	}
	cfg, part := sourcetest.ExamplePart(t, Kind)
	for _, m := range Maps {
		for _, suffix := range []string{spool.BodySuffix, spool.MetaSuffix} {
			b, err := os.ReadFile(filepath.Join(ex, m+suffix))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(part, m+suffix), b, 0o644)
		}
	}
	got, err := sourcetest.ProcessPart(t, processHalf.NewFormat, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update, "http_responses.body")
}
