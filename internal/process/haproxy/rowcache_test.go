package haproxy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The row cache of a stat file seen for the first time starts as the cache of the file before
// it, and a file's rows are matched by position. Files whose rows differ from each other (in
// order, in membership, in a name, in an exclusion that changes between snapshots) must still
// give what a fresh Processor gives, whatever the order in which one Processor meets them.
func TestRowCacheAcrossFiles(t *testing.T) {
	base := map[string][][]string{}
	files := map[string]string{}
	entries, err := os.ReadDir(goldenA)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		path := filepath.Join(goldenA, e.Name())
		if strings.HasSuffix(e.Name(), "_stat") {
			base[e.Name()] = readStat(t, path)
		} else {
			files[e.Name()] = readFile(t, path)
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range base {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) < 4 {
		t.Fatalf("golden A has %d stat files, the test needs 4", len(names))
	}
	body := func(rows [][]string) [][]string { return slices.Clone(rows[1:]) }
	edits := []func([][]string) [][]string{
		func(rows [][]string) [][]string { return rows }, // as the file before
		func(rows [][]string) [][]string { // reversed from the first row on
			b := body(rows)
			slices.Reverse(b)
			return append([][]string{rows[0]}, b...)
		},
		func(rows [][]string) [][]string { // one server renamed halfway
			out := [][]string{rows[0]}
			renamed := false
			for i, r := range rows[1:] {
				r = slices.Clone(r)
				if !renamed && i > len(rows)/2 && r[1] != "FRONTEND" && r[1] != "BACKEND" {
					r[1] += "_renamed"
					renamed = true
				}
				out = append(out, r)
			}
			return out
		},
		func(rows [][]string) [][]string { // the last rows missing
			return rows[:max(2, len(rows)-3)]
		},
	}
	variant := func(seed int) string {
		snap := map[string]string{}
		for k, v := range files {
			snap[k] = v
		}
		for i, n := range names {
			snap[n] = statCSV(edits[(i+seed)%len(edits)](base[n]))
		}
		return writeSnapshot(t, snap)
	}
	dirs := []string{variant(0), variant(1), variant(2), variant(3), goldenA}

	beFile := filepath.Join(t.TempDir(), "be")
	opts := optsA()
	opts.AggrServerMetrics = true
	opts.ExcludeBackends = beFile
	rowCacheRounds(t, opts, dirs, beFile)
	// the same with the cardinality controls, whose decisions the row cache keeps
	opts.ServerStates = true
	opts.Filters = Filters{FrontendExclude: regexp.MustCompile(`dotted`), BackendExclude: regexp.MustCompile(`^be_only`),
		ServerExclude: regexp.MustCompile(`/app2|renamed`), SkipMaintServers: true}
	rowCacheRounds(t, opts, dirs, beFile)
}

func rowCacheRounds(t *testing.T, opts Options, dirs []string, beFile string) {
	p := NewProcessor(opts, nil)
	for round := 0; round < 3; round++ {
		for i, dir := range dirs {
			// alternate the exclusion so that cached server entities of one backend go
			// from excluded to included and back
			excl := ""
			if (round+i)%2 == 0 {
				excl = "be_app\n"
			}
			if err := os.WriteFile(beFile, []byte(excl), 0o644); err != nil {
				t.Fatal(err)
			}
			ts, _ := strconv.ParseInt(filepath.Base(dir), 10, 64)
			want := run(t, dir, ts, opts)
			if want.err != nil {
				t.Fatal(want.err)
			}
			got := runWith(t, p, dir, ts, nil)
			compareOrdered(t, want.lines, got.lines)
		}
	}
}
