package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestInterpolation(t *testing.T) {
	const base = "[DEFAULT]\nroot = /srv\nsub = ${root}/sub\n" +
		"[paths]\nbase-dir = /data\n" +
		"[vars]\nName = app\nnested = ${paths:base-dir}/${name}\n"
	for _, tc := range []struct {
		name, text, section, option, want string
	}{
		{"same section", "[s]\na = x\nb = ${a}y\n", "s", "b", "xy"},
		{"same section falls back to DEFAULT", "[s]\nb = ${root}/b\n", "s", "b", "/srv/b"},
		{"other section", "[s]\nb = ${paths:base-dir}/in\n", "s", "b", "/data/in"},
		{"other section falls back to DEFAULT", "[s]\nb = ${paths:root}\n", "s", "b", "/srv"},
		{"DEFAULT section by name", "[s]\nb = ${DEFAULT:loglevel}\n", "s", "b", "info"},
		{"option part is case-insensitive", "[s]\nb = ${VARS:x}${vars:NAME}\n[VARS]\nx = X\n", "s", "b", "Xapp"},
		{"nested", "[s]\nb = <${vars:nested}>\n", "s", "b", "</data/app>"},
		{"nested through DEFAULT", "[s]\nb = ${sub}\n", "s", "b", "/srv/sub"},
		{"inherited value resolves in the inheriting section", "[s]\nroot = /opt\nb = ${sub}\n", "s", "b", "/opt/sub"},
		{"inherited value read directly", "[s]\nroot = /opt\n", "s", "sub", "/opt/sub"},
		{"nested resolves in the referenced section", "[s]\nname = other\nb = ${vars:nested}\n", "s", "b", "/data/app"},
		{"$$ is a literal $", "[s]\nb = ^foo$$\n", "s", "b", "^foo$"},
		{"$$ inside a referenced value", "[s]\nr = a$$b\nb = ${r}-$$\n", "s", "b", "a$b-$"},
		{"$$ followed by a brace is not a reference", "[s]\nb = $${x}\n", "s", "b", "${x}"},
		{"no dollar at all", "[s]\nb = {x}\n", "s", "b", "{x}"},
		{"same reference twice is not a cycle", "[s]\nr = ${root}\nb = ${r}${r}\n", "s", "b", "/srv/srv"},
		{"depth limit of 10 reached, not exceeded", chain(9), "s", "k0", "e$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoaded()
			if err := l.parse("t.conf", []byte(base+tc.text)); err != nil {
				t.Fatal(err)
			}
			got, _, ok, err := l.get(tc.section, tc.option)
			if err != nil || !ok {
				t.Fatalf("get = %q, %v, %v", got, ok, err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// chain returns a section s with k0 = ${k1}, …, k(n-1) = ${kn}, kn = e$$. Reading k0
// interpolates n+1 values (configparser depths 1..n+1), since kn's "$$" needs expanding too.
func chain(n int) string {
	var b strings.Builder
	b.WriteString("[s]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d = ${k%d}\n", i, i+1)
	}
	fmt.Fprintf(&b, "k%d = e$$\n", n)
	return b.String()
}

// fanout returns k0..k9 where each value references the next one eight times, and k9 is
// last: k0 would expand to 8^9 copies of it.
func fanout(last string) string {
	var b strings.Builder
	for i := 0; i < 9; i++ {
		fmt.Fprintf(&b, "k%d = %s$$\n", i, strings.Repeat(fmt.Sprintf("${k%d}", i+1), 8))
	}
	fmt.Fprintf(&b, "k9 = %s\n", last)
	return "[s]\n" + b.String()
}

func TestInterpolationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, option, want string
	}{
		{"lone dollar", "[s]\nb = 5$\n", "b", `'$' must be followed by '$' or '{', found: '$' (write $$ for a literal '$')`},
		{"dollar before a letter", "[s]\nb = ^a$b\n", "b", `'$' must be followed by '$' or '{', found: '$b' (write $$ for a literal '$')`},
		{"unclosed brace", "[s]\nb = ${a\n", "b", `bad interpolation variable reference '${a' (write $$ for a literal '$')`},
		{"empty reference", "[s]\nb = ${}\n", "b", `bad interpolation variable reference '${}' (write $$ for a literal '$')`},
		{"two colons", "[s]\nb = ${a:b:c}\n", "b", `More than one ':' found: '${a:b:c}'`},
		{"missing option", "[s]\nb = ${nope}\n", "b",
			`Bad value substitution: option 'b' in section 's' contains an interpolation key 'nope' which is not a valid option name (section 's' has no option 'nope')`},
		{"missing section", "[s]\nb = ${nope:x}\n", "b",
			`Bad value substitution: option 'b' in section 's' contains an interpolation key 'nope:x' which is not a valid option name (there is no section 'nope')`},
		{"section names are case-sensitive", "[s]\nb = ${Paths:base-dir}\n", "b",
			`Bad value substitution: option 'b' in section 's' contains an interpolation key 'Paths:base-dir' which is not a valid option name (there is no section 'Paths')`},
		{"missing option in a nested value", "[s]\na = ${x:y}\n[x]\ny = ${z}\n", "a",
			`Bad value substitution: option 'y' in section 'x' contains an interpolation key 'z' which is not a valid option name (section 'x' has no option 'z')`},
		{"self reference", "[s]\nb = ${b}\n", "b", `reference cycle in value substitution: ${s:b} -> ${s:b}`},
		{"cycle", "[s]\na = ${t:b}\n[t]\nb = x${s:a}\n", "a", `reference cycle in value substitution: ${s:a} -> ${t:b} -> ${s:a}`},
		{"exponential growth is bounded", fanout(strings.Repeat("x", 64)) + "b = ${k0}\n", "b",
			`value substitution grows beyond 1048576 bytes (a reference reached through ${s:k8} repeats too often)`},
		{"exponential work is bounded", fanout("") + "b = ${k0}\n", "b",
			`value substitution needs more than 100000 steps (a reference reached through ${s:k8} repeats too often)`},
		{"depth limit of 10 exceeded", chain(10), "k0",
			`Recursion limit exceeded in value substitution: option 'k10' in section 's' contains an interpolation key which cannot be substituted in 10 steps`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoaded()
			if err := l.parse("t.conf", []byte(tc.text)); err != nil {
				t.Fatal(err)
			}
			got, _, _, err := l.get("s", tc.option)
			if err == nil {
				t.Fatalf("no error, value %q", got)
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}
