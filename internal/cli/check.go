package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/statspipe/statspipe/internal/config"
	prochaproxy "github.com/statspipe/statspipe/internal/process/haproxy"
	"github.com/statspipe/statspipe/internal/sources"
)

// This file is --check: everything the program validates when it starts, and the directories,
// sockets and files it would use, without side effects (nothing is created, bound, locked or
// connected to). It runs while the program runs, e.g. as a pre-reload hook, so the tmp-dst-dir
// lock of a running stats-pull is not a problem and is not touched.

// checkResult is what check found.
type checkResult struct {
	problems *config.Problems
	warnings []string
}

// check validates loaded for prog (config.Loaded.Check), then the environment for what passed.
func check(loaded *config.Loaded, prog config.Program) checkResult {
	cfg, problems := loaded.Check(prog)
	r := checkResult{problems: problems}
	env := &envCheck{p: problems}
	if cfg != nil {
		switch prog {
		case config.PullProgram:
			env.pull(cfg)
		case config.ProcessProgram:
			env.process(cfg)
		}
	}
	problems.Sort()
	r.warnings = append(append([]string(nil), problems.Warnings...), env.warnings...)
	return r
}

// report writes the warnings and problems to stderr, one line each, and the verdict: on success
// "configuration OK: <files>" to stdout unless quiet (-P, whose stdout is the configuration).
func (r checkResult) report(loaded *config.Loaded, stdout, stderr io.Writer, quiet bool) int {
	for _, n := range loaded.Notices {
		fmt.Fprintln(stderr, "notice: "+n)
	}
	for _, w := range r.warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	for _, e := range r.problems.List {
		fmt.Fprintln(stderr, e.Error())
	}
	files := strings.Join(loaded.Files, ", ")
	if files == "" {
		files = "built-in defaults"
	}
	if n := len(r.problems.List); n > 0 {
		more := ""
		if r.problems.Incomplete {
			more = "; the check stopped there, fix these and run it again for the rest"
		}
		fmt.Fprintf(stderr, "configuration invalid: %s (%d %s%s)\n", files, n, plural(n, "problem"), more)
		return 1
	}
	if !quiet {
		fmt.Fprintln(stdout, "configuration OK: "+files)
	}
	return 0
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

type envCheck struct {
	p        *config.Problems
	warnings []string
}

func (c *envCheck) fail(section, option, value, reason string) {
	c.p.Add(section, option, value, reason)
}

func (c *envCheck) pull(cfg *config.Config) {
	p := cfg.Pull
	dstOK := !c.p.Bad("pull", "dst-dir") && c.spoolDir("dst-dir", p.DstDir)
	tmpOK := !c.p.Bad("pull", "tmp-dst-dir") && c.spoolDir("tmp-dst-dir", p.TmpDstDir)
	if dstOK && tmpOK {
		c.spoolPair(p.DstDir, p.TmpDstDir)
	}
	if p.SocketDir != "" && !c.p.Bad("pull", "socket-dir") {
		c.socketDir(p.SocketDir)
	}
	if !c.p.Bad("pull", "servers") {
		for _, s := range p.Servers {
			if s.Network == "unix" {
				c.unixServer("servers", s.Address)
			}
		}
	}
	if !c.p.Bad("pull", "master-socket") {
		for _, path := range p.MasterSockets {
			c.unixServer("master-socket", path)
		}
	}
	// The pull halves of the sources check more than their options (secret files, headers);
	// building one connects nowhere.
	for i := range cfg.Sources {
		src := cfg.Sources[i]
		if src.Legacy {
			continue
		}
		one := *cfg
		one.Sources = []config.Source{src}
		if _, err := sources.Providers(&one, discard); err != nil {
			c.fail(config.SourcePrefix+src.Name, "", "", strings.TrimPrefix(err.Error(), "source "+src.Name+": "))
		}
	}
}

func (c *envCheck) process(cfg *config.Config) {
	if cfg.LocalStore != nil && !c.p.Bad("local-store", "dir") {
		dir := cfg.LocalStore.Dir
		if reason := creatableDir(dir); reason != "" {
			c.fail("local-store", "dir", dir, reason+" (the local store writes <dir>/<timestamp>/stats)")
		}
	}
	for _, o := range []struct{ option, path string }{
		{"exclude-frontends", cfg.Process.ExcludeFrontends},
		{"exclude-backends", cfg.Process.ExcludeBackends},
	} {
		if o.path == "" || c.p.Bad("process", o.option) {
			continue
		}
		lines, err := prochaproxy.CheckExcludeFile(o.path)
		if err != nil {
			c.fail("process", o.option, o.path, "cannot use the exclude file, so nothing would be excluded: "+
				strings.TrimPrefix(err.Error(), o.path+": "))
			continue
		}
		for _, l := range lines {
			c.fail("process", o.option, o.path, fmt.Sprintf("line %d %s is not a HAProxy proxy name (names have only "+
				"letters, digits, '-', '_', '.' and ':'): an exclude file lists exact names, one per line, "+
				"not patterns, so this line excludes nothing", l.Line, q(l.Text)))
		}
	}
	if cfg.Graphite.Enabled && strings.TrimSpace(cfg.Graphite.Server) == "" && !c.p.Bad("graphite", "server") {
		c.fail("graphite", "server", cfg.Graphite.Server, "must not be empty: the Graphite host name or address "+
			"(or set enabled = false and use [local-store])")
	}
	if _, err := sources.Formats(cfg, discard); err != nil {
		c.fail("", "", "", err.Error())
	}
}

var discard = slog.New(slog.DiscardHandler)

func q(s string) string { return config.Quote(s) }

// spoolDir checks dst-dir or tmp-dst-dir: stats-pull creates it when missing (mkdir -p), then
// writes, renames and removes in it.
func (c *envCheck) spoolDir(option, dir string) bool {
	if reason := creatableDir(dir); reason != "" {
		c.fail("pull", option, dir, reason)
		return false
	}
	return true
}

// creatableDir says what is wrong with a directory a program creates when missing and then
// writes into: "" when it exists and is writable, or when it can be created.
func creatableDir(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Sprintf("%s is not a directory", q(dir))
	case err == nil:
		if err := access(dir, unix.R_OK|unix.W_OK|unix.X_OK); err != nil {
			return fmt.Sprintf("%s exists but this user (%s) may not read and write it: %s (make it owned by, "+
				"or group-writable for, the user the program runs as)", q(dir), userName(), errText(err))
		}
		return ""
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return fmt.Sprintf("cannot use %s: %s", q(dir), errText(err))
	}
	parent := nearestExisting(dir)
	pi, err := os.Stat(parent)
	switch {
	case err != nil:
		return fmt.Sprintf("%s does not exist and cannot be created: %s", q(dir), errText(err))
	case !pi.IsDir():
		return fmt.Sprintf("%s does not exist and cannot be created: %s is not a directory", q(dir), q(parent))
	}
	if err := access(parent, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Sprintf("%s does not exist, and this user (%s) may not create it in %s: %s (create it "+
			"beforehand, owned by the user the program runs as: install -d -o <user> %s)",
			q(dir), userName(), q(parent), errText(err), dir)
	}
	return ""
}

