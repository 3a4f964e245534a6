package kafka

import (
	"context"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/testrig"
)

// kcat (librdkafka) reads what the dispatcher wrote: with -f '%s' its output is exactly the
// Graphite lines, since every value ends with its newline. Skipped without kcat (Debian kcat).
func TestKcatReadsRecords(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	for _, mode := range []string{"path", "host"} {
		t.Run(mode, func(t *testing.T) {
			c := testrig.StartKafka(t, 2, testTopic)
			d := newDispatcher(t, testConfig(c, mode))
			chunks := snapshot(1700000000, "k", 300, 100)
			r := testrig.NewDoneCalls(len(chunks))
			submitAll(t, d, chunks, r)
			for _, err := range r.Wait(t, len(chunks), waitLimit, "chunks") {
				if err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for _, b := range chunks {
				want = append(want, strings.SplitAfter(strings.TrimSuffix(string(b.Data), "\n"), "\n")...)
			}
			for i := range want {
				want[i] = strings.TrimSuffix(want[i], "\n")
			}
			run := func(format string) string {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(c.ListenAddrs(), ","), "-t", testTopic,
					"-o", "beginning", "-e", "-q", "-f", format).Output()
				if err != nil {
					t.Fatalf("kcat -f %q: %v", format, err)
				}
				return string(out)
			}
			got := strings.Split(strings.TrimSuffix(run("%s"), "\n"), "\n")
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("kcat printed %d lines, want the %d lines produced", len(got), len(want))
			}
			first, _, _ := strings.Cut(run("%k -> %s"), "\n")
			t.Logf("kcat -f '%%k -> %%s': %s", first)
		})
	}
}
