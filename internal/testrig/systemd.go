package testrig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// UserSystemd is a real systemd user manager (`systemd --user`), started in a private mount
// namespace where /run/systemd/system exists, so that it runs on machines whose PID 1 is not
// systemd (containers, CI VMs) without the host's apt or service scripts noticing.
type UserSystemd struct {
	Base    string   // unit files go to Base/config/systemd/user
	env     []string // XDG_RUNTIME_DIR, HOME, XDG_CONFIG_HOME for systemctl
	runtime string
	cmd     *exec.Cmd
	done    chan struct{}
	out     *Buffer
}

// StartUserSystemd starts the manager and waits until it runs. The test is skipped when not
// root (mount namespaces need it) or when systemd or unshare are missing.
func StartUserSystemd(t testing.TB) *UserSystemd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a private systemd user manager needs root (unshare --mount)")
	}
	for _, bin := range []string{"/lib/systemd/systemd", "/usr/bin/unshare", "/usr/bin/systemctl"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	if out, err := exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/true").CombinedOutput(); err != nil {
		t.Skipf("no private mount namespace here (unshare --mount: %v %s): a container without CAP_SYS_ADMIN?",
			err, strings.TrimSpace(string(out)))
	}
	// The runtime directory holds the notify and private sockets: not under /tmp, which units
	// with PrivateTmp would hide, and short enough for sun_path.
	runtime, err := os.MkdirTemp("/dev/shm", "sdrig")
	if err != nil {
		t.Skipf("no /dev/shm for the runtime directory: %v", err)
	}
	os.Chmod(runtime, 0o700)
	s := &UserSystemd{Base: t.TempDir(), runtime: runtime, done: make(chan struct{}), out: &Buffer{}}
	for _, d := range []string{"home", "config/systemd/user"} {
		if err := os.MkdirAll(filepath.Join(s.Base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.env = []string{
		"XDG_RUNTIME_DIR=" + runtime,
		"HOME=" + filepath.Join(s.Base, "home"),
		"XDG_CONFIG_HOME=" + filepath.Join(s.Base, "config"),
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	// A manager running as root takes the nodes it mounts over paths that a unit makes
	// inaccessible (ProtectHome=yes, ProtectKernelTunables=, ProtectKernelLogs=,
	// InaccessiblePaths=) from /run/systemd/inaccessible, which PID 1 creates at boot; without
	// them those units fail with 226/NAMESPACE. They are made here as systemd makes them (mode
	// 0, a char and a block device 0:0), except the socket, which a shell cannot create.
	// Where /run is not a mount point (a container's), MountAPIVFS= (implied by
	// ProtectKernelTunables=, ProtectControlGroups=, ProcSubset=…) would put an empty tmpfs
	// on a unit's /run, hiding the sockets there; a real system's /run is always a mount, so
	// /run is bound onto itself first.
	s.cmd = exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
		"{ mountpoint -q /run || mount --bind /run /run; } && "+
			"mount -t tmpfs -o mode=755 tmpfs /run/systemd && mkdir /run/systemd/system && "+
			"mkdir /run/systemd/inaccessible && cd /run/systemd/inaccessible && "+
			"mkdir dir && touch reg && mkfifo fifo && mknod chr c 0 0 && mknod blk b 0 0 && "+
			"chmod 0 dir reg fifo chr blk && cd / && "+
			"exec /lib/systemd/systemd --user --log-target=console")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(runtime)
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.Systemctl("exit")
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		os.RemoveAll(runtime)
		if t.Failed() {
			t.Logf("systemd --user output:\n%s", s.out.String())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		state, _ := s.Systemctl("show", "-p", "SystemState", "--value")
		if state == "running" || state == "degraded" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd --user did not start within 15 s (state %q):\n%s", state, s.out.String())
		}
		select {
		case <-s.done:
			t.Fatalf("systemd --user exited:\n%s", s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Systemctl runs `systemctl --user args...` against this manager and returns its trimmed
// combined output.
func (s *UserSystemd) Systemctl(args ...string) (string, error) {
	cmd := exec.Command("/usr/bin/systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// MustSystemctl is Systemctl failing the test on error.
func (s *UserSystemd) MustSystemctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Systemctl(args...)
	if err != nil {
		t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// InstallUnit writes unit text as name and, when dropIn is not empty, a drop-in overriding it
// (name.d/test.conf), then reloads the manager.
func (s *UserSystemd) InstallUnit(t testing.TB, name, text, dropIn string) {
	t.Helper()
	dir := filepath.Join(s.Base, "config/systemd/user")
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if dropIn != "" {
		if err := os.MkdirAll(filepath.Join(dir, name+".d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".d", "test.conf"), []byte(dropIn), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.MustSystemctl(t, "daemon-reload")
}

// Show returns properties of unit.
func (s *UserSystemd) Show(t testing.TB, unit string, props ...string) map[string]string {
	t.Helper()
	out := s.MustSystemctl(t, "show", unit, "-p", strings.Join(props, ","))
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// LetOtherUsersNotify lets units that run as another user (User=) send sd_notify messages, as
// every service can reach /run/systemd/notify under a system manager: the runtime directory
// becomes traversable by all (0711, still not listable) and the notify socket writable by all.
func (s *UserSystemd) LetOtherUsersNotify(t testing.TB) {
	t.Helper()
	if err := os.Chmod(s.runtime, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(s.runtime, "systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(s.runtime, "systemd", "notify"), 0o777); err != nil {
		t.Fatal(err)
	}
}
