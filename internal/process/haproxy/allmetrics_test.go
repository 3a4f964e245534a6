package haproxy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureSnapshot copies the *_stat and *_info files of the 2.6 capture into a snapshot dir.
func captureSnapshot(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "1700000000")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"admin1.sock_stat", "admin1.sock_info", "admin2.sock_stat", "admin2.sock_info"} {
		b, err := os.ReadFile(filepath.Join(captureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// typedNatures reads the natures of a `show stat typed` / `show info typed` capture:
// "<obj>.<field>" → nature (obj I for show info).
func typedNatures(t testing.TB, path string, info bool) FieldNatures {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := FieldNatures{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 4)
		if len(parts) != 4 || len(parts[1]) < 3 {
			t.Fatalf("%s: bad typed line %q", path, line)
		}
		name := parts[0]
		var key string
		if info { // <pos>.<name>.<proc>
			name = name[strings.IndexByte(name, '.')+1 : strings.LastIndexByte(name, '.')]
			key = "I." + name
		} else { // <obj>.<px_id>.<id>.<fpos>.<fname>.<proc>
			f := strings.Split(name, ".")
			key = f[0] + "." + strings.Join(f[4:len(f)-1], ".")
		}
		n := Nature(parts[1][1])
		if prev, ok := out[key]; ok && prev != n {
			t.Fatalf("%s: %s is %c and %c", path, key, prev, n)
		}
		out[key] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBuiltinNaturesMatchCapture checks the built-in table against the real 2.6 capture: every
// captured field has its captured nature in capturedNatures, the table has nothing the capture
// lacks, the documented entries never contradict it, and the module counters of the capture
// follow the naming convention moduleNature applies to unknown ones.
func TestBuiltinNaturesMatchCapture(t *testing.T) {
	captured := FieldNatures{}
	for _, inst := range []string{"admin1", "admin2"} {
		for k, v := range typedNatures(t, filepath.Join(captureDir, inst+".sock_stat_typed"), false) {
			captured[k] = v
		}
		for k, v := range typedNatures(t, filepath.Join(captureDir, inst+".sock_info_typed"), true) {
			captured[k] = v
		}
	}
	if len(captured) < 300 {
		t.Fatalf("only %d fields in the capture", len(captured))
	}
	for key, want := range captured {
		obj, field := key[0], key[2:]
		if obj == 'I' {
			if got := capturedInfoNatures[field]; got != want {
				t.Errorf("capturedInfoNatures[%q] = %q, capture says %q", field, got, want)
			}
		} else if got := capturedNatures[field][objKind(obj)]; got != want {
			t.Errorf("capturedNatures[%q][%c] = %q, capture says %q", field, obj, got, want)
		}
		if got := builtinNature(obj, field); got != want {
			t.Errorf("builtinNature(%c, %q) = %q, capture says %q", obj, field, got, want)
		}
	}
	for field, ns := range capturedNatures {
		for k, n := range ns {
			if _, ok := captured[string(kindObj[k])+"."+field]; n != NatureUnknown && !ok {
				t.Errorf("capturedNatures[%q][%c] = %q is not in the capture", field, kindObj[k], n)
			}
		}
	}
	for field := range capturedInfoNatures {
		if _, ok := captured["I."+field]; !ok {
			t.Errorf("capturedInfoNatures[%q] is not in the capture", field)
		}
	}
	for field, ns := range documentedNatures {
		for k, n := range ns {
			if _, ok := captured[string(kindObj[k])+"."+field]; n != NatureUnknown && ok {
				t.Errorf("documentedNatures[%q][%c] duplicates a captured field", field, kindObj[k])
			}
		}
	}
	for field := range documentedInfoNatures {
		if _, ok := captured["I."+field]; ok {
			t.Errorf("documentedInfoNatures[%q] duplicates a captured key", field)
		}
	}
	// module counters: the columns after "-" of the captured header
	header := firstLineOf(t, filepath.Join(captureDir, "admin1.sock_stat"))
	cols := strings.Split(strings.TrimPrefix(header, "# "), ",")
	dash := -1
	for i, c := range cols {
		if c == "-" {
			dash = i
		}
	}
	if dash < 0 || dash+5 > len(cols) {
		t.Fatalf("no module counters after - in %q", header)
	}
	modules := 0
	for _, c := range cols[dash+1:] {
		if c == "" {
			continue
		}
		for k := range 4 {
			if n, ok := captured[string(kindObj[k])+"."+c]; ok {
				modules++
				if got := moduleNature(c); got != n {
					t.Errorf("module counter %s (%c): convention says %q, capture %q", c, kindObj[k], got, n)
				}
			}
		}
	}
	if modules < 20 {
		t.Errorf("only %d module counter cells checked", modules)
	}
}

func firstLineOf(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// TestAllMetricsKeepsHaproxystats: with all-metrics the lines of haproxystats are all there,
// byte for byte (timings aside), and the new lines are new paths.
func TestAllMetricsKeepsHaproxystats(t *testing.T) {
	dir := captureSnapshot(t)
	for _, base := range []Options{
		{Prefix: prefixVM},
		{Prefix: prefixVM, AggrServerMetrics: true, PerProcessMetrics: true, CalculatePercentages: true, ServerStates: true},
		{Prefix: prefixVM, FrontendMetrics: []string{"bin"}, ServerMetrics: []string{"qcur", "smax"}},
	} {
		off := run(t, dir, 1700000000, base)
		on := base
		on.AllMetrics = true
		all := run(t, dir, 1700000000, on)
		if off.err != nil || all.err != nil {
			t.Fatal(off.err, all.err)
		}
		got := map[string]string{}
		for _, l := range all.lines {
			if _, dup := got[l.path]; dup {
				t.Errorf("path written twice: %s", l.path)
			}
			got[l.path] = l.value
		}
		for _, l := range off.lines {
			if isTiming(l.path) {
				continue
			}
			if v, ok := got[l.path]; !ok || v != l.value {
				t.Errorf("haproxystats line %s %s: all-metrics has %q (present %v)", l.path, l.value, v, ok)
			}
		}
		if len(all.lines) < len(off.lines)*3/2 {
			t.Errorf("all-metrics wrote %d lines, haproxystats %d", len(all.lines), len(off.lines))
		}
		t.Logf("off %d lines, on %d", len(off.lines), len(all.lines))
	}
}
