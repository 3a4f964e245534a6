package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/statspipe/statspipe/internal/aggregate"
	"golang.org/x/sys/unix"
)

// Config validates the loaded configuration for prog and returns the typed configuration.
// The checks and their order follow haproxystats.md §1.5; the error is an *Error.
//
// pull validates [pull]. process validates [paths], [process] and [graphite] (each also
// re-checks pull's buffer-limit, socket-dir and servers, as haproxystats did), then that
// src-dir is writable, then the metric lists, then the *-groups patterns, [local-store] and
// the statspipe extensions. Only the validated sections are filled in: for pull, Process,
// Graphite, LocalStore and the groups stay zero; for process, Pull stays zero.
//
// Config replaces the validation-time warnings in l.Warnings (e.g. a pull-timeout below 1s),
// keeping the warnings of Load, so calling it twice does not repeat them.
func (l *Loaded) Config(prog Program) (*Config, error) {
	l.budget = readBudget{}
	v := &validator{l: l, cfg: &Config{File: l.mainFile}}
	switch prog {
	case PullProgram:
		v.checkSection("pull", prog)
		if p := v.cfg.Pull; !v.failed() && (p.SocketDir != "" || len(p.Servers) > 0 || len(p.MasterSockets) > 0) {
			v.cfg.Sources = append(v.cfg.Sources, Source{Name: LegacySourceName, Kind: LegacySourceName,
				Legacy: true, AllowPartial: p.AllowPartial})
		}
		v.checkSources(prog)
		if !v.failed() && v.cfg.Pull.SelfMetrics {
			v.cfg.Sources = append(v.cfg.Sources, Source{Name: SelfMetricsSourceName, Kind: SelfMetricsSourceName})
		}
	case ProcessProgram:
		for _, s := range []string{"paths", "process", "graphite"} {
			v.checkSection(s, prog)
		}
		v.checkSrcDir()
		v.checkMetricLists()
		v.checkGroups()
		v.checkLocalStore()
		v.checkKafka()
		v.checkShip()
		v.checkExtensions()
		v.checkCentral()
		v.checkLineLength()
		v.checkSources(prog)
	default:
		return nil, &Error{Reason: fmt.Sprintf("unknown program %d", prog)}
	}
	l.Warnings = append(append([]string(nil), l.loadWarnings...), v.warnings...)
	if v.err != nil {
		return nil, v.err
	}
	return v.cfg, nil
}

// validator records the first failure; every later step is a no-op, so the checks read as
// a straight list in §1.5 order.
type validator struct {
	l        *Loaded
	cfg      *Config
	err      *Error
	warnings []string
}

func (v *validator) failed() bool { return v.err != nil }

// fail records a problem with option of sect, whose raw value (if any) is val.
func (v *validator) fail(sect, option string, val *value, interpolated, reason string) {
	if v.err != nil {
		return
	}
	e := &Error{Section: sect, Option: option, Value: interpolated, Reason: reason}
	if val != nil {
		e.File, e.Line, e.Raw, e.SetIn = val.file, val.line, val.raw, val.section
	}
	v.err = e
}

// str reads option of sect, interpolated. ok is false when it is unset or failed.
func (v *validator) str(sect, option string) (string, *value, bool) {
	if v.failed() {
		return "", nil, false
	}
	mustBeKnown(sect, option)
	s, val, ok, err := v.l.get(sect, option)
	if err != nil {
		v.err = interpolationError(sect, option, val, err)
		return "", val, false
	}
	return s, val, ok
}

// mustBeKnown guards the invariant that every option Config reads is in the schema, which
// is what -p prints and what the unknown-option warnings check against.
func mustBeKnown(sect, option string) {
	if !isKnownOption(sect, option) {
		panic("config: option " + option + " of section " + sect + " is missing from the schema")
	}
}

// required reads an option that has a built-in default (so it is always present).
func (v *validator) required(sect, option string) (string, *value, bool) {
	s, val, ok := v.str(sect, option)
	if !ok && !v.failed() {
		v.fail(sect, option, nil, "", fmt.Sprintf("No option %s in section: %s", pyRepr(option), pyRepr(sect)))
	}
	return s, val, ok && !v.failed()
}

// integer reads an int in [min, max]; rangeText describes the range for the message.
func (v *validator) integer(sect, option string, min, max int64, rangeText string) int {
	n, _, _ := v.integerValue(sect, option, min, max, rangeText)
	return int(n)
}

