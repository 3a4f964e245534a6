// Command readmemirror rewrites, in README.md, the mirror of every source kind's
// internal/sources/<kind>/README.md. Run it from the repository's top: go run ./tools/readmemirror
package main

import (
	"fmt"
	"os"
)

func main() {
	const sources = "internal/sources"
	kinds, err := KindREADMEs(sources)
	if err == nil {
		var main []byte
		if main, err = os.ReadFile("README.md"); err == nil {
			var out string
			if out, err = Mirror(string(main), sources, kinds); err == nil {
				err = os.WriteFile("README.md", []byte(out), 0o644)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "readmemirror:", err)
		os.Exit(1)
	}
	fmt.Println("mirrored:", kinds)
}
