package config

import (
	"sort"
	"strings"
)

// Check validates the loaded configuration for prog like Config, without side effects, and
// returns every problem it finds rather than the first (--check and -P):
//
//   - each problem Config would stop at, in the usual one-line *Error form;
//   - every unknown option and section (Load's warnings, here problems: a typo means a setting
//     that is silently not applied).
//
// Config stops at its first failure, so Check runs it on a copy of the configuration, and after
// each failure sets the offending option to its built-in default (or removes it, or the
// offending [source.*] section) and runs it again, until it passes, the same problem comes back
// or maxCheckProblems are found. src-dir is checked with access(2) instead of creating a file.
//
// cfg is the configuration of the last run (with the offending options replaced): callers that
// check more (directories, files) must skip the options Bad reports. Warnings (options without
// effect, a pull-timeout below 1 s) are in Problems.Warnings, and in l.Warnings as after Config.
func (l *Loaded) Check(prog Program) (*Config, *Problems) {
	c := l.clone()
	c.checkWritable = accessCheck
	p := &Problems{l: l, bad: map[[2]string]bool{}}
	var cfg *Config
	seen := map[string]bool{}
	for len(p.List) < maxCheckProblems {
		var err error
		cfg, err = c.Config(prog)
		if err == nil {
			break
		}
		e := sourceError(err, "")
		key := e.Error()
		if seen[key] {
			p.Incomplete = true
			break
		}
		seen[key] = true
		p.List = append(p.List, e)
		p.bad[[2]string{e.Section, e.Option}] = true
		if !c.neutralize(e) {
			p.Incomplete = true
			break
		}
	}
	if len(p.List) >= maxCheckProblems {
		p.Incomplete = true
	}
	l.Warnings = c.Warnings
	for _, w := range c.Warnings {
		if !l.unknownText[w] { // an unknown option or section is a problem here, not a warning
			p.Warnings = append(p.Warnings, w)
		}
	}
	for _, u := range l.unknown {
		p.List = append(p.List, u)
	}
	p.sort()
	return cfg, p
}

// maxCheckProblems bounds the runs of Config one Check makes.
const maxCheckProblems = 32

// Problems are what Check found.
type Problems struct {
	// List is every problem, in file order (the file and line of the offending value), the
	// ones without a file last.
	List []*Error
	// Incomplete is true when Check stopped before the configuration passed: a problem it
	// could not set aside may hide others.
	Incomplete bool
	// Warnings are l.Warnings without the unknown options and sections, which are in List.
	Warnings []string

	l   *Loaded
	bad map[[2]string]bool
}

// Bad reports whether option of section had a problem (and was replaced in the configuration
// Check returned), or, for option "", whether the section had one.
func (p *Problems) Bad(section, option string) bool {
	if p.bad[[2]string{section, option}] {
		return true
	}
	if option == "" {
		for k := range p.bad {
			if k[0] == section {
				return true
			}
		}
	}
	return false
}

// Add records a problem found outside the configuration package (a directory, a file), for
// option of section with the file and line of its value; value is the interpolated value ("":
// the option's whole value).
func (p *Problems) Add(section, option, value, reason string) {
	e := &Error{Section: section, Option: option, Value: value, Reason: reason}
	if v, ok := p.l.lookup(section, option); ok && option != "" {
		e.File, e.Line, e.Raw, e.SetIn = v.file, v.line, v.raw, v.section
		if value == "" {
			e.Value, _, _, _ = p.l.get(section, option)
		}
	} else if s := p.l.sections[section]; s != nil {
		e.File, e.Line = s.file, s.line
	}
	p.List = append(p.List, e)
	p.bad[[2]string{section, option}] = true
}

// Sort puts the problems in file order again, after Add.
func (p *Problems) Sort() { p.sort() }

