package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes text to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadText loads text as an explicit -f file; the returned path is the file's.
func loadText(t *testing.T, text string) (*Loaded, string) {
	t.Helper()
	path := writeFile(t, t.TempDir(), "haproxystats.conf", text)
	l, err := Load(path, true, "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	stubSystem(l)
	return l, path
}

// stubSystem keeps validation off the real filesystem and host name.
func stubSystem(l *Loaded) {
	l.checkWritable = func(string) error { return nil }
	l.hostname = func() (string, error) { return "testhost", nil }
}

// asConfigError fails the test unless err is an *Error.
func asConfigError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	if strings.Contains(e.Error(), "\n") {
		t.Fatalf("error text is not one line: %q", e.Error())
	}
	return e
}
