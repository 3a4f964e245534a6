package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Loaded is the merged, not yet validated configuration: the built-in defaults, the main file
// and the -d files. Print writes it (-P); Config validates it for one program.
// A Loaded is not safe for concurrent use.
type Loaded struct {
	// Warnings are problems that do not stop the program (unknown options and sections,
	// options without effect, validation-time warnings added by Config). Log them once
	// logging is set up.
	Warnings []string
	// Notices are informational, e.g. that the default file is missing.
	Notices []string
	// Files are the configuration files read, in the order they were applied.
	Files []string

	mainFile string
	// aside: --check met a problem in this Kafka section ([kafka], [ship], [central]) and sets
	// the rest of the section aside (its options depend on each other), counting the section
	// as present (see neutralize).
	aside map[string]bool
	// unknown are the unknown options and sections of loadWarnings as errors, for Check, and
	// unknownText the texts of those warnings.
	unknown      []*Error
	unknownText  map[string]bool
	defaults     *section
	sections     map[string]*section
	order        []string // section names in first-appearance order, DEFAULT excluded
	loadWarnings []string
	// budget bounds the work of reading values; Print and Config reset it (see charge).
	budget readBudget
	// fileBytes counts the bytes of every file read, against maxConfigBytes.
	fileBytes int64

	// Seams for tests and fuzzing: the src-dir write check and the system host name.
	checkWritable func(dir string) error
	hostname      func() (string, error)
}

func newLoaded() *Loaded {
	l := &Loaded{
		defaults:      newSection(defaultSection, "", 0),
		sections:      map[string]*section{},
		checkWritable: readWriteCheck,
		hostname:      os.Hostname,
	}
	// Like haproxystats' read_dict(DEFAULT_OPTIONS): only sections with defaults exist up
	// front, so [local-store] exists only when a file has it.
	for _, s := range schema {
		if !hasDefaults(s) || presenceSections[s.name] != "" {
			continue
		}
		sec := l.section(s.name, "", 0)
		for _, o := range s.options {
			if o.hasDefault {
				sec.set(o.name, &value{raw: o.def})
			}
		}
	}
	return l
}

// fillPresenceDefaults gives each presence section that a file has (such as [kafka]) the
// built-in defaults of the options the files leave unset, as newLoaded does for the others.
func (l *Loaded) fillPresenceDefaults() {
	for _, s := range schema {
		sec, ok := l.sections[s.name]
		if !ok || presenceSections[s.name] == "" {
			continue
		}
		for _, o := range s.options {
			if _, set := sec.values[o.name]; o.hasDefault && !set {
				sec.set(o.name, &value{raw: o.def})
			}
		}
	}
}

// section returns the named section, creating it (as defined at file:line) when missing.
func (l *Loaded) section(name, file string, line int) *section {
	if name == defaultSection {
		return l.defaults
	}
	s, ok := l.sections[name]
	if !ok {
		s = newSection(name, file, line)
		l.sections[name] = s
		l.order = append(l.order, name)
	}
	return s
}

// sectionNamed returns an existing section or DEFAULT, nil when there is none.
func (l *Loaded) sectionNamed(name string) *section {
	if name == defaultSection {
		return l.defaults
	}
	return l.sections[name]
}

// hasSection is configparser's has_section: DEFAULT is not a section.
func (l *Loaded) hasSection(name string) bool {
	_, ok := l.sections[name]
	return ok
}

// lookup finds option in section or, failing that, in DEFAULT (configparser's chain).
// The section must exist; DEFAULT itself is allowed.
func (l *Loaded) lookup(sect, option string) (*value, bool) {
	if sect != defaultSection {
		s, ok := l.sections[sect]
		if !ok {
			return nil, false
		}
		if v, ok := s.values[option]; ok {
			return v, true
		}
	}
	v, ok := l.defaults.values[option]
	return v, ok
}

