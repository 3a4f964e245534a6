package testrig

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// MountBPFFS mounts a private, empty bpffs in a temporary directory for the test (unmounted
// in cleanup, which drops every pin in it): tests never touch /sys/fs/bpf. Skips without
// CAP_SYS_ADMIN.
func MountBPFFS(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot mount a bpffs (needs CAP_SYS_ADMIN): %v", err)
		}
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
