package cli

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/docopt/docopt-go"

	"github.com/statspipe/statspipe/internal/config"
)

// Args is a parsed command line.
type Args map[string]any

// UsageError is the exit status of a command line the usage does not allow (the shell's and
// most tools' convention; haproxystats exited 1, which now means "the configuration is
// invalid", so that a CI can tell a missing --check from a failed one).
const UsageError = 2

// ParseArgs parses args against a docopt usage text. When ok is false the program should exit
// with code: the help or version has been printed (0), or the usage error (UsageError): an
// option the usage does not have is named, with the closest one, before the usage lines.
func ParseArgs(usage string, args []string) (a Args, code int, ok bool) {
	return parseArgs(usage, args, os.Stdout, os.Stderr)
}

func parseArgs(usage string, args []string, stdout, stderr io.Writer) (Args, int, bool) {
	if msg := unknownOption(usage, args); msg != "" {
		fmt.Fprintf(stderr, "%s: %s\n%s\n", programName(usage), msg, usageLines(usage))
		return nil, UsageError, false
	}
	handler := func(err error, output string) {
		if err == nil { // -h, -v
			fmt.Fprintln(stdout, output)
			return
		}
		msg := err.Error()
		if msg == "" {
			msg = "these arguments do not fit any usage line: " + strings.Join(args, " ")
		}
		fmt.Fprintf(stderr, "%s: %s\n%s\n", programName(usage), msg, usageLines(usage))
	}
	opts, err := (&docopt.Parser{HelpHandler: handler}).ParseArgs(usage, args, "statspipe "+Version)
	if err != nil {
		return nil, UsageError, false
	}
	if opts == nil { // -h or -v
		return nil, 0, false
	}
	return Args(opts), 0, true
}

var (
	optionRE   = regexp.MustCompile(`(?:^|[\s\[(|,])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b`)
	argumentRE = regexp.MustCompile(`(--[a-z][a-z0-9-]*|-[a-zA-Z])(?:, --[a-z][a-z0-9-]*)?[ =]<`)
	synonymRE  = regexp.MustCompile(`(-[a-zA-Z]), (--[a-z][a-z0-9-]*)`)
)

// usageOptions lists the options a docopt usage text names, and those that take an argument.
func usageOptions(usage string) (known []string, takesArg map[string]bool) {
	seen := map[string]bool{}
	for _, m := range optionRE.FindAllStringSubmatch(usage, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			known = append(known, m[1])
		}
	}
	takesArg = map[string]bool{}
	for _, m := range argumentRE.FindAllStringSubmatch(usage, -1) {
		takesArg[m[1]] = true
	}
	for _, m := range synonymRE.FindAllStringSubmatch(usage, -1) {
		if takesArg[m[1]] || takesArg[m[2]] {
			takesArg[m[1]], takesArg[m[2]] = true, true
		}
	}
	return known, takesArg
}

// unknownOption returns "unknown option --x (did you mean --y?)" for the first option of args
// that the usage does not have, "" when every option is known (docopt then checks the rest).
// A long option may be abbreviated to a unique prefix, as docopt allows.
func unknownOption(usage string, args []string) string {
	known, takesArg := usageOptions(usage)
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a, "=")
			var matches []string
			for _, k := range known {
				if k == name {
					matches = []string{k}
					break
				}
				if strings.HasPrefix(k, "--") && strings.HasPrefix(k, name) {
					matches = append(matches, k)
				}
			}
			if len(matches) == 0 {
				return "unknown option " + name + closestOption(name, known)
			}
			if len(matches) == 1 && takesArg[matches[0]] && !hasValue {
				i++ // its value
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				o := "-" + a[j:j+1]
				if !isKnown[o] {
					return "unknown option " + o + closestOption(o, known)
				}
				if takesArg[o] {
					if j == len(a)-1 {
						i++
					}
					break
				}
			}
		}
	}
	return ""
}

// closestOption returns " (did you mean --x?)" for the nearest known long option.
func closestOption(name string, known []string) string {
	if len(name) > 64 || !strings.HasPrefix(name, "--") {
		return ""
	}
	best, bestDist := "", -1
	for _, k := range known {
		if !strings.HasPrefix(k, "--") {
			continue
		}
		if d := levenshtein(name, k); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 || bestDist > max(2, len(best)/3) {
		return ""
	}
	return " (did you mean " + best + "?)"
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// usageLines is the "Usage:" section of a docopt text, up to the first blank line.
func usageLines(usage string) string {
	i := strings.Index(strings.ToLower(usage), "usage:")
	if i < 0 {
		return strings.TrimSpace(usage)
	}
	rest := usage[i:]
	if end := strings.Index(rest, "\n\n"); end >= 0 {
		rest = rest[:end]
	}
	return strings.TrimRight(rest, "\n")
}

// programName is the first word of the first usage line.
func programName(usage string) string {
	lines := strings.Split(usageLines(usage), "\n")
	if len(lines) > 1 {
		if f := strings.Fields(lines[1]); len(f) > 0 {
			return f[0]
		}
	}
	return "statspipe"
}

// String is an option's value, "" when absent.
func (a Args) String(key string) string { s, _ := a[key].(string); return s }

// Bool reports whether a flag was given.
func (a Args) Bool(key string) bool { b, _ := a[key].(bool); return b }

// ConfigRequest reads the options both programs share: -f, -d, -p, -P and --check.
func (a Args) ConfigRequest(prog config.Program) ConfigRequest {
	return ConfigRequest{
		Program:       prog,
		File:          a.String("--file"),
		Dir:           a.String("--dir"),
		PrintDefaults: a.Bool("--print"),
		PrintConfig:   a.Bool("--print-conf"),
		Check:         a.Bool("--check"),
	}
}
