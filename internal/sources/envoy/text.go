package envoy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unsafe"

	"github.com/statspipe/statspipe/internal/sample"
)

// The text form (GET /stats): one `name: value` line per stat.
//
//	cluster.svc.upstream_rq_total: 12           counter or gauge → Untyped
//	server.version: "1.28.0"                    text readout → skipped
//	cluster.svc.upstream_rq_time: P0(1,2) … P100(9,10)   histogram → Quantile samples
//	cluster.svc.upstream_cx_length_ms: No recorded values → skipped
//
// A histogram line gives, per quantile, the value over the last flush interval and the
// cumulative one; each becomes a Quantile sample (Bound = P/100) named `<name>.interval` or
// `<name>.cumulative`, with Family "histogram/<name>" so that the kind's default rule
// `histogram/* = none` keeps them per instance only (quantiles of different instances cannot
// be merged). An interval of `nan` (nothing recorded since the last flush) is skipped.

// maxTextLine bounds one line; a longer one is an error (Envoy's lines are short; a histogram
// line with every quantile is a few hundred bytes).
const maxTextLine = 64 << 10

// HistogramFamilyPrefix starts the Family of the text form's histogram quantiles.
const HistogramFamilyPrefix = "histogram/"

// maxNameParts bounds the components a name is looked at in; a longer name is kept as written.
const maxNameParts = 128

var errTruncated = errors.New("the body ends inside a line (truncated)")

// textParser parses the text form. Its buffers are reused across bodies.
type textParser struct {
	r      *bufio.Reader
	name   []byte
	family []byte
	sc     scratch
	s      sample.Sample
	line   int
}

func newTextParser() *textParser {
	return &textParser{r: bufio.NewReaderSize(nil, maxTextLine)}
}

func (p *textParser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, args...))
}

// Parse reads body and hands each sample to fn; a malformed line fails the body.
func (p *textParser) Parse(body io.Reader, fn sample.Func) error {
	p.r.Reset(body)
	defer p.r.Reset(nil)
	p.line = 0
	for {
		line, err := p.r.ReadSlice('\n')
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		p.line++
		switch {
		case err == bufio.ErrBufferFull:
			return p.errorf("longer than %d bytes", maxTextLine)
		case err == io.EOF:
			return p.errorf("%v", errTruncated)
		case err != nil:
			return err
		}
		line = line[:len(line)-1]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		if err := p.parseLine(line, fn); err != nil {
			return err
		}
	}
}

func (p *textParser) parseLine(line []byte, fn sample.Func) error {
	i := bytes.Index(line, []byte(": "))
	if i <= 0 {
		return p.errorf("not a `name: value` line")
	}
	name, value := line[:i], line[i+2:]
	if bytes.IndexByte(name, ' ') >= 0 || bytes.IndexByte(name, '\t') >= 0 {
		return p.errorf("blank in the stat name")
	}
	if len(value) == 0 {
		return p.errorf("no value")
	}
	switch {
	case value[0] == '"': // a text readout
		if len(value) < 2 || value[len(value)-1] != '"' {
			return p.errorf("unterminated text readout")
		}
		return nil
	case string(value) == "No recorded values":
		return nil
	case value[0] == 'P':
		return p.histogram(name, value, fn)
	}
	v, ok := parseNumber(value)
	if !ok {
		return p.errorf("value %q is not a number", clip(value))
	}
	p.name = dottedName(p.name[:0], name, &p.sc)
	p.s = sample.Sample{Name: p.name, Kind: sample.Untyped, Value: v}
	return fn(&p.s)
}

// histogram parses `P0(1,2) P25(3,4) …`.
func (p *textParser) histogram(name, value []byte, fn sample.Func) error {
	p.name = dottedName(p.name[:0], name, &p.sc)
	base := len(p.name)
	// No '/' after the prefix, so that the glob histogram/* matches every such family.
	p.family = append(p.family[:0], HistogramFamilyPrefix...)
	for _, c := range p.name {
		if c == '/' {
			c = '_'
		}
		p.family = append(p.family, c)
	}
	for len(value) > 0 {
		var tok []byte
		if j := bytes.IndexByte(value, ' '); j >= 0 {
			tok, value = value[:j], value[j+1:]
		} else {
			tok, value = value, nil
		}
		if len(tok) == 0 {
			continue
		}
		open := bytes.IndexByte(tok, '(')
		comma := bytes.IndexByte(tok, ',')
		if tok[0] != 'P' || open < 2 || comma < open || tok[len(tok)-1] != ')' {
			return p.errorf("histogram quantile %q is not P<q>(<interval>,<cumulative>)", clip(tok))
		}
		q, ok := percentile(tok[1:open])
		if !ok {
			return p.errorf("histogram quantile %q is not a percentile", clip(tok))
		}
		for k, part := range [2][]byte{tok[open+1 : comma], tok[comma+1 : len(tok)-1]} {
			if string(part) == "nan" {
				continue // nothing recorded in this interval
			}
			v, ok := parseNumber(part)
			if !ok {
				return p.errorf("histogram value %q is not a number", clip(tok))
			}
			p.name = p.name[:base]
			if k == 0 {
				p.name = append(p.name, ".interval"...)
			} else {
				p.name = append(p.name, ".cumulative"...)
			}
			p.s = sample.Sample{Family: p.family, Name: p.name, Kind: sample.Quantile, Bound: q, Value: v}
			if err := fn(&p.s); err != nil {
				return err
			}
		}
	}
	return nil
}

