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
// values) in time, and configparser would grind through them.
const (
	maxExpandedSize  = 1 << 20
	maxSubstitutions = 100000
)

type refID struct{ section, option string }

// get returns the interpolated value of option as seen from sect (own value or DEFAULT's).
// ok is false when the option is not set; err is an interpolation failure.
func (l *Loaded) get(sect, option string) (string, *value, bool, error) {
	v, ok := l.lookup(sect, option)
	if !ok {
		return "", nil, false, nil
	}
	s, err := l.interpolate(sect, option, v.raw)
	return s, v, true, err
}

// interpolate expands raw, the value of option in sect. The error text keeps configparser's
// wording, except that a reference cycle is named as such.
func (l *Loaded) interpolate(sect, option, raw string) (string, error) {
	if !strings.Contains(raw, "$") {
		return raw, nil
	}
	var b strings.Builder
	x := expansion{b: &b}
	err := x.expand(l, sect, option, raw, 1, []refID{{sect, option}})
	return b.String(), err
}

// expansion is one value's interpolation in progress.
type expansion struct {
	b             *strings.Builder
	substitutions int
}

func (x *expansion) expand(l *Loaded, sect, option, rest string, depth int, chain []refID) error {
	b := x.b
	if depth > maxInterpolationDepth {
		return fmt.Errorf("Recursion limit exceeded in value substitution: option %s in section %s "+
			"contains an interpolation key which cannot be substituted in %d steps",
			pyRepr(option), pyRepr(sect), maxInterpolationDepth)
	}
	for rest != "" {
		p := strings.IndexByte(rest, '$')
		if p < 0 {
			b.WriteString(rest)
			return nil
		}
		b.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "$$"):
			b.WriteByte('$')
			rest = rest[2:]
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 3 { // configparser's KEYCRE needs at least one character: \$\{([^}]+)\}
				return fmt.Errorf("bad interpolation variable reference %s (write $$ for a literal '$')", pyRepr(rest))
			}
			ref := rest[2:end]
			rest = rest[end+1:]
			if x.substitutions++; x.substitutions > maxSubstitutions {
				return fmt.Errorf("value substitution needs more than %d steps (a reference reached "+
					"through ${%s:%s} repeats too often)", maxSubstitutions, sect, option)
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
				if b.Len()+len(v.raw) > maxExpandedSize {
					return fmt.Errorf("value substitution grows beyond %d bytes (a reference reached "+
						"through ${%s:%s} repeats too often)", maxExpandedSize, sect, option)
				}
				b.WriteString(v.raw)
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
