package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readGolden(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func programName(p Program) string {
	if p == PullProgram {
		return "pull"
	}
	return "process"
}

func TestPrintDefaultsGolden(t *testing.T) {
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		var out bytes.Buffer
		PrintDefaults(&out, prog)
		if want := readGolden(t, "print-defaults-"+programName(prog)+".golden"); out.String() != want {
			t.Errorf("%s -p\n got:\n%s\nwant:\n%s", programName(prog), out.String(), want)
		}
	}
}

// Feeding -p output back gives the defaults, and -P of that is -p plus inherited options.
func TestPrintDefaultsReadsBack(t *testing.T) {
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		var out bytes.Buffer
		PrintDefaults(&out, prog)
		l, _ := loadText(t, out.String())
		if len(l.Warnings) != 0 {
			t.Errorf("%s: warnings %q", programName(prog), l.Warnings)
		}
		got, err := l.Config(prog)
		if err != nil {
			t.Fatal(err)
		}
		def, err := Load("", false, "")
		if err != nil {
			t.Fatal(err)
		}
		stubSystem(def)
		want, err := def.Config(prog)
		if err != nil {
			t.Fatal(err)
		}
		got.File = ""
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: -p read back\n got %+v\nwant %+v", programName(prog), got, want)
		}
	}
}

func TestPrintGolden(t *testing.T) {
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		l, err := Load(filepath.Join("testdata", "rich.conf"), true, "")
		if err != nil {
			t.Fatal(err)
		}
		stubSystem(l)
		if len(l.Warnings) != 0 {
			t.Errorf("rich.conf warnings: %q", l.Warnings)
		}
		var out bytes.Buffer
		if err := l.Print(&out, prog); err != nil {
			t.Fatal(err)
		}
		if want := readGolden(t, "rich-print-"+programName(prog)+".golden"); out.String() != want {
			t.Errorf("%s -P\n got:\n%s\nwant:\n%s", programName(prog), out.String(), want)
		}
	}
}

// comparable blanks what legitimately differs between two loads of the same configuration
// and flattens the compiled patterns.
func comparable(c *Config) (Config, [][2]string) {
	out := *c
	out.File = ""
	var patterns [][2]string
	for _, gs := range []*[]Group{&out.FrontendGroups, &out.BackendGroups, &out.ServerGroups} {
		flat := make([]Group, len(*gs))
		for i, g := range *gs {
			patterns = append(patterns, [2]string{g.Name, g.Pattern.String()})
			flat[i] = Group{Name: g.Name}
		}
		*gs = flat
	}
	return out, patterns
}

func TestPrintRoundTrip(t *testing.T) {
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		t.Run(programName(prog), func(t *testing.T) {
			l, err := Load(filepath.Join("testdata", "rich.conf"), true, "")
			if err != nil {
				t.Fatal(err)
			}
			stubSystem(l)
			var first bytes.Buffer
			if err := l.Print(&first, prog); err != nil {
				t.Fatal(err)
			}
			again, _ := loadText(t, first.String())
			var second bytes.Buffer
			if err := again.Print(&second, prog); err != nil {
				t.Fatal(err)
			}
			if first.String() != second.String() {
				t.Fatalf("Print → Load → Print differs\nfirst:\n%s\nsecond:\n%s", first.String(), second.String())
			}
			want, err := l.Config(prog)
			if err != nil {
				t.Fatal(err)
			}
			got, err := again.Config(prog)
			if err != nil {
				t.Fatal(err)
			}
			wantCfg, wantPat := comparable(want)
			gotCfg, gotPat := comparable(got)
			if !reflect.DeepEqual(gotCfg, wantCfg) || !reflect.DeepEqual(gotPat, wantPat) {
				t.Fatalf("typed config differs after the round trip\n got %+v %v\nwant %+v %v", gotCfg, gotPat, wantCfg, wantPat)
			}
			// Interpolation is done, so the variables are unused now, and say so.
			wantWarnings := []string{"unknown option 'base' in section 'DEFAULT' of %[1]s line 2; ignored"}
			if prog == ProcessProgram {
				wantWarnings = append(wantWarnings, "unknown section 'vars' in %[1]s line 74; ignored")
			} else {
				wantWarnings = append(wantWarnings, l.Warnings...) // the pull-timeout warning
			}
			for i := range wantWarnings {
				wantWarnings[i] = strings.ReplaceAll(wantWarnings[i], "%[1]s", again.Files[0])
			}
			if !reflect.DeepEqual(again.Warnings, wantWarnings) {
				t.Fatalf("warnings after the round trip\n got %q\nwant %q", again.Warnings, wantWarnings)
			}
		})
	}
}

