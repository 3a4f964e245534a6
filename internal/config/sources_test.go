package config

import (
	"bytes"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// testKindSettings is what the test kind's checks store.
type testKindSettings struct {
	URLs    string
	Timeout time.Duration
	PerInst bool
}

// withTestKind registers the test kind for one test (the golden -p files have no kinds).
func withTestKind(t *testing.T) {
	registerTestKind()
	t.Cleanup(func() {
		kindsMu.Lock()
		delete(kinds, "testkind")
		kindsMu.Unlock()
	})
}

func registerTestKind() {
	check := func(s *Source) error {
		var st testKindSettings
		var err error
		if st.Timeout, err = s.Seconds("timeout", time.Millisecond); err != nil {
			return err
		}
		if st.PerInst, err = s.Bool("per-instance-metrics"); err != nil {
			return err
		}
		st.URLs = s.String("urls")
		s.Settings = st
		return nil
	}
	RegisterSourceKind(SourceKind{
		Name: "testkind",
		Options: []SourceOption{
			{Name: "urls", Doc: "where"},
			{Name: "timeout", Default: "2", HasDefault: true},
			{Name: "per-instance-metrics", Default: "false", HasDefault: true, Process: true},
			{Name: "aggregate", Default: "sum", HasDefault: true, Family: true, Process: true},
		},
		CheckPull: func(s *Source) error {
			if s.String("urls") == "" {
				return s.Fail("urls", "no URL: a source needs at least one instance")
			}
			return check(s)
		},
		CheckProcess: check,
	})
}

const sourcesConf = `[DEFAULT]
timeout = 7
[paths]
base-dir = /srv
[source.apps]
type = testkind
urls = http://127.0.0.1:9100/metrics
	${paths:base-dir}/x
aggregate.*_bytes = max p95
aggregate = sum avg
[source.web]
type = testkind
urls = http://127.0.0.1:9101/metrics
timeout = 0.5
allow-partial = true
`

func TestSourcesValidatedForBothPrograms(t *testing.T) {
	withTestKind(t)
	l, path := loadText(t, sourcesConf)
	pull, err := l.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	if len(pull.Sources) != 2 || pull.Sources[0].Name != "apps" || pull.Sources[1].Name != "web" {
		t.Fatalf("sources %+v", pull.Sources)
	}
	apps, web := pull.Sources[0], pull.Sources[1]
	// DEFAULT's timeout = 7 is haproxystats' and does not reach a source: the kind's default does.
	if got := apps.Settings.(testKindSettings); got.Timeout != 2*time.Second || got.URLs != "http://127.0.0.1:9100/metrics\n/srv/x" {
		t.Fatalf("apps settings %+v", got)
	}
	if got := web.Settings.(testKindSettings); got.Timeout != 500*time.Millisecond || !web.AllowPartial || apps.AllowPartial {
		t.Fatalf("web %+v %+v", web, got)
	}
	wantFamily := []SourceValue{{"aggregate.*_bytes", "max p95"}, {"aggregate", "sum avg"}}
	if got := apps.Family("aggregate"); !reflect.DeepEqual(got, wantFamily) {
		t.Fatalf("aggregate family %v", got)
	}
	wantRecorded := []SourceValue{{"aggregate.*_bytes", "max p95"}, {"aggregate", "sum avg"}, {"per-instance-metrics", "false"}}
	if got := apps.ProcessOptions(); !reflect.DeepEqual(got, wantRecorded) {
		t.Fatalf("process options %v", got)
	}
	process, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if len(process.Sources) != 2 || process.Sources[0].Name != "apps" {
		t.Fatalf("process sources %+v", process.Sources)
	}
	if len(l.Warnings) != 0 {
		t.Fatalf("warnings %v (file %s)", l.Warnings, path)
	}
}

func TestSourceErrors(t *testing.T) {
	withTestKind(t)
	for _, c := range []struct{ name, conf, want string }{
		{"no type", "[source.a]\nurls = x\n", "section:'source.a' option:'type' value:'' error: No option 'type' in section: 'source.a'"},
		{"unknown type", "[source.a]\ntype = testkidn\n", "unknown source type 'testkidn' (did you mean 'testkind'?)"},
		{"haproxy", "[source.a]\ntype = haproxy\n", "HAProxy is configured in [pull]"},
		{"name", "[source.a.b]\ntype = testkind\n", "a source name may only have letters"},
		{"reserved", "[source.haproxy]\ntype = testkind\n", "taken by the HAProxy source"},
		{"reserved for self-metrics", "[source.statspipe]\ntype = testkind\n", "section:'source.statspipe' error: the source name 'statspipe' is taken by stats-pull's own metrics ([pull] self-metrics)"},
		{"integer", "[source.123]\ntype = testkind\n", "must not be an integer"},
		{"empty", "[source.]\ntype = testkind\n", "is empty"},
		{"kind check", "[source.a]\ntype = testkind\n", "line:1 section:'source.a' option:'urls' value:'' error: no URL"},
		{"bad bool", "[source.a]\ntype = testkind\nurls = u\nper-instance-metrics = maybe\n", "line:4 section:'source.a' option:'per-instance-metrics' value:'maybe' error: Not a boolean: maybe"},
		{"bad seconds", "[source.a]\ntype = testkind\nurls = u\ntimeout = -1\n", "option:'timeout' value:'-1' error: must be 0.001 to 86400 seconds"},
		{"allow-partial", "[source.a]\ntype = testkind\nurls = u\nallow-partial = 2\n", "option:'allow-partial' value:'2' error: Not a boolean: 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, _ := loadText(t, c.conf)
			_, err := l.Config(PullProgram)
			if err == nil {
				t.Fatal("accepted")
			}
			if e := asConfigError(t, err); !strings.Contains(e.Error(), c.want) {
				t.Fatalf("error %q lacks %q", e.Error(), c.want)
			}
		})
	}
}