// Load reads the built-in defaults, then file, then (if dir != "") every dir/*.conf in sorted
// order; later files override earlier ones. explicitFile=false means file is the default path
// (DefaultFile): if it does not exist the defaults apply and a Notice says so. An explicit
// file that does not exist is an error, as is an unreadable file, a dir that is not a
// directory, or a syntax error. Load does not validate (see Config), so -P works on an
// invalid configuration. Warnings are returned for the caller to log once logging is set up.
// file "" reads no main file at all.
func Load(file string, explicitFile bool, dir string) (*Loaded, error) {
	l := newLoaded()
	if file != "" {
		data, err := l.readFile(file)
		switch {
		case err == nil:
			if err := l.parse(file, data); err != nil {
				return nil, err
			}
			l.mainFile = file
			l.Files = append(l.Files, file)
		case !explicitFile && errors.Is(err, fs.ErrNotExist):
			l.Notices = append(l.Notices, fmt.Sprintf(
				"configuration file %s does not exist; starting from the built-in defaults", file))
		default:
			return nil, &Error{File: file, Reason: "cannot read the configuration file: " + osReason(err)}
		}
	}
	if dir != "" {
		if err := l.loadDir(dir); err != nil {
			return nil, err
		}
	}
	l.fillPresenceDefaults()
	warnings, unknown := l.unknownWarnings()
	l.loadWarnings = append(l.loadWarnings, warnings...)
	l.unknown = unknown
	l.unknownText = map[string]bool{}
	for _, w := range warnings {
		l.unknownText[w] = strings.HasPrefix(w, "unknown ")
	}
	l.Warnings = append([]string(nil), l.loadWarnings...)
	return l, nil
}

// loadDir applies dir/*.conf in name order. Like Python's glob, names starting with '.' are
// skipped; a directory named *.conf is skipped with a warning.
func (l *Loaded) loadDir(dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return &Error{Reason: fmt.Sprintf("%s directory with .conf files doesn't exist", pyRepr(dir))}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &Error{Reason: fmt.Sprintf("cannot list %s: %s", pyRepr(dir), osReason(err))}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".conf") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // ReadDir sorts already; the order is the contract, so be explicit
	for _, name := range names {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			l.loadWarnings = append(l.loadWarnings, fmt.Sprintf("%s is a directory, not a configuration file; ignored", path))
			continue
		}
		data, err := l.readFile(path)
		if err != nil {
			return &Error{File: path, Reason: "cannot read the configuration file: " + osReason(err)}
		}
		if err := l.parse(path, data); err != nil {
			return err
		}
		l.Files = append(l.Files, path)
	}
	return nil
}

// maxConfigBytes bounds the configuration files read together (-f and every -d file): they
// are held in memory, a real configuration is a few kilobytes, and -f /dev/zero must not
// exhaust memory.
const maxConfigBytes = 16 << 20

var errConfigTooLarge = fmt.Errorf("the configuration files add up to more than %d MiB", maxConfigBytes>>20)

// readFile reads path, counting its size against maxConfigBytes.
func (l *Loaded) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes-l.fileBytes+1))
	if err != nil {
		return nil, err
	}
	l.fileBytes += int64(len(data))
	if l.fileBytes > maxConfigBytes {
		return nil, errConfigTooLarge
	}
	return data, nil
}

