package config

import (
	"fmt"
	"strings"
)

// This file is configparser's ExtendedInterpolation, applied when a value is read:
// ${option} (same section, then DEFAULT), ${section:option}, "$$" for a literal '$'.

// maxInterpolationDepth is configparser's MAX_INTERPOLATION_DEPTH.
const maxInterpolationDepth = 10

// maxExpandedSize and maxSubstitutions bound one interpolated value: ten levels of values
// that each reference the next several times grow exponentially, in size or (with empty
// values) in time, and configparser would grind through them. Every byte written counts,
// literal text of the referenced values included.
const (
	maxExpandedSize  = 1 << 20
	maxSubstitutions = 100000
)

// maxReadBytes and maxReadSubstitutions bound all the reads of one Print or Config together
// (and all the Gets of one File): a file can hold many values that each stay below the
// per-value bounds, or a [DEFAULT] section that every one of thousands of sections inherits,
// and -P prints each of them. Each read costs its value, its option name and readOverhead
// bytes (about what -P adds per line), so even empty values add up.
const (
	maxReadBytes         = 64 << 20
	maxReadSubstitutions = 1000000
	readOverhead         = 32
)

// readBudget is what the reads since the last reset have used of the bounds above.
type readBudget struct {
	bytes         int64
	substitutions int
}

type refID struct{ section, option string }

// get returns the interpolated value of option as seen from sect (own value or DEFAULT's).
// ok is false when the option is not set; err is an interpolation failure.
func (l *Loaded) get(sect, option string) (string, *value, bool, error) {
	v, ok := l.lookup(sect, option)
	if !ok {
		return "", nil, false, nil
	}
	s, err := l.interpolate(sect, option, v.raw)
	if err == nil {
		err = l.charge(sect, option, s)
	}
	return s, v, true, err
}

// charge counts one read of s against the budget of all reads.
func (l *Loaded) charge(sect, option, s string) error {
	l.budget.bytes += int64(len(s) + len(option) + readOverhead)
	if l.budget.bytes > maxReadBytes {
		return fmt.Errorf("the configuration's values add up to more than %d MiB when read (stopped at "+
			"${%s:%s}; -P prints every value, and every section repeats the options of [DEFAULT])",
			maxReadBytes>>20, sect, option)
	}
	return nil
}

// interpolate expands raw, the value of option in sect. The error text keeps configparser's
// wording, except that a reference cycle is named as such.
func (l *Loaded) interpolate(sect, option, raw string) (string, error) {
	if !strings.Contains(raw, "$") {
		return raw, nil
	}
	var b strings.Builder
	x := expansion{b: &b, budget: &l.budget, sect: sect, option: option}
	err := x.expand(l, sect, option, raw, 1, []refID{{sect, option}})
	return b.String(), err
}

// expansion is one value's interpolation in progress.
type expansion struct {
	b             *strings.Builder
	substitutions int
	budget        *readBudget
	sect, option  string // the value being read, for the messages
}

// write appends s, text of option in sect, unless the value would outgrow maxExpandedSize.
func (x *expansion) write(s, sect, option string) error {
	if x.b.Len()+len(s) > maxExpandedSize {
		return fmt.Errorf("value substitution grows beyond %d bytes (a reference reached "+
			"through ${%s:%s} repeats too often)", maxExpandedSize, sect, option)
	}
	x.b.WriteString(s)
	return nil
}

// substitution counts one ${...} against the value's bound and the budget of all reads.
func (x *expansion) substitution(sect, option string) error {
	x.substitutions++
	x.budget.substitutions++
	switch {
	case x.substitutions > maxSubstitutions:
		return fmt.Errorf("value substitution needs more than %d steps (a reference reached "+
			"through ${%s:%s} repeats too often)", maxSubstitutions, sect, option)
	case x.budget.substitutions > maxReadSubstitutions:
		return fmt.Errorf("the configuration's values need more than %d substitution steps in total "+
			"when read (stopped at ${%s:%s}: many values reference values that repeat references)",
			maxReadSubstitutions, x.sect, x.option)
	}
	return nil
}

func (x *expansion) expand(l *Loaded, sect, option, rest string, depth int, chain []refID) error {
	if depth > maxInterpolationDepth {
		return fmt.Errorf("Recursion limit exceeded in value substitution: option %s in section %s "+
			"contains an interpolation key which cannot be substituted in %d steps",
			pyRepr(option), pyRepr(sect), maxInterpolationDepth)
	}
	for rest != "" {
		p := strings.IndexByte(rest, '$')
		if p < 0 {
			return x.write(rest, sect, option)
		}
		if err := x.write(rest[:p], sect, option); err != nil {
			return err
		}
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "$$"):
			if err := x.write("$", sect, option); err != nil {
				return err
			}
			rest = rest[2:]
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 3 { // configparser's KEYCRE needs at least one character: \$\{([^}]+)\}
				return fmt.Errorf("bad interpolation variable reference %s (write $$ for a literal '$')", pyRepr(rest))
			}
			ref := rest[2:end]
			rest = rest[end+1:]
			if err := x.substitution(sect, option); err != nil {
				return err
			}
			target := refID{sect, ""}
			switch parts := strings.Split(ref, ":"); len(parts) {
			case 1:
				target.option = strings.ToLower(parts[0])
			case 2:
				target = refID{parts[0], strings.ToLower(parts[1])}
			default:
				return fmt.Errorf("More than one ':' found: %s", pyRepr("${"+ref+"}"))
			}
			v, ok := l.lookup(target.section, target.option)
			if !ok {
				return fmt.Errorf("Bad value substitution: option %s in section %s contains an "+
					"interpolation key %s which is not a valid option name%s",
					pyRepr(option), pyRepr(sect), pyRepr(ref), l.missingHint(target))
			}
			if !strings.Contains(v.raw, "$") {
				if err := x.write(v.raw, sect, option); err != nil {
					return err
				}
				continue
			}
			for i, c := range chain {
				if c == target {
					return fmt.Errorf("reference cycle in value substitution: %s", cycleText(append(chain[i:], target)))
				}
			}
			if err := x.expand(l, target.section, target.option, v.raw, depth+1, append(chain, target)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("'$' must be followed by '$' or '{', found: %s (write $$ for a literal '$')", pyRepr(rest))
		}
	}
	return nil
}

// missingHint says whether the section or the option of a failed reference is missing.
func (l *Loaded) missingHint(t refID) string {
	if t.section != defaultSection && !l.hasSection(t.section) {
		return fmt.Sprintf(" (there is no section %s)", pyRepr(t.section))
	}
	return fmt.Sprintf(" (section %s has no option %s)", pyRepr(t.section), pyRepr(t.option))
}

func cycleText(chain []refID) string {
	parts := make([]string, len(chain))
	for i, c := range chain {
		parts[i] = "${" + c.section + ":" + c.option + "}"
	}
	return strings.Join(parts, " -> ")
}
