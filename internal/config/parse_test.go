package config

import (
	"reflect"
	"strings"
	"testing"
)

// own returns the raw options a section holds itself, in order, as "key=value".
func own(l *Loaded, name string) []string {
	s := l.sectionNamed(name)
	if s == nil {
		return nil
	}
	out := []string{}
	for _, k := range s.keys {
		out = append(out, k+"="+s.values[k].raw)
	}
	return out
}

func TestParseDialect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		text    string
		section string
		want    []string
	}{
		{"equals and colon", "[s]\na = 1\nb: 2\nc=3\nd:4\n", "s", []string{"a=1", "b=2", "c=3", "d=4"}},
		{"first delimiter wins", "[s]\nurl = tcp://h:1\nk: v = w\n", "s", []string{"url=tcp://h:1", "k=v = w"}},
		{"whitespace stripped around key and value", "[s]\n  spaced key   =   v  v  \t\n", "s", []string{"spaced key=v  v"}},
		{"empty value", "[s]\na =\nb:\n", "s", []string{"a=", "b="}},
		{"inline comments are part of the value", "[s]\nworkers = 4 # x\nb = x ; y\n", "s", []string{"workers=4 # x", "b=x ; y"}},
		{"quotes are kept", "[s]\na = \"q\"\nb = 'q'\nc = `q`\n", "s", []string{`a="q"`, "b='q'", "c=`q`"}},
		{"full-line comments, indented too", "# c\n; c\n[s]\n  # c\n\t; c\na = 1\n", "s", []string{"a=1"}},
		{"keys are lower-cased", "[s]\nWorkers = 1\nQUEUE-Size = 2\n", "s", []string{"workers=1", "queue-size=2"}},
		{"continuation lines are stripped and joined with newlines", "[s]\nservers = unix:///a,\n    tcp://h:1,\n\t\tunix:///b\nnext = 1\n", "s",
			[]string{"servers=unix:///a,\ntcp://h:1,\nunix:///b", "next=1"}},
		{"blank lines inside a value are kept, trailing ones dropped", "[s]\na = 1\n\n  2\n\n\nb = 3\n", "s", []string{"a=1\n\n2", "b=3"}},
		{"comment lines inside a value are dropped", "[s]\na = 1\n# gone\n  2\n", "s", []string{"a=1\n2"}},
		{"equally indented keys are separate options", "[s]\n  a = 1\n  b = 2\n", "s", []string{"a=1", "b=2"}},
		{"deeper indented key-like line continues", "[s]\n  a = 1\n    b = 2\n", "s", []string{"a=1\nb = 2"}},
		{"empty first line then continuation", "[s]\na =\n  x\n", "s", []string{"a=\nx"}},
		{"CRLF and CR line ends", "[s]\r\na = 1\r\nb = 2\rc = 3", "s", []string{"a=1", "b=2", "c=3"}},
		{"byte-order mark ignored", "\ufeff[s]\na = 1\n", "s", []string{"a=1"}},
		{"section header runs to the last bracket", "[s] trailing\n[a]b]\nk = v\n", "a]b", []string{"k=v"}},
		{"section names keep case and spaces", "[ Pull ]\nk = v\n", " Pull ", []string{"k=v"}},
		{"repeated DEFAULT header is allowed", "[DEFAULT]\na = 1\n[s]\n[DEFAULT]\nb = 2\n", "DEFAULT", []string{"retries=2", "timeout=1", "interval=2", "loglevel=info", "a=1", "b=2"}},
		{"DEFAULT overrides built-ins in place", "[DEFAULT]\nloglevel = debug\n", "DEFAULT", []string{"retries=2", "timeout=1", "interval=2", "loglevel=debug"}},
		{"values keep dollar signs raw", "[s]\na = ^x$$\nb = ${c}\n", "s", []string{"a=^x$$", "b=${c}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoaded()
			if err := l.parse("t.conf", []byte(tc.text)); err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := own(l, tc.section); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("section %q = %q, want %q", tc.section, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"duplicate option", "[process]\nworkers = 1\nWORKERS = 2\n",
			"invalid configuration, file:'t.conf' line:3 section:'process' option:'workers' value:'2' error: option 'workers' in section 'process' already exists (first at line 2); within one file an option may appear only once"},
		{"duplicate option in DEFAULT across DEFAULT headers", "[DEFAULT]\na = 1\n[DEFAULT]\na = 2\n",
			"invalid configuration, file:'t.conf' line:4 section:'DEFAULT' option:'a' value:'2' error: option 'a' in section 'DEFAULT' already exists (first at line 2); within one file an option may appear only once"},
		{"duplicate section", "[pull]\n[process]\n[pull]\n",
			"invalid configuration, file:'t.conf' line:3 section:'pull' error: section 'pull' already exists (first at line 1); within one file a section may appear only once"},
		{"no section header", "src-dir=/x\n",
			"invalid configuration, file:'t.conf' line:1 error: File contains no section headers: the first setting must follow a [section] line, got 'src-dir=/x'"},
		{"indented line before any section", "  a = 1\n",
			"invalid configuration, file:'t.conf' line:1 error: File contains no section headers: the first setting must follow a [section] line, got 'a = 1'"},
		{"line without delimiter", "[s]\nfoo\n",
			"invalid configuration, file:'t.conf' line:2 section:'s' error: parsing error: expected '[section]', 'option = value' or 'option: value', got 'foo'"},
		{"empty option name", "[s]\n= x\n",
			"invalid configuration, file:'t.conf' line:2 section:'s' error: parsing error: expected '[section]', 'option = value' or 'option: value', got '= x'"},
		{"empty section name", "[]\n",
			"invalid configuration, file:'t.conf' line:1 error: File contains no section headers: the first setting must follow a [section] line, got '[]'"},
		{"invalid UTF-8", "[s]\na = \xff\n",
			"invalid configuration, file:'t.conf' line:2 error: the file is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newLoaded().parse("t.conf", []byte(tc.text))
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if got := asConfigError(t, err).Error(); got != tc.want {
				t.Fatalf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// A section or option set again in a later file overrides; keys keep their first position.
func TestOverrideAcrossFiles(t *testing.T) {
	l := newLoaded()
	for _, f := range []struct{ name, text string }{
		{"a.conf", "[backend-groups]\na = 1\nb = 2\n[process]\nworkers = 3\n"},
		{"b.conf", "[backend-groups]\nc = 3\nB = 20\n[process]\nworkers = 5\n"},
	} {
		if err := l.parse(f.name, []byte(f.text)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := own(l, "backend-groups"), []string{"a=1", "b=20", "c=3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("backend-groups = %q, want %q", got, want)
	}
	v := l.sections["process"].values["workers"]
	if v.raw != "5" || v.file != "b.conf" || v.line != 5 {
		t.Errorf("workers = %+v, want 5 from b.conf line 5", v)
	}
}

func TestSplitHelpers(t *testing.T) {
	if got := indentOf("\u00a0\t x"); got != 3 {
		t.Errorf("indentOf counts characters, got %d", got)
	}
	if got := pyStrip("\x1c a \x1f"); got != "a" {
		t.Errorf("pyStrip must strip Python's ASCII separators, got %q", got)
	}
	if got := strings.Join(splitLines("a\r\nb\rc\n"), "|"); got != "a|b|c|" {
		t.Errorf("splitLines = %q", got)
	}
}
