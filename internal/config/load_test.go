package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadMissingDefaultFileGivesDefaultsAndNotice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haproxystats.conf")
	l, err := Load(path, false, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("configuration file %s does not exist; starting from the built-in defaults", path)}
	if !reflect.DeepEqual(l.Notices, want) {
		t.Errorf("Notices = %q, want %q", l.Notices, want)
	}
	if len(l.Warnings) != 0 || len(l.Files) != 0 {
		t.Errorf("Warnings = %q, Files = %q, want none", l.Warnings, l.Files)
	}
	stubSystem(l)
	cfg, err := l.Config(PullProgram)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "" || cfg.Pull.Workers != 8 {
		t.Errorf("File = %q, workers = %d; want the defaults", cfg.File, cfg.Pull.Workers)
	}
}

func TestLoadMissingExplicitFileIsError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.conf")
	_, err := Load(path, true, "")
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := fmt.Sprintf("invalid configuration, file:'%s' error: cannot read the configuration file: open: no such file or directory", path)
	if got := asConfigError(t, err).Error(); got != want {
		t.Fatalf("error\n got %s\nwant %s", got, want)
	}
}

func TestLoadDefaultPathThatIsADirectoryIsError(t *testing.T) {
	if _, err := Load(t.TempDir(), false, ""); err == nil {
		t.Fatal("Load of a directory succeeded")
	}
}

func TestLoadUnreadableFileIsError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := writeFile(t, t.TempDir(), "x.conf", "[pull]\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	for _, explicit := range []bool{true, false} {
		if _, err := Load(path, explicit, ""); err == nil {
			t.Errorf("explicit=%v: Load succeeded", explicit)
		}
	}
}

// The -d example of haproxystats.md §1.4, plus the files that must be ignored.
func TestLoadDirOrderAndPrint(t *testing.T) {
	root := t.TempDir()
	main := writeFile(t, root, "main.conf", "[process]\nworkers = 3\n")
	dir := filepath.Join(root, "conf.d")
	for _, sub := range []string{dir, filepath.Join(dir, "sub.conf")} {
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Written in reverse so directory order and creation order are not the sorted order.
	writeFile(t, dir, "ignored.txt", "[process]\nworkers = 7\n")
	writeFile(t, dir, ".hidden.conf", "[process]\nworkers = 8\n")
	writeFile(t, dir, "20-b.conf", "[graphite]\nnamespace = ns_${process:workers}\n")
	writeFile(t, dir, "10-a.conf", "[process]\nworkers = 5\n")

	l, err := Load(main, true, dir)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{main, filepath.Join(dir, "10-a.conf"), filepath.Join(dir, "20-b.conf")}
	if !reflect.DeepEqual(l.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", l.Files, wantFiles)
	}
	wantWarn := []string{filepath.Join(dir, "sub.conf") + " is a directory, not a configuration file; ignored"}
	if !reflect.DeepEqual(l.Warnings, wantWarn) {
		t.Errorf("Warnings = %q, want %q", l.Warnings, wantWarn)
	}
	stubSystem(l)
	var out bytes.Buffer
	if err := l.Print(&out, ProcessProgram); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"\nworkers = 5\n", "\nnamespace = ns_5\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("-P output lacks %q:\n%s", line, out.String())
		}
	}
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Process.Workers != 5 || cfg.Graphite.Namespace != "ns_5" || cfg.File != main {
		t.Errorf("workers = %d, namespace = %q, File = %q; want 5, ns_5, %s",
			cfg.Process.Workers, cfg.Graphite.Namespace, cfg.File, main)
	}
}

