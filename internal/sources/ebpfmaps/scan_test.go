package ebpfmaps

import (
	"encoding/json"
	"slices"
	"testing"
)

func toFields(rs []rawField) []Field {
	var out []Field
	for _, r := range rs {
		out = append(out, Field{Name: string(r.name), Kind: string(r.kind), Num: json.Number(r.num), Str: string(r.str)})
	}
	return out
}

// sameAsJSON checks that what the scanner makes of line is what encoding/json makes of it.
func sameAsJSON(t *testing.T, line []byte, mustParse bool) {
	t.Helper()
	var sc scanner
	var re rawEntry
	serr := sc.entry(line, &re)
	var je Entry
	jerr := json.Unmarshal(line, &je)
	if mustParse && serr != nil {
		t.Fatalf("scanner: %v on %s", serr, line)
	}
	if serr != nil {
		return
	}
	if jerr != nil {
		t.Fatalf("scanner accepted what encoding/json refuses (%v): %q", jerr, line)
	}
	eq := func(a, b []Field) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }
	if !eq(toFields(re.key), je.Key) || !eq(toFields(re.value), je.Value) || string(re.rawKey) != je.RawKey || re.nCPU != len(je.PerCPU) {
		t.Fatalf("differ on %q:\n scanner %v %v %q %d\n json    %v %v %q %d", line, toFields(re.key), toFields(re.value), re.rawKey, re.nCPU, je.Key, je.Value, je.RawKey, len(je.PerCPU))
	}
	for i := 0; i < re.nCPU; i++ {
		if !eq(toFields(re.perCPU[i]), je.PerCPU[i]) {
			t.Fatalf("per_cpu %d differs on %q", i, line)
		}
	}
}

func TestScanner(t *testing.T) {
	for _, line := range []string{
		`{"key":[{"name":"pid","kind":"uint","num":42},{"name":"code","kind":"enum","num":200,"str":"HTTP_200"}],"value":[{"name":"","kind":"uint","num":7}],"raw_key":"2a","raw_value":"07"}`,
		`{"per_cpu":[[{"name":"p","kind":"uint","num":1}],[{"name":"p","kind":"uint","num":2}]],"value":[{"name":"p","kind":"uint","num":3}],"raw_key":"01","raw_values":["01","02"],"x":{"a":[1,true,null,"s"]}}`,
		` { "KEY" : [ { "Name" : "a\u00e9\"\\\/\b\f\n\r\t\ud83d\ude00\ud800x" , "kind":"string","str":"\u003c>","num":"12"} ] , "raw_key" : null } `,
		`{"key":null,"value":[null]}`,
		"{\"key\":[{\"name\":\"\xff\xfe\",\"kind\":\"hex\"}]}",
		`{}`,
	} {
		sameAsJSON(t, []byte(line), true)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"key":[{"num":01}]}`, `{"key":[{"num":"x"}]}`, `{"key":[{"num":""}]}`, `{"key":1}`, `{"a":1}x`, `{"a":"\x01"}`, `{"a":"\q"}`} {
		var sc scanner
		var re rawEntry
		if sc.entry([]byte(bad), &re) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzScanner holds the process half's reader to encoding/json: whatever it accepts, it reads
// as encoding/json does; and every line encoding/json writes for an Entry, it reads.
func FuzzScanner(f *testing.F) {
	f.Add([]byte(`{"key":[{"name":"pid","kind":"uint","num":42}],"value":[{"name":"","kind":"uint","num":7}],"raw_key":"2a"}`), "pid", "x\u00e9<", "1e3")
	f.Add([]byte(`{"per_cpu":[[{"name":"p","kind":"uint","num":1}]],"raw_values":["01"]}`), "", "\xff", "-0.5")
	f.Fuzz(func(t *testing.T, line []byte, name, str, num string) {
		sameAsJSON(t, line, false)
		if !json.Valid([]byte(num)) {
			num = "1"
		}
		var n json.Number
		if json.Unmarshal([]byte(num), &n) != nil {
			num = "1"
		}
		e := Entry{Key: []Field{{Name: name, Kind: KindString, Str: str, Num: json.Number(num)}}, Value: []Field{{Name: str, Kind: name}},
			PerCPU: [][]Field{{{Name: name}}, nil}, RawKey: str}
		b, err := json.Marshal(e)
		if err != nil {
			return
		}
		sameAsJSON(t, b, true)
	})
}
