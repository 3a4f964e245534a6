package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBounds: every upper and lower bound that keeps a configuration from crashing or spinning
// the programs, each just inside (accepted) and just outside (one-line error naming the file,
// line, section, option and value). Values haproxystats users run with stay accepted.
func TestBounds(t *testing.T) {
	const (
		pull    = PullProgram
		process = ProcessProgram
	)
	for _, tc := range []struct {
		name string
		prog Program
		text string
		want string // the error after "error: ", "" when the text is valid
	}{
		{"pull workers 1024", pull, "[pull]\nworkers = 1024\n", ""},
		{"pull workers 1025", pull, "[pull]\nworkers = 1025\n", "must be 1 to 1024"},
		{"pull workers int32 max", pull, "[pull]\nworkers = 2147483647\n", "must be 1 to 1024"},
		{"process workers 1024", process, "[process]\nworkers = 1024\n", ""},
		{"process workers int32 max", process, "[process]\nworkers = 2147483647\n", "must be 1 to 1024"},
		{"pull queue-size 1000000", pull, "[pull]\nqueue-size = 1000000\n", ""},
		{"pull queue-size 1000001", pull, "[pull]\nqueue-size = 1000001\n", "must be 1 to 1000000 snapshots"},
		{"graphite queue-size 100000000", process, "[graphite]\nqueue-size = 100000000\n", ""},
		{"graphite queue-size 100000001", process, "[graphite]\nqueue-size = 100000001\n", "must be 1 to 100000000 lines"},

		{"pull-interval 0.1", pull, "[pull]\npull-interval = 0.1\n", ""},
		{"pull-interval 0.000001", pull, "[pull]\npull-interval = 0.000001\n",
			"must be 0.1 to 86400 seconds (1 day); pulling more often would only spin"},
		{"pull-interval 0.09", pull, "[pull]\npull-interval = 0.09\n",
			"must be 0.1 to 86400 seconds (1 day); pulling more often would only spin"},
		{"pull-interval one day", pull, "[pull]\npull-interval = 86400\n", ""},
		{"pull-interval over a day", pull, "[pull]\npull-interval = 86400.5\n", "must be 0.1 to 86400 seconds (1 day)"},
		{"pull-timeout 1 ms", pull, "[pull]\npull-timeout = 0.001\n", ""},
		{"pull-timeout below 1 ms", pull, "[pull]\npull-timeout = 0.0004\n", "must be 0.001 to 86400 seconds (1 day)"},
		{"pull-timeout 292 years", pull, "[pull]\npull-timeout = 9223372036\n", "must be 0.001 to 86400 seconds (1 day)"},
		{"pull timeout 1e308", pull, "[pull]\ntimeout = 1e308\n", "must be 0.001 to 86400 seconds (1 day)"},
		{"pull interval negative tiny", pull, "[pull]\ninterval = -1e-300\n", "must be 0 to 86400 seconds (1 day)"},
		{"pull interval 0 with one retry (haproxystats-compatible)", pull, "[pull]\ninterval = 0\nretries = 1\n", ""},
		{"pull interval 0 with 10 retries", pull, "[pull]\ninterval = 0\nretries = 10\n", ""},
		{"pull interval 0 with 11 retries", pull, "[pull]\ninterval = 0\nretries = 11\n",
			"must be at least 0.01 seconds when retries is -1 or more than 10 (retries = 11): connection attempts to a dead peer would spin"},
		{"pull interval 0 retrying forever", pull, "[pull]\ninterval = 0.001\nretries = -1\n",
			"must be at least 0.01 seconds when retries is -1 or more than 10 (retries = -1): connection attempts to a dead peer would spin"},
		{"pull interval 0.01 retrying forever", pull, "[pull]\ninterval = 0.01\nretries = -1\n", ""},
		{"max-reply-size 4096", pull, "[pull]\nmax-reply-size = 4096\n", ""},
		{"max-reply-size 4095", pull, "[pull]\nmax-reply-size = 4095\n", "must be 4096 bytes to 16 GiB (17179869184)"},
		{"max-reply-size 16 GiB", pull, "[pull]\nmax-reply-size = 17179869184\n", ""},
		{"max-reply-size above 16 GiB", pull, "[pull]\nmax-reply-size = 17179869185\n", "must be 4096 bytes to 16 GiB (17179869184)"},
		{"buffer-limit huge stays accepted (it is capped at 256 KiB)", pull, "[pull]\nbuffer-limit = 9223372036854775807\n", ""},

		{"liveness-check-interval 0.1", process, "[process]\nliveness-check-interval = 0.1\n", ""},
		{"liveness-check-interval 0.000001", process, "[process]\nliveness-check-interval = 0.000001\n",
			"must be 0.1 to 86400 seconds (1 day); rescanning src-dir more often would only spin"},
		{"liveness-check-interval over a day", process, "[process]\nliveness-check-interval = 1e9\n", "must be 0.1 to 86400 seconds (1 day)"},
		{"max-component-length 31", process, "[process]\nmax-component-length = 31\n", "must be 32 to 4096 bytes"},
		{"max-component-length 4097", process, "[process]\nmax-component-length = 4097\n", "must be 32 to 4096 bytes"},
		{"max-line-length 255", process, "[process]\nmax-line-length = 255\n", "must be 256 bytes to 1 MiB"},
		{"max-line-length 1 MiB", process, "[process]\nmax-line-length = 1048576\n", ""},
		{"max-line-length above 1 MiB", process, "[process]\nmax-line-length = 1048577\n", "must be 256 bytes to 1 MiB"},

		{"graphite connect-timeout below 1 ms", process, "[graphite]\nconnect-timeout = 0.0001\n", "must be 0.001 to 86400 seconds (1 day)"},
		{"graphite write-timeout over a day", process, "[graphite]\nwrite-timeout = 100000\n", "must be 0.001 to 86400 seconds (1 day)"},
		{"graphite delay over a day", process, "[graphite]\ndelay = 86401\n", "must be 0 to 86400 seconds (1 day)"},
		{"graphite delay 0 with an interval (haproxystats-compatible)", process, "[graphite]\ndelay = 0\ninterval = 1\n", ""},
		{"graphite interval 0 with a delay", process, "[graphite]\ninterval = 0\nretries = 3\ndelay = 10\n", ""},
		{"graphite delay and interval 0", process, "[graphite]\ninterval = 0\nretries = 3\ndelay = 0\n",
			"delay and interval are both below 0.01 seconds: reconnecting to a dead Graphite would spin; set one of them to at least that"},
		{"graphite interval 0 retrying forever", process, "[graphite]\ninterval = 0\nretries = -1\n",
			"must be at least 0.01 seconds when retries is -1 or more than 10 (retries = -1): connection attempts to a dead peer would spin"},
		{"graphite backoff 1000", process, "[graphite]\nbackoff = 1000\n", ""},
		{"graphite backoff 1001", process, "[graphite]\nbackoff = 1001\n", "must be 1 to 1000"},
		{"graphite backoff inf", process, "[graphite]\nbackoff = inf\n", "must be a finite number"},
		{"queue-bytes 64 KiB", process, "[graphite]\nqueue-bytes = 65536\n", ""},
		{"queue-bytes below 64 KiB", process, "[graphite]\nqueue-bytes = 65535\n", "must be 64 KiB (65536) to 4 GiB (4294967296)"},
		{"queue-bytes above 4 GiB", process, "[graphite]\nqueue-bytes = 4294967297\n", "must be 64 KiB (65536) to 4 GiB (4294967296)"},
		{"stall-timeout 1 s", process, "[graphite]\nstall-timeout = 1\n", ""},
		{"stall-timeout below 1 s", process, "[graphite]\nstall-timeout = 0.5\n", "must be 1 to 86400 seconds (1 day)"},

		{"namespace of 1024 bytes", process, "[graphite]\nnamespace = " + strings.Repeat("n", 1024) + "\n", ""},
		{"namespace of 1025 bytes", process, "[graphite]\nnamespace = " + strings.Repeat("n", 1025) + "\n", "must be at most 1024 bytes: it is part of every Graphite path"},
		{"group-namespace of 1025 bytes", process, "[graphite]\ngroup-namespace-double-writes = true\ngroup-namespace = " + strings.Repeat("n", 1025) + "\n[backend-groups]\na = b\n", "must be at most 1024 bytes: it is part of every Graphite path"},
		{"hostname of 1025 bytes", process, "[graphite]\nhostname = " + strings.Repeat("n", 1025) + "\n", "must be at most 1024 bytes: it is part of every Graphite path"},
		{"1024 servers", pull, "[pull]\nservers = " + strings.TrimSuffix(strings.Repeat("unix:///run/a.sock,", 1024), ",") + "\n", ""},
		{"1025 servers", pull, "[pull]\nservers = " + strings.TrimSuffix(strings.Repeat("unix:///run/a.sock,", 1025), ",") + "\n",
			"1025 servers in 'servers' option of 'pull' section, at most 1024 are allowed"},

		// Values from haproxystats configurations in the field.
		{"haproxystats pull example", pull, "[pull]\nsocket-dir = /run/haproxy\nretries = 1\ntimeout = 0.1\ninterval = 0.5\n" +
			"pull-timeout = 10\npull-interval = 10\nbuffer-limit = 6291456\nworkers = 8\nqueue-size = 360\n", ""},
		{"haproxystats process example", process, "[process]\nworkers = 4\nliveness-check-interval = 10\n" +
			"[graphite]\nretries = 10\ninterval = 0.8\nconnect-timeout = 0.9\nwrite-timeout = 0.4\ndelay = 10\nbackoff = 2\nqueue-size = 1000000\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := loadText(t, tc.text)
			_, err := l.Config(tc.prog)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want error %q", tc.want)
			}
			msg := asConfigError(t, err).Error()
			if !strings.HasPrefix(msg, "invalid configuration, file:"+pyRepr(path)+" line:") ||
				!strings.Contains(msg, " section:") || !strings.Contains(msg, " option:") || !strings.Contains(msg, " value:") {
				t.Errorf("message does not name file, line, section, option and value: %s", msg)
			}
			if !strings.HasSuffix(msg, " error: "+tc.want) {
				t.Fatalf("error\n got %s\nwant ... error: %s", msg, tc.want)
			}
		})
	}
}