func TestSourceUnknownOptionWarnsWithClosestName(t *testing.T) {
	withTestKind(t)
	l, path := loadText(t, "[source.a]\ntype = testkind\nurls = u\ntimeuot = 3\n")
	if _, err := l.Config(PullProgram); err != nil {
		t.Fatal(err)
	}
	want := "unknown option 'timeuot' in section 'source.a' of " + path + " line 4 (did you mean 'timeout'?); ignored"
	if len(l.Warnings) != 1 || l.Warnings[0] != want {
		t.Fatalf("warnings %q, want %q", l.Warnings, want)
	}
}

func TestSourcesPrinted(t *testing.T) {
	withTestKind(t)
	l, _ := loadText(t, sourcesConf)
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		var b bytes.Buffer
		if err := l.Print(&b, prog); err != nil {
			t.Fatal(err)
		}
		want := "[source.web]\naggregate = sum\nallow-partial = true\nper-instance-metrics = false\ntimeout = 0.5\ntype = testkind\nurls = http://127.0.0.1:9101/metrics\n\n"
		if !strings.Contains(b.String(), want) {
			t.Fatalf("-P (%d):\n%s\nlacks\n%s", prog, b.String(), want)
		}
		// -P reads back to the same sources.
		back, _ := loadText(t, b.String())
		if prog == PullProgram {
			continue // the pull -P has no [paths], which interpolation needed; it is already interpolated
		}
		c1, err1 := l.Config(prog)
		c2, err2 := back.Config(prog)
		sorted := func(c *Config) []SourceValue {
			o := c.Sources[1].Options()
			sort.Slice(o, func(i, j int) bool { return o[i].Key < o[j].Key })
			return o
		}
		if err1 != nil || err2 != nil || !reflect.DeepEqual(sorted(c1), sorted(c2)) {
			t.Fatalf("-P did not read back: %v %v", err1, err2)
		}
	}
	var d bytes.Buffer
	PrintDefaults(&d, PullProgram)
	for _, want := range []string{"# [source.<name>] with type = testkind\n", "# timeout = 2\n", "# aggregate = sum\n", "# urls (no default)\n", "# allow-partial = false\n"} {
		if !strings.Contains(d.String(), want) {
			t.Fatalf("-p lacks %q:\n%s", want, d.String())
		}
	}
	// -p stays a configuration that reads back without creating a source.
	back, _ := loadText(t, d.String())
	if c, err := back.Config(PullProgram); err != nil || len(c.Sources) != 0 {
		t.Fatalf("-p read back: %v %+v", err, c)
	}
}

func TestRecordedSource(t *testing.T) {
	withTestKind(t)
	src, warnings, err := RecordedSource("testkind", "apps", []SourceValue{{"aggregate", "max"}, {"urls", "secret"}, {"per-instance-metrics", "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"urls"`) {
		t.Fatalf("warnings %v", warnings)
	}
	if st := src.Settings.(testKindSettings); !st.PerInst || st.URLs != "" {
		t.Fatalf("settings %+v", st)
	}
	if _, _, err := RecordedSource("nokind", "x", nil); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, _, err := RecordedSource("testkind", "x", []SourceValue{{"per-instance-metrics", "perhaps"}}); err == nil {
		t.Fatal("bad recorded value accepted")
	}
}
