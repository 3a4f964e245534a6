package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is every error of Load, Print and Config. Error() is one line:
//
//	invalid configuration, file:'/etc/x.conf' line:7 section:'pull' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'
//
// Fields that do not apply are left out of the text. Reason keeps haproxystats' wording
// (haproxystats.md §1.5) where it has one.
type Error struct {
	// File is the file that set the offending value or holds the offending line; "" when the
	// value is a built-in default or the problem is not in a file.
	File string
	// Line is the 1-based line in File, 0 when unknown.
	Line    int
	Section string
	Option  string
	// Value is the offending value after interpolation ("" when the option is missing).
	Value string
	// Raw is the value as written, when interpolation changed it or failed.
	Raw string
	// SetIn names the section the value was inherited from (DEFAULT), when it is not Section.
	SetIn  string
	Reason string
}

// maxQuotedValue bounds a value quoted in a message: the message is one log line, and the
// value that broke a bound may be a megabyte long.
const maxQuotedValue = 256

// Quote quotes s as the messages quote values: Python's repr ('x'), shortened when long.
func Quote(s string) string { return quoteValue(s) }

// quoteValue is pyRepr(s), shortened to its first bytes and its length when s is long.
func quoteValue(s string) string {
	if len(s) <= maxQuotedValue {
		return pyRepr(s)
	}
	cut := maxQuotedValue - 56
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return pyRepr(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration,")
	if e.File != "" {
		b.WriteString(" file:" + pyRepr(e.File))
	}
	if e.Line > 0 {
		b.WriteString(" line:" + strconv.Itoa(e.Line))
	}
	if e.Section != "" {
		b.WriteString(" section:" + pyRepr(e.Section))
	}
	if e.Option != "" {
		b.WriteString(" option:" + pyRepr(e.Option))
		b.WriteString(" value:" + quoteValue(e.Value))
		if e.Raw != "" && e.Raw != e.Value {
			b.WriteString(" raw:" + quoteValue(e.Raw))
		}
	}
	if e.SetIn != "" && e.SetIn != e.Section {
		b.WriteString(" (inherited from [" + e.SetIn + "])")
	}
	b.WriteString(" error: ")
	// Reasons quote user text with pyRepr already; this guards the few that wrap OS errors.
	b.WriteString(strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(e.Reason))
	return b.String()
}