func (v *validator) integerValue(sect, option string, min, max int64, rangeText string) (int64, string, *value) {
	s, val, ok := v.required(sect, option)
	if !ok {
		return 0, s, val
	}
	n, wellFormed, err := parsePyInt(s)
	switch {
	case !wellFormed:
		v.fail(sect, option, val, s, "invalid literal for int() with base 10: "+pyRepr(s))
	case err != nil:
		v.fail(sect, option, val, s, err.Error())
	case n < min || n > max:
		v.fail(sect, option, val, s, "must be "+rangeText)
	}
	return n, s, val
}

func (v *validator) boolean(sect, option string) bool {
	s, val, ok := v.required(sect, option)
	if !ok {
		return false
	}
	b, valid := parsePyBool(s)
	if !valid {
		v.fail(sect, option, val, s, "Not a boolean: "+s)
	}
	return b
}

// float reads a float that must be finite and at least min (greater than min when strict).
func (v *validator) float(sect, option string, min float64, strict bool) float64 {
	f, _, _ := v.floatValue(sect, option, min, strict)
	return f
}

func (v *validator) floatValue(sect, option string, min float64, strict bool) (float64, string, *value) {
	s, val, ok := v.required(sect, option)
	if !ok {
		return 0, s, val
	}
	f, valid := parsePyFloat(s)
	switch {
	case !valid:
		v.fail(sect, option, val, s, "could not convert string to float: "+pyRepr(s))
	case math.IsNaN(f) || math.IsInf(f, 0):
		v.fail(sect, option, val, s, "must be a finite number")
	case strict && f <= min:
		v.fail(sect, option, val, s, fmt.Sprintf("must be greater than %g", min))
	case !strict && f < min:
		v.fail(sect, option, val, s, fmt.Sprintf("must be at least %g", min))
	}
	return f, s, val
}

// Bounds that keep any configuration from crashing or spinning the programs. Every duration
// is at most maxDuration: longer ones are never meant, and sums such as the watchdog's
// 2 × (pull-interval + pull-timeout) must not overflow.
const (
	maxDuration = 24 * time.Hour
	// minTimeout: no connect or write completes in less.
	minTimeout = time.Millisecond
	// minLoopInterval is the shortest pull-interval and liveness-check-interval: a loop that
	// runs more often only burns CPU.
	minLoopInterval = 100 * time.Millisecond
	// minRetryPause is the shortest pause between connection attempts that may go on for long
	// (retries = -1 or more than maxQuickRetries): shorter ones spin on a dead peer.
	minRetryPause   = 10 * time.Millisecond
	maxQuickRetries = 10
	// maxWorkers bounds [pull] and [process] workers: each is a goroutine with its buffers.
	maxWorkers = 1024
)

// duration reads float seconds in [lo, maxDuration] with fractions honoured. why, if not "",
// explains the lower bound in the message.
func (v *validator) duration(sect, option string, lo time.Duration, why string) time.Duration {
	f, s, val := v.floatValue(sect, option, math.Inf(-1), false)
	if v.failed() {
		return 0
	}
	d := time.Duration(math.Round(min(f, maxDuration.Seconds()+1) * float64(time.Second)))
	if d < lo || d > maxDuration || (lo == 0 && f < 0) {
		reason := fmt.Sprintf("must be %s to %s seconds (1 day)", secondsText(lo), secondsText(maxDuration))
		if why != "" && d < lo {
			reason += "; " + why
		}
		v.fail(sect, option, val, s, reason)
		return 0
	}
	return d
}

func secondsText(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// retryPause checks that the interval option of sect, the pause between connection attempts,
// does not spin when attempts go on for long.
func (v *validator) retryPause(sect string, interval time.Duration, retries int) {
	if v.failed() || interval >= minRetryPause || (retries >= 0 && retries <= maxQuickRetries) {
		return
	}
	s, val, _ := v.str(sect, "interval")
	v.fail(sect, "interval", val, s, fmt.Sprintf("must be at least %s seconds when retries is -1 or more than %d "+
		"(retries = %d): connection attempts to a dead peer would spin", secondsText(minRetryPause), maxQuickRetries, retries))
}

func (v *validator) loglevel(sect string) slog.Level {
	s, val, ok := v.required(sect, "loglevel")
	if !ok {
		return 0
	}
	lvl, valid := parseLoglevel(s)
	if !valid {
		v.fail(sect, "loglevel", val, s, "invalid loglevel "+pyRepr(s)+
			" (one of debug, info, warning, warn, error, critical, fatal, notset)")
	}
	return lvl
}

// parseLoglevel maps Python's logging level names (any case) onto slog levels.
func parseLoglevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO", "NOTSET":
		return slog.LevelInfo, true
	case "WARNING", "WARN":
		return slog.LevelWarn, true
	case "ERROR", "CRITICAL", "FATAL":
		return slog.LevelError, true
	}
	return 0, false
}

