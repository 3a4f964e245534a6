package nagios

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/spool"
	"github.com/statspipe/statspipe/internal/status"
)

// FreshnessUsage is the command line of check_statspipe_freshness.
const FreshnessUsage = `Nagios check: is the pipeline moving? Alerts on the age of stats-pull's last publish (a
stale pull: wrong or empty socket-dir, every source failing, stats-pull hung or gone), on the
age of stats-process's last delivery while snapshots wait (stuck processing: Graphite down,
stats-process hung or gone), on the age of the oldest queued snapshot and on the number of
quarantined snapshots. Ages are in seconds; thresholds are monitoring-plugins ranges (N alerts
above N, N: below N, ~:N above N, N:M outside, @N:M inside).

Usage:
    check_statspipe_freshness [options]
    check_statspipe_freshness (-h | --help)
    check_statspipe_freshness (-v | --version)

Options:
    -f, --file <file>               configuration file: dst-dir from [pull], src-dir from
                                    [process] (default: dst-dir) [default: /etc/haproxystats.conf]
    -w, --warning <range>           age of the last publish [default: 60]
    -c, --critical <range>          [default: 300]
    --delivery-warning <range>      age of the last delivery, while snapshots wait [default: 120]
    --delivery-critical <range>     [default: 600]
    --oldest-warning <range>        age of the oldest queued snapshot [default: 300]
    --oldest-critical <range>       [default: 900]
    --quarantine-warning <range>    snapshots in quarantine [default: 0]
    --quarantine-critical <range>   [default: 100]
    -h, --help                      show this screen
    -v, --version                   show version

The status files are written by the programs: <dst-dir>/.statspipe-pull-status.json after
every pull round, <src-dir>/.statspipe-process-status.json after every delivered snapshot.
With a [central] section (stats-process as the central tier: no spool), the check is of the
central tier alone: the age of its last delivery, judged at all times with --delivery-warning
and --delivery-critical (edges ship every round: a quiet tier is a stuck tier or silent edges),
read from <work-dir>/.statspipe-process-status.json, and the records in
<work-dir>/received.quarantine and <work-dir>/lines.quarantine with the --quarantine-* ranges.
Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a status file missing or unreadable,
usage errors). A host without the configuration file, or whose file has no [pull] dst-dir,
is OK: nothing runs there.
`

// FreshnessThresholds are the ranges of the four measures.
type FreshnessThresholds struct {
	PullWarn, PullCrit             Range
	DeliveryWarn, DeliveryCrit     Range
	OldestWarn, OldestCrit         Range
	QuarantineWarn, QuarantineCrit Range
}

// Freshness runs check_statspipe_freshness with args (program name excluded), writes its
// output to stdout and returns the exit status.
func Freshness(args []string, version string, stdout io.Writer) int {
	return freshness(args, version, stdout, time.Now)
}

func freshness(args []string, version string, stdout io.Writer, now func() time.Time) int {
	opts, code, ok := parseArgs(FreshnessUsage, args, version, stdout)
	if !ok {
		return code
	}
	var th FreshnessThresholds
	var errs []string
	for _, o := range []struct {
		name string
		dst  *Range
	}{
		{"--warning", &th.PullWarn}, {"--critical", &th.PullCrit},
		{"--delivery-warning", &th.DeliveryWarn}, {"--delivery-critical", &th.DeliveryCrit},
		{"--oldest-warning", &th.OldestWarn}, {"--oldest-critical", &th.OldestCrit},
		{"--quarantine-warning", &th.QuarantineWarn}, {"--quarantine-critical", &th.QuarantineCrit},
	} {
		s, _ := opts[o.name].(string)
		r, err := ParseRange(s)
		if err != nil {
			errs = append(errs, o.name+": "+err.Error())
		}
		*o.dst = r
	}
	if len(errs) > 0 {
		return freshnessUsageError(stdout, strings.Join(errs, "; "))
	}
	file, _ := opts["--file"].(string)
	return CheckFreshness(file, th, now()).Write(stdout)
}

