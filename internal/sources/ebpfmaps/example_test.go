package ebpfmaps

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/sources"
	"github.com/statspipe/statspipe/internal/sources/sourcetest"
	"github.com/statspipe/statspipe/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/example/expected.txt")

// The worked example of README.md (no root needed): a snapshot's source directory holding one
// map of HTTP requests by PID and method (§3.2 of the eBPF notes: struct req_key { __u32 pid;
// char method[8]; } → __u64), two PIDs of nginx, one of python3 and one that had ended. Its
// body must be what the decoder makes of its raw bytes, and its lines must equal
// testdata/example/expected.txt.
func TestWorkedExample(t *testing.T) {
	ex := filepath.Join("testdata", "example")
	body, err := os.ReadFile(filepath.Join(ex, "http_requests.body"))
	if err != nil {
		t.Fatal(err)
	}
	reqKey := &btf.Struct{Name: "req_key", Size: 12, Members: []btf.Member{
		{Name: "pid", Type: tU32}, {Name: "method", Type: &btf.Array{Index: tU32, Type: tChar, Nelems: 8}, Offset: 32}}}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		rk, _ := hex.DecodeString(e.RawKey)
		rv, _ := hex.DecodeString(e.RawValue)
		k, err1 := Decode(reqKey, rk)
		v, err2 := Decode(tU64, rv)
		if err1 != nil || err2 != nil || fieldsJSON(t, k) != fieldsJSON(t, e.Key) || fieldsJSON(t, v) != fieldsJSON(t, e.Value) {
			t.Errorf("%s: the raw bytes decode to %s %s (%v %v)", line, fieldsJSON(t, k), fieldsJSON(t, v), err1, err2)
		}
	}

	cfg, part := sourcetest.ExamplePart(t, Kind)
	for _, f := range []string{"http_requests.body", "http_requests.meta.json"} {
		b, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(part, f), b, 0o644)
	}
	got, err := processPart(t, cfg, part)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckExample(t, got, *update)
}

// A body spoiled in the spool leaves its map out (reported); the other maps' lines are written.
func TestSpoiledBody(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "incoming"), 0o755)
	cfg := loadConfig(t, baseConf(dir)+"[source.ebpf]\ntype = ebpf-maps\npins = /sys/fs/bpf\n", config.ProcessProgram)
	part := filepath.Join(dir, "1700000000", "ebpf")
	os.MkdirAll(part, 0o755)
	info, _ := os.Create(filepath.Join(part, spool.SourceInfoFile))
	spool.WriteJSON(info, spool.NewSourceInfo(Kind, "ebpf", sources.Recorded(&cfg.Sources[0])))
	info.Close()
	write := func(name, body string) {
		os.WriteFile(filepath.Join(part, name+spool.BodySuffix), []byte(body), 0o644)
		f, _ := os.Create(filepath.Join(part, name+spool.MetaSuffix))
		spool.WriteJSON(f, spool.InstanceMeta{Instance: name})
		f.Close()
	}
	write("good", `{"key":[{"name":"","kind":"uint","num":1}],"value":[{"name":"","kind":"uint","num":5}],"raw_key":"01000000","raw_value":"0500000000000000"}`+"\n")
	write("bad", `{"key":[{"name":"","kind":"uint","num":1}],"value":[{"name":"","kind":"uint","num":9}],"raw_key":"01000000","raw_value":"0900000000000000"}`+"\n{\"key\":\n")
	out, err := processPart(t, cfg, part)
	if err == nil || !strings.Contains(err.Error(), "bad.body: line 2") {
		t.Errorf("error %v", err)
	}
	if out != "loadbalancers.vm.ebpf.good.key.1.value 5.0 1700000000\n" {
		t.Errorf("lines\n%s", out)
	}
}