const (
	retriesRange = "-1 (retry forever), 0 (one attempt) or more"
	workersRange = "1 to 1024"
)

// checkSection is haproxystats' configuration_check(config, section): §1.5 items 1–6.
func (v *validator) checkSection(sect string, prog Program) {
	lvl := v.loglevel(sect) // 1
	switch sect {           // 2
	case "paths":
		v.str("paths", "base-dir")
	case "pull":
		v.readPull(lvl)
	case "process":
		v.readProcess(lvl)
	case "graphite":
		v.readGraphite(lvl)
	}
	v.checkPullSources(prog) // 3–5
	if sect == "process" {
		v.checkGroupNamespace() // 6
	}
}

func (v *validator) readPull(lvl slog.Level) {
	p := &v.cfg.Pull
	p.Loglevel = lvl
	p.SocketDir, _, _ = v.str("pull", "socket-dir")
	v.str("pull", "servers") // parsed with checks 3–5
	p.MasterSockets = v.masterSockets()
	p.Retries = v.integer("pull", "retries", -1, math.MaxInt32, retriesRange)
	p.Timeout = v.duration("pull", "timeout", minTimeout, "")
	p.Interval = v.duration("pull", "interval", 0, "")
	v.retryPause("pull", p.Interval, p.Retries)
	p.PullTimeout = v.duration("pull", "pull-timeout", minTimeout, "")
	if !v.failed() && p.PullTimeout < time.Second {
		s, _, _ := v.str("pull", "pull-timeout")
		v.warnings = append(v.warnings, fmt.Sprintf("[pull] pull-timeout = %s is below 1 second: "+
			"haproxystats ignored values below 1 (no deadline at all); statspipe honours %s",
			s, p.PullTimeout))
	}
	p.PullInterval = v.duration("pull", "pull-interval", minLoopInterval, "pulling more often would only spin")
	p.BufferLimit = v.integer("pull", "buffer-limit", math.MinInt64, math.MaxInt64, "") // range: check 3
	p.DstDir = v.path("pull", "dst-dir")
	p.TmpDstDir = v.path("pull", "tmp-dst-dir")
	p.Workers = v.integer("pull", "workers", 1, maxWorkers, workersRange)
	p.QueueSize = v.integer("pull", "queue-size", 1, 1000000, "1 to 1000000 snapshots")
	p.AllowPartial = v.boolean("pull", "allow-partial")
	p.MaxReplySize = int64(v.integer("pull", "max-reply-size", 4096, 16<<30, "4096 bytes to 16 GiB (17179869184)"))
	p.SelfMetrics = v.boolean("pull", "self-metrics")
	p.Listen = v.listen("pull")
	p.Typed = v.boolean("pull", "typed")
}

// listen reads a listen option: empty (off) or host:port with a numeric port.
func (v *validator) listen(sect string) string {
	s, val, ok := v.required(sect, "listen")
	if !ok || s == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil:
		v.fail(sect, "listen", val, s, "must be host:port (e.g. 127.0.0.1:9310, [::1]:9310 or :9310), or empty to serve nothing: "+err.Error())
	case perr != nil || n < 0 || n > 65535:
		v.fail(sect, "listen", val, s, "the port must be a number from 0 to 65535")
	case strings.ContainsAny(host, " /"):
		v.fail(sect, "listen", val, s, "the host must be a host name or an IP address")
	}
	return s
}

// path reads a directory option that must not be empty.
func (v *validator) path(sect, option string) string {
	s, val, ok := v.required(sect, option)
	if ok && s == "" {
		v.fail(sect, option, val, s, "must not be empty")
	}
	return s
}

