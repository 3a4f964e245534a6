package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestMaxLineLengthFitsThePaths: a max-line-length that the configured path parts leave no room
// in is a one-line start-up error giving the size to set; one that only lines with names of
// max-component-length bytes exceed is accepted with a warning; the defaults and sane
// configurations give neither.
func TestMaxLineLengthFitsThePaths(t *testing.T) {
	// hostname testhost (stubSystem): prefix "loadbalancers.testhost.haproxy" is 30 bytes, and
	// the longest line with 32-byte names 30 + 17 + 2×32 + 80 = 191 bytes; a namespace of n bytes
	// makes it n + 178.
	long := strings.Repeat("n", 1024)
	dotted := strings.TrimSuffix(strings.Repeat(strings.Repeat("n", 203)+".", 5), ".")
	group200 := strings.Repeat("g", 200)
	withGroup := func(section string) string {
		return "[graphite]\ngroup-namespace = gr\ngroup-namespace-double-writes = false\n[" + section + "]\n" + group200 + " = .\n"
	}
	for _, tc := range []struct {
		name    string
		text    string
		want    string // the error after "error: ", "" when accepted
		warning string // a substring of the one warning, "" for none
	}{
		{"defaults", "", "", ""},
		{"max-line-length at its minimum", "[process]\nmax-line-length = 256\n", "",
			"[process] max-line-length = 256 is shorter than the longest Graphite line whose names are max-component-length (255) bytes long"},
		{"the e2e long-line configuration", "[process]\nmax-line-length = 300\n", "",
			"Raise max-line-length to 637 or lower max-component-length to 86"},
		{"short names fit exactly", "[process]\nmax-line-length = 300\nmax-component-length = 86\n", "", ""},
		{"1024-byte namespace and hostname at the default length", "[graphite]\nnamespace = " + long + "\nhostname = " + long + "\n", "", ""},
		{"the largest names at the default length", "[process]\nmax-component-length = 4096\n[graphite]\nnamespace = " + long + "\nhostname = " + long + "\n" +
			"group-namespace = " + long + "\ngroup-namespace-double-writes = true\n[backend-groups]\n" + long + " = .\n", "", ""},
		{"a line of exactly max-line-length fits", "[process]\nmax-line-length = 256\n[graphite]\nnamespace = " + strings.Repeat("n", 13+65) + "\n", "", "names are max-component-length"},
		{"one byte more does not", "[process]\nmax-line-length = 256\n[graphite]\nnamespace = " + strings.Repeat("n", 13+66) + "\n",
			"the longest Graphite line with names of 32 bytes is about 257 bytes (prefix 96 + group namespace and group 0 + " +
				".backend..server. 17 + 2 names × 32 + metric, value and timestamp 80), more than " +
				"max-line-length, so nearly every line would be left out and every snapshot quarantined; raise max-line-length " +
				"to at least 257, or shorten namespace, hostname, group-namespace or the group names", ""},
		// a 1024-byte component is shortened to max-component-length, five of 203 bytes are not
		{"a 1024-byte namespace component in 1 kB lines", "[process]\nmax-line-length = 1024\n[graphite]\nnamespace = " + long + "\n", "", ""},
		{"a 1019-byte dotted namespace in 1 kB lines", "[process]\nmax-line-length = 1024\n[graphite]\nnamespace = " + dotted + "\n",
			"raise max-line-length to at least " + strconv.Itoa(1019+1+8+8+17+64+80), ""},
		{"a long backend group", "[process]\nmax-line-length = 300\n" + withGroup("backend-groups"),
			"raise max-line-length to at least " + strconv.Itoa(30+(2+1+200+1)+17+64+80), ""},
		{"a long frontend group (one name)", "[process]\nmax-line-length = 300\n" + withGroup("frontend-groups"),
			"raise max-line-length to at least " + strconv.Itoa(30+(2+1+200+1)+len(".frontend.")+32+80), ""},
		{"a long server group (one name)", "[process]\nmax-line-length = 300\n" + withGroup("server-groups"),
			"raise max-line-length to at least " + strconv.Itoa(30+(2+1+200+1)+len(".server.")+32+80), ""},
		{"a long group in long lines", "[process]\nmax-line-length = 1000\n" + withGroup("backend-groups"), "", ""},
		{"no host component", "[process]\nmax-line-length = 256\n[graphite]\nprefix-hostname = false\nnamespace = " + strings.Repeat("n", 13+66+8) + "\n", "", "names are max-component-length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			_, err := l.Config(ProcessProgram)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				switch {
				case tc.warning == "" && len(l.Warnings) != 0:
					t.Errorf("warnings: %q", l.Warnings)
				case tc.warning != "" && (len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], tc.warning)):
					t.Errorf("warnings %q, want one with %q", l.Warnings, tc.warning)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want error %q", tc.want)
			}
			msg := asConfigError(t, err).Error()
			if !strings.Contains(msg, "section:'process' option:'max-line-length' value:") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error\n got %s\nwant section:'process' option:'max-line-length' ... %s", msg, tc.want)
			}
		})
	}
}
