package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file reads INI text exactly like Python's configparser.ConfigParser (strict mode,
// default options), which haproxystats used. gopkg.in/ini.v1's own parser cannot be used for
// this dialect: with AllowPythonMultilineValues it swallows indented `key = value` lines into
// the previous value, without it a continuation line containing ':' becomes a new key
// (`tcp://h:1` → key "tcp"), it silently overwrites duplicate options, and it strips quotes
// and backticks from values. Each of those changes a valid haproxystats configuration.

// value is one option as written. raw is the joined, uninterpolated text.
type value struct {
	raw     string
	file    string // "" for a built-in default
	line    int
	section string // the section it is stored in (DEFAULT for inherited values)
	lines   []string
}

// section is one INI section: options in first-appearance order, like Python's dict.
type section struct {
	name   string
	keys   []string
	values map[string]*value
	file   string // where it first appeared; "" for built-in sections
	line   int
}

func newSection(name, file string, line int) *section {
	return &section{name: name, values: map[string]*value{}, file: file, line: line}
}

// set stores v under key; a key set again keeps its first position (as a Python dict does),
// which keeps the file order of *-groups items across -d files.
func (s *section) set(key string, v *value) {
	if _, ok := s.values[key]; !ok {
		s.keys = append(s.keys, key)
	}
	v.section = s.name
	s.values[key] = v
}

// sectionHeader is configparser's SECTCRE, `\[(?P<header>.+)\]`, matched at the start of the
// stripped line: the name runs to the last ']' and anything after it is ignored.
func sectionHeader(stripped string) (string, bool) {
	if !strings.HasPrefix(stripped, "[") {
		return "", false
	}
	end := strings.LastIndexByte(stripped, ']')
	if end < 2 {
		return "", false
	}
	return stripped[1:end], true
}

// splitOption is configparser's OPTCRE: the option name ends at the first '=' or ':'.
func splitOption(stripped string) (key, val string, ok bool) {
	i := strings.IndexAny(stripped, "=:")
	if i < 0 {
		return "", "", false
	}
	return pyRstrip(stripped[:i]), pyStrip(stripped[i+1:]), true
}

// indentOf counts leading whitespace characters (not bytes), like configparser's
// NONSPACECRE.search(line).start().
func indentOf(line string) int {
	n := 0
	for _, r := range line {
		if !isPySpace(r) {
			return n
		}
		n++
	}
	return n
}

// splitLines splits like Python's universal-newline text reading: "\r\n", "\r" and "\n" end
// a line. A trailing empty element after the last newline is harmless (an empty line).
func splitLines(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	return strings.Split(text, "\n")
}

// parse merges one file's text into l. Duplicate sections and options within the text are
// errors; values set in earlier files (or built in) are overridden.
func (l *Loaded) parse(file string, data []byte) error {
	text := strings.TrimPrefix(string(data), "\ufeff")
	lines := splitLines(text)
	for i, line := range lines {
		if !utf8.ValidString(line) {
			return &Error{File: file, Line: i + 1, Reason: "the file is not valid UTF-8"}
		}
	}

	var (
		cur         *section // nil until the first section header
		option      *value   // the option that indented lines continue
		indentLevel int
		created     []*value
		sections    = map[string]int{}    // section name → line, for duplicates
		options     = map[[2]string]int{} // (section, option) → line
	)
	for i, line := range lines {
		lineno := i + 1
		stripped := pyStrip(line)
		comment := strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";")
		if stripped == "" || comment {
			// configparser keeps blank lines inside a value (and strips trailing ones at the
			// end); comment lines are dropped without ending the value.
			if !comment && option != nil {
				option.lines = append(option.lines, "")
			}
			continue
		}
		indent := indentOf(line)
		if option != nil && indent > indentLevel {
			option.lines = append(option.lines, stripped)
			continue
		}
		indentLevel = indent
		if name, ok := sectionHeader(stripped); ok {
			option = nil
			if name == defaultSection {
				// configparser never reports [DEFAULT] as a duplicate section.
				cur = l.defaults
				continue
			}
			if first, dup := sections[name]; dup {
				return &Error{File: file, Line: lineno, Section: name,
					Reason: fmt.Sprintf("section %s already exists (first at line %d); "+
						"within one file a section may appear only once", pyRepr(name), first)}
			}
			sections[name] = lineno
			cur = l.section(name, file, lineno)
			continue
		}
		if cur == nil {
			return &Error{File: file, Line: lineno,
				Reason: "File contains no section headers: the first setting must follow a " +
					"[section] line, got " + pyRepr(stripped)}
		}
		key, val, ok := splitOption(stripped)
		if !ok || key == "" {
			return &Error{File: file, Line: lineno, Section: cur.name,
				Reason: "parsing error: expected '[section]', 'option = value' or 'option: value', got " +
					pyRepr(stripped)}
		}
		key = strings.ToLower(key)
		id := [2]string{cur.name, key}
		if first, dup := options[id]; dup {
			return &Error{File: file, Line: lineno, Section: cur.name, Option: key, Value: val,
				Reason: fmt.Sprintf("option %s in section %s already exists (first at line %d); "+
					"within one file an option may appear only once", pyRepr(key), pyRepr(cur.name), first)}
		}
		options[id] = lineno
		option = &value{file: file, line: lineno, lines: []string{val}}
		cur.set(key, option)
		created = append(created, option)
	}
	for _, v := range created {
		v.raw = pyRstrip(strings.Join(v.lines, "\n"))
		v.lines = nil
	}
	return nil
}