func (v *validator) readProcess(lvl slog.Level) {
	p := &v.cfg.Process
	p.Loglevel = lvl
	p.Workers = v.integer("process", "workers", 1, maxWorkers, workersRange)
	p.SrcDir = v.path("process", "src-dir")
	p.AggrServerMetrics = v.boolean("process", "aggr-server-metrics")
	p.PerProcessMetrics = v.boolean("process", "per-process-metrics")
	p.CalculatePercentages = v.boolean("process", "calculate-percentages")
	p.LogDeliveries = v.boolean("process", "log-deliveries")
	p.LivenessCheckInterval = v.duration("process", "liveness-check-interval", minLoopInterval,
		"rescanning src-dir more often would only spin")
	for _, o := range []string{"frontend-metrics", "backend-metrics", "server-metrics"} {
		v.str("process", o) // checked after src-dir, as haproxystats did (check 8)
	}
	p.ExcludeFrontends, _, _ = v.str("process", "exclude-frontends")
	p.ExcludeBackends, _, _ = v.str("process", "exclude-backends")
	p.MaxComponentLength = v.integer("process", "max-component-length", 32, 4096, "32 to 4096 bytes")
	p.MaxLineLength = v.integer("process", "max-line-length", 256, 1<<20, "256 bytes to 1 MiB")
	p.SelfMetrics = v.boolean("process", "self-metrics")
	p.Listen = v.listen("process")
	p.ServerStates = v.boolean("process", "server-states")
	for _, f := range []struct {
		option string
		dst    **regexp.Regexp
	}{
		{"frontend-include", &p.FrontendInclude},
		{"frontend-exclude", &p.FrontendExclude},
		{"backend-include", &p.BackendInclude},
		{"backend-exclude", &p.BackendExclude},
		{"server-include", &p.ServerInclude},
		{"server-exclude", &p.ServerExclude},
		{"metric-include", &p.MetricInclude},
		{"metric-exclude", &p.MetricExclude},
	} {
		*f.dst = v.filterPattern("process", f.option)
	}
	p.SkipMaintServers = v.boolean("process", "skip-maint-servers")
	p.AllMetrics = v.boolean("process", "all-metrics")
	p.AllMetricsAggregate = v.allMetricsAggregate()
	if !v.failed() && !p.AllMetrics && len(p.AllMetricsAggregate) > 0 {
		v.warnings = append(v.warnings, fmt.Sprintf("[process] %s%s (and %d more) has no effect: all-metrics is false",
			allMetricsAggregate, p.AllMetricsAggregate[0].Glob, len(p.AllMetricsAggregate)-1))
	}
}

// allMetricsAggregate is the prefix of the [process] options all-metrics-aggregate.<glob>.
const allMetricsAggregate = "all-metrics-aggregate."

// allMetricsAggregate reads the all-metrics-aggregate.<glob> = <functions> options of
// [process] in file order, with aggregate.ParsePolicies' syntax and checks.
func (v *validator) allMetricsAggregate() []aggregate.Rule {
	if v.failed() {
		return nil
	}
	sec := v.l.sections["process"]
	if sec == nil {
		return nil
	}
	var opts [][2]string
	for _, key := range sec.keys {
		if !strings.HasPrefix(key, allMetricsAggregate) {
			continue
		}
		s, val, _ := v.str("process", key)
		opt := [2]string{"aggregate." + key[len(allMetricsAggregate):], s}
		if _, err := aggregate.ParsePolicies([][2]string{opt}); err != nil {
			v.fail("process", key, val, s, strings.TrimPrefix(err.Error(), "option "+opt[0]+": ")+
				" (all-metrics-aggregate.<glob> = <functions>, the glob matching <kind>.<field>)")
			return nil
		}
		opts = append(opts, opt)
	}
	if len(opts) == 0 {
		return nil
	}
	p, err := aggregate.ParsePolicies(opts)
	if err != nil {
		v.err = &Error{File: sec.file, Line: sec.line, Section: "process", Reason: err.Error()}
		return nil
	}
	return p.Rules
}

// maxFilterPatternSize bounds one *-include / *-exclude pattern as patternSize counts it:
// every new name is matched against it (once; the result is kept with the name).
const maxFilterPatternSize = 100000

// filterPattern reads a cardinality-control pattern ([process] *-include, *-exclude): nil when
// empty, else the compiled RE2 pattern, searched unanchored.
func (v *validator) filterPattern(sect, option string) *regexp.Regexp {
	s, val, ok := v.required(sect, option)
	if !ok || s == "" {
		return nil
	}
	if parsed, err := syntax.Parse(s, syntax.Perl); err == nil {
		if size := patternSize(parsed); size > maxFilterPatternSize {
			v.fail(sect, option, val, s, fmt.Sprintf("the pattern is too large: it may expand to %d "+
				"regular-expression steps, at most %d are allowed (every new name is matched against it)",
				size, maxFilterPatternSize))
			return nil
		}
	}
	re, err := regexp.Compile(s)
	if err != nil {
		v.fail(sect, option, val, s, fmt.Sprintf("invalid regular expression: %v (Go's RE2 syntax has "+
			"no look-around or backreferences; write $$ for a literal '$')", err))
		return nil
	}
	return re
}