func (p *Problems) sort() {
	fileIndex := func(f string) int {
		for i, name := range p.l.Files {
			if name == f {
				return i
			}
		}
		return len(p.l.Files)
	}
	sort.SliceStable(p.List, func(i, j int) bool {
		a, b := p.List[i], p.List[j]
		if fa, fb := fileIndex(a.File), fileIndex(b.File); fa != fb {
			return fa < fb
		}
		return a.Line < b.Line
	})
}

// clone copies the sections, so that neutralize can change them without touching l.
func (l *Loaded) clone() *Loaded {
	c := *l
	c.defaults = l.defaults.clone()
	c.sections = make(map[string]*section, len(l.sections))
	for name, s := range l.sections {
		c.sections[name] = s.clone()
	}
	c.order = append([]string(nil), l.order...)
	c.Warnings = append([]string(nil), l.Warnings...)
	return &c
}

func (s *section) clone() *section {
	c := *s
	c.keys = append([]string(nil), s.keys...)
	c.values = make(map[string]*value, len(s.values))
	for k, v := range s.values {
		c.values[k] = v
	}
	return &c
}

// neutralize sets aside the cause of e so that the next Config run can go on: the option
// gets its built-in default, or is removed when it has none; a failing [source.*] section is
// removed. It returns false when it cannot.
func (l *Loaded) neutralize(e *Error) bool {
	switch {
	case strings.HasPrefix(e.Section, SourcePrefix):
		if _, ok := l.sections[e.Section]; !ok {
			return false
		}
		delete(l.sections, e.Section)
		for i, n := range l.order {
			if n == e.Section {
				l.order = append(l.order[:i:i], l.order[i+1:]...)
				break
			}
		}
		return true
	case e.Section == "" || e.Option == "":
		return false
	case e.Section == "process" && e.Option == "src-dir":
		l.checkWritable = func(string) error { return nil }
	case e.Section == "kafka" || e.Section == "ship" || e.Section == "central":
		// Their options depend on each other (TLS files, SASL): one problem is reported, the
		// rest of the section is set aside, the section still counted as present.
		if l.aside[e.Section] {
			return false
		}
		if l.aside == nil {
			l.aside = map[string]bool{}
		}
		l.aside[e.Section] = true
		return true
	case e.Section == "local-store" && e.Option == "dir":
		// No default, and removing the section would make a disabled Graphite a problem too.
		l.section("local-store", "", 0).set("dir", &value{raw: "/"})
		return true
	}
	if e.Section == "graphite" && strings.HasPrefix(e.Option, "group-namespace") {
		// The group options need each other and a *-groups section: with one, replace them by
		// valid values so that the patterns are checked; without, set the group paths aside.
		s := l.section("graphite", "", 0)
		groups := false
		for _, g := range groupSections {
			groups = groups || l.hasSection(g)
		}
		for _, o := range []string{"group-namespace", "group-namespace-double-writes"} {
			s.remove(o)
			l.defaults.remove(o)
		}
		if groups {
			s.set("group-namespace", &value{raw: "groups"})
			s.set("group-namespace-double-writes", &value{raw: "false"})
		}
		return true
	}
	s := l.section(e.Section, "", 0)
	if def, ok := schemaDefault(e.Section, e.Option); ok {
		s.set(e.Option, &value{raw: def})
		return true
	}
	if _, own := s.values[e.Option]; own {
		s.remove(e.Option)
		return true
	}
	if _, inherited := l.defaults.values[e.Option]; inherited {
		l.defaults.remove(e.Option)
		return true
	}
	return false
}

// schemaDefault is the built-in default of option as sect reads it (its own, else DEFAULT's).
func schemaDefault(sect, option string) (string, bool) {
	for _, name := range []string{sect, defaultSection} {
		if s := schemaOf(name); s != nil {
			for _, o := range s.options {
				if o.name == option {
					return o.def, o.hasDefault
				}
			}
		}
	}
	return "", false
}

func (s *section) remove(key string) {
	if _, ok := s.values[key]; !ok {
		return
	}
	delete(s.values, key)
	for i, k := range s.keys {
		if k == key {
			s.keys = append(s.keys[:i:i], s.keys[i+1:]...)
			return
		}
	}
}
