package mesos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/statspipe/statspipe/internal/sample"
)

type kv struct {
	name  string
	value float64
}

func parseAll(t testing.TB, p *Parser, body []byte) ([]kv, error) {
	t.Helper()
	var out []kv
	err := p.Parse(bytes.NewReader(body), func(s *sample.Sample) error {
		if s.Kind != sample.Untyped || s.Family != nil || s.Labels != nil {
			t.Fatalf("sample %+v: want an untyped sample with only Name and Value", s)
		}
		out = append(out, kv{string(s.Name), s.Value})
		return nil
	})
	return out, err
}

// reference decodes body with encoding/json's token stream (keys in order, duplicates kept)
// and maps each key as the documentation says: '.' → '_', then '/' → '.'.
func reference(body []byte) ([]kv, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v", tok)
	}
	var out []kv
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return nil, err
		}
		v, err := d.Token()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		name := strings.ReplaceAll(strings.ReplaceAll(key, ".", "_"), "/", ".")
		switch v := v.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, err
			}
			out = append(out, kv{name, f})
		case nil:
			// skipped
		default:
			return nil, fmt.Errorf("%q: not a number: %v", key, v)
		}
	}
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object (%v)", err)
	}
	return out, nil
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRealPayloads(t *testing.T) {
	for _, c := range []struct {
		file          string
		keys          int
		leaf, subnode string
	}{
		{"master_snapshot_escaped_slashes.json", 96, "master.slave_removals", "master.slave_removals.reason_unhealthy"},
		{"dd-agent_mesos_master_stats.json", 106, "registrar.state_store_ms", "registrar.state_store_ms.p9999"},
		{"agent_a.json", 47, "slave.cpus_total", ""},
		{"agent_b.json", 47, "slave.cpus_total", ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			body := readTestdata(t, c.file)
			p := NewParser()
			p.ElectedOnly = false
			got, err := parseAll(t, p, body)
			if err != nil {
				t.Fatal(err)
			}
			want, err := reference(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.keys || len(want) != c.keys {
				t.Fatalf("%d samples, reference %d, want %d", len(got), len(want), c.keys)
			}
			names := map[string]bool{}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("sample %d: %+v, reference %+v", i, got[i], want[i])
				}
				if strings.Contains(got[i].name, "/") || strings.Contains(got[i].name, "\\") {
					t.Errorf("name %q keeps a slash or backslash", got[i].name)
				}
				names[got[i].name] = true
			}
			if !names[c.leaf] || c.subnode != "" && !names[c.subnode] {
				t.Errorf("want both %s and %s", c.leaf, c.subnode)
			}
		})
	}
}

