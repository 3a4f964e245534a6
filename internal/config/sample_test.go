package config

import (
	"os"
	"strings"
	"testing"
)

// The sample configuration shipped in contrib/ is valid for both programs, without warnings,
// and the README shows it verbatim.
func TestSampleConfiguration(t *testing.T) {
	const sample = "../../contrib/haproxystats.conf"
	l, err := Load(sample, true, "")
	if err != nil {
		t.Fatal(err)
	}
	stubSystem(l)
	for _, prog := range []Program{PullProgram, ProcessProgram} {
		if _, err := l.Config(prog); err != nil {
			t.Errorf("%v: %v", prog, err)
		}
	}
	if len(l.Warnings) > 0 {
		t.Errorf("warnings: %q", l.Warnings)
	}

	text, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```ini\n"+string(text)+"```\n") {
		t.Errorf("README.md does not show %s verbatim in an ini block", sample)
	}
}
