package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Named sources: `[source.<name>]` sections, each with `type = <kind>`. A kind registers its
// options (RegisterSourceKind) from its package's init; this file validates the sections
// against them with the same one-line errors as every other option. The section prefix uses a
// dot, not a colon, so that `${section:option}` interpolation keeps working.
//
// Unlike haproxystats' sections, a source section does not inherit [DEFAULT]: its options are
// its own values, then its kind's defaults. (DEFAULT's timeout = 1 and retries = 2 are
// haproxystats' HAProxy settings; a source of another kind has its own, and a stray value in
// DEFAULT must not change every source.) ${...} references to other sections work as usual.

// SourcePrefix starts the name of a source section.
const SourcePrefix = "source."

// LegacySourceName is the source made of the [pull] HAProxy options (socket-dir, servers),
// whose files stay at the top of a snapshot as haproxystats wrote them.
const LegacySourceName = "haproxy"

// SelfMetricsSourceName is the source (and kind) of stats-pull's own metrics, written into
// every snapshot when [pull] self-metrics is true; no [source.*] section may take it.
const SelfMetricsSourceName = "statspipe"

// SourceOption is one option of a kind's source sections.
type SourceOption struct {
	Name       string
	Default    string
	HasDefault bool
	// Family makes the option a family of options: Name itself and every `<Name>.<suffix>`
	// (aggregate and aggregate.<glob>, header.<Header-Name>).
	Family bool
	// Process marks what stats-process needs to turn the source's snapshot files into lines
	// (aggregation policies, path options). Only these are recorded in a snapshot, so that a
	// snapshot processed elsewhere is processed the same way, and no secret ever is.
	Process bool
	// Doc is one line for -p.
	Doc string
}

// SourceKind describes a kind's source sections.
type SourceKind struct {
	Name    string
	Options []SourceOption
	// CheckPull and CheckProcess validate one source for stats-pull and stats-process: read
	// options with the Source accessors, return their error (or Source.Fail's), and keep the
	// typed result in Source.Settings. Either may be nil.
	CheckPull    func(*Source) error
	CheckProcess func(*Source) error
}

// commonSourceOptions are options of every kind.
var commonSourceOptions = []SourceOption{
	{Name: "type", Doc: "the source kind"},
	{Name: "allow-partial", Default: "false", HasDefault: true,
		Doc: "keep the instances that answered when some did not (default: leave the source out of the round)"},
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]*SourceKind{}
)

// RegisterSourceKind makes a kind's sections valid. It panics on a duplicate kind or option.
func RegisterSourceKind(k SourceKind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Name]; dup || k.Name == "" {
		panic("config: source kind registered twice or unnamed: " + k.Name)
	}
	seen := map[string]bool{}
	for _, o := range append(append([]SourceOption(nil), commonSourceOptions...), k.Options...) {
		if seen[o.Name] {
			panic("config: source kind " + k.Name + " has option " + o.Name + " twice")
		}
		seen[o.Name] = true
	}
	kinds[k.Name] = &k
}

// SourceKinds lists the registered kinds, sorted.
func SourceKinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sourceKind(name string) *SourceKind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return kinds[name]
}

// options lists the kind's options, the common ones first.
func (k *SourceKind) options() []SourceOption {
	return append(append([]SourceOption(nil), commonSourceOptions...), k.Options...)
}

// option finds the option that key is (or belongs to, for a family).
func (k *SourceKind) option(key string) (SourceOption, bool) {
	for _, o := range k.options() {
		if key == o.Name || o.Family && strings.HasPrefix(key, o.Name+".") && len(key) > len(o.Name)+1 {
			return o, true
		}
	}
	return SourceOption{}, false
}

func (k *SourceKind) optionNames() []string {
	var names []string
	for _, o := range k.options() {
		names = append(names, o.Name)
	}
	return names
}

// Source is one validated source.
type Source struct {
	// Name is the section name after "source." (LegacySourceName for [pull]'s HAProxy).
	Name string
	Kind string
	// AllowPartial keeps the answering instances when some failed.
	AllowPartial bool
	// Legacy is the HAProxy source of [pull]: its options are Config.Pull.
	Legacy bool
	// Settings is what the kind's check stored: its typed options.
	Settings any

	opts []sourceValue
	file string
	line int
}

