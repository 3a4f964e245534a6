package metric

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Graphite plaintext line is "<path> <value> <timestamp>\n": a space, tab or newline inside a
// path would add a field or a line, so names coming from HAProxy (proxy, server, host names)
// must never carry one. haproxystats replaced only '.' (which would add a path level); we also
// replace whitespace, control characters, other non-printable runes and invalid UTF-8, each by
// '_', and '/' and ';': carbon turns '/' into an extra whisper directory and reads ';' as the
// start of a tag ("a;b=c" is a tagged series). Names HAProxy accepts ([A-Za-z0-9_:.-]) come out
// exactly as haproxystats wrote them.
//
// Sources other than HAProxy have no compatibility to keep: their components use the strict
// rule ([A-Za-z0-9_:#-], anything else '_'; see AppendStrictComponent and Names.Strict).

// AppendComponent appends name as a single path component (the HAProxy rule): '.', '/', ';',
// whitespace, control characters, non-printable runes and each byte of invalid UTF-8 become
// '_'. It does not bound the length; Names does.
func AppendComponent(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			dst = append(dst, componentByte(c))
			i++
			continue
		}
		r, size := utf8.DecodeRune(name[i:])
		dst = appendRune(dst, r, name[i:i+size], size)
		i += size
	}
	return dst
}

// Component returns name sanitised as one path component (see AppendComponent).
func Component(name string) string {
	if isCleanComponent(name) {
		return name
	}
	return string(AppendComponent(make([]byte, 0, len(name)), []byte(name)))
}

// AppendStrictComponent appends name as a single path component under the strict rule of every
// source but HAProxy: a byte of [A-Za-z0-9_:#-] is kept, any other rune (and each byte of
// invalid UTF-8) becomes one '_'. It does not bound the length; Names{Strict: true} does.
func AppendStrictComponent(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			dst = append(dst, strictByte[c])
			i++
			continue
		}
		_, size := utf8.DecodeRune(name[i:])
		dst = append(dst, '_')
		i += size
	}
	return dst
}

// StrictComponent returns name sanitised under the strict rule (see AppendStrictComponent).
func StrictComponent(name string) string {
	return string(AppendStrictComponent(make([]byte, 0, len(name)), []byte(name)))
}

// strictByte maps an ASCII byte to itself when the strict rule keeps it, else to '_'.
var strictByte = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		t[c] = '_'
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_:#-", byte(c)) >= 0 {
			t[c] = byte(c)
		}
	}
	return t
}()

// Namespace returns a dotted path (the Graphite namespace, a group namespace or a group name)
// unchanged except that '/', ';', whitespace, control characters, non-printable runes and
// invalid UTF-8 become '_': haproxystats uses these verbatim, dots included, but they must not
// be able to break the line format or the whisper tree either.
func Namespace(ns string) string {
	var b []byte
	for i := 0; i < len(ns); {
		c := ns[i]
		if c < utf8.RuneSelf {
			out := componentByte(c)
			if c == '.' {
				out = '.'
			}
			if out != c && b == nil {
				b = append(make([]byte, 0, len(ns)), ns[:i]...)
			}
			if b != nil {
				b = append(b, out)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(ns[i:])
		bad := (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) || unicode.IsSpace(r)
		if bad && b == nil {
			b = append(make([]byte, 0, len(ns)), ns[:i]...)
		}
		if b != nil {
			b = appendRune(b, r, ns[i:i+size], size)
		}
		i += size
	}
	if b == nil {
		return ns
	}
	return string(b)
}

// Prefix builds the path prefix "<namespace>[.<host>].haproxy" of haproxystats:
// prefixHostname=false leaves the host out; fqdn=true uses the whole hostname with '.'
// replaced by '_', fqdn=false only its part before the first '.'. The namespace is used
// verbatim (dots kept), apart from the line-safety replacements of Namespace.
func Prefix(namespace, hostname string, prefixHostname, fqdn bool) string {
	return HostPrefix(namespace, hostname, prefixHostname, fqdn) + ".haproxy"
}

// HostPrefix is Prefix without the final ".haproxy": "<namespace>[.<host>]", which every
// named source's paths start with (followed by the source name).
func HostPrefix(namespace, hostname string, prefixHostname, fqdn bool) string {
	var sb strings.Builder
	sb.WriteString(Namespace(namespace))
	if prefixHostname {
		host := hostname
		if !fqdn {
			if i := strings.IndexByte(host, '.'); i >= 0 {
				host = host[:i]
			}
		}
		sb.WriteByte('.')
		sb.WriteString(Component(host))
	}
	return sb.String()
}

func componentByte(c byte) byte {
	if c == '.' || c == '/' || c == ';' || c <= ' ' || c == 0x7f {
		return '_'
	}
	return c
}

func isCleanComponent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || componentByte(c) != c {
			return false
		}
	}
	return true
}

// appendRune appends the rune r, whose bytes in the name are raw, or "_" when it is invalid
// UTF-8, not printable or white space.
func appendRune[S string | []byte](dst []byte, r rune, raw S, size int) []byte {
	if r == utf8.RuneError && size == 1 {
		return append(dst, '_')
	}
	if !unicode.IsPrint(r) || unicode.IsSpace(r) {
		return append(dst, '_')
	}
	return append(dst, raw...)
}