func TestParseCases(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []kv   // nil with err
		err        string // substring
	}{
		{"empty object", "{}", []kv{}, ""},
		{"white space", " \n{ \"a\" :\t1 , \"b\":2 }\r\n", []kv{{"a", 1}, {"b", 2}}, ""},
		{"escapes", `{"a\/b":1,"c\u002fd":2,"e\"f":3,"g\\h":4,"\u00e9t\u00e9":5,"\ud83d\ude00":6}`,
			[]kv{{"a.b", 1}, {"c.d", 2}, {`e"f`, 3}, {`g\h`, 4}, {"été", 5}, {"😀", 6}}, ""},
		{"lone surrogate", `{"x\ud800y":1,"\udc00\ud800\u0041":2}`, []kv{{"x\uFFFDy", 1}, {"\uFFFD\uFFFDA", 2}}, ""},
		{"dot in a part", `{"master/frameworks/my.app/tasks":3,"a.b/c":1}`, []kv{{"master.frameworks.my_app.tasks", 3}, {"a_b.c", 1}}, ""},
		{"empty parts", `{"":1,"/x//":2}`, []kv{{"", 1}, {".x..", 2}}, ""},
		{"numbers", `{"i":2,"f":2.77555756156289e-17,"n":-0.5,"z":0,"e":1E3,"big":1099789,"huge":1e400}`,
			[]kv{{"i", 2}, {"f", 2.77555756156289e-17}, {"n", -0.5}, {"z", 0}, {"e", 1000}, {"big", 1099789}, {"huge", math.Inf(1)}}, ""},
		{"null skipped", `{"a":null,"b":1,"c": null }`, []kv{{"b", 1}}, ""},
		{"duplicate keys kept in order", `{"a":1,"a":2}`, []kv{{"a", 1}, {"a", 2}}, ""},
		{"empty body", "", nil, "empty body"},
		{"only space", "  \n", nil, "truncated"},
		{"not an object", "[1,2]", nil, "want a JSON object"},
		{"truncated in a key", `{"master\/cpus`, nil, "truncated"},
		{"truncated after a value", `{"a":1,`, nil, "truncated"},
		{"truncated in a number", `{"a":1.`, nil, "invalid number"},
		{"truncated without brace", `{"a":12`, nil, "truncated"},
		{"string value", `{"a":"1"}`, nil, `value of "a" is a string`},
		{"nested object", `{"a":{"b":1}}`, nil, "object or array"},
		{"boolean", `{"a":true}`, nil, "boolean"},
		{"NaN literal", `{"a":NaN}`, nil, "invalid value"},
		{"leading zero", `{"a":01}`, nil, "want ',' or '}'"},
		{"plus sign", `{"a":+1}`, nil, "invalid value"},
		{"bare dot", `{"a":1.e5}`, nil, "invalid number"},
		{"data after", `{"a":1}x`, nil, "data after the object"},
		{"two objects", `{"a":1}{}`, nil, "data after the object"},
		{"bad escape", `{"a\x":1}`, nil, "invalid escape"},
		{"control character", "{\"a\nb\":1}", nil, "control character"},
		{"missing colon", `{"a" 1}`, nil, "want ':'"},
		{"missing comma", `{"a":1 "b":2}`, nil, "want ',' or '}'"},
		{"trailing comma", `{"a":1,}`, nil, "want a key"},
		{"long key", `{"` + strings.Repeat("k", MaxKeyLength+1) + `":1}`, nil, "key longer than"},
		{"long number", `{"a":1` + strings.Repeat("0", maxNumberLength) + `}`, nil, "number longer than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewParser()
			p.ElectedOnly = false
			got, err := parseAll(t, p, []byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				var se *SyntaxError
				if c.name != "empty body" && !errors.As(err, &se) {
					t.Fatalf("error %T, want *SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("samples %v, want %v", got, c.want)
			}
			if nulls := strings.Count(c.body, "null"); p.Nulls() != nulls {
				t.Errorf("%d nulls counted, want %d", p.Nulls(), nulls)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("sample %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// The same body read one byte at a time, and with a read error in the middle.
func TestParseReaders(t *testing.T) {
	body := readTestdata(t, "master_snapshot_escaped_slashes.json")
	p := NewParser()
	p.ElectedOnly = false
	n := 0
	if err := p.Parse(iotest.OneByteReader(bytes.NewReader(body)), func(*sample.Sample) error { n++; return nil }); err != nil || n != 96 {
		t.Fatalf("one byte at a time: %d samples, %v", n, err)
	}
	boom := errors.New("boom")
	err := p.Parse(io.MultiReader(bytes.NewReader(body[:100]), iotest.ErrReader(boom)), func(*sample.Sample) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
	stop := errors.New("stop")
	if err := p.Parse(bytes.NewReader(body), func(*sample.Sample) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
	// More keys than MaxKeys.
	var big bytes.Buffer
	big.WriteString(`{"k":0`)
	for range MaxKeys {
		big.WriteString(`,"k":0`)
	}
	big.WriteString("}")
	if err := p.Parse(&big, func(*sample.Sample) error { return nil }); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("too many keys: %v", err)
	}
}

func names(kvs []kv) []string {
	out := make([]string, len(kvs))
	for i, s := range kvs {
		out[i] = s.name
	}
	return out
}

// The leader rule, whatever the key order.
func TestLeaderRule(t *testing.T) {
	const standby = `{"allocator/x":1,"master/cpus_total":2,"master/elected":0,"master/slave_removals":3,` +
		`"master/uptime_secs":10,"registrar/state_store_ms":4,"system/load_1min":0.5,"master/tasks_running":6}`
	for _, c := range []struct {
		name, body  string
		electedOnly bool
		want        string
		dropped     int
	}{
		{"standby", standby, true,
			"allocator.x master.elected master.uptime_secs registrar.state_store_ms system.load_1min", 3},
		{"standby, rule off", standby, false,
			"allocator.x master.cpus_total master.elected master.slave_removals master.uptime_secs registrar.state_store_ms system.load_1min master.tasks_running", 0},
		{"leader", strings.Replace(standby, `"master/elected":0`, `"master/elected":1`, 1), true,
			"allocator.x master.cpus_total master.elected master.slave_removals master.uptime_secs registrar.state_store_ms system.load_1min master.tasks_running", 0},
		{"elected last", `{"master/a":1,"system/b":2,"master/uptime_secs":3,"master/elected":0}`, true,
			"system.b master.uptime_secs master.elected", 1},
		{"no master/elected (an agent)", `{"master/a":1,"slave/b":2}`, true, "master.a slave.b", 0},
		{"legacy elected key is not the rule's", `{"elected":0,"master/a":1,"master/elected":1}`, true, "elected master.a master.elected", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewParser()
			p.ElectedOnly = c.electedOnly
			got, err := parseAll(t, p, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(names(got), " "); g != c.want {
				t.Errorf("samples\n%s\nwant\n%s", g, c.want)
			}
			if p.Dropped() != c.dropped {
				t.Errorf("dropped %d, want %d", p.Dropped(), c.dropped)
			}
		})
	}
	// The real leader keeps everything.
	p := NewParser()
	got, err := parseAll(t, p, readTestdata(t, "master_snapshot_escaped_slashes.json"))
	if err != nil || len(got) != 96 || p.Dropped() != 0 {
		t.Fatalf("elected master: %d samples, %d dropped, %v", len(got), p.Dropped(), err)
	}
}

// FuzzParse: no input panics, and every input the parser accepts is one encoding/json accepts
// with the same samples (ElectedOnly off); with it on, the samples are a subsequence.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"master_snapshot_escaped_slashes.json", "dd-agent_mesos_master_stats.json", "agent_a.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{`{}`, `{"a\/b":1e5,"master/elected":0,"master/x":1}`, `{"\ud800\u0041":null}`, `{"a":-0.0}`, ` [ `} {
		f.Add([]byte(s))
	}
	p := NewParser()
	f.Fuzz(func(t *testing.T, body []byte) {
		p.ElectedOnly = false
		got, err := parseAll(t, p, body)
		if err == nil && utf8.Valid(body) {
			want, rerr := reference(body)
			if rerr != nil {
				t.Fatalf("accepted, but encoding/json says %v", rerr)
			}
			if len(got) != len(want) {
				t.Fatalf("%d samples, encoding/json %d", len(got), len(want))
			}
			for i := range got {
				if got[i].name != want[i].name || got[i].value != want[i].value && !(math.IsNaN(got[i].value) && math.IsNaN(want[i].value)) {
					t.Fatalf("sample %d: %+v, encoding/json %+v", i, got[i], want[i])
				}
			}
		}
		// The bounds (a key or a number too long, too many keys) are refusals of our own.
		bounded := err != nil && (strings.Contains(err.Error(), "longer than") || strings.Contains(err.Error(), "more than"))
		if err != nil && !bounded && utf8.Valid(body) {
			if _, rerr := reference(body); rerr == nil && json.Valid(body) {
				t.Fatalf("refused (%v), but encoding/json accepts it", err)
			}
		}
		p.ElectedOnly = true
		sub, err2 := parseAll(t, p, body)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("the leader rule changed the verdict: %v / %v", err, err2)
		}
		if err == nil {
			j := 0
			for _, s := range sub {
				for j < len(got) && got[j] != s {
					j++
				}
				if j == len(got) {
					t.Fatalf("with the leader rule, %+v is not in order", s)
				}
				j++
			}
		}
	})
}
