package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// usages reads the `const usage` of every program under cmd/ from its source, so that the test
// covers the help texts as they are now (including programs added later) without building.
func usages(t *testing.T) map[string]string {
	t.Helper()
	mains, err := filepath.Glob("../../cmd/*/main.go")
	if err != nil || len(mains) == 0 {
		t.Fatalf("no cmd/*/main.go: %v", err)
	}
	found := map[string]string{}
	for _, path := range mains {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "usage" || len(spec.Values) != 1 {
				return true
			}
			if lit, ok := spec.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				found[filepath.Base(filepath.Dir(path))] = s
			}
			return false
		})
	}
	// The queue check keeps its usage in internal/nagios; the others must have one here.
	if len(found) < 2 {
		t.Fatalf("found the usage of only %v", found)
	}
	return found
}

// Every program's usage parses into a synopsis and options, and renders as a man page that
// groff formats without a warning (-ww) and that shows every synopsis line and option.
func TestEveryUsageRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Log("groff is not installed (Debian groff-base): the pages are only parsed")
	}
	for name, usage := range usages(t) {
		t.Run(name, func(t *testing.T) {
			h, err := ParseHelp(usage)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Description) == 0 || len(h.Synopsis) < 2 || len(h.Options) < 3 {
				t.Fatalf("parsed too little: %+v", h)
			}
			for _, o := range h.Options {
				if o.Text == "" {
					t.Errorf("option %q without a description", o.Term)
				}
			}
			page, err := Render(Page{Name: name, Section: "1", Version: "statspipe test"}, usage)
			if err != nil {
				t.Fatal(err)
			}
			if groff == "" {
				return
			}
			cmd := exec.Command(groff, "-man", "-Tutf8", "-ww")
			cmd.Stdin = strings.NewReader(page)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Env = append(os.Environ(), "GROFF_NO_SGR=1")
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("groff: %v\n%s\npage:\n%s", err, stderr.String(), page)
			}
			// Overstriking (bold, underline) is removed, and lines are filled: compare words.
			text := strings.Join(strings.Fields(stripOverstrike(string(out))), " ")
			for _, s := range h.Synopsis {
				if !strings.Contains(text, s) {
					t.Errorf("synopsis line %q not in the page:\n%s", s, out)
				}
			}
			for _, o := range h.Options {
				if !strings.Contains(text, o.Term) {
					t.Errorf("option %q not in the page:\n%s", o.Term, out)
				}
			}
			for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"} {
				if !strings.Contains(text, section) {
					t.Errorf("no %s section:\n%s", section, out)
				}
			}
		})
	}
}

// stripOverstrike removes the "c\bc" and "_\bc" sequences of groff's tty output.
func stripOverstrike(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		if r[i] == '\b' || i+1 < len(r) && r[i+1] == '\b' {
			continue
		}
		b.WriteRune(r[i])
	}
	return b.String()
}

func TestParseHelpShapes(t *testing.T) {
	h, err := ParseHelp(`Usage: check_x [-f <file>] pull|process

  -f <file>       only count this
                  and that
  -u <user>       the user

Exit status: 0 OK, 2 CRITICAL.
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Description) != 0 || len(h.Synopsis) != 1 || h.Synopsis[0] != "check_x [-f <file>] pull|process" {
		t.Errorf("synopsis: %+v", h)
	}
	want := []Option{{"-f <file>", "only count this and that"}, {"-u <user>", "the user"}}
	if len(h.Options) != 2 || h.Options[0] != want[0] || h.Options[1] != want[1] {
		t.Errorf("options %+v, want %+v", h.Options, want)
	}
	if h.ExitStatus != "0 OK, 2 CRITICAL." {
		t.Errorf("exit status %q", h.ExitStatus)
	}
	if _, err := Render(Page{Name: "check_x", Section: "8"}, "Usage: check_x\n"); err == nil {
		t.Error("a help without a description rendered without -summary")
	}
	page, err := Render(Page{Name: "check_x", Section: "8", Summary: ".dot first"}, "Usage: check_x\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "check_x \\- .dot first") {
		t.Errorf("summary:\n%s", page)
	}
	if _, err := ParseHelp("no usage here\n"); err == nil {
		t.Error("a text without Usage: parsed")
	}
	// A description line that starts with a dot is not taken as a request.
	page, err = Render(Page{Name: "x", Section: "1"}, "Does it.\n\n.hidden things\n\nUsage:\n    x\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "\n\\&.hidden things\n") {
		t.Errorf("leading dot not guarded:\n%s", page)
	}
}
