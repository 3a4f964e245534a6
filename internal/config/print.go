package config

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// printedSection says which sections -p / -P show: pull shows DEFAULT and pull, process
// every other section (haproxystats.md §1.4).
func printedSection(prog Program, name string) bool {
	if strings.HasPrefix(name, SourcePrefix) {
		return true // both programs read the sources
	}
	if prog == PullProgram {
		return name == defaultSection || name == "pull"
	}
	return name != "pull"
}

// PrintDefaults writes the -p output for prog: the built-in defaults, independent of any
// file, sorted, each section followed by a blank line. Options without a default (such as
// [graphite] hostname, which defaults to the system host name) are not printed, so feeding
// the output back as a configuration file gives the same configuration.
func PrintDefaults(w io.Writer, prog Program) {
	var b bytes.Buffer
	names := make([]string, 0, len(schema))
	for _, s := range schema {
		if printedSection(prog, s.name) && hasDefaults(s) {
			names = append(names, s.name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		s := schemaOf(name)
		opts := append([]option(nil), s.options...)
		sort.Slice(opts, func(i, j int) bool { return opts[i].name < opts[j].name })
		comment := ""
		if presenceSections[name] != "" {
			// Printed as comments: the section's presence turns its dispatcher on.
			comment = "# "
			fmt.Fprintf(&b, "# [%s] is off unless a file has the section; its defaults then:\n", name)
		}
		fmt.Fprintf(&b, "%s[%s]\n", comment, name)
		for _, o := range opts {
			switch {
			case o.hasDefault:
				fmt.Fprintf(&b, "%s%s = %s\n", comment, o.name, o.def)
			case comment != "":
				fmt.Fprintf(&b, "%s%s (no default)\n", comment, o.name)
			}
		}
		b.WriteString("\n")
	}
	var kinds strings.Builder
	printSourceDefaults(&kinds)
	b.WriteString(kinds.String())
	_, _ = w.Write(b.Bytes()) // the signature has no error: a failed write to stdout is moot
}

func hasDefaults(s sectionSchema) bool {
	for _, o := range s.options {
		if o.hasDefault {
			return true
		}
	}
	return false
}

// Print writes the -P output for prog: the loaded configuration, interpolated, sections and
// options sorted, every section listing the options it inherits from DEFAULT. Unlike
// haproxystats, a literal '$' is written as "$$" and continuation lines are indented, so the
// output is valid INI that Load reads back to the same configuration. For the process
// program [graphite] shows the effective hostname when the file leaves it unset.
// Nothing is written when an error is returned.
func (l *Loaded) Print(w io.Writer, prog Program) error {
	l.budget = readBudget{}
	var b bytes.Buffer
	for _, name := range l.sectionNames() {
		if !printedSection(prog, name) {
			continue
		}
		s := l.sectionNamed(name)
		values := map[string]string{}
		keys := append([]string(nil), s.keys...)
		if strings.HasPrefix(name, SourcePrefix) {
			keys = l.sourceKeys(name, keys) // no DEFAULT: the kind's defaults
		} else if name != defaultSection {
			for _, k := range l.defaults.keys {
				if _, own := s.values[k]; !own {
					keys = append(keys, k)
				}
			}
		}
		for _, k := range keys {
			if def, isDefault := l.sourceDefault(name, k); isDefault {
				values[k] = def
				continue
			}
			v, raw, _, err := l.get(name, k)
			if err != nil {
				return interpolationError(name, k, raw, err)
			}
			values[k] = v
		}
		if prog == ProcessProgram && name == "graphite" && values["hostname"] == "" {
			if _, set := values["hostname"]; !set {
				keys = append(keys, "hostname")
			}
			values["hostname"], _ = l.hostname() // on failure: empty, which reads back as unset
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "[%s]\n", name)
		for _, k := range keys {
			line, err := optionLine(name, k, values[k])
			if err != nil {
				return err
			}
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// sectionNames lists DEFAULT and every section, sorted by name (DEFAULT sorts before any
// lower-case name, as in haproxystats' output).
func (l *Loaded) sectionNames() []string {
	names := append([]string{defaultSection}, l.order...)
	sort.Strings(names)
	return names
}

// optionLine renders `key = value` with '$' escaped and continuation lines indented, and
// refuses values that no INI line can hold (configparser strips whitespace around each line,
// and drops continuation lines that look like comments).
func optionLine(sect, key, v string) (string, error) {
	lines := strings.Split(strings.ReplaceAll(v, "$", "$$"), "\n")
	unrepresentable := func(why string) error {
		return &Error{Section: sect, Option: key, Value: v,
			Reason: "cannot print this value as INI that reads back the same: " + why}
	}
	for i, line := range lines {
		if line != pyStrip(line) {
			return "", unrepresentable("a line of it starts or ends with whitespace")
		}
		if i > 0 && (strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			return "", unrepresentable("a continuation line starts with a comment character")
		}
	}
	if len(lines) > 1 && lines[len(lines)-1] == "" {
		return "", unrepresentable("it ends with an empty line")
	}
	first := key + " = " + lines[0]
	if _, header := sectionHeader(pyStrip(first)); header {
		return "", unrepresentable("the line would read back as a [section] header")
	}
	var b strings.Builder
	b.WriteString(first)
	for _, line := range lines[1:] {
		b.WriteString("\n")
		if line != "" {
			b.WriteString("\t" + line)
		}
	}
	b.WriteString("\n")
	return b.String(), nil
}

// interpolationError describes a failed ${...} expansion of option in sect.
func interpolationError(sect, option string, v *value, err error) *Error {
	e := &Error{Section: sect, Option: option, Reason: err.Error()}
	if v != nil {
		e.File, e.Line, e.Value, e.Raw, e.SetIn = v.file, v.line, v.raw, v.raw, v.section
	}
	return e
}
