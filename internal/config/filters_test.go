package config

import (
	"strings"
	"testing"
)

// TestFilterOptions reads the [process] cardinality controls: unset patterns are nil, set
// ones compile (a "$$" in the file is a literal '$'), skip-maint-servers is a bool.
func TestFilterOptions(t *testing.T) {
	l, _ := loadText(t, "[process]\nfrontend-include = ^fe_\nfrontend-exclude = _tmp$$\n"+
		"backend-include = app\nbackend-exclude = ^be_old\nserver-include = ^be_app/\n"+
		"server-exclude = /spare[0-9]+$$\nmetric-include = ^(scur|stot|TotalServers)$$\n"+
		"metric-exclude = ^stot$$\nskip-maint-servers = true\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Process
	for _, c := range []struct {
		name string
		got  interface{ String() string }
		want string
	}{
		{"frontend-include", p.FrontendInclude, "^fe_"},
		{"frontend-exclude", p.FrontendExclude, "_tmp$"},
		{"backend-include", p.BackendInclude, "app"},
		{"backend-exclude", p.BackendExclude, "^be_old"},
		{"server-include", p.ServerInclude, "^be_app/"},
		{"server-exclude", p.ServerExclude, "/spare[0-9]+$"},
		{"metric-include", p.MetricInclude, "^(scur|stot|TotalServers)$"},
		{"metric-exclude", p.MetricExclude, "^stot$"},
	} {
		if c.got.String() != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got.String(), c.want)
		}
	}
	if !p.SkipMaintServers {
		t.Error("skip-maint-servers = false, want true")
	}

	def, _ := loadText(t, "[process]\nfrontend-include =\n")
	cfg, err = def.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	p = cfg.Process
	if p.FrontendInclude != nil || p.FrontendExclude != nil || p.BackendInclude != nil || p.BackendExclude != nil ||
		p.ServerInclude != nil || p.ServerExclude != nil || p.MetricInclude != nil || p.MetricExclude != nil || p.SkipMaintServers {
		t.Errorf("defaults: %+v", p)
	}
}

// TestFilterOptionErrors: an invalid pattern is a configuration error naming the option and
// what is wrong; --check (Check) lists every bad pattern, not only the first.
func TestFilterOptionErrors(t *testing.T) {
	for _, c := range []struct{ option, value, want string }{
		{"frontend-include", "fe_(", "missing closing ): `fe_(`"},
		{"backend-exclude", "(?=x)be", "invalid or unsupported Perl syntax: `(?=`"},
		{"server-include", "[z-a]", "invalid character class range: `z-a`"},
		{"metric-exclude", "a{2000}", "invalid repeat count: `{2000}`"},
		{"server-exclude", "(ab|" + strings.Repeat("x", 100001) + ")", "the pattern is too large"},
		{"skip-maint-servers", "perhaps", "Not a boolean: perhaps"},
	} {
		l, path := loadText(t, "[process]\n"+c.option+" = "+c.value+"\n")
		_, err := l.Config(ProcessProgram)
		if err == nil {
			t.Errorf("%s = %s: no error", c.option, c.value)
			continue
		}
		e := asConfigError(t, err)
		msg := e.Error()
		if e.Section != "process" || e.Option != c.option || e.Line != 2 || !strings.Contains(msg, c.want) ||
			!strings.Contains(msg, path) {
			t.Errorf("%s = %s: %q (section %q option %q line %d), want it to name the option and contain %q",
				c.option, c.value, msg, e.Section, e.Option, e.Line, c.want)
		}
	}

	l, _ := loadText(t, "[process]\nsrc-dir = "+t.TempDir()+"\nfrontend-include = (\nmetric-exclude = [\nserver-exclude = ok\n")
	_, problems := l.Check(ProcessProgram)
	var options []string
	for _, e := range problems.List {
		options = append(options, e.Option)
	}
	if got := strings.Join(options, ","); got != "frontend-include,metric-exclude" {
		t.Errorf("Check found problems with %q, want frontend-include,metric-exclude: %v", got, problems.List)
	}
}
