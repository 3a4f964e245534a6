package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// problemLines renders the problems with the test file's path replaced by F.
func problemLines(p *Problems, path string) []string {
	var out []string
	for _, e := range p.List {
		out = append(out, strings.ReplaceAll(e.Error(), path, "F"))
	}
	return out
}

func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Check goes on after a problem: every bad value, typo and pattern is reported, in file order.
func TestCheckReportsEveryProblem(t *testing.T) {
	withTestKind(t)
	src := t.TempDir()
	l, path := loadText(t, `[pull]
workers = two
retires = 3
pull-interval = 0
[process]
src-dir = `+src+`
workers = 0
liveness-check-intervall = 5
[grahpite]
port = 1
[graphite]
port = 99999
[frontend-groups]
ok = ^www
bad = (?<=x)y
[source.a]
type = testkind
timeout = soon
[source.b]
type = testkind
urls = http://127.0.0.1:1/
agregate = sum
`)
	const p = "invalid configuration, file:'F' "
	_, pull := l.Check(PullProgram)
	sameLines(t, problemLines(pull, path), []string{
		p + "line:2 section:'pull' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'",
		p + "line:3 section:'pull' option:'retires' value:'3' error: unknown option, ignored (did you mean 'retries'?)",
		p + "line:4 section:'pull' option:'pull-interval' value:'0' error: must be 0.1 to 86400 seconds (1 day); pulling more often would only spin",
		p + "line:8 section:'process' option:'liveness-check-intervall' value:'5' error: unknown option, ignored (did you mean 'liveness-check-interval'?)",
		p + "line:9 section:'grahpite' error: unknown section, ignored (did you mean 'graphite'?)",
		p + "line:16 section:'source.a' option:'urls' value:'' error: no URL: a source needs at least one instance",
		p + "line:22 section:'source.b' option:'agregate' value:'sum' error: unknown option, ignored (did you mean 'aggregate'?)",
	})
	if pull.Incomplete {
		t.Error("Incomplete after a complete check")
	}
	_, process := l.Check(ProcessProgram)
	// stats-process does not read [pull] workers; a missing group-namespace has no line.
	sameLines(t, problemLines(process, path), []string{
		p + "line:3 section:'pull' option:'retires' value:'3' error: unknown option, ignored (did you mean 'retries'?)",
		p + "line:7 section:'process' option:'workers' value:'0' error: must be 1 to 1024",
		p + "line:8 section:'process' option:'liveness-check-intervall' value:'5' error: unknown option, ignored (did you mean 'liveness-check-interval'?)",
		p + "line:9 section:'grahpite' error: unknown section, ignored (did you mean 'graphite'?)",
		p + "line:12 section:'graphite' option:'port' value:'99999' error: must be a TCP port, 1 to 65535",
		p + "line:15 section:'frontend-groups' option:'bad' value:'(?<=x)y' error: group 'bad' has an invalid pattern: " +
			"error parsing regexp: invalid named capture: `(?<=x)y` (Go's RE2 syntax has no look-around or backreferences)",
		p + "line:18 section:'source.a' option:'timeout' value:'soon' error: could not convert string to float: 'soon'",
		p + "line:22 section:'source.b' option:'agregate' value:'sum' error: unknown option, ignored (did you mean 'aggregate'?)",
		"invalid configuration, section:'graphite' option:'group-namespace' value:'' error: no value for option 'group-namespace' " +
			"in the section 'graphite' (section 'frontend-groups' in F line 13 needs it)",
	})
	if !process.Bad("process", "workers") || !process.Bad("source.a", "") || process.Bad("process", "src-dir") {
		t.Errorf("Bad: process workers %v, source.a %v, src-dir %v", process.Bad("process", "workers"),
			process.Bad("source.a", ""), process.Bad("process", "src-dir"))
	}
	// Config still stops at the first problem, and Check changed nothing in l.
	if _, err := l.Config(PullProgram); err == nil || !strings.Contains(err.Error(), "option:'pull-interval' value:'0'") {
		t.Fatalf("Config after Check: %v", err)
	}
}

// A valid configuration has no problems, and its warnings stay warnings.
func TestCheckKeepsWarnings(t *testing.T) {
	l, _ := loadText(t, "[pull]\npull-timeout = 0.5\n[graphite]\ntimeout = 3\n")
	cfg, p := l.Check(PullProgram)
	if len(p.List) != 0 || cfg == nil {
		t.Fatalf("problems %v", problemLines(p, ""))
	}
	if len(p.Warnings) != 2 || !strings.Contains(p.Warnings[0], "'timeout' in section 'graphite'") ||
		!strings.Contains(p.Warnings[1], "pull-timeout = 0.5 is below 1 second") {
		t.Fatalf("warnings %q", p.Warnings)
	}
}

// Check tests src-dir without creating anything in it, with the messages of a start.
func TestCheckSrcDirWithoutSideEffects(t *testing.T) {
	dir := t.TempDir()
	l, _ := loadText(t, "[process]\nsrc-dir = "+dir+"\n")
	l.checkWritable = func(string) error { t.Fatal("Check used the start-up write test"); return nil }
	if _, p := l.Check(ProcessProgram); len(p.List) != 0 {
		t.Fatalf("problems %v", problemLines(p, ""))
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("Check left %v in src-dir", names)
	}
	missing := filepath.Join(dir, "incoming")
	l, path := loadText(t, "[pull]\ndst-dir = "+missing+"\n[process]\nsrc-dir = "+missing+"\n")
	_, p := l.Check(ProcessProgram)
	sameLines(t, problemLines(p, path), []string{"invalid configuration, file:'F' line:4 section:'process' option:'src-dir' value:'" + missing +
		"' error: directory '" + missing + "' does not exist yet (start stats-pull first: it creates its dst-dir, which stats-process reads as src-dir)"})
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("Check created src-dir: %v", err)
	}
}

// Check stops after maxCheckProblems runs and says that it did.
func TestCheckBoundsItsRuns(t *testing.T) {
	var b strings.Builder
	b.WriteString("[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = false\n[frontend-groups]\n")
	for i := range maxCheckProblems + 5 {
		b.WriteString("g" + strconv.Itoa(i) + " = (\n")
	}
	l, _ := loadText(t, b.String())
	_, p := l.Check(ProcessProgram)
	if len(p.List) != maxCheckProblems || !p.Incomplete {
		t.Fatalf("%d problems, incomplete %v", len(p.List), p.Incomplete)
	}
}

// Add names the file and line of the option's value, and its interpolated value.
func TestCheckAdd(t *testing.T) {
	l, path := loadText(t, "[paths]\nbase-dir = /srv\n[pull]\ndst-dir = ${paths:base-dir}/in\n")
	_, p := l.Check(PullProgram)
	p.Add("pull", "dst-dir", "", "cannot be created")
	p.Add("source.x", "", "", "no such section")
	sameLines(t, problemLines(p, path), []string{
		"invalid configuration, file:'F' line:4 section:'pull' option:'dst-dir' value:'/srv/in' raw:'${paths:base-dir}/in' error: cannot be created",
		"invalid configuration, section:'source.x' error: no such section",
	})
	if !p.Bad("pull", "dst-dir") || p.Bad("pull", "tmp-dst-dir") {
		t.Fatal("Bad does not follow Add")
	}
}