func TestPrintDetails(t *testing.T) {
	for _, tc := range []struct {
		name string
		prog Program
		text string
		want []string // lines that must appear, in this order
		not  []string
	}{
		{"invalid values still print", PullProgram, "[pull]\nworkers = two # x\n", []string{"[pull]\n", "workers = two # x\n"}, nil},
		{"pull shows only DEFAULT and pull", PullProgram, "[process]\nworkers = 3\n", []string{"[DEFAULT]\n", "[pull]\n"}, []string{"[process]", "[graphite]", "[paths]"}},
		{"process shows everything but pull", ProcessProgram, "[zzz]\na = 1\n", []string{"[DEFAULT]\n", "[graphite]\n", "[paths]\n", "[process]\n", "[zzz]\na = 1\n"}, []string{"[pull]"}},
		{"empty value", ProcessProgram, "[zzz]\na =\n", []string{"[zzz]\na = \n"}, nil},
		{"dollar escaped", ProcessProgram, "[zzz]\na = x$$y${b}\nb = $$\n", []string{"a = x$$y$$\n", "b = $$\n"}, nil},
		{"explicit hostname kept", ProcessProgram, "[graphite]\nhostname = pinned\n", []string{"hostname = pinned\n"}, []string{"testhost"}},
		{"empty hostname shows the effective one", ProcessProgram, "[graphite]\nhostname =\n", []string{"hostname = testhost\n"}, nil},
		{"sections sort by code point", ProcessProgram, "[Zeta]\n[alpha]\n", []string{"[DEFAULT]\n", "[Zeta]\n", "[alpha]\n", "[graphite]\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			var out bytes.Buffer
			if err := l.Print(&out, tc.prog); err != nil {
				t.Fatal(err)
			}
			rest := out.String()
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out.String())
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(out.String(), n) {
					t.Fatalf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
}

func TestPrintErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"interpolation failure", "[process]\nsrc-dir = ${nope}\n",
			"invalid configuration, file:'%[1]s' line:2 section:'process' option:'src-dir' value:'${nope}' error: Bad value substitution: option 'src-dir' in section 'process' contains an interpolation key 'nope' which is not a valid option name (section 'process' has no option 'nope')"},
		{"inherited value fails in DEFAULT", "[DEFAULT]\nx = ${y}\n[zzz]\ny = 1\n",
			"invalid configuration, file:'%[1]s' line:2 section:'DEFAULT' option:'x' value:'${y}' error: Bad value substitution: option 'x' in section 'DEFAULT' contains an interpolation key 'y' which is not a valid option name (section 'DEFAULT' has no option 'y')"},
		{"trailing whitespace after interpolation", "[zzz]\ne =\na = x ${e}\n",
			"invalid configuration, section:'zzz' option:'a' value:'x ' error: cannot print this value as INI that reads back the same: a line of it starts or ends with whitespace"},
		{"continuation line that reads as a comment", "[zzz]\nh = #x\na = 1\n  ${h}\n",
			"invalid configuration, section:'zzz' option:'a' value:'1\\n#x' error: cannot print this value as INI that reads back the same: a continuation line starts with a comment character"},
		{"trailing empty line", "[zzz]\ne =\na = 1\n  ${e}\n",
			"invalid configuration, section:'zzz' option:'a' value:'1\\n' error: cannot print this value as INI that reads back the same: it ends with an empty line"},
		{"line that reads as a section header", "[zzz]\nb = ]\n[a = ${b}\n",
			"invalid configuration, section:'zzz' option:'[a' value:']' error: cannot print this value as INI that reads back the same: the line would read back as a [section] header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := loadText(t, tc.text)
			var out bytes.Buffer
			err := l.Print(&out, ProcessProgram)
			if err == nil {
				t.Fatalf("Print succeeded:\n%s", out.String())
			}
			if out.Len() != 0 {
				t.Errorf("Print wrote output despite the error")
			}
			if got, want := asConfigError(t, err).Error(), strings.ReplaceAll(tc.want, "%[1]s", path); got != want {
				t.Fatalf("error\n got %s\nwant %s", got, want)
			}
		})
	}
}