func (v *validator) readGraphite(lvl slog.Level) {
	g := &v.cfg.Graphite
	g.Loglevel = lvl
	g.Server, _, _ = v.required("graphite", "server")
	g.Port = v.integer("graphite", "port", 1, 65535, "a TCP port, 1 to 65535")
	g.Retries = v.integer("graphite", "retries", -1, math.MaxInt32, retriesRange)
	g.Interval = v.duration("graphite", "interval", 0, "")
	v.retryPause("graphite", g.Interval, g.Retries)
	g.ConnectTimeout = v.duration("graphite", "connect-timeout", minTimeout, "")
	g.WriteTimeout = v.duration("graphite", "write-timeout", minTimeout, "")
	g.Delay = v.duration("graphite", "delay", 0, "")
	if !v.failed() && g.Delay < minRetryPause && g.Interval < minRetryPause {
		s, val, _ := v.str("graphite", "delay")
		v.fail("graphite", "delay", val, s, fmt.Sprintf("delay and interval are both below %s seconds: "+
			"reconnecting to a dead Graphite would spin; set one of them to at least that", secondsText(minRetryPause)))
	}
	if g.Backoff = v.float("graphite", "backoff", 1, false); !v.failed() && g.Backoff > 1000 {
		s, val, _ := v.str("graphite", "backoff")
		v.fail("graphite", "backoff", val, s, "must be 1 to 1000")
	}
	g.Namespace = v.pathPart("graphite", "namespace", true)
	g.PrefixHostname = v.boolean("graphite", "prefix-hostname")
	g.FQDN = v.boolean("graphite", "fqdn")
	g.QueueSize = v.integer("graphite", "queue-size", 1, 100000000, "1 to 100000000 lines")
	g.GroupNamespace = v.pathPart("graphite", "group-namespace", false)
	if _, _, set := v.str("graphite", "group-namespace-double-writes"); set {
		g.GroupNamespaceDoubleWrites = v.boolean("graphite", "group-namespace-double-writes")
	}
	g.Hostname = v.pathPart("graphite", "hostname", false)
	g.Enabled = v.boolean("graphite", "enabled")
	g.QueueBytes = v.integer("graphite", "queue-bytes", 1<<16, 1<<32, "64 KiB (65536) to 4 GiB (4294967296)")
	g.StallTimeout = v.duration("graphite", "stall-timeout", time.Second, "")
}

// maxPathPart bounds the options that are part of every Graphite path: the path is repeated
// on every line, so a long one multiplies into the memory of every snapshot.
const maxPathPart = 1024

// pathPart reads a string option that becomes part of every Graphite path.
func (v *validator) pathPart(sect, option string, required bool) string {
	var s string
	var val *value
	if required {
		s, val, _ = v.required(sect, option)
	} else {
		s, val, _ = v.str(sect, option)
	}
	if !v.failed() && len(s) > maxPathPart {
		v.fail(sect, option, val, s, fmt.Sprintf("must be at most %d bytes: it is part of every Graphite path", maxPathPart))
	}
	return s
}

// maxServers bounds [pull] servers: every item is a connection, a goroutine and two files per round.
const maxServers = 1024

// checkPullSources are §1.5 items 3–5, which haproxystats ran for every validated section.
func (v *validator) checkPullSources(prog Program) {
	if n, s, val := v.integerValue("pull", "buffer-limit", math.MinInt64, math.MaxInt64, ""); !v.failed() && n < 1 {
		v.fail("pull", "buffer-limit", val, s,
			"you can set a value less than 1 for 'buffer-limit' option of 'pull'section")
	}
	if s, val, set := v.str("pull", "socket-dir"); set && s == "" {
		v.fail("pull", "socket-dir", val, s, "no value for option 'socket-dir'")
	}
	s, val, set := v.str("pull", "servers")
	if !set || v.failed() {
		return
	}
	servers, reason := parseServers(s)
	if reason != "" {
		v.fail("pull", "servers", val, s, reason)
		return
	}
	if prog == PullProgram {
		v.cfg.Pull.Servers = servers
	}
}

// maxMasterSockets bounds [pull] master-socket: each is up to maxMasterWorkers × 2 + 1
// connections per round.
const maxMasterSockets = 64