// fanoutLiteral is fanout with text in every level: the literal text of referenced values
// counts toward the bound as much as the leaves do.
func fanoutLiteral(literal string) string {
	var b strings.Builder
	b.WriteString("[s]\n")
	for i := 0; i < 9; i++ {
		fmt.Fprintf(&b, "k%d = %s%s$$\n", i, literal, strings.Repeat(fmt.Sprintf("${k%d}", i+1), 8))
	}
	b.WriteString("k9 = x\n")
	return b.String()
}

// TestInterpolationBombs: values that each stay small but expand enormously, or many values
// that each stay below the per-value bounds, end with an error, through every way of reading.
func TestInterpolationBombs(t *testing.T) {
	t.Run("literal text of referenced values counts", func(t *testing.T) {
		l := newLoaded()
		// k8 = 100 kB of text and eight references: reading k0 would write 100 kB × 8^8.
		if err := l.parse("t.conf", []byte(fanoutLiteral(strings.Repeat("y", 100000))+"b = ${k0}\n")); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := l.get("s", "b")
		if err == nil || !strings.Contains(err.Error(), "value substitution grows beyond 1048576 bytes (a reference reached through ${s:k8}") {
			t.Fatalf("error %v", err)
		}
	})

	// Each v<i> expands to 4^5 × 1000 bytes, about 1 MB in 1365 steps: below the per-value
	// bounds, but 3000 of them are 3 GB for -P.
	var many strings.Builder
	many.WriteString("[DEFAULT]\n")
	for i := 1; i < 6; i++ {
		fmt.Fprintf(&many, "k%d = %s\n", i, strings.Repeat(fmt.Sprintf("${k%d}", i+1), 4))
	}
	many.WriteString("k6 = " + strings.Repeat("y", 1000) + "\n")
	for i := range 3000 {
		fmt.Fprintf(&many, "v%d = ${k1}\n", i)
	}
	// Each w<i> expands to nothing in 87381 steps.
	var steps strings.Builder
	steps.WriteString("[DEFAULT]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&steps, "k%d = %s\n", i, strings.Repeat(fmt.Sprintf("${k%d}", i+1), 4))
	}
	steps.WriteString("k9 =\n")
	for i := range 3000 {
		fmt.Fprintf(&steps, "w%d = ${k1}\n", i)
	}
	// No interpolation at all: 3000 sections each inherit 3000 empty DEFAULT options with
	// 200-byte names, 2 GB of -P from a 630 kB file.
	var wide strings.Builder
	wide.WriteString("[DEFAULT]\n")
	for i := range 3000 {
		fmt.Fprintf(&wide, "d%s%d =\n", strings.Repeat("o", 200), i)
	}
	for i := range 3000 {
		fmt.Fprintf(&wide, "[s%d]\n", i)
	}
	// Thousands of group patterns that each expand to about 1 MB: the pattern size bound
	// stops them before the budget of all reads does.
	var groups strings.Builder
	groups.WriteString("[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = true\n[DEFAULT]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&groups, "k%d = %s\n", i, strings.Repeat(fmt.Sprintf("${k%d}", i+1), 4))
	}
	groups.WriteString("k9 = yyyyyyyyyyyyyyy\n[backend-groups]\n")
	for i := range 3000 {
		fmt.Fprintf(&groups, "g%d = ${k1}\n", i)
	}
	for _, tc := range []struct {
		name, text, want string
		prog             Program
		print            bool
	}{
		{"many values near the per-value bound, -P", many.String(), "the configuration's values add up to more than 64 MiB when read", PullProgram, true},
		{"many values of many steps, -P", steps.String(), "the configuration's values need more than 1000000 substitution steps in total", ProcessProgram, true},
		{"many sections inheriting a wide DEFAULT, -P", wide.String(), "the configuration's values add up to more than 64 MiB when read", ProcessProgram, true},
		{"many group patterns near the per-value bound", groups.String(), "error: the group patterns are too large", ProcessProgram, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			var err error
			var out bytes.Buffer
			if tc.print {
				err = l.Print(&out, tc.prog)
			} else {
				_, err = l.Config(tc.prog)
			}
			if err == nil || !strings.Contains(asConfigError(t, err).Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if n := len(err.Error()); n > 2048 {
				t.Fatalf("the message is %d bytes long: %.300s", n, err)
			}
			if out.Len() != 0 {
				t.Fatalf("Print wrote %d bytes before failing", out.Len())
			}
			if tc.print {
				t.Logf("stopped after %d value bytes and %d substitutions", l.budget.bytes, l.budget.substitutions)
			}
		})
	}

	t.Run("the budget is per Print and per Config", func(t *testing.T) {
		l, _ := loadText(t, "[pull]\nworkers = 3\n")
		for range 3 {
			var out bytes.Buffer
			if err := l.Print(&out, ProcessProgram); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Config(PullProgram); err != nil {
				t.Fatal(err)
			}
		}
		if l.budget.bytes == 0 || l.budget.bytes > 16<<10 {
			t.Fatalf("budget after one Config: %d bytes", l.budget.bytes)
		}
	})
}