type sourceValue struct {
	key, value string
	val        *value // nil for a kind default or a recorded value
	process    bool
}

// SourceValue is one option of a source, as Options returns it.
type SourceValue struct{ Key, Value string }

// Options returns the source's options: those set in its section, in file order, then the
// defaults of the others, in the kind's order.
func (s *Source) Options() []SourceValue {
	out := make([]SourceValue, len(s.opts))
	for i, o := range s.opts {
		out[i] = SourceValue{o.key, o.value}
	}
	return out
}

// ProcessOptions returns the options marked Process, as a snapshot records them.
func (s *Source) ProcessOptions() []SourceValue {
	var out []SourceValue
	for _, o := range s.opts {
		if o.process {
			out = append(out, SourceValue{o.key, o.value})
		}
	}
	return out
}

// Value returns an option's value (set or default).
func (s *Source) Value(key string) (string, bool) {
	for _, o := range s.opts {
		if o.key == key {
			return o.value, true
		}
	}
	return "", false
}

func (s *Source) section() string { return SourcePrefix + s.Name }

// Fail returns the configuration error for key of this source, naming its file and line.
func (s *Source) Fail(key, reason string) error {
	e := &Error{Section: s.section(), Option: key, Reason: reason}
	for _, o := range s.opts {
		if o.key == key {
			e.Value = o.value
			if o.val != nil {
				e.File, e.Line, e.Raw = o.val.file, o.val.line, o.val.raw
			}
			return e
		}
	}
	e.File, e.Line = s.file, s.line
	return e
}

// String returns key's value ("" when unset).
func (s *Source) String(key string) string {
	v, _ := s.Value(key)
	return v
}

// Bool reads a configparser boolean.
func (s *Source) Bool(key string) (bool, error) {
	v, _ := s.Value(key)
	b, ok := parsePyBool(v)
	if !ok {
		return false, s.Fail(key, "Not a boolean: "+v)
	}
	return b, nil
}

// Int reads an integer in [lo, hi].
func (s *Source) Int(key string, lo, hi int64) (int64, error) {
	v, _ := s.Value(key)
	n, wellFormed, err := parsePyInt(v)
	switch {
	case !wellFormed:
		return 0, s.Fail(key, "invalid literal for int() with base 10: "+pyRepr(v))
	case err != nil:
		return 0, s.Fail(key, err.Error())
	case n < lo || n > hi:
		return 0, s.Fail(key, fmt.Sprintf("must be %d to %d", lo, hi))
	}
	return n, nil
}