// masterSockets parses [pull] master-socket: absolute paths of UNIX sockets, separated by commas
// and/or whitespace (newlines of a continued value included).
func (v *validator) masterSockets() []string {
	s, val, set := v.str("pull", "master-socket")
	if !set || v.failed() {
		return nil
	}
	items := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	const help = " (expected a comma- or space-separated list of absolute paths of HAProxy master CLI sockets, " +
		"as given to haproxy -W -S)"
	switch {
	case len(items) == 0:
		v.fail("pull", "master-socket", val, s, "no value for option 'master-socket'"+help)
		return nil
	case len(items) > maxMasterSockets:
		v.fail("pull", "master-socket", val, s, fmt.Sprintf("%d sockets in 'master-socket', at most %d are allowed",
			len(items), maxMasterSockets))
		return nil
	}
	for _, item := range items {
		item = strings.TrimPrefix(item, "unix://")
		switch {
		case !strings.HasPrefix(item, "/"):
			v.fail("pull", "master-socket", val, s, "not an absolute path: "+pyRepr(item)+help)
			return nil
		case strings.HasSuffix(item, "/"):
			v.fail("pull", "master-socket", val, s, pyRepr(item)+" names a directory, not a socket"+help)
			return nil
		}
	}
	for i := range items {
		items[i] = strings.TrimPrefix(items[i], "unix://")
	}
	return items
}

const serversHelp = " (expected a comma-separated list of unix:///path/to/socket and tcp://host:port)"

// parseServers splits [pull] servers (haproxystats.md §1.5 item 5, §3.3). reason is "" when
// the list is valid.
func parseServers(s string) ([]Server, string) {
	items := strings.Split(s, ",")
	if len(items) == 1 && pyStrip(items[0]) == "" {
		return nil, "no value for option 'servers' in the section 'pull'"
	}
	if len(items) > maxServers {
		return nil, fmt.Sprintf("%d servers in 'servers' option of 'pull' section, at most %d are allowed", len(items), maxServers)
	}
	servers := make([]Server, 0, len(items))
	for _, item := range items {
		item = pyStrip(item)
		if item == "" {
			return nil, "invalid value for 'servers' option of 'pull' section (an empty item: " +
				"check for a trailing or doubled comma)"
		}
		scheme, rest, found := strings.Cut(item, "://")
		scheme = strings.ToLower(scheme)
		if !found || (scheme != "tcp" && scheme != "unix") {
			return nil, "only unix and tcp type of servers are supported set in 'servers' option of " +
				"'pull' section, got " + pyRepr(item) + serversHelp
		}
		var srv Server
		var reason string
		if scheme == "unix" {
			srv, reason = parseUnixServer(item, rest)
		} else {
			srv, reason = parseTCPServer(item, rest)
		}
		if reason != "" {
			return nil, reason
		}
		servers = append(servers, srv)
	}
	return servers, ""
}

func parseUnixServer(item, path string) (Server, string) {
	if !strings.HasPrefix(path, "/") {
		return Server{}, "path is not set in 'servers' option of 'pull' section, got " + pyRepr(item) +
			" (a UNIX socket is unix:// followed by an absolute path: unix:///run/haproxy/admin.sock)"
	}
	if strings.HasSuffix(path, "/") {
		return Server{}, "path is not set in 'servers' option of 'pull' section, got " + pyRepr(item) +
			" (the path names a directory, not a socket)"
	}
	return Server{Network: "unix", Address: path, Name: filepath.Base(path)}, ""
}

func parseTCPServer(item, hostport string) (Server, string) {
	bad := func(why string) (Server, string) {
		return Server{}, why + " in 'servers' option of 'pull' section, got " + pyRepr(item) + serversHelp
	}
	if strings.ContainsAny(hostport, "/?#@") {
		return bad("a tcp server is only host:port, without user, path or query,")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if !strings.Contains(hostport, ":") || strings.HasSuffix(hostport, "]") {
			return bad("port is not set")
		}
		return bad("invalid host:port (" + err.Error() + "; an IPv6 address needs brackets: tcp://[::1]:4444)")
	}
	if port == "" {
		return bad("port is not set")
	}
	if host == "" {
		return bad("host is not set")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return bad("invalid port " + pyRepr(port) + ", expected 1 to 65535,")
	}
	// urlparse lower-cases the host name and reads the port as an integer; the snapshot file
	// name is built from those, so tcp://LB:080 and tcp://lb:80 name the same files.
	name := strings.ToLower(host) + ":" + strconv.Itoa(n)
	return Server{Network: "tcp", Address: net.JoinHostPort(host, strconv.Itoa(n)), Name: name}, ""
}

