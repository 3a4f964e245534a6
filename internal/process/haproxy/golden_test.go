package haproxy

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const goldenDir = "testdata/golden"

// goldenExpectation loads a set's graphite.out and applies, explicitly, statspipe's documented
// differences from haproxystats. It returns the expected lines in emission order.
type goldenSet struct {
	name   string
	adjust func(t *testing.T, want []gline) []gline
}

// dropSuffixedDuplicates turns upstream's `act_x`/`act_y` (and `ctime_x`/`ctime_y`) into the
// plain name with the averaged meaning: the `_y` line (the mean) is renamed, the `_x` line (a
// meaningless sum) is dropped, and each dropped metric is taken off the section's Metrics*
// count, which counts metric cells.
func dropSuffixedDuplicates(t *testing.T, want []gline, prefix string) []gline {
	var out []gline
	dropped := map[string]int{}
	for _, l := range want {
		switch {
		case strings.HasSuffix(l.path, ".act_x"), strings.HasSuffix(l.path, ".ctime_x"):
			if strings.Contains(l.path, ".server.") {
				dropped["MetricsServer"]++
			} else {
				dropped["MetricsBackend"]++
			}
			continue
		case strings.HasSuffix(l.path, ".act_y"), strings.HasSuffix(l.path, ".ctime_y"):
			l.path = strings.TrimSuffix(l.path, "_y")
		}
		out = append(out, l)
	}
	if len(dropped) == 0 {
		t.Fatal("expected _x/_y lines in the reference output")
	}
	for name, n := range dropped {
		path := prefix + ".haproxystats." + name
		v, err := strconv.Atoi(valueOf(t, out, path))
		if err != nil {
			t.Fatal(err)
		}
		setValue(t, out, path, strconv.Itoa(v-n))
	}
	return out
}

var goldenSets = []goldenSet{
	{"A-real-default", nil},
	{"C-nbproc-like-zlib", nil},
	{"S-synthetic-small", nil},
	{"D-custom-metric-lists", func(t *testing.T, want []gline) []gline {
		// D: backend-metrics = bin act, server-metrics = lbtot ctime. Upstream emitted
		// act_x (sum) + act_y (mean) and ctime_x (sum) + ctime_y (traffic mean); we emit
		// `act` and `ctime` once with the averaged meaning. MetricsBackend 37 → 33,
		// MetricsServer 44 → 39.
		out := dropSuffixedDuplicates(t, want, "loadbalancers.haproxy")
		if v := valueOf(t, out, "loadbalancers.haproxy.haproxystats.MetricsBackend"); v != "33" {
			t.Fatalf("adjusted MetricsBackend = %s, want 33 (1 + 4 backends × 8)", v)
		}
		if v := valueOf(t, out, "loadbalancers.haproxy.haproxystats.MetricsServer"); v != "39" {
			t.Fatalf("adjusted MetricsServer = %s, want 39 (1 + 5 servers × 7 + 3)", v)
		}
		return out
	}},
}

func TestGolden(t *testing.T) {
	for _, set := range goldenSets {
		t.Run(set.name, func(t *testing.T) {
			base := filepath.Join(goldenDir, set.name)
			opts := optionsFromConf(t, filepath.Join(base, "haproxystats.conf.used"))
			dir, ts := snapshotDir(t, filepath.Join(base, "input"))
			got := run(t, dir, ts, opts)
			if got.err != nil {
				t.Fatal(got.err)
			}
			// statspipe never emits `nan` (documented difference): drop the reference's.
			want := dropNaN(readLines(t, filepath.Join(base, "graphite.out")))
			if set.adjust != nil {
				want = set.adjust(t, want)
			}
			compareMultiset(t, want, got.lines)
			compareOrdered(t, want, got.lines)
			if w, g := timingPaths(want), timingPaths(got.lines); !slices.Equal(w, g) {
				t.Errorf("timing lines differ:\nwant %v\ngot  %v", w, g)
			}
			// Beyond the numeric contract: the value text (int vs float) is haproxystats'
			// too, so local-store files read the same as before.
			for i := 0; i < len(want) && i < len(got.lines); i++ {
				w, g := want[i], got.lines[i]
				if !isTiming(w.path) && w.path == g.path && w.value != g.value {
					t.Errorf("value text of %s: want %q, got %q", w.path, w.value, g.value)
				}
			}
			if got.stats.FilesSkipped != 0 || len(got.stats.Problems) != 0 {
				t.Errorf("unexpected problems: %+v", got.stats)
			}
		})
	}
}