func TestGroupPatternSize(t *testing.T) {
	head := "[graphite]\ngroup-namespace = g\ngroup-namespace-double-writes = true\n[backend-groups]\n"
	names := make([]string, 500)
	for i := range names {
		names[i] = fmt.Sprintf("be_application_%04d", i)
	}
	for _, tc := range []struct{ name, groups, want string }{
		{"an alternation of 500 names", "all = ^(" + strings.Join(names, "|") + ")$$\n", ""},
		{"repetitions", "x = (" + func() string {
			alternatives := make([]string, 60) // a{1000}|b{1000}|…: 60 × 1000 copies
			for i := range alternatives {
				alternatives[i] = string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[i]) + "{1000}"
			}
			return strings.Join(alternatives, "|")
		}() + ")\n", "the group patterns are too large: together they may expand to at most 100000 regular-expression steps"},
		{"many patterns add up", func() string {
			var b strings.Builder
			for i := range 200 {
				fmt.Fprintf(&b, "p%d = a{600}\n", i)
			}
			return b.String()
		}(), "the group patterns are too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, head+tc.groups)
			_, err := l.Config(ProcessProgram)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(asConfigError(t, err).Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigFileSize(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "big.conf", "[pull]\nx = "+strings.Repeat("y", maxConfigBytes)+"\n")
	if _, err := Load(big, true, ""); err == nil || !strings.Contains(asConfigError(t, err).Error(),
		"cannot read the configuration file: the configuration files add up to more than 16 MiB") {
		t.Fatalf("error %v", err)
	}
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), "more than 16 MiB") {
		t.Fatalf("ReadFile error %v", err)
	}
	// -d files count together: five files of 4 MiB are too much.
	confd := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		writeFile(t, confd, fmt.Sprintf("%d.conf", i), fmt.Sprintf("[s%d]\nx = %s\n", i, strings.Repeat("y", 4<<20)))
	}
	main := writeFile(t, dir, "main.conf", "[pull]\n")
	_, err := Load(main, true, confd)
	if err == nil || !strings.Contains(asConfigError(t, err).Error(), "3.conf' error: cannot read the configuration file: the configuration files add up to more than 16 MiB") {
		t.Fatalf("error %v", err)
	}
	// /dev/zero never ends.
	if _, err := Load("/dev/zero", true, ""); err == nil || !strings.Contains(err.Error(), "more than 16 MiB") {
		t.Fatalf("/dev/zero: error %v", err)
	}
}

// TestLongNamesAreCheap: a megabyte-long unknown option name gets a short warning without a
// suggestion, instead of an edit distance over every known name.
func TestLongNamesAreCheap(t *testing.T) {
	l, _ := loadText(t, "[pull]\n"+strings.Repeat("w", 1<<20)+"orkers = 2\n")
	if len(l.Warnings) != 1 || strings.Contains(l.Warnings[0], "did you mean") || len(l.Warnings[0]) > 1024 ||
		!strings.Contains(l.Warnings[0], "…(1048582 bytes)") {
		t.Fatalf("warnings: %.400q", l.Warnings)
	}
}
