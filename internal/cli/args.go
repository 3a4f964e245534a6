package cli

import (
	"github.com/docopt/docopt-go"

	"github.com/statspipe/statspipe/internal/config"
)

// Args is a parsed command line.
type Args map[string]any

// ParseArgs parses args against a docopt usage text. When ok is false the program should exit
// with code: docopt has already printed the help or version (0) or the usage error (1, as the
// Python haproxystats did).
func ParseArgs(usage string, args []string) (a Args, code int, ok bool) {
	opts, err := (&docopt.Parser{HelpHandler: docopt.PrintHelpOnly}).ParseArgs(usage, args, "statspipe "+Version)
	if err != nil {
		return nil, 1, false
	}
	if opts == nil { // -h or -v
		return nil, 0, false
	}
	return Args(opts), 0, true
}

// String is an option's value, "" when absent.
func (a Args) String(key string) string { s, _ := a[key].(string); return s }

// Bool reports whether a flag was given.
func (a Args) Bool(key string) bool { b, _ := a[key].(bool); return b }

// ConfigRequest reads the options both programs share: -f, -d, -p and -P.
func (a Args) ConfigRequest(prog config.Program) ConfigRequest {
	return ConfigRequest{
		Program:       prog,
		File:          a.String("--file"),
		Dir:           a.String("--dir"),
		PrintDefaults: a.Bool("--print"),
		PrintConfig:   a.Bool("--print-conf"),
	}
}