// checkGroupNamespace is §1.5 item 6.
func (v *validator) checkGroupNamespace() {
	ns, nsVal, set := v.str("graphite", "group-namespace")
	if v.failed() {
		return
	}
	var present []string
	for _, g := range groupSections {
		if v.l.hasSection(g) {
			present = append(present, g)
		}
	}
	if !set {
		if len(present) > 0 {
			s := v.l.sections[present[0]]
			v.fail("graphite", "group-namespace", nil, "",
				fmt.Sprintf("no value for option 'group-namespace' in the section 'graphite' "+
					"(section %s in %s line %d needs it)", pyRepr(s.name), s.file, s.line))
		}
		return
	}
	if ns == "" {
		v.fail("graphite", "group-namespace", nsVal, ns, "must not be empty")
		return
	}
	dw, dwVal, dwSet := v.str("graphite", "group-namespace-double-writes")
	if v.failed() {
		return
	}
	if !dwSet {
		v.fail("graphite", "group-namespace-double-writes", nil, "",
			"No option 'group-namespace-double-writes' in section: 'graphite' (required when group-namespace is set)")
		return
	}
	if _, ok := parsePyBool(dw); !ok {
		v.fail("graphite", "group-namespace-double-writes", dwVal, dw, "Not a boolean: "+dw)
		return
	}
	if len(present) == 0 {
		v.fail("graphite", "group-namespace", nsVal, ns,
			"at least one of these sections should exist: {'backend-groups', 'frontend-groups', 'server-groups'}")
	}
}

// checkSrcDir is §1.5 item 7. The reason says what is wrong and what to do; haproxystats'
// "read and write access is not granted" stays for the cases it described.
func (v *validator) checkSrcDir() {
	if v.failed() || v.l.hasSection("central") {
		return // the central tier consumes from Kafka, not from src-dir
	}
	dir := v.cfg.Process.SrcDir
	if err := v.l.checkWritable(dir); err != nil {
		_, val, _ := v.str("process", "src-dir")
		v.fail("process", "src-dir", val, dir, v.srcDirReason(dir, err))
	}
}

func (v *validator) srcDirReason(dir string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		hint := "start stats-pull first: it creates its dst-dir, which stats-process reads as src-dir"
		if dst, _, ok, derr := v.l.get("pull", "dst-dir"); ok && derr == nil && filepath.Clean(dst) != filepath.Clean(dir) {
			hint = fmt.Sprintf("start stats-pull first; but note that [pull] dst-dir is %s, not this directory", pyRepr(dst))
		}
		return fmt.Sprintf("directory %s does not exist yet (%s)", pyRepr(dir), hint)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Sprintf("%s is not a directory (src-dir is the directory stats-pull publishes snapshots into: its dst-dir)", pyRepr(dir))
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("read and write access is not granted for %s directory: permission denied "+
			"(stats-process reads and removes snapshots there: run it as stats-pull's user or group, "+
			"or give its user rwx on the directory)", pyRepr(dir))
	case errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("read and write access is not granted for %s directory: it is on a read-only filesystem "+
			"(stats-process removes the snapshots it delivered)", pyRepr(dir))
	}
	return fmt.Sprintf("read and write access is not granted for %s directory, error:%v", pyRepr(dir), err)
}

// accessCheck is readWriteCheck without a side effect, for Check: the directory must exist and
// the effective user must be allowed to read, write and search it.
func accessCheck(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR}
	}
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.R_OK|unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return &fs.PathError{Op: "access", Path: dir, Err: err}
	}
	return nil
}

// readWriteCheck creates and deletes <dir>/.read_write_check, as haproxystats did.
func readWriteCheck(dir string) error {
	path := filepath.Join(dir, ".read_write_check")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return err
	}
	return os.Remove(path)
}

// checkMetricLists is §1.5 item 8: each list is split on single spaces.
func (v *validator) checkMetricLists() {
	p := &v.cfg.Process
	for _, o := range []struct {
		option string
		dst    *[]string
	}{
		{"frontend-metrics", &p.FrontendMetrics},
		{"backend-metrics", &p.BackendMetrics},
		{"server-metrics", &p.ServerMetrics},
	} {
		s, val, set := v.str("process", o.option)
		if !set || v.failed() {
			continue
		}
		names := strings.Split(s, " ")
		var invalid []string
		for _, n := range names {
			if !validMetricNames[o.option][n] {
				invalid = append(invalid, pyRepr(n))
			}
		}
		if len(invalid) > 0 {
			v.fail("process", o.option, val, s, "'invalid list of metrics': unknown "+
				strings.Join(invalid, ", ")+" (names are separated by single spaces)")
			return
		}
		*o.dst = names
	}
}