func freshnessUsageError(stdout io.Writer, problem string) int {
	return usageErrorOf(FreshnessUsage, stdout, problem)
}

// CheckFreshness is the check on the configuration file at the time now.
func CheckFreshness(file string, th FreshnessThresholds, now time.Time) Result {
	if conf, err := config.ReadFile(file); err == nil {
		var missing *config.MissingError
		if _, err := conf.Get("central", "group"); !errors.As(err, &missing) || missing.Option != "" {
			return checkCentral(conf, th, now)
		}
	}
	conf, dst, res, ok := readDstDir(file)
	if !ok {
		return res
	}
	var missing *config.MissingError
	src, err := conf.Get("process", "src-dir")
	switch {
	case errors.As(err, &missing):
		src = dst
	case err != nil:
		return Result{State: Unknown, Text: "can't read the configuration: " + err.Error()}
	}

	pullPath := filepath.Join(dst, status.PullFile)
	pull, err := status.ReadPull(pullPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{State: Unknown, Text: "no status file " + pullPath + ": has stats-pull run yet?"}
	}
	if err != nil {
		return Result{State: Unknown, Text: "can't read stats-pull's status: " + err.Error()}
	}
	queue, err := spool.List(src)
	if err != nil {
		return Result{State: Unknown, Text: fmt.Sprintf("can't check %s due to %v", src, errors.Unwrap(err))}
	}
	procPath := filepath.Join(src, status.ProcessFile)
	proc, err := status.ReadProcess(procPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(queue) > 0:
		return Result{State: Unknown, Text: fmt.Sprintf("no status file %s: has stats-process run yet? (%d snapshot(s) wait in %s)", procPath, len(queue), src)}
	case errors.Is(err, fs.ErrNotExist):
		proc = nil
	case err != nil:
		return Result{State: Unknown, Text: "can't read stats-process's status: " + err.Error()}
	}
	qdir := spool.QuarantineDir(src)
	held, err := spool.QueueLen(qdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		held = 0
	case err != nil:
		return Result{State: Unknown, Text: fmt.Sprintf("can't count quarantined snapshots in %s: %v", qdir, errors.Unwrap(err))}
	}

	age := func(t time.Time) int64 { return max(0, int64(math.Floor(now.Sub(t).Seconds()))) }
	ago := func(t time.Time) string { return fmt.Sprintf("%ds ago", age(t)) }
	var (
		r        = Result{State: OK}
		problems []string
		summary  []string
		perf     []string
	)
	judge := func(v int64, warn, crit Range) State {
		st := Evaluate(float64(v), warn, crit)
		r.State = Worse(r.State, st)
		return st
	}

	// Stale pull.
	var pullAge int64
	var pullText string
	if p := pull.LastPublish; p != nil {
		pullAge = age(p.Time)
		pullText = fmt.Sprintf("stats-pull published %s (snapshot %s)", ago(p.Time), p.Snapshot)
	} else {
		pullAge = age(pull.Started)
		pullText = fmt.Sprintf("stats-pull has published nothing since it started %s", ago(pull.Started))
	}
	if st := judge(pullAge, th.PullWarn, th.PullCrit); st != OK {
		text := fmt.Sprintf("stats-pull published nothing for %ds", pullAge)
		if p := pull.LastPublish; p != nil {
			text += " (last snapshot " + p.Snapshot
		} else {
			text += " (none since it started"
		}
		if pull.RoundsWithoutPublish > 0 {
			text += fmt.Sprintf(", %d round(s) without one", pull.RoundsWithoutPublish)
		}
		if e := pull.LastError; e != nil {
			text += fmt.Sprintf(", last error %s: %s", ago(e.Time), e.Error)
		}
		problems = append(problems, text+")")
	} else {
		summary = append(summary, pullText)
	}
	r.Long = append(r.Long, fmt.Sprintf("pull: %s, last round ended %s (pid %d, status %s)", pullText, ago(pull.Updated), pull.PID, pullPath))
	if e := pull.LastError; e != nil {
		r.Long = append(r.Long, fmt.Sprintf("pull: last error %s: %s", ago(e.Time), e.Error))
	}
	perf = append(perf, fmt.Sprintf("pull_age=%ds;%s;%s;0;", pullAge, th.PullWarn.Text, th.PullCrit.Text))

	// Stuck processing: only while snapshots wait, since an empty spool is what a healthy
	// stats-process leaves behind, however long ago it last had something to do.
	deliveryPerf := ""
	switch {
	case proc == nil:
		r.Long = append(r.Long, "process: no status file "+procPath+" (stats-process has not run yet), nothing waits")
	default:
		since, what := proc.Started, fmt.Sprintf("stats-process has delivered nothing since it started %s", ago(proc.Started))
		if d := proc.LastDelivery; d != nil {
			since, what = d.Time, fmt.Sprintf("stats-process delivered %s (snapshot %s)", ago(d.Time), d.Snapshot)
		}
		deliveryAge := age(since)
		deliveryPerf = fmt.Sprintf("%ds", deliveryAge)
		st := OK
		if len(queue) > 0 {
			st = judge(deliveryAge, th.DeliveryWarn, th.DeliveryCrit)
		}
		if st != OK {
			problems = append(problems, fmt.Sprintf("stats-process delivered nothing for %ds while %d snapshot(s) wait", deliveryAge, len(queue)))
		} else {
			summary = append(summary, what)
		}
		r.Long = append(r.Long, fmt.Sprintf("process: %s, %d delivered by pid %d since it started %s (status %s)", what, proc.Delivered, proc.PID, ago(proc.Started), procPath))
	}
	if deliveryPerf != "" { // left out while unknown: Monitoring::Plugin does not parse "U"
		perf = append(perf, fmt.Sprintf("delivery_age=%s;%s;%s;0;", deliveryPerf, th.DeliveryWarn.Text, th.DeliveryCrit.Text))
	}

	// Oldest queued snapshot (names are epochs; a stray's name is not).
	var oldestAge int64
	oldest := ""
	for _, e := range queue {
		if ts, ok := spool.TimestampOf(e.Name); ok {
			oldest, oldestAge = e.Name, age(time.Unix(ts, 0))
			break // List is oldest first
		}
	}
	queueText := fmt.Sprintf("%d queued", len(queue))
	if oldest != "" {
		queueText += fmt.Sprintf(" (oldest %s, %ds old)", oldest, oldestAge)
	}
	if st := judge(oldestAge, th.OldestWarn, th.OldestCrit); st != OK {
		problems = append(problems, fmt.Sprintf("oldest queued snapshot %s is %ds old (%d queued)", oldest, oldestAge, len(queue)))
	} else {
		summary = append(summary, queueText)
	}
	r.Long = append(r.Long, fmt.Sprintf("queue: %s in %s", queueText, src))
	perf = append(perf, fmt.Sprintf("oldest_age=%ds;%s;%s;0;", oldestAge, th.OldestWarn.Text, th.OldestCrit.Text),
		fmt.Sprintf("queued=%d;;;0;", len(queue)))

	// Quarantine.
	if st := judge(int64(held), th.QuarantineWarn, th.QuarantineCrit); st != OK {
		problems = append(problems, fmt.Sprintf("%d snapshot(s) in quarantine", held))
	} else {
		summary = append(summary, fmt.Sprintf("%d quarantined", held))
	}
	r.Long = append(r.Long, fmt.Sprintf("quarantine: %d snapshot(s) in %s (stats-process could not read them; see the REASON file in each)", held, qdir))
	perf = append(perf, fmt.Sprintf("quarantined=%d;%s;%s;0;", held, th.QuarantineWarn.Text, th.QuarantineCrit.Text))

	if len(problems) > 0 {
		// Not "; ": Nagios turns semicolons of the output into colons (nagios.log's separator).
		r.Text = strings.Join(problems, ", ")
	} else {
		r.Text = strings.Join(summary, ", ")
	}
	r.Perfdata = strings.Join(perf, " ")
	return r.cleaned()
}

