package scope

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// visit parses a report and returns "topology|node|metric=value" lines.
func visit(t testing.TB, body, id string) ([]string, error) {
	var got []string
	err := parseReport(strings.NewReader(body), id, func(topo, node string, ms []metricValue) error {
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%s|%s|%s=%v", topo, node, m.Name, m.Value))
		}
		return nil
	})
	return got, err
}

func readTestdata(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRealPayloads(t *testing.T) {
	for _, c := range []struct {
		file, id string
		want     []string
	}{
		// \u003chost\u003e decoded; 9 fractional digits; min/max, latestControls and controls ignored.
		{"iowait_report.json", "iowait", []string{"Host|vm;<host>|idle=52.12"}},
		// samples only, 6 digits, a 0 rate kept, the label bug's names as published.
		{"http_statistics_report.example.json", "http-statistics", []string{
			"Process|vm;4242|http_102_responses_per_second=1",
			"Process|vm;4242|http_200_responses_per_second=11",
			"Process|vm;4242|http_501_responses_per_second=2",
			"Process|vm;4242|http_requests_per_second=12",
			"Process|vm;5151|http_requests_per_second=0",
		}},
	} {
		got, err := visit(t, readTestdata(t, c.file), c.id)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", c.file, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

const goodSpec = `"Plugins":[{"id":"p","label":"P","interfaces":["reporter"],"api_version":"1"}]`

func TestReportRules(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string
		err        string
	}{
		{"latest of several, dates with 0, 6 and 9 digits", `{"Host":{"nodes":{"h;<host>":{"metrics":{"m":{"samples":[
			{"date":"2026-12-01T18:36:53Z","value":1},
			{"date":"2026-12-01T18:36:53.000001Z","value":2},
			{"date":"2026-12-01T18:36:52.999999999Z","value":3}]}}}}},` + goodSpec + `}`,
			[]string{"Host|h;<host>|m=2"}, ""},
		{"equal dates: the last", `{"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[
			{"date":"2026-12-01T18:36:53Z","value":1},{"date":"2026-12-01T18:36:53Z","value":4}]}}}}},` + goodSpec + `}`,
			[]string{"Host|h|m=4"}, ""},
		{"no samples, latest strings, sets and counters skipped", `{"Container":{"nodes":{"c;<container>":{
			"metrics":{"none":{"min":0,"max":1},"empty":{"samples":[]}},
			"latest":{"name":{"timestamp":"2026-12-01T18:36:53Z","value":"x"}},"sets":{"a":["b"]},"counters":{"n":3}}}},` + goodSpec + `,"Window":"15s"}`,
			nil, ""},
		{"several topologies, a time zone offset", `{"Process":{"nodes":{"vm;1":{"metrics":{"a":{"samples":[{"date":"2026-12-01T18:36:53+02:00","value":-1.5}]}}}}},
			"Host":{"nodes":{"vm;<host>":{"metrics":{"b":{"samples":[{"date":"2026-12-01T18:36:53.5Z","value":1e3}]}}}}},` + goodSpec + `}`,
			[]string{"Process|vm;1|a=-1.5", "Host|vm;<host>|b=1000"}, ""},
		{"values that are no topologies, between topologies", `{"Window":"15s","Shortcut":true,"ID":7,"List":[{"nodes":{}}],"N":null,
			"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[{"date":"2026-12-01T18:36:53Z","value":1}]}}}}},"W2":"x",` + goodSpec + `}`,
			[]string{"Host|h|m=1"}, ""},
		{"a sample without a value", `{"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[{"date":"2026-12-01T18:36:53Z"}]}}}}},` + goodSpec + `}`, nil, ""},
		{"bad date", `{"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[{"date":"yesterday","value":1}]}}}}},` + goodSpec + `}`, nil, `date "yesterday"`},
		{"no spec", `{"Host":{"nodes":{}}}`, nil, "exactly one plugin (found 0)"},
		{"two specs", `{"Plugins":[{"id":"p","label":"P","interfaces":["reporter"],"api_version":"1"},{"id":"q"}]}`, nil, "found 2"},
		{"another id", `{"Plugins":[{"id":"q","label":"Q","interfaces":["reporter"],"api_version":"1"}]}`, nil, "must not change its id"},
		{"api_version 2", `{"Plugins":[{"id":"p","label":"P","interfaces":["reporter"],"api_version":"2"}]}`, nil, `api_version "2"`},
		{"no label", `{"Plugins":[{"id":"p","interfaces":["reporter"],"api_version":"1"}]}`, nil, "label"},
		{"controller only", `{"Plugins":[{"id":"p","label":"P","interfaces":["controller"],"api_version":"1"}]}`, nil, `"reporter"`},
		{"Plugins twice", `{` + goodSpec + `,` + goodSpec + `}`, nil, "twice"},
		{"not an object", `[1]`, nil, "not a JSON object"},
		{"empty", ``, nil, "unexpected EOF"},
		{"truncated", `{"Host":{"nodes":{}},` + goodSpec, nil, "EOF"},
		{"data after", `{` + goodSpec + `} {}`, nil, "data after"},
		{"a topology that is not one", `{"Host":{"nodes":[1]},` + goodSpec + `}`, nil, "topology Host"},
		{"a value that is a string", `{"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[{"date":"2026-12-01T18:36:53Z","value":"1"}]}}}}},` + goodSpec + `}`, nil, "topology Host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := visit(t, c.body, "p")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestPluginIDs(t *testing.T) {
	for id, ok := range map[string]bool{"iowait": true, "http-statistics": true, "a1-b2-c3": true,
		"testPlugin!": false, "test~plugin": false, "testPlugin-": false, "-a": false, "a--b": false, "": false, "a.b": false,
		strings.Repeat("a", maxIDLength+1): false} {
		if validID(id) != ok {
			t.Errorf("validID(%q) = %v", id, !ok)
		}
	}
}

func TestProcessNodeIDs(t *testing.T) {
	for id, want := range map[string]string{"vm;4242": "vm 4242", "a;b;1": "", "vm;": "", "vm": "", "vm;-1": "", ";7": " 7", "vm;12345678901": ""} {
		h, p, ok := processNode(id)
		got := ""
		if ok {
			got = h + " " + p
		}
		if got != want {
			t.Errorf("processNode(%q) = %q, want %q", id, got, want)
		}
	}
}

// The report parser on anything: no panic, and what parses once parses the same again.
func FuzzParseReport(f *testing.F) {
	f.Add(readTestdata(f, "iowait_report.json"), "iowait")
	f.Add(readTestdata(f, "http_statistics_report.example.json"), "http-statistics")
	f.Add(`{"Host":{"nodes":{"h":{"metrics":{"m":{"samples":[{"date":"2026-12-01T18:36:53Z","value":1}]}}}}},`+goodSpec+`}`, "p")
	f.Fuzz(func(t *testing.T, body, id string) {
		a, errA := visit(t, body, id)
		b, errB := visit(t, body, id)
		if (errA == nil) != (errB == nil) || strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Fatalf("two parses differ: %v %v", errA, errB)
		}
	})
}