// nearestExisting is the closest ancestor of dir that exists (or "/").
func nearestExisting(dir string) string {
	d := filepath.Clean(dir)
	for {
		parent := filepath.Dir(d)
		if _, err := os.Stat(parent); err == nil || parent == d {
			return parent
		}
		d = parent
	}
}

// spoolPair repeats spool.NewWriter's checks of the two directories, on the directories or,
// when they do not exist yet, on where they would be created.
func (c *envCheck) spoolPair(dst, tmp string) {
	dst, tmp = filepath.Clean(dst), filepath.Clean(tmp)
	if dst == tmp {
		c.fail("pull", "tmp-dst-dir", "", "tmp-dst-dir and dst-dir are the same directory: snapshots must be "+
			"built outside the queue (use a sibling directory such as "+q(dst+".tmp")+")")
		return
	}
	di, derr := os.Stat(dst)
	ti, terr := os.Stat(tmp)
	if derr == nil && terr == nil && os.SameFile(di, ti) {
		c.fail("pull", "tmp-dst-dir", "", "tmp-dst-dir and dst-dir are the same directory (a link): snapshots must be built outside the queue")
		return
	}
	if filepath.Dir(tmp) == dst && !strings.HasPrefix(filepath.Base(tmp), ".") {
		c.fail("pull", "tmp-dst-dir", "", "tmp-dst-dir is inside dst-dir and would be taken for a snapshot; use a sibling directory or a dot name")
		return
	}
	dd, dok := device(dst)
	td, tok := device(tmp)
	if dok && tok && dd != td {
		c.fail("pull", "tmp-dst-dir", "", fmt.Sprintf("tmp-dst-dir and dst-dir %s are on different filesystems "+
			"(device %d vs %d): publishing a snapshot by rename would not be atomic; put both on the same filesystem",
			q(dst), td, dd))
	}
}