// Seconds reads float seconds in [lo, 1 day].
func (s *Source) Seconds(key string, lo time.Duration) (time.Duration, error) {
	v, _ := s.Value(key)
	f, ok := parsePyFloat(v)
	if !ok {
		return 0, s.Fail(key, "could not convert string to float: "+pyRepr(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, s.Fail(key, "must be a finite number")
	}
	d := time.Duration(math.Round(min(f, maxDuration.Seconds()+1) * float64(time.Second)))
	if d < lo || d > maxDuration || f < 0 {
		return 0, s.Fail(key, fmt.Sprintf("must be %s to %s seconds (1 day)", secondsText(lo), secondsText(maxDuration)))
	}
	return d, nil
}

// Family returns the options of a family (`aggregate`, then `aggregate.<x>` in file order)
// as set, without defaults, keys included.
func (s *Source) Family(name string) []SourceValue {
	var out []SourceValue
	for _, o := range s.opts {
		if o.key == name || strings.HasPrefix(o.key, name+".") {
			out = append(out, SourceValue{o.key, o.value})
		}
	}
	return out
}

// maxSources bounds the [source.*] sections: each is goroutines and connections per round.
const maxSources = 256

// validSourceName: a source name is a snapshot directory and a Graphite path component.
func validSourceName(name string) string {
	switch {
	case name == "":
		return "the source name after 'source.' is empty"
	case len(name) > 64:
		return "a source name is at most 64 bytes"
	case name == LegacySourceName:
		return "the source name 'haproxy' is taken by the HAProxy source of [pull]"
	case name == SelfMetricsSourceName:
		return "the source name 'statspipe' is taken by stats-pull's own metrics ([pull] self-metrics)"
	case strings.HasPrefix(name, "."), strings.HasPrefix(name, "-"):
		return "a source name must not start with '.' or '-'"
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return "a source name may only have letters, digits, '_' and '-' (it names a snapshot directory and a Graphite path component)"
		}
	}
	if _, isInt := TimestampLike(name); isInt {
		return "a source name must not be an integer"
	}
	if strings.HasSuffix(name, "_info") || strings.HasSuffix(name, "_stat") {
		return "a source name must not end in _info or _stat (the names of HAProxy's snapshot files)"
	}
	return ""
}

// TimestampLike reports names made of digits only.
func TimestampLike(name string) (int64, bool) {
	n, err := strconv.ParseInt(name, 10, 64)
	return n, err == nil && strings.TrimLeft(name, "0123456789") == ""
}

// sourceSectionNames lists the [source.*] sections in file order.
func (l *Loaded) sourceSectionNames() []string {
	var names []string
	for _, n := range l.order {
		if strings.HasPrefix(n, SourcePrefix) {
			names = append(names, n)
		}
	}
	return names
}

// sectionKind returns the kind a source section names with `type`, nil when unset or unknown.
func (l *Loaded) sectionKind(sect string) *SourceKind {
	s := l.sections[sect]
	if s == nil {
		return nil
	}
	v, ok := s.values["type"]
	if !ok {
		return nil
	}
	t, err := l.interpolate(sect, "type", v.raw)
	if err != nil {
		return nil
	}
	return sourceKind(pyStrip(t))
}

// checkSources validates every [source.*] section for prog and fills Config.Sources.
func (v *validator) checkSources(prog Program) {
	names := v.l.sourceSectionNames()
	if v.failed() {
		return
	}
	if len(names) > maxSources {
		s := v.l.sections[names[maxSources]]
		v.err = &Error{File: s.file, Line: s.line, Section: s.name,
			Reason: fmt.Sprintf("%d [source.*] sections, at most %d are allowed", len(names), maxSources)}
		return
	}
	for _, sect := range names {
		src, err := v.l.source(sect)
		if err == nil {
			k := sourceKind(src.Kind)
			check := k.CheckProcess
			if prog == PullProgram {
				check = k.CheckPull
			}
			if check != nil {
				err = check(src)
			}
		}
		if err != nil {
			v.err = sourceError(err, sect)
			return
		}
		v.cfg.Sources = append(v.cfg.Sources, *src)
	}
}

func sourceError(err error, sect string) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Section: sect, Reason: err.Error()}
}

// source reads one [source.*] section: name, kind, options with defaults, allow-partial.
func (l *Loaded) source(sect string) (*Source, error) {
	s := l.sections[sect]
	name := strings.TrimPrefix(sect, SourcePrefix)
	if why := validSourceName(name); why != "" {
		return nil, &Error{File: s.file, Line: s.line, Section: sect, Reason: why}
	}
	tv, ok := s.values["type"]
	if !ok {
		return nil, &Error{File: s.file, Line: s.line, Section: sect, Option: "type",
			Reason: "No option 'type' in section: " + pyRepr(sect) + " (one of " + strings.Join(SourceKinds(), ", ") + ")"}
	}
	typ, _, _, err := l.get(sect, "type")
	if err != nil {
		return nil, interpolationError(sect, "type", tv, err)
	}
	typ = pyStrip(typ)
	k := sourceKind(typ)
	if k == nil {
		reason := "unknown source type " + pyRepr(typ) + suggestion(typ, SourceKinds()) +
			" (one of " + strings.Join(SourceKinds(), ", ") + ")"
		if typ == LegacySourceName {
			reason = "HAProxy is configured in [pull] (socket-dir, servers), not in a [source.*] section"
		}
		return nil, &Error{File: tv.file, Line: tv.line, Section: sect, Option: "type", Value: typ, Reason: reason}
	}
	src := &Source{Name: name, Kind: k.Name, file: s.file, line: s.line}
	set := map[string]bool{}
	for _, key := range s.keys {
		o, known := k.option(key)
		if !known {
			continue // warned at load
		}
		val, raw, _, err := l.get(sect, key)
		if err != nil {
			return nil, interpolationError(sect, key, raw, err)
		}
		src.opts = append(src.opts, sourceValue{key: key, value: val, val: raw, process: o.Process})
		set[key] = true
	}
	for _, o := range k.options() {
		if o.HasDefault && !set[o.Name] {
			src.opts = append(src.opts, sourceValue{key: o.Name, value: o.Default, process: o.Process})
		}
	}
	if src.AllowPartial, err = src.Bool("allow-partial"); err != nil {
		return nil, err
	}
	return src, nil
}

