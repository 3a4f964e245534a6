package metric

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Carbon stores a series as one whisper file per path, every component a directory or file
// name, so a component longer than the file-name limit (255 bytes on Linux) cannot be stored;
// and it drops the connection on a line longer than 16 KiB, losing everything behind it. Proxy
// and server names come from the data, not from the operator, so they are bounded here.

const (
	// DefaultMaxComponentLength is carbon's file-name limit (NAME_MAX on Linux).
	DefaultMaxComponentLength = 255
	// DefaultMaxLineLength is below carbon's 16 KiB line limit (16384 bytes with the '\n').
	DefaultMaxLineLength = 16000
	// MinComponentLength is the smallest bound Names honours: room for a prefix and the hash.
	MinComponentLength = 32
	// hashHex is how many hex digits of the SHA-256 of the whole name end a shortened name:
	// 48 bits, so that distinct long names practically never meet.
	hashHex = 12
)

// Names sanitises path components and bounds their length. The zero value applies the HAProxy
// rule (AppendComponent) and no bound.
//
// A component longer than MaxLength bytes once sanitised is shortened deterministically: its
// sanitised start, cut at a rune boundary, then "-" and 12 hex digits of the SHA-256 of the
// whole original name, MaxLength bytes at most. The same name always gets the same path,
// distinct names stay distinct, and the start lets a dashboard find the series.
type Names struct {
	// MaxLength is the longest component in bytes: 0 is no bound, values below
	// MinComponentLength count as MinComponentLength.
	MaxLength int
	// Strict selects the rule of every source but HAProxy: only [A-Za-z0-9_:#-] is kept (see
	// AppendStrictComponent).
	Strict bool
}

// Append appends name as one sanitised, bounded path component and reports whether it had to
// be shortened. A name within the bound costs what AppendComponent costs; only a longer one is
// hashed.
func (n Names) Append(dst, name []byte) ([]byte, bool) {
	limit := n.limit()
	if limit == 0 || len(name) <= limit {
		// sanitising never makes a name longer
		return n.sanitise(dst, name), false
	}
	start := len(dst)
	for i := 0; i < len(name); {
		var size int
		dst, size = n.appendRune(dst, name[i:])
		if len(dst)-start > limit {
			// Too long. The output so far is valid UTF-8 (sanitised), so stepping back over
			// continuation bytes finds a rune boundary.
			keep := start + limit - 1 - hashHex
			for keep > start && !utf8.RuneStart(dst[keep]) {
				keep--
			}
			sum := sha256.Sum256(name)
			dst = append(dst[:keep], '-')
			return hex.AppendEncode(dst, sum[:hashHex/2]), true
		}
		i += size
	}
	return dst, false // shrank to fit while being sanitised (multi-byte runes became '_')
}

// Component is Append for a string.
func (n Names) Component(name string) (string, bool) {
	limit := n.limit()
	if !n.Strict && (limit == 0 || len(name) <= limit) {
		return Component(name), false
	}
	b, short := n.Append(make([]byte, 0, min(len(name), max(limit, 64))), []byte(name))
	return string(b), short
}

// Path returns a dotted path from the configuration (namespace, group namespace, group name)
// with the line-safety replacements of Namespace and each '.'-separated component bounded as
// Append bounds it (the HAProxy rule even for Strict: the operator chose these names). It
// reports how many components were shortened.
func (n Names) Path(dotted string) (string, int) {
	n.Strict = false
	limit := n.limit()
	if limit == 0 {
		return Namespace(dotted), 0
	}
	var b []byte
	shortened := 0
	for i, part := range strings.Split(dotted, ".") {
		if i > 0 {
			b = append(b, '.')
		}
		var short bool
		b, short = n.appendNamespacePart(b, part)
		if short {
			shortened++
		}
	}
	return string(b), shortened
}

// appendNamespacePart is Append for one component of a dotted path (there is no '.' in it).
func (n Names) appendNamespacePart(dst []byte, part string) ([]byte, bool) {
	if len(part) <= n.limit() {
		return append(dst, Namespace(part)...), false
	}
	return n.Append(dst, []byte(part))
}

func (n Names) limit() int {
	if n.MaxLength <= 0 {
		return 0
	}
	return max(n.MaxLength, MinComponentLength)
}

func (n Names) sanitise(dst, name []byte) []byte {
	if n.Strict {
		return AppendStrictComponent(dst, name)
	}
	return AppendComponent(dst, name)
}

// appendRune appends the sanitised form of the rune that starts name (non-empty) and returns
// how many bytes of name it consumed.
func (n Names) appendRune(dst, name []byte) ([]byte, int) {
	c := name[0]
	if c < utf8.RuneSelf {
		if n.Strict {
			return append(dst, strictByte[c]), 1
		}
		return append(dst, componentByte(c)), 1
	}
	r, size := utf8.DecodeRune(name)
	if n.Strict {
		return append(dst, '_'), size
	}
	return appendRune(dst, r, name[:size], size), size
}
