package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The main README mirrors each kind's README.md between markers, headings two levels down: the
// kind's folder is where its documentation is edited. tools/readmemirror rewrites the mirrors;
// a test says when one is stale.

func markers(kind string) (start, end string) {
	return "<!-- mirrored from internal/sources/" + kind + "/README.md: edit it there -->\n",
		"\n<!-- end of internal/sources/" + kind + "/README.md -->"
}

// KindREADMEs lists the kinds with a README.md under sourcesDir (internal/sources), sorted.
func KindREADMEs(sourcesDir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(sourcesDir, "*", "README.md"))
	if err != nil {
		return nil, err
	}
	kinds := make([]string, len(paths))
	for i, p := range paths {
		kinds[i] = filepath.Base(filepath.Dir(p))
	}
	return kinds, nil
}

// Mirror returns main with the mirror of each kind's README (read from sourcesDir) replaced, or
// added before the "## stats-pull" section when missing.
func Mirror(main, sourcesDir string, kinds []string) (string, error) {
	for _, kind := range kinds {
		text, err := os.ReadFile(filepath.Join(sourcesDir, kind, "README.md"))
		if err != nil {
			return "", err
		}
		start, end := markers(kind)
		block := start + Demote(string(text), kind) + end
		i, j := strings.Index(main, start), strings.Index(main, end)
		switch {
		case i >= 0 && j > i:
			main = main[:i] + block + main[j+len(end):]
		default:
			at := strings.Index(main, "\n## stats-pull\n")
			if at < 0 {
				return "", fmt.Errorf("README.md has no \"## stats-pull\" section to put the %s mirror before", kind)
			}
			main = main[:at] + "\n" + block + "\n" + main[at:]
		}
	}
	return main, nil
}

// Mirrored returns the mirror of kind in main, false when there is none.
func Mirrored(main, kind string) (string, bool) {
	start, end := markers(kind)
	i, j := strings.Index(main, start), strings.Index(main, end)
	if i < 0 || j < i {
		return "", false
	}
	return main[i+len(start) : j], true
}

// Demote moves a kind README's headings two levels down (outside code fences) and names its
// sample configuration by its repository path.
func Demote(text, kind string) string {
	var out []string
	fence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(l, "#") {
			l = "##" + l
		}
		out = append(out, l)
	}
	s := strings.TrimRight(strings.Join(out, "\n"), "\n")
	return strings.ReplaceAll(s, "`sample.conf` in this folder", "`internal/sources/"+kind+"/sample.conf`")
}