// percentile reads the NN of PNN (0 to 100, with decimals: P99.9) as the quantile NN/100,
// computed as digits / 10^(decimals+2) so that P99.9 is the double nearest 0.999.
func percentile(b []byte) (float64, bool) {
	var m uint64
	dec, dot, digits := 0, false, 0
	for _, c := range b {
		switch {
		case c == '.' && !dot:
			dot = true
		case c >= '0' && c <= '9' && digits < 15:
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				dec++
			}
		default:
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	q := float64(m) / math.Pow10(dec+2)
	return q, q <= 1
}

func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// parseNumber reads an integer fast and anything else with strconv; `nan` and infinities are
// refused (Envoy writes them only inside histogram lines).
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if len(b) <= 18 {
		n, i := uint64(0), 0
		neg := b[0] == '-'
		if neg {
			i = 1
		}
		if i < len(b) {
			for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
				n = n*10 + uint64(b[i]-'0')
			}
			if i == len(b) {
				if neg {
					return -float64(n), true
				}
				return float64(n), true
			}
		}
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	// strconv keeps no reference to its argument (its errors copy it), so the bytes are
	// viewed as a string without a copy.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// clusterScopes are the components that may follow a cluster's name before its stat's last
// component (cluster.<name>.circuit_breakers.default.cx_open): the name of
// `cluster.<a>.<b>….<last>` ends before the longest run of these that ends just before
// <last>.
var clusterScopes = map[string]bool{
	"circuit_breakers": true, "default": true, "high": true, "outlier_detection": true,
	"health_check": true, "ssl": true, "ciphers": true, "curves": true, "sigalgs": true,
	"versions": true, "canary": true, "internal": true, "external": true, "http1": true,
	"http2": true, "http3": true, "tcp": true, "ext_authz": true, "lb_subsets": true,
	"client_ssl_socket_factory": true,
}

// scratch holds the dot positions of a name.
type scratch struct{ dots, kept []int }

// dottedName appends the Graphite name of an Envoy text stat name: its dotted components as
// Envoy wrote them, except that parts that are one name are joined by '_' so that they stay
// one component:
//   - a dotted IPv4 address, with the port Envoy appends as _<port> (10.0.0.1_8080,
//     listener.0.0.0.0_10000.…, http.127.0.0.1.…), wherever it is;
//   - a TLS version (ssl.versions.TLSv1.2 → TLSv1_2);
//   - a cluster's name: in cluster.<name>.<stat>, <stat> is the last component and the run of
//     known scopes just before it (clusterScopes), and everything between `cluster.` and it is
//     the name (cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_200 →
//     cluster.outbound|9080||reviews_default_svc_cluster_local.upstream_rq_200).
//
// sc is scratch space.
func dottedName(dst, name []byte, sc *scratch) []byte {
	start := len(dst)
	dst = append(dst, name...)
	out := dst[start:]
	d := sc.dots[:0]
	for i, c := range out {
		if c == '.' {
			d = append(d, i)
		}
	}
	sc.dots = d
	if len(d) == 0 || len(d) > maxNameParts {
		return dst
	}
	// Addresses and TLS versions first, then the cluster name over the dots that remain.
	n := len(d) + 1
	kept := sc.kept[:0]
	for k := 0; k < n; k++ {
		j := 0
		p := partOf(out, d, k)
		switch {
		case k+3 < n && isOctet(p) && isOctet(partOf(out, d, k+1)) && isOctet(partOf(out, d, k+2)) && isLastOctet(partOf(out, d, k+3)):
			j = 3
		case k+1 < n && len(p) == 5 && string(p[:4]) == "TLSv" && isDigits(p[4:]) && isDigits(partOf(out, d, k+1)):
			j = 1
		}
		for i := k; i < k+j; i++ {
			out[d[i]] = '_'
		}
		k += j
		if k < len(d) {
			kept = append(kept, d[k])
		}
	}
	sc.kept = kept
	d = kept
	if n := len(d) + 1; n >= 4 && string(out[:d[0]]) == "cluster" {
		k := n - 1 // the stat's last component
		for k-1 >= 2 && clusterScopes[string(partOf(out, d, k-1))] {
			k--
		}
		for j := 1; j < k-1; j++ { // parts 1 … k-1 are the name
			out[d[j]] = '_'
		}
	}
	return dst
}

// partOf returns part k of out, whose dots are at d.
func partOf(out []byte, d []int, k int) []byte {
	b, e := 0, len(out)
	if k > 0 {
		b = d[k-1] + 1
	}
	if k < len(d) {
		e = d[k]
	}
	return out[b:e]
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isOctet(b []byte) bool { return len(b) <= 3 && isDigits(b) }

// isLastOctet: 1 to 3 digits, then the end or `_<port>`.
func isLastOctet(b []byte) bool {
	i := 0
	for i < len(b) && i < 4 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 3 {
		return false
	}
	return i == len(b) || b[i] == '_'
}
