package aggregate

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Op is an aggregation function.
type Op uint8

const (
	Sum Op = iota
	Avg
	Min
	Max
	Count
	Stddev
	// Percentile is pNN: Func.P is NN (1–99).
	Percentile
)

// Func is one aggregation function of a policy.
type Func struct {
	Op Op
	P  int // NN of a Percentile, else 0
}

var opNames = [...]string{Sum: "sum", Avg: "avg", Min: "min", Max: "max", Count: "count", Stddev: "stddev"}

// percentileNames holds "p1".."p99" so that writing a suffix allocates nothing.
var percentileNames = func() (t [100]string) {
	for i := 1; i < len(t); i++ {
		t[i] = "p" + strconv.Itoa(i)
	}
	return t
}()

// String is the function's name as written in the configuration and as the last component of
// its Graphite path.
func (f Func) String() string {
	if f.Op == Percentile {
		if f.P >= 1 && f.P <= 99 {
			return percentileNames[f.P]
		}
		return "p?"
	}
	if int(f.Op) < len(opNames) {
		return opNames[f.Op]
	}
	return "op?"
}

const validFuncs = "sum avg min max count stddev p1…p99, or none alone"

// ParseFuncs parses a whitespace-separated list of functions ("sum max p95"). "none" alone is
// an empty, non-nil list: no aggregate at all.
func ParseFuncs(s string) ([]Func, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return nil, fmt.Errorf("no aggregation function given (valid: %s)", validFuncs)
	}
	if len(words) == 1 && words[0] == "none" {
		return []Func{}, nil
	}
	funcs := make([]Func, 0, len(words))
	for _, w := range words {
		f, ok := parseFunc(w)
		if !ok {
			if w == "none" {
				return nil, fmt.Errorf("aggregation function \"none\" cannot be combined with others (valid: %s)", validFuncs)
			}
			return nil, fmt.Errorf("unknown aggregation function %q (valid: %s)", w, validFuncs)
		}
		for _, g := range funcs {
			if g == f {
				return nil, fmt.Errorf("aggregation function %q given twice", w)
			}
		}
		funcs = append(funcs, f)
	}
	return funcs, nil
}

func parseFunc(w string) (Func, bool) {
	for op, name := range opNames {
		if w == name {
			return Func{Op: Op(op)}, true
		}
	}
	// pNN: 1–99 without leading zeros, so that p5 and p05 cannot both name one function
	if len(w) < 2 || len(w) > 3 || w[0] != 'p' || w[1] == '0' {
		return Func{}, false
	}
	n := 0
	for _, c := range w[1:] {
		if c < '0' || c > '9' {
			return Func{}, false
		}
		n = n*10 + int(c-'0')
	}
	return Func{Op: Percentile, P: n}, true
}

// Rule is one `aggregate.<glob> = <functions>` option.
type Rule struct {
	Glob  string
	Funcs []Func
}

// Policies are the aggregation policies of one source.
type Policies struct {
	// Default applies to counters, gauges and untyped series no rule matches; nil is sum.
	Default []Func
	// Rules are tried in order against a sample's Family; the first match wins.
	Rules []Rule
	// FoldCase matches the globs against the lower-cased family name: the INI reader lower-cases
	// option names, so `aggregate.<glob>` keys arrive lower-cased.
	FoldCase bool
}

// ParsePolicies reads the `aggregate` and `aggregate.<glob>` options, in the given (file)
// order, and ignores every other key. A glob must be valid path.Match syntax; giving
// `aggregate` or one glob twice is an error (the second could never apply).
func ParsePolicies(options [][2]string) (Policies, error) {
	var p Policies
	seenDefault := false
	for _, kv := range options {
		key, value := kv[0], kv[1]
		switch {
		case key == "aggregate":
			if seenDefault {
				return Policies{}, errors.New("option aggregate given twice")
			}
			seenDefault = true
			funcs, err := ParseFuncs(value)
			if err != nil {
				return Policies{}, fmt.Errorf("option aggregate: %w", err)
			}
			p.Default = funcs
		case strings.HasPrefix(key, "aggregate."):
			glob := key[len("aggregate."):]
			if glob == "" {
				return Policies{}, fmt.Errorf("option %s: empty metric-name glob", key)
			}
			if _, err := path.Match(glob, ""); err != nil {
				return Policies{}, fmt.Errorf("option %s: bad metric-name glob %q: %w", key, glob, err)
			}
			for _, r := range p.Rules {
				if r.Glob == glob {
					return Policies{}, fmt.Errorf("option %s given twice", key)
				}
			}
			funcs, err := ParseFuncs(value)
			if err != nil {
				return Policies{}, fmt.Errorf("option %s: %w", key, err)
			}
			p.Rules = append(p.Rules, Rule{Glob: glob, Funcs: funcs})
		}
	}
	return p, nil
}

// matchIndex returns the first rule whose glob matches family.
func (p *Policies) matchIndex(family string) ([]Func, int, bool) {
	for i := range p.Rules {
		if ok, _ := path.Match(p.Rules[i].Glob, family); ok {
			return p.Rules[i].Funcs, i, true
		}
	}
	return nil, -1, false
}

func hasPercentile(funcs []Func) bool {
	for _, f := range funcs {
		if f.Op == Percentile {
			return true
		}
	}
	return false
}

// MustRules makes a kind's built-in default rules from glob → functions pairs (as the
// `aggregate.<glob>` options would give them); a bad one is a programming error.
func MustRules(rules [][2]string) []Rule {
	var opts [][2]string
	for _, r := range rules {
		opts = append(opts, [2]string{"aggregate." + r[0], r[1]})
	}
	p, err := ParsePolicies(opts)
	if err != nil {
		panic(err)
	}
	return p.Rules
}
