package cli

import (
	"bytes"
	"testing"
)

const testUsage = `Test.

Usage:
    prog [-f <file>] [-d <dir>] [-p | -P] [--once [--once-timeout <seconds>]]
    prog [-f <file>] --check
    prog (-h | --help)

Options:
    -f, --file <file>  a file
    -d, --dir <dir>    a directory
    -p, --print        print
    -P, --print-conf   print the configuration
    --check            check
    --once             once
    --once-timeout <seconds>
                       a timeout [default: 60]
    -h, --help         help
`

func TestUnknownOption(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--onse"}, "unknown option --onse (did you mean --once?)"},
		{[]string{"--chek"}, "unknown option --chek (did you mean --check?)"},
		{[]string{"--print-config"}, "unknown option --print-config (did you mean --print-conf?)"},
		{[]string{"--verbose"}, "unknown option --verbose"},
		{[]string{"-x"}, "unknown option -x"},
		{[]string{"-pX"}, "unknown option -X"},
		{[]string{"--file=a", "--bogus=1"}, "unknown option --bogus"},
		// Values are not options, whatever they look like.
		{[]string{"-f", "--weird"}, ""},
		{[]string{"--file", "-x"}, ""},
		{[]string{"-f-x"}, ""},
		{[]string{"-pf", "-x"}, ""},
		{[]string{"--once", "--once-timeout", "-5"}, ""},
		// Unique prefixes are docopt's to accept; ambiguous ones its to refuse.
		{[]string{"--che"}, ""},
		{[]string{"--on"}, ""},
		{[]string{"--", "--bogus"}, ""},
	} {
		if got := unknownOption(testUsage, c.args); got != c.want {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
}

func TestParseArgsMessages(t *testing.T) {
	const usageLines = "Usage:\n    prog [-f <file>] [-d <dir>] [-p | -P] [--once [--once-timeout <seconds>]]\n" +
		"    prog [-f <file>] --check\n    prog (-h | --help)\n"
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--onse"}, UsageError, "", "prog: unknown option --onse (did you mean --once?)\n" + usageLines},
		{[]string{"-p", "-P"}, UsageError, "", "prog: these arguments do not fit any usage line: -p -P\n" + usageLines},
		{[]string{"--on"}, UsageError, "", "prog: --on is not a unique prefix: --once, --once-timeout?\n" + usageLines},
		{[]string{"-h"}, 0, testUsage, ""},
	} {
		var stdout, stderr bytes.Buffer
		a, code, ok := parseArgs(testUsage, c.args, &stdout, &stderr)
		if ok || a != nil || code != c.code || stdout.String() != c.stdout || stderr.String() != c.stderr {
			t.Errorf("%q: ok %v, code %d, stdout %q, stderr %q; want code %d, stdout %q, stderr %q",
				c.args, ok, code, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
		}
	}
	a, code, ok := parseArgs(testUsage, []string{"--che", "-f", "x"}, &bytes.Buffer{}, &bytes.Buffer{})
	if !ok || code != 0 || !a.Bool("--check") || a.String("--file") != "x" {
		t.Fatalf("--che -f x: %v %d %v", a, code, ok)
	}
}
