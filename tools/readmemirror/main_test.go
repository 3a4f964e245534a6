package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every kind's README.md is mirrored in the main README as it is now: after editing one, run
// `go run ./tools/readmemirror`.
const sourcesDir = "../../internal/sources"

func TestMainREADMEMirrorsEveryKind(t *testing.T) {
	main, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := KindREADMEs(sourcesDir)
	if err != nil || len(kinds) < 4 {
		t.Fatalf("kind READMEs %v %v", kinds, err)
	}
	for _, kind := range kinds {
		text, err := os.ReadFile(filepath.Join(sourcesDir, kind, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Mirrored(string(main), kind)
		switch {
		case !ok:
			t.Errorf("README.md has no mirror of internal/sources/%s/README.md (go run ./tools/readmemirror)", kind)
		case got != Demote(string(text), kind):
			t.Errorf("README.md's mirror of internal/sources/%s/README.md is stale (go run ./tools/readmemirror)", kind)
		}
	}
}