// osReason drops the path that *PathError repeats, since Error names the file already.
func osReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// unknownWarnings flags options and sections statspipe does not read, as warnings (logged at
// start) and as the errors Check reports. Options and sections that some ${...} reference uses
// are variables, not typos, and are not flagged.
func (l *Loaded) unknownWarnings() ([]string, []*Error) {
	var warnings []string
	var unknown []*Error
	refs := l.references()
	for _, name := range append([]string{defaultSection}, l.order...) {
		s := l.sectionNamed(name)
		if strings.HasPrefix(name, SourcePrefix) {
			w, u := l.sourceOptionWarnings(name)
			warnings, unknown = append(warnings, w...), append(unknown, u...)
			continue
		}
		if schemaOf(name) == nil {
			if isGroupSection(name) || refs.sections[name] {
				continue
			}
			hint := suggestion(name, knownSectionNames())
			warnings = append(warnings, fmt.Sprintf("unknown section %s in %s line %d%s; ignored",
				quoteValue(name), s.file, s.line, hint))
			unknown = append(unknown, &Error{File: s.file, Line: s.line, Section: name,
				Reason: "unknown section, ignored" + hint})
			continue
		}
		for _, key := range s.keys {
			v := s.values[key]
			if v.file == "" {
				continue
			}
			where := fmt.Sprintf("in section %s of %s line %d", quoteValue(name), v.file, v.line)
			if why, ok := noEffect[name][key]; ok && !sameAsInherited(l, name, key) {
				warnings = append(warnings, fmt.Sprintf("option %s %s has no effect (%s); ignored",
					pyRepr(key), where, why))
				continue
			}
			if sameAsInherited(l, name, key) {
				continue // a copy of DEFAULT's value (as -P prints it): DEFAULT's warning covers it
			}
			if isKnownOption(name, key) || refs.options[[2]string{name, key}] || refs.options[[2]string{anySection, key}] {
				continue
			}
			hint := suggestion(key, knownOptions(name))
			warnings = append(warnings, fmt.Sprintf("unknown option %s %s%s; ignored",
				quoteValue(key), where, hint))
			unknown = append(unknown, unknownOption(name, key, v, hint))
		}
	}
	return warnings, unknown
}

// unknownOption is the error Check reports for an option nothing reads.
func unknownOption(sect, key string, v *value, hint string) *Error {
	return &Error{File: v.file, Line: v.line, Section: sect, Option: key, Value: v.raw,
		Reason: "unknown option, ignored" + hint}
}

// sameAsInherited reports an option that repeats its DEFAULT value, as -P output does for
// every inherited option; setting it changes nothing, so it deserves no warning.
func sameAsInherited(l *Loaded, sect, key string) bool {
	d, ok := l.defaults.values[key]
	return ok && sect != defaultSection && l.sections[sect].values[key].raw == d.raw
}

type referenceSet struct {
	sections map[string]bool
	options  map[[2]string]bool // (section or anySection, option)
}

// anySection marks options referenced as ${option} from DEFAULT: such a reference resolves
// in the context of whichever section inherits the value.
const anySection = "\x00any"

// references collects the targets of every well-formed ${...} in every raw value.
func (l *Loaded) references() referenceSet {
	refs := referenceSet{sections: map[string]bool{}, options: map[[2]string]bool{}}
	for _, name := range append([]string{defaultSection}, l.order...) {
		s := l.sectionNamed(name)
		for _, key := range s.keys {
			rest := s.values[key].raw
			for {
				i := strings.IndexByte(rest, '$')
				if i < 0 || i+1 >= len(rest) {
					break
				}
				rest = rest[i+1:]
				if rest[0] != '{' {
					rest = rest[1:] // "$$" or a lone '$'
					continue
				}
				end := strings.IndexByte(rest, '}')
				if end < 0 {
					break
				}
				ref := rest[1:end]
				rest = rest[end+1:]
				if sect, opt, found := strings.Cut(ref, ":"); found {
					refs.sections[sect] = true
					refs.options[[2]string{sect, strings.ToLower(opt)}] = true
					refs.options[[2]string{defaultSection, strings.ToLower(opt)}] = true
					continue
				}
				opt := strings.ToLower(ref)
				if name == defaultSection {
					refs.options[[2]string{anySection, opt}] = true
				} else {
					refs.options[[2]string{name, opt}] = true
					refs.options[[2]string{defaultSection, opt}] = true
				}
			}
		}
	}
	return refs
}

// suggestion returns " (did you mean 'x'?)" for the closest candidate, or "".
func suggestion(name string, candidates []string) string {
	// The distance costs len(name) × len(candidate); no known name is longer than 31 bytes, so
	// a longer name cannot be a near miss, and a file of megabyte-long names must stay cheap.
	if len(name) > maxSuggestedName {
		return ""
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > max(2, len(best)/3) {
		return ""
	}
	return " (did you mean " + pyRepr(best) + "?)"
}

const maxSuggestedName = 64

// editDistance is the Levenshtein distance over runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