// device is the st_dev of dir, or of the directory it would be created in.
func device(dir string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		if err := syscall.Stat(nearestExisting(dir), &st); err != nil {
			return 0, false
		}
	}
	return uint64(st.Dev), true
}

// socketDir checks what stats-pull lists every round: a missing or unreadable socket-dir is an
// error every round; one without sockets (HAProxy stopped) only a warning.
func (c *envCheck) socketDir(dir string) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.fail("pull", "socket-dir", dir, fmt.Sprintf("directory %s does not exist (it should hold HAProxy's stats sockets: "+
			"'stats socket %s/admin.sock' in HAProxy's global section; or fix socket-dir)", q(dir), dir))
		return
	case err != nil:
		c.fail("pull", "socket-dir", dir, "cannot use "+q(dir)+": "+errText(err))
		return
	case !fi.IsDir():
		c.fail("pull", "socket-dir", dir, q(dir)+" is not a directory (socket-dir is the directory of "+
			"HAProxy's stats sockets; a single socket goes in servers = unix://"+dir+")")
		return
	}
	if err := access(dir, unix.R_OK|unix.X_OK); err != nil {
		c.fail("pull", "socket-dir", dir, fmt.Sprintf("this user (%s) may not list %s: %s (add the user to the "+
			"directory's group, e.g. HAProxy's)", userName(), q(dir), errText(err)))
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.fail("pull", "socket-dir", dir, "cannot list "+q(dir)+": "+errText(err))
		return
	}
	for i, e := range entries {
		if i >= 64<<10 {
			break
		}
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return
		}
	}
	c.warnings = append(c.warnings, fmt.Sprintf("[pull] socket-dir %s has no UNIX socket now (is HAProxy running?)", q(dir)))
}

// unixServer checks a unix:// item of servers, or a master-socket (option): a missing socket is
// HAProxy not running (a warning); something else at the path, or a socket this user may not
// connect to, is a problem.
func (c *envCheck) unixServer(option, path string) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.warnings = append(c.warnings, fmt.Sprintf("[pull] %s: UNIX socket %s does not exist now (is HAProxy running?)", option, q(path)))
	case err != nil:
		c.fail("pull", option, "", "cannot use UNIX socket "+q(path)+": "+errText(err))
	case fi.Mode()&fs.ModeSocket == 0:
		c.fail("pull", option, "", q(path)+" is not a UNIX socket")
	default:
		if err := access(path, unix.W_OK); err != nil {
			c.fail("pull", option, "", fmt.Sprintf("this user (%s) may not connect to UNIX socket %s: %s "+
				"(add the user to the socket's group, e.g. HAProxy's)", userName(), q(path), errText(err)))
		}
	}
}

// access checks the effective user's permission without opening anything.
func access(path string, mode uint32) error {
	return unix.Faccessat(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
}

// errText is an error without the path the message names already.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error()
}

func userName() string {
	uid := os.Geteuid()
	if name, ok := lookupUser(uid); ok {
		return name
	}
	return "uid " + strconv.Itoa(uid)
}

func lookupUser(uid int) (string, bool) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", false
	}
	return u.Username, true
}
