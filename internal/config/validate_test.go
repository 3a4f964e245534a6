package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	l, err := Load(filepath.Join(t.TempDir(), "missing.conf"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	stubSystem(l)

	pull, err := l.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	wantPull := &Config{Pull: Pull{
		Loglevel:     slog.LevelInfo,
		Retries:      1,
		Timeout:      100 * time.Millisecond,
		Interval:     500 * time.Millisecond,
		PullTimeout:  2 * time.Second,
		PullInterval: 10 * time.Second,
		BufferLimit:  6291456,
		DstDir:       "/var/lib/haproxystats/incoming",
		TmpDstDir:    "/var/lib/haproxystats/incoming.tmp",
		Workers:      8,
		QueueSize:    360,
		AllowPartial: false,
		MaxReplySize: 256 << 20,
	}}
	if !reflect.DeepEqual(pull, wantPull) {
		t.Errorf("pull defaults\n got %+v\nwant %+v", pull, wantPull)
	}

	process, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	wantProcess := &Config{
		Process: Process{
			Loglevel:              slog.LevelInfo,
			Workers:               4,
			SrcDir:                "/var/lib/haproxystats/incoming",
			LivenessCheckInterval: 10 * time.Second,
			MaxComponentLength:    255,
			MaxLineLength:         16000,
			LogDeliveries:         true,
		},
		Graphite: Graphite{
			Loglevel:       slog.LevelInfo,
			Server:         "127.0.0.1",
			Port:           3002,
			Retries:        3,
			Interval:       1800 * time.Millisecond,
			ConnectTimeout: time.Second,
			WriteTimeout:   time.Second,
			Delay:          10 * time.Second,
			Backoff:        2,
			Namespace:      "loadbalancers",
			PrefixHostname: true,
			FQDN:           true,
			QueueSize:      1000000,
			Hostname:       "testhost",
			Enabled:        true,
			QueueBytes:     4 << 20,
			StallTimeout:   time.Minute,
		},
	}
	if !reflect.DeepEqual(process, wantProcess) {
		t.Errorf("process defaults\n got %+v\nwant %+v", process, wantProcess)
	}
}

// TestConfigDefaultInheritance: DEFAULT reaches the sections that have no built-in value of
// their own (haproxystats' defaults are section-level, so pull keeps retries = 1).
func TestConfigDefaultInheritance(t *testing.T) {
	l, _ := loadText(t, "[DEFAULT]\nloglevel = debug\nretries = 7\nworkers = 6\n")
	pull, err := l.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	if pull.Pull.Loglevel != slog.LevelDebug || pull.Pull.Retries != 1 || pull.Pull.Workers != 8 {
		t.Errorf("pull: loglevel %v retries %d workers %d; want DEBUG, 1, 8",
			pull.Pull.Loglevel, pull.Pull.Retries, pull.Pull.Workers)
	}
	process, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if process.Process.Loglevel != slog.LevelDebug || process.Graphite.Loglevel != slog.LevelDebug {
		t.Errorf("process loglevels %v %v, want DEBUG", process.Process.Loglevel, process.Graphite.Loglevel)
	}
}

func TestConfigValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		prog Program
		text string
		get  func(*Config) any
		want any
	}{
		{"fractional durations", PullProgram, "[pull]\ntimeout = 0.25\ninterval = 0\npull-timeout = 1.5\npull-interval = 2.5\n",
			func(c *Config) any {
				return []time.Duration{c.Pull.Timeout, c.Pull.Interval, c.Pull.PullTimeout, c.Pull.PullInterval}
			},
			[]time.Duration{250 * time.Millisecond, 0, 1500 * time.Millisecond, 2500 * time.Millisecond}},
		{"python number syntax", PullProgram, "[pull]\nworkers = +0_8\nqueue-size = 007\ntimeout = 1e-1\npull-interval = 1_0.\nretries = -1\n",
			func(c *Config) any {
				return []any{c.Pull.Workers, c.Pull.QueueSize, c.Pull.Timeout, c.Pull.PullInterval, c.Pull.Retries}
			},
			[]any{8, 7, 100 * time.Millisecond, 10 * time.Second, -1}},
		{"booleans any case", PullProgram, "[pull]\nallow-partial = YES\n",
			func(c *Config) any { return c.Pull.AllowPartial }, true},
		{"typed pulls", PullProgram, "[pull]\ntyped = on\n",
			func(c *Config) any { return c.Pull.Typed }, true},
		{"typed pulls off by default", PullProgram, "[pull]\n",
			func(c *Config) any { return c.Pull.Typed }, false},
		{"socket-dir", PullProgram, "[pull]\nsocket-dir = /run/haproxy\n",
			func(c *Config) any { return c.Pull.SocketDir }, "/run/haproxy"},
		{"master-socket commas, spaces, continuation lines, unix://", PullProgram,
			"[pull]\nmaster-socket = /run/m1.sock, /run/m2.sock /run/m3.sock,\n  unix:///run/m4.sock\n",
			func(c *Config) any { return c.Pull.MasterSockets },
			[]string{"/run/m1.sock", "/run/m2.sock", "/run/m3.sock", "/run/m4.sock"}},
		{"master-socket alone makes the HAProxy source", PullProgram, "[pull]\nmaster-socket = /run/m.sock\n",
			func(c *Config) any { return len(c.Sources) == 1 && c.Sources[0].Legacy }, true},
		{"master-socket unset", PullProgram, "[pull]\n",
			func(c *Config) any { return c.Pull.MasterSockets == nil && len(c.Sources) == 0 }, true},
		{"servers in order with duplicates, spaces and continuation lines", PullProgram,
			"[pull]\nservers = unix:///run/a.sock, TCP://127.0.0.1:31999,\n  tcp://[::1]:4444 ,unix:///run/a.sock,\n  tcp://LB-1.example:080\n",
			func(c *Config) any { return c.Pull.Servers },
			[]Server{
				{Network: "unix", Address: "/run/a.sock", Name: "a.sock"},
				{Network: "tcp", Address: "127.0.0.1:31999", Name: "127.0.0.1:31999"},
				{Network: "tcp", Address: "[::1]:4444", Name: "::1:4444"},
				{Network: "unix", Address: "/run/a.sock", Name: "a.sock"},
				{Network: "tcp", Address: "LB-1.example:80", Name: "lb-1.example:80"},
			}},
		{"servers are not parsed by process", ProcessProgram, "[pull]\nservers = unix:///a\n",
			func(c *Config) any { return c.Pull.Servers }, []Server(nil)},
		{"process ignores pull's typed options", ProcessProgram, "[pull]\nworkers = two\n",
			func(c *Config) any { return c.Pull.Workers }, 0},
		{"metric lists", ProcessProgram, "[process]\nfrontend-metrics = bin bout\nbackend-metrics = bin act rtime\nserver-metrics = lbtot ctime throttle lbtot\n",
			func(c *Config) any {
				return [][]string{c.Process.FrontendMetrics, c.Process.BackendMetrics, c.Process.ServerMetrics}
			},
			[][]string{{"bin", "bout"}, {"bin", "act", "rtime"}, {"lbtot", "ctime", "throttle", "lbtot"}}},
		{"exclude files and process booleans", ProcessProgram,
			"[process]\nexclude-frontends = /e/f\nexclude-backends = /e/b\naggr-server-metrics = on\nper-process-metrics = 1\ncalculate-percentages = True\n",
			func(c *Config) any {
				p := c.Process
				return []any{p.ExcludeFrontends, p.ExcludeBackends, p.AggrServerMetrics, p.PerProcessMetrics, p.CalculatePercentages}
			},
			[]any{"/e/f", "/e/b", true, true, true}},
		{"graphite options", ProcessProgram,
			"[graphite]\nserver = ::1\nport = 2003\nretries = 0\ninterval = 0.5\nconnect-timeout = 0.2\nwrite-timeout = 3\ndelay = 0\nbackoff = 1.5\nnamespace = a.b\nprefix-hostname = false\nfqdn = off\nqueue-size = 10\nhostname = lb-01.example.com\n",
			func(c *Config) any { return c.Graphite },
			Graphite{Loglevel: slog.LevelInfo, Server: "::1", Port: 2003, Retries: 0, Interval: 500 * time.Millisecond,
				ConnectTimeout: 200 * time.Millisecond, WriteTimeout: 3 * time.Second, Delay: 0, Backoff: 1.5,
				Namespace: "a.b", PrefixHostname: false, FQDN: false, QueueSize: 10, Hostname: "lb-01.example.com", Enabled: true,
				QueueBytes: 4 << 20, StallTimeout: time.Minute}},
		{"empty hostname means the system host name", ProcessProgram, "[graphite]\nhostname =\n",
			func(c *Config) any { return c.Graphite.Hostname }, "testhost"},
		{"local-store turns the store on", ProcessProgram, "[paths]\nbase-dir = /b\n[local-store]\ndir = ${paths:base-dir}/ls\n",
			func(c *Config) any { return c.LocalStore }, &LocalStore{Dir: "/b/ls"}},
		{"graphite disabled with a local store", ProcessProgram, "[graphite]\nenabled = false\n[local-store]\ndir = /ls\n",
			func(c *Config) any { return c.Graphite.Enabled }, false},
		{"group-namespace", ProcessProgram, "[graphite]\ngroup-namespace = flavor\ngroup-namespace-double-writes = true\n[backend-groups]\napp = ^be_app$$\n",
			func(c *Config) any { return []any{c.Graphite.GroupNamespace, c.Graphite.GroupNamespaceDoubleWrites} },
			[]any{"flavor", true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			cfg, err := l.Config(tc.prog)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestConfigGroups(t *testing.T) {
	l, _ := loadText(t, "[DEFAULT]\nshared = x\n"+
		"[graphite]\ngroup-namespace = flavor\ngroup-namespace-double-writes = false\n"+
		"[backend-groups]\nZeta = ^be_z$$\nalpha = app\nshared = ignored\nloglevel = ignored\n"+
		"[frontend-groups]\nfe = ^fe_(main|alt)\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	type group struct{ name, pattern string }
	flat := func(gs []Group) []group {
		var out []group
		for _, g := range gs {
			out = append(out, group{g.Name, g.Pattern.String()})
		}
		return out
	}
	if got, want := flat(cfg.BackendGroups), []group{{"zeta", "^be_z$"}, {"alpha", "app"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("backend groups = %v, want %v", got, want)
	}
	if got, want := flat(cfg.FrontendGroups), []group{{"fe", "^fe_(main|alt)"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("frontend groups = %v, want %v", got, want)
	}
	if cfg.ServerGroups != nil {
		t.Errorf("server groups = %v, want none", cfg.ServerGroups)
	}
	if !cfg.BackendGroups[0].Pattern.MatchString("be_z") || cfg.BackendGroups[0].Pattern.MatchString("be_zz") {
		t.Error("^be_z$ does not behave as an anchored pattern")
	}
}

func TestLoglevels(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "DEBUG": slog.LevelDebug,
		"info": slog.LevelInfo, "Info": slog.LevelInfo, "notset": slog.LevelInfo,
		"warning": slog.LevelWarn, "WARN": slog.LevelWarn,
		"error": slog.LevelError, "critical": slog.LevelError, "FATAL": slog.LevelError,
	} {
		l, _ := loadText(t, "[pull]\nloglevel = "+in+"\n")
		cfg, err := l.Config(PullProgram)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if cfg.Pull.Loglevel != want {
			t.Errorf("loglevel %s = %v, want %v", in, cfg.Pull.Loglevel, want)
		}
	}
}

func TestPullTimeoutBelowOneWarns(t *testing.T) {
	l, _ := loadText(t, "[pull]\npull-timeout = 0.5\n[graphite]\nprefix_hostname = x\n")
	for i := 0; i < 2; i++ { // calling Config again must not repeat the warning
		cfg, err := l.Config(PullProgram)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Pull.PullTimeout != 500*time.Millisecond {
			t.Fatalf("PullTimeout = %v", cfg.Pull.PullTimeout)
		}
		if len(l.Warnings) != 2 || !strings.HasPrefix(l.Warnings[0], "option 'prefix_hostname'") ||
			l.Warnings[1] != "[pull] pull-timeout = 0.5 is below 1 second: haproxystats ignored values below 1 (no deadline at all); statspipe honours 500ms" {
			t.Fatalf("Warnings = %q", l.Warnings)
		}
	}
	if _, err := l.Config(ProcessProgram); err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 {
		t.Fatalf("process does not validate pull, but Warnings = %q", l.Warnings)
	}
}

// TestValidationMessages has one case per check of haproxystats.md §1.5 and per statspipe
// check. %[1]s in want is the file's path.
func TestValidationMessages(t *testing.T) {
	const (
		pull    = PullProgram
		process = ProcessProgram
		prefix  = "invalid configuration, file:'%[1]s' "
		groups  = "[graphite]\ngroup-namespace = flavor\ngroup-namespace-double-writes = true\n[backend-groups]\n"
	)
	for _, tc := range []struct {
		name string
		prog Program
		text string
		want string
	}{
		// 1. loglevel
		{"loglevel", pull, "[pull]\nloglevel = verbose\n",
			prefix + "line:2 section:'pull' option:'loglevel' value:'verbose' error: invalid loglevel 'verbose' (one of debug, info, warning, warn, error, critical, fatal, notset)"},
		{"loglevel inherited from DEFAULT", pull, "[DEFAULT]\nloglevel = verbose\n",
			prefix + "line:2 section:'pull' option:'loglevel' value:'verbose' (inherited from [DEFAULT]) error: invalid loglevel 'verbose' (one of debug, info, warning, warn, error, critical, fatal, notset)"},
		{"paths loglevel is checked first by process", process, "[paths]\nloglevel = loud\n[process]\nworkers = x\n",
			prefix + "line:2 section:'paths' option:'loglevel' value:'loud' error: invalid loglevel 'loud' (one of debug, info, warning, warn, error, critical, fatal, notset)"},
		// 2. typed options
		{"int", pull, "[pull]\nworkers = two\n",
			prefix + "line:2 section:'pull' option:'workers' value:'two' error: invalid literal for int() with base 10: 'two'"},
		{"inline comment makes an invalid int", pull, "[pull]\nworkers = 4 # x\n",
			prefix + "line:2 section:'pull' option:'workers' value:'4 # x' error: invalid literal for int() with base 10: '4 # x'"},
		{"float", pull, "[pull]\ntimeout = fast\n",
			prefix + "line:2 section:'pull' option:'timeout' value:'fast' error: could not convert string to float: 'fast'"},
		{"hex float is not Python", pull, "[pull]\ninterval = 0x1p-2\n",
			prefix + "line:2 section:'pull' option:'interval' value:'0x1p-2' error: could not convert string to float: '0x1p-2'"},
		{"bool", process, "[process]\naggr-server-metrics = maybe\n",
			prefix + "line:2 section:'process' option:'aggr-server-metrics' value:'maybe' error: Not a boolean: maybe"},
		{"self-metrics", process, "[process]\nself-metrics = sometimes\n",
			prefix + "line:2 section:'process' option:'self-metrics' value:'sometimes' error: Not a boolean: sometimes"},
		{"listen without port", pull, "[pull]\nlisten = localhost\n",
			prefix + "line:2 section:'pull' option:'listen' value:'localhost' error: must be host:port (e.g. 127.0.0.1:9310, [::1]:9310 or :9310), or empty to serve nothing: address localhost: missing port in address"},
		{"listen port", process, "[process]\nlisten = 127.0.0.1:http\n",
			prefix + "line:2 section:'process' option:'listen' value:'127.0.0.1:http' error: the port must be a number from 0 to 65535"},
		{"bool extension", pull, "[pull]\nallow-partial = partially\n",
			prefix + "line:2 section:'pull' option:'allow-partial' value:'partially' error: Not a boolean: partially"},
		{"typed", pull, "[pull]\ntyped = maybe\n",
			prefix + "line:2 section:'pull' option:'typed' value:'maybe' error: Not a boolean: maybe"},
		{"interpolated value", pull, "[DEFAULT]\nn = two\n[pull]\nworkers = ${n}\n",
			prefix + "line:4 section:'pull' option:'workers' value:'two' raw:'${n}' error: invalid literal for int() with base 10: 'two'"},
		{"interpolation failure", pull, "[pull]\nworkers = ${process:worker}\n",
			prefix + "line:2 section:'pull' option:'workers' value:'${process:worker}' error: Bad value substitution: option 'workers' in section 'pull' contains an interpolation key 'process:worker' which is not a valid option name (section 'process' has no option 'worker')"},
		{"interpolation failure in paths (process)", process, "[paths]\nbase-dir = /x/$\n",
			prefix + "line:2 section:'paths' option:'base-dir' value:'/x/$' error: '$' must be followed by '$' or '{', found: '$' (write $$ for a literal '$')"},
		{"int out of range", pull, "[pull]\nqueue-size = 99999999999999999999\n",
			prefix + "line:2 section:'pull' option:'queue-size' value:'99999999999999999999' error: value out of range"},
		// ranges (statspipe)
		{"pull workers 0", pull, "[pull]\nworkers = 0\n", prefix + "line:2 section:'pull' option:'workers' value:'0' error: must be 1 to 1024"},
		{"pull queue-size 0", pull, "[pull]\nqueue-size = 0\n", prefix + "line:2 section:'pull' option:'queue-size' value:'0' error: must be 1 to 1000000 snapshots"},
		{"pull retries -2", pull, "[pull]\nretries = -2\n", prefix + "line:2 section:'pull' option:'retries' value:'-2' error: must be -1 (retry forever), 0 (one attempt) or more"},
		{"pull timeout 0", pull, "[pull]\ntimeout = 0\n", prefix + "line:2 section:'pull' option:'timeout' value:'0' error: must be 0.001 to 86400 seconds (1 day)"},
		{"pull interval negative", pull, "[pull]\ninterval = -0.5\n", prefix + "line:2 section:'pull' option:'interval' value:'-0.5' error: must be 0 to 86400 seconds (1 day)"},
		{"pull-timeout 0", pull, "[pull]\npull-timeout = 0\n", prefix + "line:2 section:'pull' option:'pull-timeout' value:'0' error: must be 0.001 to 86400 seconds (1 day)"},
		{"pull-timeout nan", pull, "[pull]\npull-timeout = nan\n", prefix + "line:2 section:'pull' option:'pull-timeout' value:'nan' error: must be a finite number"},
		{"pull-interval inf", pull, "[pull]\npull-interval = -Infinity\n", prefix + "line:2 section:'pull' option:'pull-interval' value:'-Infinity' error: must be a finite number"},
		{"pull-interval huge", pull, "[pull]\npull-interval = 1e300\n", prefix + "line:2 section:'pull' option:'pull-interval' value:'1e300' error: must be 0.1 to 86400 seconds (1 day)"},
		{"dst-dir empty", pull, "[pull]\ndst-dir =\n", prefix + "line:2 section:'pull' option:'dst-dir' value:'' error: must not be empty"},
		{"process workers 0", process, "[process]\nworkers = 0\n", prefix + "line:2 section:'process' option:'workers' value:'0' error: must be 1 to 1024"},
		{"liveness-check-interval 0", process, "[process]\nliveness-check-interval = 0\n", prefix + "line:2 section:'process' option:'liveness-check-interval' value:'0' error: must be 0.1 to 86400 seconds (1 day); rescanning src-dir more often would only spin"},
		{"src-dir empty", process, "[process]\nsrc-dir =\n", prefix + "line:2 section:'process' option:'src-dir' value:'' error: must not be empty"},
		{"port 0", process, "[graphite]\nport = 0\n", prefix + "line:2 section:'graphite' option:'port' value:'0' error: must be a TCP port, 1 to 65535"},
		{"port 65536", process, "[graphite]\nport = 65536\n", prefix + "line:2 section:'graphite' option:'port' value:'65536' error: must be a TCP port, 1 to 65535"},
		{"graphite retries -2", process, "[graphite]\nretries = -2\n", prefix + "line:2 section:'graphite' option:'retries' value:'-2' error: must be -1 (retry forever), 0 (one attempt) or more"},
		{"connect-timeout 0", process, "[graphite]\nconnect-timeout = 0.0\n", prefix + "line:2 section:'graphite' option:'connect-timeout' value:'0.0' error: must be 0.001 to 86400 seconds (1 day)"},
		{"write-timeout negative", process, "[graphite]\nwrite-timeout = -1\n", prefix + "line:2 section:'graphite' option:'write-timeout' value:'-1' error: must be 0.001 to 86400 seconds (1 day)"},
		{"delay negative", process, "[graphite]\ndelay = -1\n", prefix + "line:2 section:'graphite' option:'delay' value:'-1' error: must be 0 to 86400 seconds (1 day)"},
		{"backoff below 1", process, "[graphite]\nbackoff = 0.5\n", prefix + "line:2 section:'graphite' option:'backoff' value:'0.5' error: must be at least 1"},
		{"graphite queue-size 0", process, "[graphite]\nqueue-size = 0\n", prefix + "line:2 section:'graphite' option:'queue-size' value:'0' error: must be 1 to 100000000 lines"},
		{"graphite enabled not a boolean", process, "[graphite]\nenabled = nope\n", prefix + "line:2 section:'graphite' option:'enabled' value:'nope' error: Not a boolean: nope"},
		// 3–5. pull's buffer-limit, socket-dir and servers, also checked by process
		{"buffer-limit below 1", pull, "[pull]\nbuffer-limit = 0\n",
			prefix + "line:2 section:'pull' option:'buffer-limit' value:'0' error: you can set a value less than 1 for 'buffer-limit' option of 'pull'section"},
		{"buffer-limit below 1 (process)", process, "[pull]\nbuffer-limit = -5\n",
			prefix + "line:2 section:'pull' option:'buffer-limit' value:'-5' error: you can set a value less than 1 for 'buffer-limit' option of 'pull'section"},
		{"buffer-limit not an int (process)", process, "[pull]\nbuffer-limit = big\n",
			prefix + "line:2 section:'pull' option:'buffer-limit' value:'big' error: invalid literal for int() with base 10: 'big'"},
		{"socket-dir empty", pull, "[pull]\nsocket-dir =\n",
			prefix + "line:2 section:'pull' option:'socket-dir' value:'' error: no value for option 'socket-dir'"},
		{"socket-dir empty (process)", process, "[pull]\nsocket-dir =\n",
			prefix + "line:2 section:'pull' option:'socket-dir' value:'' error: no value for option 'socket-dir'"},
		{"master-socket empty", pull, "[pull]\nmaster-socket = ,\n",
			prefix + "line:2 section:'pull' option:'master-socket' value:',' error: no value for option 'master-socket' (expected a comma- or space-separated list of absolute paths of HAProxy master CLI sockets, as given to haproxy -W -S)"},
		{"master-socket relative", pull, "[pull]\nmaster-socket = /run/a.sock run/b.sock\n",
			prefix + "line:2 section:'pull' option:'master-socket' value:'/run/a.sock run/b.sock' error: not an absolute path: 'run/b.sock' (expected a comma- or space-separated list of absolute paths of HAProxy master CLI sockets, as given to haproxy -W -S)"},
		{"master-socket directory", pull, "[pull]\nmaster-socket = /run/\n",
			prefix + "line:2 section:'pull' option:'master-socket' value:'/run/' error: '/run/' names a directory, not a socket (expected a comma- or space-separated list of absolute paths of HAProxy master CLI sockets, as given to haproxy -W -S)"},
		{"master-socket too many", pull, "[pull]\nmaster-socket =" + strings.Repeat(" /m", 65) + "\n",
			prefix + "line:2 section:'pull' option:'master-socket' value:'" + strings.Repeat(" /m", 65)[1:] + "' error: 65 sockets in 'master-socket', at most 64 are allowed"},
		{"servers empty", pull, "[pull]\nservers =\n",
			prefix + "line:2 section:'pull' option:'servers' value:'' error: no value for option 'servers' in the section 'pull'"},
		{"servers trailing comma", pull, "[pull]\nservers = unix:///a,\n",
			prefix + "line:2 section:'pull' option:'servers' value:'unix:///a,' error: invalid value for 'servers' option of 'pull' section (an empty item: check for a trailing or doubled comma)"},
		{"servers empty item", pull, "[pull]\nservers = unix:///a,,unix:///b\n",
			prefix + "line:2 section:'pull' option:'servers' value:'unix:///a,,unix:///b' error: invalid value for 'servers' option of 'pull' section (an empty item: check for a trailing or doubled comma)"},
		{"servers scheme", pull, "[pull]\nservers = http://h:80\n",
			prefix + "line:2 section:'pull' option:'servers' value:'http://h:80' error: only unix and tcp type of servers are supported set in 'servers' option of 'pull' section, got 'http://h:80'" + serversHelp},
		{"servers without scheme", pull, "[pull]\nservers = /run/haproxy.sock\n",
			prefix + "line:2 section:'pull' option:'servers' value:'/run/haproxy.sock' error: only unix and tcp type of servers are supported set in 'servers' option of 'pull' section, got '/run/haproxy.sock'" + serversHelp},
		{"servers tcp without port", pull, "[pull]\nservers = tcp://127.0.0.1\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://127.0.0.1' error: port is not set in 'servers' option of 'pull' section, got 'tcp://127.0.0.1'" + serversHelp},
		{"servers tcp with empty port", pull, "[pull]\nservers = tcp://h:\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://h:' error: port is not set in 'servers' option of 'pull' section, got 'tcp://h:'" + serversHelp},
		{"servers tcp IPv6 without port", pull, "[pull]\nservers = tcp://[::1]\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://[::1]' error: port is not set in 'servers' option of 'pull' section, got 'tcp://[::1]'" + serversHelp},
		{"servers tcp IPv6 without brackets", pull, "[pull]\nservers = tcp://::1:4444\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://::1:4444' error: invalid host:port (address ::1:4444: too many colons in address; an IPv6 address needs brackets: tcp://[::1]:4444) in 'servers' option of 'pull' section, got 'tcp://::1:4444'" + serversHelp},
		{"servers tcp without host", pull, "[pull]\nservers = tcp://:80\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://:80' error: host is not set in 'servers' option of 'pull' section, got 'tcp://:80'" + serversHelp},
		{"servers tcp bad port", pull, "[pull]\nservers = tcp://h:99999\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://h:99999' error: invalid port '99999', expected 1 to 65535, in 'servers' option of 'pull' section, got 'tcp://h:99999'" + serversHelp},
		{"servers tcp named port", pull, "[pull]\nservers = tcp://h:http\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://h:http' error: invalid port 'http', expected 1 to 65535, in 'servers' option of 'pull' section, got 'tcp://h:http'" + serversHelp},
		{"servers tcp with path", pull, "[pull]\nservers = tcp://h:1/x\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://h:1/x' error: a tcp server is only host:port, without user, path or query, in 'servers' option of 'pull' section, got 'tcp://h:1/x'" + serversHelp},
		{"servers unix without path", pull, "[pull]\nservers = unix://\n",
			prefix + "line:2 section:'pull' option:'servers' value:'unix://' error: path is not set in 'servers' option of 'pull' section, got 'unix://' (a UNIX socket is unix:// followed by an absolute path: unix:///run/haproxy/admin.sock)"},
		{"servers unix relative path", pull, "[pull]\nservers = unix://admin.sock\n",
			prefix + "line:2 section:'pull' option:'servers' value:'unix://admin.sock' error: path is not set in 'servers' option of 'pull' section, got 'unix://admin.sock' (a UNIX socket is unix:// followed by an absolute path: unix:///run/haproxy/admin.sock)"},
		{"servers unix directory", pull, "[pull]\nservers = unix:///run/\n",
			prefix + "line:2 section:'pull' option:'servers' value:'unix:///run/' error: path is not set in 'servers' option of 'pull' section, got 'unix:///run/' (the path names a directory, not a socket)"},
		{"servers checked by process too", process, "[pull]\nservers = tcp://h\n",
			prefix + "line:2 section:'pull' option:'servers' value:'tcp://h' error: port is not set in 'servers' option of 'pull' section, got 'tcp://h'" + serversHelp},
		// 6. group-namespace
		{"double-writes missing", process, "[graphite]\ngroup-namespace = flavor\n[backend-groups]\n",
			"invalid configuration, section:'graphite' option:'group-namespace-double-writes' value:'' error: No option 'group-namespace-double-writes' in section: 'graphite' (required when group-namespace is set)"},
		{"double-writes not a boolean", process, "[graphite]\ngroup-namespace = flavor\ngroup-namespace-double-writes = twice\n[backend-groups]\n",
			prefix + "line:3 section:'graphite' option:'group-namespace-double-writes' value:'twice' error: Not a boolean: twice"},
		{"double-writes not a boolean without group-namespace", process, "[graphite]\ngroup-namespace-double-writes = twice\n",
			prefix + "line:2 section:'graphite' option:'group-namespace-double-writes' value:'twice' error: Not a boolean: twice"},
		{"no groups section", process, "[graphite]\ngroup-namespace = flavor\ngroup-namespace-double-writes = true\n",
			prefix + "line:2 section:'graphite' option:'group-namespace' value:'flavor' error: at least one of these sections should exist: {'backend-groups', 'frontend-groups', 'server-groups'}"},
		{"groups without group-namespace", process, "[graphite]\n[server-groups]\na = b\n",
			"invalid configuration, section:'graphite' option:'group-namespace' value:'' error: no value for option 'group-namespace' in the section 'graphite' (section 'server-groups' in %[1]s line 2 needs it)"},
		{"group-namespace empty", process, "[graphite]\ngroup-namespace =\n[backend-groups]\n",
			prefix + "line:2 section:'graphite' option:'group-namespace' value:'' error: must not be empty"},
		// 7. src-dir writable: see TestSrcDirWritable. 8. metric lists
		{"frontend-metrics", process, "[process]\nfrontend-metrics = bin act\n",
			prefix + "line:2 section:'process' option:'frontend-metrics' value:'bin act' error: 'invalid list of metrics': unknown 'act' (names are separated by single spaces)"},
		{"backend-metrics", process, "[process]\nbackend-metrics = bin throttle\n",
			prefix + "line:2 section:'process' option:'backend-metrics' value:'bin throttle' error: 'invalid list of metrics': unknown 'throttle' (names are separated by single spaces)"},
		{"server-metrics double space", process, "[process]\nserver-metrics = lbtot  ctime\n",
			prefix + "line:2 section:'process' option:'server-metrics' value:'lbtot  ctime' error: 'invalid list of metrics': unknown '' (names are separated by single spaces)"},
		{"metrics list empty", process, "[process]\nserver-metrics =\n",
			prefix + "line:2 section:'process' option:'server-metrics' value:'' error: 'invalid list of metrics': unknown '' (names are separated by single spaces)"},
		// statspipe checks after §1.5
		{"group pattern RE2 rejects look-around", process, groups + "app = (?<=be_)app\n",
			prefix + "line:5 section:'backend-groups' option:'app' value:'(?<=be_)app' error: group 'app' has an invalid pattern: error parsing regexp: invalid named capture: `(?<=be_)app` (Go's RE2 syntax has no look-around or backreferences)"},
		{"group pattern RE2 rejects backreferences", process, groups + "app = (a)\\1\n",
			prefix + "line:5 section:'backend-groups' option:'app' value:'(a)\\\\1' error: group 'app' has an invalid pattern: error parsing regexp: invalid escape sequence: `\\1` (Go's RE2 syntax has no look-around or backreferences)"},
		{"group pattern invalid", process, groups + "app = (\n",
			prefix + "line:5 section:'backend-groups' option:'app' value:'(' error: group 'app' has an invalid pattern: error parsing regexp: missing closing ): `(` (Go's RE2 syntax has no look-around or backreferences)"},
		{"group pattern with a lone dollar", process, groups + "app = ^app$\n",
			prefix + "line:5 section:'backend-groups' option:'app' value:'^app$' error: '$' must be followed by '$' or '{', found: '$' (write $$ for a literal '$')"},
		{"local-store without dir", process, "[local-store]\n",
			prefix + "line:1 section:'local-store' option:'dir' value:'' error: No option 'dir' in section: 'local-store' (the section turns the local store on, so it needs a directory)"},
		{"local-store empty dir", process, "[local-store]\ndir =\n",
			prefix + "line:2 section:'local-store' option:'dir' value:'' error: must not be empty"},
		{"graphite disabled without local store", process, "[graphite]\nenabled = false\n",
			prefix + "line:2 section:'graphite' option:'enabled' value:'false' error: Graphite is disabled and there is no [local-store], [kafka] or [ship] section, so processed statistics would go nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := loadText(t, tc.text)
			cfg, err := l.Config(tc.prog)
			if err == nil {
				t.Fatalf("Config succeeded: %+v", cfg)
			}
			want := strings.ReplaceAll(tc.want, "%[1]s", path)
			if got := asConfigError(t, err).Error(); got != want {
				t.Fatalf("error\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestSrcDirWritable(t *testing.T) {
	dir := t.TempDir()
	l, _ := loadText(t, "[process]\nsrc-dir = "+dir+"\n")
	l.checkWritable = readWriteCheck
	if _, err := l.Config(ProcessProgram); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".read_write_check")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check file left behind: %v", err)
	}

	missing := filepath.Join(dir, "missing")
	l, path := loadText(t, "[paths]\nbase-dir = "+dir+"\n[process]\nsrc-dir = ${paths:base-dir}/missing\n")
	l.checkWritable = readWriteCheck
	_, err := l.Config(ProcessProgram)
	want := fmt.Sprintf("invalid configuration, file:'%s' line:4 section:'process' option:'src-dir' value:'%s' raw:'${paths:base-dir}/missing' "+
		"error: directory '%s' does not exist yet (start stats-pull first; but note that [pull] dst-dir is '/var/lib/haproxystats/incoming', not this directory)",
		path, missing, missing)
	if err == nil || asConfigError(t, err).Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	// The usual set-up: src-dir is stats-pull's dst-dir, which does not exist before its start.
	l, path = loadText(t, "[pull]\ndst-dir = "+missing+"\n[process]\nsrc-dir = "+missing+"\n")
	l.checkWritable = readWriteCheck
	_, err = l.Config(ProcessProgram)
	want = fmt.Sprintf("invalid configuration, file:'%s' line:4 section:'process' option:'src-dir' value:'%s' "+
		"error: directory '%s' does not exist yet (start stats-pull first: it creates its dst-dir, which stats-process reads as src-dir)",
		path, missing, missing)
	if err == nil || asConfigError(t, err).Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	file := writeFile(t, dir, "file", "")
	l, path = loadText(t, "[process]\nsrc-dir = "+file+"\n")
	l.checkWritable = readWriteCheck
	_, err = l.Config(ProcessProgram)
	want = fmt.Sprintf("invalid configuration, file:'%s' line:2 section:'process' option:'src-dir' value:'%s' "+
		"error: '%s' is not a directory (src-dir is the directory stats-pull publishes snapshots into: its dst-dir)", path, file, file)
	if err == nil || asConfigError(t, err).Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}

	if os.Geteuid() == 0 {
		t.Log("running as root: skipping the read-only directory case")
		return
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	l, _ = loadText(t, "[process]\nsrc-dir = "+ro+"\n")
	l.checkWritable = readWriteCheck
	if _, err := l.Config(ProcessProgram); err == nil || !strings.Contains(err.Error(), "error: read and write access is not granted for '"+ro+
		"' directory: permission denied (stats-process reads and removes snapshots there: run it as stats-pull's user or group, or give its user rwx on the directory)") {
		t.Fatalf("read-only src-dir: error %v", err)
	}
}

func TestHostnameFailure(t *testing.T) {
	l, _ := loadText(t, "[graphite]\nprefix-hostname = true\n")
	l.hostname = func() (string, error) { return "", errors.New("uname failed") }
	_, err := l.Config(ProcessProgram)
	want := "invalid configuration, section:'graphite' option:'hostname' value:'' error: cannot determine the system host name (uname failed); set hostname in [graphite]"
	if err == nil || asConfigError(t, err).Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	// Without the host in the path, the host name is not needed.
	l, _ = loadText(t, "[graphite]\nprefix-hostname = false\n")
	l.hostname = func() (string, error) { return "", errors.New("uname failed") }
	if _, err := l.Config(ProcessProgram); err != nil {
		t.Fatal(err)
	}
}

func TestPythonValueSyntax(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		want    int64
		rangeOK bool
	}{
		{"42", true, 42, true}, {" -7 ", true, -7, true}, {"+3", true, 3, true}, {"1_000", true, 1000, true},
		{"007", true, 7, true}, {"1__0", false, 0, true}, {"_1", false, 0, true}, {"1_", false, 0, true},
		{"1.0", false, 0, true}, {"", false, 0, true}, {"- 1", false, 0, true}, {"0x10", false, 0, true},
		{"9223372036854775808", true, 0, false},
	} {
		n, ok, err := parsePyInt(tc.in)
		if ok != tc.ok || (ok && (err == nil) != tc.rangeOK) || (ok && err == nil && n != tc.want) {
			t.Errorf("parsePyInt(%q) = %d, %v, %v", tc.in, n, ok, err)
		}
	}
	for _, tc := range []struct {
		in   string
		ok   bool
		want float64
	}{
		{"1", true, 1}, {"1.", true, 1}, {".5", true, 0.5}, {"-1.5e3", true, -1500}, {"1E-2", true, 0.01},
		{" 2 ", true, 2}, {"1_0.2_5", true, 10.25}, {"inf", true, math.Inf(1)}, {"+Infinity", true, math.Inf(1)}, {"-inf", true, math.Inf(-1)}, {"1e999", true, math.Inf(1)},
		{".", false, 0}, {"e3", false, 0}, {"1e", false, 0}, {"1.5.2", false, 0}, {"0x10", false, 0},
		{"1_", false, 0}, {"", false, 0}, {"infinit", false, 0}, {"1,5", false, 0},
	} {
		f, ok := parsePyFloat(tc.in)
		if ok != tc.ok || (ok && f != tc.want) {
			t.Errorf("parsePyFloat(%q) = %v, %v", tc.in, f, ok)
		}
	}
	if f, ok := parsePyFloat("NaN"); !ok || f == f {
		t.Errorf("parsePyFloat(NaN) = %v, %v", f, ok)
	}
	for in, want := range map[string]bool{"1": true, "YES": true, "On": true, "true": true, "0": false, "no": false, "OFF": false, "False": false} {
		if got, ok := parsePyBool(in); !ok || got != want {
			t.Errorf("parsePyBool(%q) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "y", "2", " true", "enabled"} {
		if _, ok := parsePyBool(in); ok {
			t.Errorf("parsePyBool(%q) accepted", in)
		}
	}
	for in, want := range map[string]string{
		"two": "'two'", "it's": `"it's"`, `a'b"c`: `'a\'b"c'`, "a\nb\tc\\": `'a\nb\tc\\'`, "\x00\xff": `'\x00\xff'`, "é": "'é'",
	} {
		if got := pyRepr(in); got != want {
			t.Errorf("pyRepr(%q) = %s, want %s", in, got, want)
		}
	}
}

// [pull] self-metrics adds the statspipe source, last; listen is kept as written.
func TestSelfMetricsOptions(t *testing.T) {
	l, _ := loadText(t, "[pull]\nservers = tcp://127.0.0.1:1\nself-metrics = true\nlisten = 127.0.0.1:9310\n[process]\nself-metrics = yes\nlisten = [::1]:0\n")
	stubSystem(l)
	cfg, err := l.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Pull.SelfMetrics || cfg.Pull.Listen != "127.0.0.1:9310" || len(cfg.Sources) != 2 ||
		cfg.Sources[1].Name != SelfMetricsSourceName || cfg.Sources[1].Kind != SelfMetricsSourceName {
		t.Errorf("pull: %+v sources %+v", cfg.Pull, cfg.Sources)
	}
	pcfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if !pcfg.Process.SelfMetrics || pcfg.Process.Listen != "[::1]:0" {
		t.Errorf("process: %+v", pcfg.Process)
	}
	def, _ := loadText(t, "[pull]\nservers = tcp://127.0.0.1:1\n")
	stubSystem(def)
	cfg, err = def.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pull.SelfMetrics || cfg.Pull.Listen != "" || len(cfg.Sources) != 1 {
		t.Errorf("defaults: %+v %+v", cfg.Pull, cfg.Sources)
	}
}