// RecordedSource rebuilds a source from the options a snapshot recorded (see
// SourceOption.Process), for a snapshot whose source the configuration does not name. Options
// the kind does not know (a newer stats-pull) are returned as warnings, not errors.
func RecordedSource(kind, name string, opts []SourceValue) (*Source, []string, error) {
	k := sourceKind(kind)
	if k == nil {
		return nil, nil, fmt.Errorf("unknown source kind %q (known: %s)", kind, strings.Join(SourceKinds(), ", "))
	}
	src := &Source{Name: name, Kind: kind}
	var warnings []string
	set := map[string]bool{}
	for _, kv := range opts {
		o, known := k.option(kv.Key)
		if !known || !o.Process {
			warnings = append(warnings, fmt.Sprintf("recorded option %q is not a %s processing option; ignored", kv.Key, kind))
			continue
		}
		if set[kv.Key] {
			continue
		}
		set[kv.Key] = true
		src.opts = append(src.opts, sourceValue{key: kv.Key, value: kv.Value, process: true})
	}
	for _, o := range k.options() {
		if o.HasDefault && !set[o.Name] {
			src.opts = append(src.opts, sourceValue{key: o.Name, value: o.Default, process: o.Process})
		}
	}
	if k.CheckProcess != nil {
		if err := k.CheckProcess(src); err != nil {
			return nil, warnings, err
		}
	}
	return src, warnings, nil
}

// sourceOptionWarnings flags unknown options of a source section, with the closest name, as
// warnings and as the errors Check reports.
func (l *Loaded) sourceOptionWarnings(sect string) ([]string, []*Error) {
	k := l.sectionKind(sect)
	if k == nil {
		return nil, nil // a missing or unknown type is an error of Config
	}
	var warnings []string
	var unknown []*Error
	s := l.sections[sect]
	for _, key := range s.keys {
		if _, ok := k.option(key); ok {
			continue
		}
		v := s.values[key]
		hint := suggestion(key, k.optionNames())
		warnings = append(warnings, fmt.Sprintf("unknown option %s in section %s of %s line %d%s; ignored",
			quoteValue(key), quoteValue(sect), v.file, v.line, hint))
		unknown = append(unknown, unknownOption(sect, key, v, hint))
	}
	return warnings, unknown
}

// printSourceDefaults writes, for -p, every kind's options as comments: feeding -p back as a
// configuration must not create a source.
func printSourceDefaults(b *strings.Builder) {
	for _, name := range SourceKinds() {
		k := sourceKind(name)
		fmt.Fprintf(b, "# [source.<name>] with type = %s\n", name)
		for _, o := range k.options() {
			switch {
			case o.Name == "type":
				fmt.Fprintf(b, "# type = %s\n", name)
			case o.HasDefault:
				fmt.Fprintf(b, "# %s = %s\n", o.Name, o.Default)
			case o.Family:
				fmt.Fprintf(b, "# %s.<…> (no default)\n", o.Name)
			default:
				fmt.Fprintf(b, "# %s (no default)\n", o.Name)
			}
		}
		b.WriteString("\n")
	}
}

// sourceKeys are the keys -P prints for a source section: its own, then the defaults of its
// kind's options it does not set.
func (l *Loaded) sourceKeys(sect string, own []string) []string {
	k := l.sectionKind(sect)
	if k == nil {
		return own
	}
	s := l.sections[sect]
	for _, o := range k.options() {
		if _, set := s.values[o.Name]; !set && o.HasDefault {
			own = append(own, o.Name)
		}
	}
	return own
}

// sourceDefault returns the kind default -P prints for an option a source section leaves unset.
func (l *Loaded) sourceDefault(sect, key string) (string, bool) {
	if !strings.HasPrefix(sect, SourcePrefix) {
		return "", false
	}
	if _, set := l.sections[sect].values[key]; set {
		return "", false
	}
	k := l.sectionKind(sect)
	if k == nil {
		return "", false
	}
	o, ok := k.option(key)
	return o.Default, ok && o.HasDefault
}
