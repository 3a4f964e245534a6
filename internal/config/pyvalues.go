package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file reproduces the value syntax of Python's configparser getint / getfloat /
// getboolean, and Python's repr() for quoting values in messages.

// isPySpace is Python's str.isspace for one character. It differs from unicode.IsSpace only
// by the ASCII separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func pyStrip(s string) string  { return strings.TrimFunc(s, isPySpace) }
func pyRstrip(s string) string { return strings.TrimRightFunc(s, isPySpace) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanDigitPart consumes Python's `digit ("_"? digit)*` from s[i:] and returns the index after
// it, or -1 if s[i] is not a digit.
func scanDigitPart(s string, i int) int {
	if i >= len(s) || !isDigit(s[i]) {
		return -1
	}
	i++
	for i < len(s) {
		switch {
		case isDigit(s[i]):
			i++
		case s[i] == '_' && i+1 < len(s) && isDigit(s[i+1]):
			i += 2
		default:
			return i
		}
	}
	return i
}

// errIntRange is returned for well-formed integers that do not fit in 64 bits (Python has
// no such limit, but no option needs such a value).
var errIntRange = fmt.Errorf("value out of range")

// parsePyInt parses like Python int(s): surrounding whitespace, an optional sign, decimal
// digits with single underscores between them. ok is false for a malformed value.
func parsePyInt(s string) (n int64, ok bool, err error) {
	t := pyStrip(s)
	body := t
	if body != "" && (body[0] == '+' || body[0] == '-') {
		body = body[1:]
	}
	if end := scanDigitPart(body, 0); end != len(body) {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(strings.ReplaceAll(t, "_", ""), 10, 64)
	if perr != nil {
		return 0, true, errIntRange
	}
	return n, true, nil
}

// parsePyFloat parses like Python float(s): surrounding whitespace, an optional sign, then
// inf / infinity / nan in any case, or digits with an optional fraction and exponent
// (underscores allowed between digits). Hexadecimal, which Go accepts, is rejected.
func parsePyFloat(s string) (float64, bool) {
	t := pyStrip(s)
	body := t
	neg := false
	if body != "" && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	switch strings.ToLower(body) {
	case "inf", "infinity":
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case "nan":
		return math.NaN(), true
	}
	i, intEnd := 0, scanDigitPart(body, 0)
	hasInt := intEnd >= 0
	if hasInt {
		i = intEnd
	}
	hasFrac := false
	if i < len(body) && body[i] == '.' {
		i++
		if end := scanDigitPart(body, i); end >= 0 {
			hasFrac = true
			i = end
		}
	}
	if !hasInt && !hasFrac {
		return 0, false
	}
	if i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		i++
		if i < len(body) && (body[i] == '+' || body[i] == '-') {
			i++
		}
		end := scanDigitPart(body, i)
		if end < 0 {
			return 0, false
		}
		i = end
	}
	if i != len(body) {
		return 0, false
	}
	// Overflow gives ±Inf with ErrRange, which is what Python returns too ("1e999" → inf).
	f, _ := strconv.ParseFloat(strings.ReplaceAll(body, "_", ""), 64)
	if neg {
		f = -f
	}
	return f, true
}

// parsePyBool is configparser's getboolean: the value, lower-cased, must be one of its
// BOOLEAN_STATES. No whitespace is stripped (the parser already did).
func parsePyBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}

// pyRepr quotes s like Python's repr() of a str, so messages read like haproxystats' and any
// control character or newline is escaped: an error message always stays on one line.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteByte(quote)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
