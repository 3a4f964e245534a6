package nagios

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/docopt/docopt-go"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/spool"
)

// QueueUsage is the command line of check_statspipe_queue_size. -f, -o and -w are those of
// haproxystats' check_haproxystats_queue_size.py, so existing Nagios command definitions keep
// working with the new program name.
const QueueUsage = `Nagios check: the number of snapshots waiting in stats-pull's queue (dst-dir).

Usage:
    check_statspipe_queue_size [-f <file>] [-o <ok>] [-w <warning>] [-q]
    check_statspipe_queue_size (-h | --help)
    check_statspipe_queue_size (-v | --version)

Options:
    -f, --file <file>        configuration file; dst-dir is read from its [pull] section
                             [default: /etc/haproxystats.conf]
    -o, --ok <ok>            a queue of up to this many snapshots is OK [default: 60]
    -w, --warning <warning>  a queue of up to this many is WARNING; more is CRITICAL
                             [default: 120]
    -q, --quarantine         also WARNING when snapshots wait in quarantine
                             (<dst-dir>.quarantine: snapshots stats-process could not read)
    -h, --help               show this screen
    -v, --version            show version

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (including usage errors). A host without
the configuration file, or whose file has no [pull] dst-dir, is OK: nothing runs there.
`

// QueueSize runs the queue check with the command-line arguments args (program name excluded),
// writes its output to stdout and returns the exit status.
func QueueSize(args []string, version string, stdout io.Writer) int {
	opts, code, ok := parseArgs(QueueUsage, args, version, stdout)
	if !ok {
		return code
	}
	file, _ := opts["--file"].(string)
	okLimit, err1 := threshold(opts, "--ok", "-o")
	warnLimit, err2 := threshold(opts, "--warning", "-w")
	if err1 != nil || err2 != nil {
		return usageError(stdout, strings.Join(errTexts(err1, err2), "; "))
	}
	if okLimit > warnLimit {
		return usageError(stdout, fmt.Sprintf("-o %d is above -w %d: the OK range must end where the WARNING range begins", okLimit, warnLimit))
	}
	quarantine, _ := opts["--quarantine"].(bool)
	return checkQueue(file, okLimit, warnLimit, quarantine).Write(stdout)
}

func threshold(opts docopt.Opts, name, flag string) (int, error) {
	s, _ := opts[name].(string)
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative integer", flag, s)
	}
	return n, nil
}

func errTexts(errs ...error) []string {
	var texts []string
	for _, err := range errs {
		if err != nil {
			texts = append(texts, err.Error())
		}
	}
	return texts
}

func usageError(stdout io.Writer, problem string) int {
	return usageErrorOf(QueueUsage, stdout, problem)
}

// usageErrorOf is UNKNOWN with the problem and the usage lines of a check's usage text.
func usageErrorOf(usage string, stdout io.Writer, problem string) int {
	return Result{State: Unknown, Text: problem,
		Long: []string{strings.TrimSpace(usage[strings.Index(usage, "Usage:"):strings.Index(usage, "Options:")])}}.Write(stdout)
}

// parseArgs parses a check's command line: -h and -v print and exit OK, a usage error is
// UNKNOWN (monitoring-plugins' convention) with the usage lines. ok is false when the check
// should exit with code.
func parseArgs(usage string, args []string, version string, stdout io.Writer) (opts docopt.Opts, code int, ok bool) {
	var usageErr error
	parser := &docopt.Parser{HelpHandler: func(err error, usage string) {
		if err == nil { // -h or -v: usage is the text to show
			fmt.Fprintln(stdout, usage)
			return
		}
		usageErr = err
	}}
	opts, err := parser.ParseArgs(usage, args, "statspipe "+version)
	switch {
	case usageErr != nil || (err != nil && opts == nil):
		problem := "invalid command line"
		if usageErr != nil && usageErr.Error() != "" {
			problem += ": " + usageErr.Error()
		}
		return nil, usageErrorOf(usage, stdout, problem), false
	case opts == nil:
		return nil, int(OK), false
	}
	return opts, 0, true
}

func checkQueue(file string, okLimit, warnLimit int, quarantine bool) Result {
	_, dir, res, ok := readDstDir(file)
	if !ok {
		return res
	}

	queued, err := spool.QueueLen(dir)
	if err != nil {
		return Result{State: Unknown, Text: fmt.Sprintf("can't check %s due to %v", dir, errors.Unwrap(err))}
	}
	r := Result{State: OK}
	switch {
	case queued > warnLimit:
		r.State = Critical
	case queued > okLimit:
		r.State = Warning
	}
	r.Text = fmt.Sprintf("queue size %d: Queue location=%s, Thresholds OK=%d WARNING=%d and any higher value is critical",
		queued, dir, okLimit, warnLimit)
	r.Perfdata = fmt.Sprintf("queue_size=%d;%d;%d;0;", queued, okLimit, warnLimit)

	qdir := spool.QuarantineDir(dir)
	held, err := spool.QueueLen(qdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		held = 0
	case err != nil:
		r.Long = append(r.Long, fmt.Sprintf("can't count quarantined snapshots in %s: %v", qdir, errors.Unwrap(err)))
		if quarantine && r.State == OK {
			r.State = Unknown
		}
		return r
	}
	warnAt := "" // perfdata thresholds say when the check alerts
	if quarantine {
		warnAt = "0"
	}
	r.Perfdata += fmt.Sprintf(" quarantined=%d;%s;;0;", held, warnAt)
	if held > 0 {
		r.Long = append(r.Long, fmt.Sprintf("%d snapshot(s) in quarantine at %s: stats-process could not read them; see the REASON file in each", held, qdir))
		if quarantine && r.State == OK {
			r.State = Warning
		}
	}
	return r
}

// readDstDir reads the checks' configuration file and its [pull] dst-dir, in the programs' INI
// dialect without their defaults. When ok is false the check's result is res: OK for a host
// without the configuration (the checks can be deployed everywhere, as haproxystats' were),
// UNKNOWN for a file that cannot be read.
func readDstDir(file string) (conf *config.File, dir string, res Result, ok bool) {
	conf, err := config.ReadFile(file)
	if err != nil {
		return nil, "", Result{State: Unknown, Text: "can't read the configuration: " + err.Error()}, false
	}
	dir, err = conf.Get("pull", "dst-dir")
	var missing *config.MissingError
	switch {
	case errors.As(err, &missing):
		text := "missing configuration as I got: " + missing.Error()
		if !conf.Exists {
			text += " (" + file + " does not exist)"
		}
		return nil, "", Result{State: OK, Text: text}, false
	case err != nil:
		return nil, "", Result{State: Unknown, Text: "can't read the configuration: " + err.Error()}, false
	}
	return conf, dir, Result{}, true
}
