package metric

import (
	"math"
	"strconv"
)

// Value text follows haproxystats (pandas) so that local-store files read the same as before:
// integer-typed values print as integers ("4990"), float-typed ones as Python's repr(float)
// ("4990.0", "0.25", "1e+16"). Graphite itself parses both forms to the same number.

// AppendFloat appends v as Python's repr(float): the shortest text that round-trips, ".0" on
// integral values, and exponent form when the decimal exponent is < -4 or >= 16. strconv's 'g'
// is not used because it switches to exponent form at 1e+21/1e-5 boundaries that differ from
// Python's (and %v at 1e+06 for float32-style precision).
func AppendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) {
		return append(dst, "nan"...)
	}
	if math.IsInf(v, 0) {
		if v < 0 {
			return append(dst, "-inf"...)
		}
		return append(dst, "inf"...)
	}
	a := math.Abs(v)
	if a == 0 {
		if math.Signbit(v) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	if a >= 1e16 || a < 1e-4 {
		return strconv.AppendFloat(dst, v, 'e', -1, 64)
	}
	if u := int64(v); float64(u) == v {
		// Integral and below 1e16, so it fits int64 exactly; AppendInt is several times
		// faster than the shortest-float algorithm and this is the common case. (The int64
		// round trip tests integrality without math.Trunc, a call on amd64 v1.)
		dst = strconv.AppendInt(dst, u, 10)
		return append(dst, '.', '0')
	}
	if a < 1e12 {
		// Means of a few rows mostly have 1 to 3 decimals (x/4 = .25, .5, .75). When m/10^k
		// converts back to exactly v it is the shortest representation: below 1e12 two
		// k-decimal numbers (k ≤ 3) are further apart than v's ulp, so no other string of
		// at most k decimals reads back as v, and a shorter one would have been found at a
		// smaller k (its scaled form is a k-decimal too, and unique).
		for k, pow := range pow10[1:] {
			w := v * pow
			if m := int64(w); float64(m) == w && float64(m)/pow == v {
				return appendDecimal(dst, m, k+1)
			}
		}
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

var pow10 = [...]float64{1, 10, 100, 1000}

// appendDecimal appends m·10^-k with k ≥ 1 decimals, dropping trailing zeros of the fraction
// (at least one decimal stays).
func appendDecimal(dst []byte, m int64, k int) []byte {
	if m < 0 {
		dst = append(dst, '-')
		m = -m
	}
	div := int64(pow10[k])
	dst = strconv.AppendInt(dst, m/div, 10)
	dst = append(dst, '.')
	frac := m % div
	var digits [3]byte
	for i := k - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := k
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	return append(dst, digits[:n]...)
}

// AppendValue appends v as an integer when isFloat is false and v is integral (a pandas int64
// column), otherwise as AppendFloat does.
func AppendValue(dst []byte, v float64, isFloat bool) []byte {
	if !isFloat && math.Abs(v) < 9.2e18 {
		if u := int64(v); float64(u) == v {
			return strconv.AppendInt(dst, u, 10)
		}
	}
	return AppendFloat(dst, v)
}

// AppendSeconds appends a duration in seconds with three decimals, as haproxystats prints its
// WallClockTime* self-metrics ("%.3f").
func AppendSeconds(dst []byte, seconds float64) []byte {
	return strconv.AppendFloat(dst, seconds, 'f', 3, 64)
}

// LineEnd formats the end of a Graphite line, " <value> <timestamp>\n", into its own buffer:
// the timestamp part is written once per snapshot, and integral values are written right to
// left just before it, two digits at a time. Writers append the result after the path, which
// makes a line two copies plus the digits.
type LineEnd struct {
	buf  [128]byte // indexed with &127: no bounds checks
	tail int       // buf[tail:] is " <timestamp>\n"
}

// SetTimestamp sets the timestamp of the following lines.
func (e *LineEnd) SetTimestamp(ts int64) {
	var t [24]byte
	s := strconv.AppendInt(append(t[:0], ' '), ts, 10)
	s = append(s, '\n')
	e.tail = len(e.buf) - len(s)
	copy(e.buf[e.tail:], s)
}

// Value returns " <value> <timestamp>\n" with the value as AppendValue writes it. The result
// is valid until the next call.
func (e *LineEnd) Value(v float64, isFloat bool) []byte {
	i := e.tail
	a := v
	if a < 0 {
		a = -a
	}
	// int64 conversions instead of math.Trunc, which is a function call on amd64 v1
	if u := int64(a); a < 1e15 && float64(u) == a && (u != 0 || !math.Signbit(v)) {
		if isFloat {
			i -= 2
			e.buf[i&127], e.buf[(i+1)&127] = '.', '0'
		}
		for u >= 100 {
			q := u / 100
			r := (u - q*100) * 2
			i -= 2
			e.buf[i&127], e.buf[(i+1)&127] = digitPairs[r&255], digitPairs[(r+1)&255]
			u = q
		}
		if u >= 10 {
			i -= 2
			e.buf[i&127], e.buf[(i+1)&127] = digitPairs[(u*2)&255], digitPairs[(u*2+1)&255]
		} else {
			i--
			e.buf[i&127] = byte('0' + u)
		}
		if v < 0 {
			i--
			e.buf[i&127] = '-'
		}
	} else {
		var t [40]byte
		s := AppendValue(t[:0], v, isFloat)
		i -= len(s)
		copy(e.buf[i:], s)
	}
	i--
	e.buf[i&127] = ' '
	return e.buf[i:]
}

// digitPairs holds "00".."99"; 256 bytes so that an index masked with 255 needs no bounds
// check.
var digitPairs = func() (t [256]byte) {
	for i := 0; i < 100; i++ {
		t[2*i], t[2*i+1] = byte('0'+i/10), byte('0'+i%10)
	}
	return t
}()