// checkGroups compiles the *-groups patterns (RE2). Group names that are DEFAULT options are
// inherited values, not groups, and are skipped as haproxystats did (§5.7).
func (v *validator) checkGroups() {
	var total int64
	for _, g := range []struct {
		section string
		dst     *[]Group
	}{
		{"frontend-groups", &v.cfg.FrontendGroups},
		{"backend-groups", &v.cfg.BackendGroups},
		{"server-groups", &v.cfg.ServerGroups},
	} {
		s, ok := v.l.sections[g.section]
		if !ok || v.failed() {
			continue
		}
		for _, name := range s.keys {
			if _, inherited := v.l.defaults.values[name]; inherited {
				continue
			}
			pattern, val, _, err := v.l.get(g.section, name)
			if err != nil {
				v.err = interpolationError(g.section, name, val, err)
				return
			}
			if parsed, err := syntax.Parse(pattern, syntax.Perl); err == nil {
				size := patternSize(parsed)
				if total += size; total > maxGroupPatternSize {
					v.fail(g.section, name, val, pattern, fmt.Sprintf("the group patterns are too large: "+
						"together they may expand to at most %d regular-expression steps, and this one "+
						"brings them to %d (each name is matched against them, so their size is CPU time)",
						maxGroupPatternSize, total))
					return
				}
			}
			re, err := regexp.Compile(pattern)
			if err != nil {
				v.fail(g.section, name, val, pattern, fmt.Sprintf("group %s has an invalid pattern: %v "+
					"(Go's RE2 syntax has no look-around or backreferences)", pyRepr(name), err))
				return
			}
			*g.dst = append(*g.dst, Group{Name: name, Pattern: re})
		}
	}
}

// maxGroupPatternSize bounds the size of all group patterns together, as patternSize counts
// it. Matching costs about this many steps per byte of a name; a legitimate configuration
// (tens of patterns, or one alternation of hundreds of names) stays far below.
const maxGroupPatternSize = 100000

// patternSize estimates the compiled size of re, repetitions expanded (x{1000} is 1000 copies
// of x, as RE2 compiles it), saturating instead of overflowing.
func patternSize(re *syntax.Regexp) int64 {
	const ceiling = 1 << 40
	var n int64 = 1
	switch re.Op {
	case syntax.OpLiteral:
		n += int64(len(re.Rune))
	case syntax.OpRepeat:
		copies := re.Max
		if copies < 0 {
			copies = re.Min + 1 // x{n,} is n copies and a star
		}
		n += patternSize(re.Sub[0]) * int64(max(copies, 1))
	default:
		for _, sub := range re.Sub {
			n = min(n+patternSize(sub), ceiling)
		}
	}
	return min(n, ceiling)
}

// checkLocalStore requires dir when [local-store] exists: its presence turns the dispatcher on.
func (v *validator) checkLocalStore() {
	if v.failed() || !v.l.hasSection("local-store") {
		return
	}
	dir, val, set := v.str("local-store", "dir")
	switch {
	case v.failed():
	case !set:
		s := v.l.sections["local-store"]
		v.err = &Error{File: s.file, Line: s.line, Section: "local-store", Option: "dir",
			Reason: "No option 'dir' in section: 'local-store' (the section turns the local store on, so it needs a directory)"}
	case dir == "":
		v.fail("local-store", "dir", val, dir, "must not be empty")
	default:
		v.cfg.LocalStore = &LocalStore{Dir: dir}
	}
}

// checkExtensions validates what only statspipe has: the host name and a disabled Graphite.
func (v *validator) checkExtensions() {
	if v.failed() {
		return
	}
	g := &v.cfg.Graphite
	if g.Hostname == "" {
		h, err := v.l.hostname()
		if err != nil && g.PrefixHostname {
			v.fail("graphite", "hostname", nil, "", "cannot determine the system host name ("+
				err.Error()+"); set hostname in [graphite]")
			return
		}
		g.Hostname = h
	}
	if !g.Enabled && v.cfg.LocalStore == nil && v.cfg.Kafka == nil && v.cfg.Ship == nil {
		s, val, _ := v.str("graphite", "enabled")
		v.fail("graphite", "enabled", val, s, "Graphite is disabled and there is no "+
			"[local-store], [kafka] or [ship] section, so processed statistics would go nowhere")
	}
}