func TestLoadDirErrors(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "nope")
	notDir := writeFile(t, root, "file", "")
	for _, dir := range []string{missing, notDir} {
		_, err := Load("", false, dir)
		if err == nil {
			t.Fatalf("Load with -d %s succeeded", dir)
		}
		want := fmt.Sprintf("invalid configuration, error: '%s' directory with .conf files doesn't exist", dir)
		if got := asConfigError(t, err).Error(); got != want {
			t.Errorf("error\n got %s\nwant %s", got, want)
		}
	}

	// A syntax error in a -d file names that file; a duplicate across files is fine.
	dir := filepath.Join(root, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a.conf", "[pull]\nworkers = 1\n")
	writeFile(t, dir, "b.conf", "[pull]\nworkers = 2\nworkers = 3\n")
	_, err := Load("", false, dir)
	if err == nil || asConfigError(t, err).File != filepath.Join(dir, "b.conf") || asConfigError(t, err).Line != 3 {
		t.Fatalf("error %v does not name b.conf line 3", err)
	}
}

func TestLoadWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // %s is the file name
	}{
		{"known options only", "[DEFAULT]\nloglevel = debug\n[pull]\nworkers = 2\nretries = 4\n[graphite]\nhostname = h\nloglevel = info\n", nil},
		{"unknown option with suggestion", "[graphite]\nprefix-hostnme = false\n",
			[]string{"unknown option 'prefix-hostnme' in section 'graphite' of %s line 2 (did you mean 'prefix-hostname'?); ignored"}},
		{"unknown option without a close match", "[process]\ncolour = blue\n",
			[]string{"unknown option 'colour' in section 'process' of %s line 2; ignored"}},
		{"unknown option in DEFAULT", "[DEFAULT]\nloglvl = debug\n",
			[]string{"unknown option 'loglvl' in section 'DEFAULT' of %s line 2 (did you mean 'loglevel'?); ignored"}},
		{"unknown option in paths and local-store", "[paths]\nbasedir = /x\n[local-store]\ndirectory = /y\n",
			[]string{
				"unknown option 'basedir' in section 'paths' of %s line 2 (did you mean 'base-dir'?); ignored",
				"unknown option 'directory' in section 'local-store' of %s line 4; ignored",
			}},
		{"options without effect", "[graphite]\nprefix_hostname = true\nprefix-name = x\ntimeout = 5\n",
			[]string{
				"option 'prefix_hostname' in section 'graphite' of %s line 2 has no effect (the option is spelled prefix-hostname); ignored",
				"option 'prefix-name' in section 'graphite' of %s line 3 has no effect (haproxystats never read it); ignored",
				"option 'timeout' in section 'graphite' of %s line 4 has no effect (connect-timeout and write-timeout apply instead); ignored",
			}},
		{"graphite timeout equal to DEFAULT's, as -P prints it", "[graphite]\ntimeout = 1\n", nil},
		{"unknown section with suggestion", "[grahpite]\nport = 1\n[Pull]\n",
			[]string{
				"unknown section 'grahpite' in %s line 1 (did you mean 'graphite'?); ignored",
				"unknown section 'Pull' in %s line 3 (did you mean 'pull'?); ignored",
			}},
		{"group sections are known", "[frontend-groups]\na = x\n[backend-groups]\n[server-groups]\n", nil},
		{"referenced variables are not flagged", "[vars]\nroot = /x\n[paths]\nsub = ${vars:root}/a\nbase-dir = ${sub}\n[DEFAULT]\nhome = /h\nlogdir = ${home}/log\n[pull]\ndst-dir = ${logdir}\n", nil},
		{"a reference from DEFAULT covers every section", "[DEFAULT]\nx = ${y}\n[pull]\ny = 1\ndst-dir = ${x}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := loadText(t, tc.text)
			var want []string
			for _, w := range tc.want {
				want = append(want, fmt.Sprintf(w, path))
			}
			if !reflect.DeepEqual(l.Warnings, want) {
				t.Fatalf("Warnings\n got %q\nwant %q", l.Warnings, want)
			}
		})
	}
}

func TestSuggestion(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"worker", " (did you mean 'workers'?)"},
		{"SRC_DIR", " (did you mean 'src-dir'?)"},
		{"pull_timeout", " (did you mean 'pull-timeout'?)"},
		{"zzz", ""},
	} {
		if got := suggestion(tc.name, append(knownOptions("process"), knownOptions("pull")...)); got != tc.want {
			t.Errorf("suggestion(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d, want 3", d)
	}
}
