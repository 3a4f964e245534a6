package metric

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func hash12(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:6])
}

func TestComponentSlashAndSemicolon(t *testing.T) {
	for in, want := range map[string]string{
		"be/app":        "be_app",
		"be;tag=x":      "be_tag=x",
		"a/b;c.d e":     "a_b_c_d_e",
		"srv:8080#1-ok": "srv:8080#1-ok",
	} {
		if got := Component(in); got != want {
			t.Errorf("Component(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Namespace("ns/a;b.c"); got != "ns_a_b.c" {
		t.Errorf("Namespace = %q", got)
	}
}

func TestStrictComponent(t *testing.T) {
	for in, want := range map[string]string{
		"be_app-01":          "be_app-01",
		"srv:8080#2":         "srv:8080#2",
		"a.b/c;d e\tf":       "a_b_c_d_e_f",
		"naïve":              "na_ve", // one '_' per rune
		"bad\xff\xfe":        "bad__", // one per byte of invalid UTF-8
		"x=y,z@w!~":          "x_y_z_w__",
		"":                   "",
		"ABCxyz0189_:#-":     "ABCxyz0189_:#-",
		"\u200bzero\u00a0sp": "_zero_sp",
	} {
		if got := StrictComponent(in); got != want {
			t.Errorf("StrictComponent(%q) = %q, want %q", in, got, want)
		}
		if got, short := (Names{MaxLength: 255, Strict: true}).Component(in); got != want || short {
			t.Errorf("Names{Strict}.Component(%q) = %q, %v; want %q", in, got, short, want)
		}
	}
}

func TestNamesShorten(t *testing.T) {
	n := Names{MaxLength: 40}
	long := strings.Repeat("abcdefghij", 10) // 100 bytes
	got, short := n.Component(long)
	want := long[:40-13] + "-" + hash12(long)
	if got != want || !short {
		t.Fatalf("Component(100 bytes) = %q, %v; want %q", got, short, want)
	}
	if again, _ := n.Component(long); again != got {
		t.Errorf("not deterministic: %q then %q", got, again)
	}
	// same start, different end: distinct
	other, _ := n.Component(long[:99] + "X")
	if other == got || !strings.HasPrefix(other, long[:27]+"-") {
		t.Errorf("distinct names: %q and %q", got, other)
	}
	// exactly the bound: unchanged
	if s, short := n.Component(long[:40]); s != long[:40] || short {
		t.Errorf("40 bytes: %q, %v", s, short)
	}
	// sanitised before shortening, hash of the original
	dotted := strings.Repeat("a.b/", 20)
	if s, _ := n.Component(dotted); s != strings.Repeat("a_b_", 7)[:27]+"-"+hash12(dotted) {
		t.Errorf("dotted: %q", s)
	}
	// 300 bytes of zero-width spaces sanitise to 100 '_': within 255, not shortened
	zw := strings.Repeat("\u200b", 100)
	if s, short := (Names{MaxLength: 255}).Component(zw); s != strings.Repeat("_", 100) || short {
		t.Errorf("zero-width spaces: %q, %v", s, short)
	}
	// never cut inside a rune: 'ü' is 2 bytes, 27 is odd
	u := strings.Repeat("ü", 50)
	s, _ := n.Component(u)
	if !utf8.ValidString(s) || s != strings.Repeat("ü", 13)+"-"+hash12(u) {
		t.Errorf("runes: %q", s)
	}
	// below the minimum, the minimum applies
	if s, _ := (Names{MaxLength: 5}).Component(long); len(s) != MinComponentLength {
		t.Errorf("MaxLength 5: %d bytes %q", len(s), s)
	}
	// no bound
	if s, short := (Names{}).Component(long + "."); s != long+"_" || short {
		t.Errorf("unbounded: %q", s)
	}
}

// Whatever the name and the bound, the result is valid UTF-8, within the bound, free of the
// bytes the rule replaces, and the sanitised name itself whenever that fits.
func TestNamesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []string{"a", "Z", "0", ".", "/", ";", " ", "\n", "\x00", "\xff", "ü", "€", "\u200b", "𝄞", "-", "_", ":", "#"}
	for i := 0; i < 5000; i++ {
		var sb strings.Builder
		for k := rng.IntN(400); k > 0; k-- {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		name := sb.String()
		limit := MinComponentLength + rng.IntN(300)
		for _, strict := range []bool{false, true} {
			n := Names{MaxLength: limit, Strict: strict}
			got, short := n.Append(nil, []byte(name))
			var full []byte
			if strict {
				full = AppendStrictComponent(nil, []byte(name))
			} else {
				full = AppendComponent(nil, []byte(name))
			}
			switch {
			case len(got) > limit:
				t.Fatalf("%q (limit %d, strict %v): %d bytes", name, limit, strict, len(got))
			case !utf8.Valid(got):
				t.Fatalf("%q: invalid UTF-8 %q", name, got)
			case strings.ContainsAny(string(got), "./; \n\x00"):
				t.Fatalf("%q: %q keeps a replaced byte", name, got)
			case short != (len(full) > limit):
				t.Fatalf("%q (limit %d): shortened %v, sanitised length %d", name, limit, short, len(full))
			case !short && string(got) != string(full):
				t.Fatalf("%q: %q, want the sanitised %q", name, got, full)
			case short && !strings.HasSuffix(string(got), "-"+hash12(name)):
				t.Fatalf("%q: %q does not end with the hash", name, got)
			case short && !strings.HasPrefix(string(full), strings.TrimSuffix(string(got), "-"+hash12(name))):
				t.Fatalf("%q: %q does not start with the sanitised name", name, got)
			}
			if strict && strings.Trim(string(got), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:#-") != "" {
				t.Fatalf("strict %q: %q", name, got)
			}
		}
	}
}

func TestNamesPath(t *testing.T) {
	n := Names{MaxLength: 40}
	long := strings.Repeat("n", 50)
	got, count := n.Path("ns." + long + ".a b/c")
	if want := "ns." + long[:27] + "-" + hash12(long) + ".a_b_c"; got != want || count != 1 {
		t.Errorf("Path = %q, %d; want %q, 1", got, count, want)
	}
	if got, count := n.Path("loadbalancers.lb-01.haproxy"); got != "loadbalancers.lb-01.haproxy" || count != 0 {
		t.Errorf("Path = %q, %d", got, count)
	}
	if got, _ := (Names{}).Path("a.b\n." + long); got != "a.b_."+long {
		t.Errorf("unbounded Path = %q", got)
	}
}

func TestNamesAppendAllocatesNothing(t *testing.T) {
	n := Names{MaxLength: 64}
	buf := make([]byte, 0, 128)
	long := []byte(strings.Repeat("x", 1000))
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = n.Append(buf[:0], []byte("be_app.example.com"))
		buf, _ = n.Append(buf[:0], long)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}
