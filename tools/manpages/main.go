// Command manpages writes a troff man page for each program from its own help text: it runs
// `<program> --help` (`-h` for programs without long options) and `<program> -v`, and turns
// the docopt usage into NAME, SYNOPSIS, DESCRIPTION, OPTIONS and EXIT STATUS sections.
//
//	manpages -o <dir> [-date <YYYY-MM-DD>] [-summary <name>=<text>]... <program>[:<section>]...
//
// A program's section defaults to 1; the page is <dir>/<name>.<section>. The date defaults to
// SOURCE_DATE_EPOCH's, else none, so that the pages of one version are reproducible.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", ".", "directory the pages are written to")
	date := flag.String("date", "", "date in the page footer (default: from SOURCE_DATE_EPOCH, else none)")
	summaries := map[string]string{}
	flag.Func("summary", "`name=text`: the NAME line of a program whose help has no description before its usage", func(v string) error {
		name, text, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("%q is not name=text", v)
		}
		summaries[name] = text
		return nil
	})
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: manpages -o <dir> [-date <YYYY-MM-DD>] [-summary <name>=<text>]... <program>[:<section>]...")
		os.Exit(2)
	}
	if *date == "" {
		if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			*date = time.Unix(s, 0).UTC().Format("2006-01-02")
		}
	}
	type program struct{ path, name, section string }
	var programs []program
	var all []string
	for _, arg := range flag.Args() {
		p := program{path: arg, section: "1"}
		if i := strings.LastIndexByte(arg, ':'); i > 0 {
			p.path, p.section = arg[:i], arg[i+1:]
		}
		p.name = filepath.Base(p.path)
		programs = append(programs, p)
		all = append(all, p.name+"("+p.section+")")
	}
	for _, p := range programs {
		path, name, section := p.path, p.name, p.section
		help, err := run(path, "--help")
		if err != nil {
			help, err = run(path, "-h")
		}
		if err != nil {
			fail(err)
		}
		version, _ := run(path, "-v") // a program without -v has no version in the footer
		if !strings.HasPrefix(version, "statspipe ") {
			version = ""
		}
		page, err := Render(Page{Name: name, Section: section, Date: *date, Version: strings.TrimSpace(version), SeeAlso: all, Summary: summaries[name]}, help)
		if err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		dst := filepath.Join(*out, name+"."+section)
		if err := os.WriteFile(dst, []byte(page), 0o644); err != nil {
			fail(err)
		}
	}
}

func run(path string, arg string) (string, error) {
	cmd := exec.Command(path, arg)
	cmd.Stdin = nil
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", path, arg, err)
	}
	return string(out), nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "manpages:", err)
	os.Exit(1)
}