// cleaned replaces what would end the status line or start the perfdata in a text quoted from
// a status file (an error message) or a path.
func (r Result) cleaned() Result {
	clean := strings.NewReplacer("|", "/", "\n", " ", "\r", " ")
	r.Text = clean.Replace(r.Text)
	for i, l := range r.Long {
		r.Long[i] = clean.Replace(l)
	}
	return r
}

// CentralQuarantineDirs are where the central tier keeps what it cannot use: received
// snapshots (internal/central/tier's Received) and line records.
func CentralQuarantineDirs(workDir string) []string {
	return []string{spool.QuarantineDir(filepath.Join(workDir, "received")), spool.QuarantineDir(filepath.Join(workDir, "lines"))}
}

// checkCentral is the check of a central tier: its last delivery, judged at all times, and its
// quarantines.
func checkCentral(conf *config.File, th FreshnessThresholds, now time.Time) Result {
	var missing *config.MissingError
	work, err := conf.Get("central", "work-dir")
	switch {
	case errors.As(err, &missing):
		work = config.DefaultCentralWorkDir
	case err != nil:
		return Result{State: Unknown, Text: "can't read the configuration: " + err.Error()}
	}
	procPath := filepath.Join(work, status.ProcessFile)
	proc, err := status.ReadProcess(procPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{State: Unknown, Text: "no status file " + procPath + ": has stats-process (central tier) run yet?"}
	}
	if err != nil {
		return Result{State: Unknown, Text: "can't read stats-process's status: " + err.Error()}
	}
	held := 0
	var where []string
	for _, q := range CentralQuarantineDirs(work) {
		n, err := spool.QueueLen(q)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return Result{State: Unknown, Text: fmt.Sprintf("can't count quarantined records in %s: %v", q, errors.Unwrap(err))}
		}
		held += n
		where = append(where, fmt.Sprintf("%d in %s", n, q))
	}

	age := func(t time.Time) int64 { return max(0, int64(math.Floor(now.Sub(t).Seconds()))) }
	r := Result{State: OK}
	var problems, summary []string
	since, what := proc.Started, fmt.Sprintf("central tier has delivered nothing since it started %ds ago", age(proc.Started))
	if d := proc.LastDelivery; d != nil {
		since, what = d.Time, fmt.Sprintf("central tier delivered %ds ago (%s)", age(d.Time), d.Snapshot)
	}
	deliveryAge := age(since)
	if st := Evaluate(float64(deliveryAge), th.DeliveryWarn, th.DeliveryCrit); st != OK {
		r.State = Worse(r.State, st)
		text := fmt.Sprintf("central tier delivered nothing for %ds", deliveryAge)
		if d := proc.LastDelivery; d != nil {
			text += " (last " + d.Snapshot + ")"
		} else {
			text += " (none since it started)"
		}
		problems = append(problems, text)
	} else {
		summary = append(summary, what)
	}
	if st := Evaluate(float64(held), th.QuarantineWarn, th.QuarantineCrit); st != OK {
		r.State = Worse(r.State, st)
		problems = append(problems, fmt.Sprintf("%d record(s) in quarantine", held))
	} else {
		summary = append(summary, fmt.Sprintf("%d quarantined", held))
	}
	r.Long = []string{
		fmt.Sprintf("central: %s, %d delivered by pid %d since it started %ds ago (status %s)", what, proc.Delivered, proc.PID, age(proc.Started), procPath),
		"quarantine: " + strings.Join(where, ", ") + " (see the REASON file in each)",
	}
	r.Perfdata = fmt.Sprintf("delivery_age=%ds;%s;%s;0; quarantined=%d;%s;%s;0;", deliveryAge, th.DeliveryWarn.Text, th.DeliveryCrit.Text,
		held, th.QuarantineWarn.Text, th.QuarantineCrit.Text)
	r.Text = strings.Join(summary, ", ")
	if len(problems) > 0 {
		r.Text = strings.Join(problems, ", ")
	}
	return r.cleaned()
}
