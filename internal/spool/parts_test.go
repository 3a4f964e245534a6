package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mkPart(t *testing.T, snap, source, kind string) string {
	t.Helper()
	dir := filepath.Join(snap, source)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, SourceInfoFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteJSON(f, NewSourceInfo(kind, source, []Option{{"aggregate", "sum"}})); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPartsAndTheirChecks(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "1700000000")
	os.Mkdir(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "a.sock_stat"), []byte("# pxname\n"), 0o644)
	apps := mkPart(t, snap, "apps", "openmetrics")
	os.WriteFile(filepath.Join(apps, "i1"+BodySuffix), []byte("x 1\n"), 0o644)
	mkPart(t, snap, "web", "openmetrics")
	if err := CheckSnapshot(snap); err != nil {
		t.Fatalf("a snapshot with parts: %v", err)
	}
	parts, err := Parts(snap)
	if err != nil || len(parts) != 3 {
		t.Fatalf("parts %+v %v", parts, err)
	}
	if p := parts[0]; p.Kind != TopLevelKind || p.Dir != snap || p.Info != nil {
		t.Fatalf("top-level part %+v", p)
	}
	if p := parts[1]; p.Source != "apps" || p.Kind != "openmetrics" || p.Info.Options[0].Key != "aggregate" || p.Err != nil {
		t.Fatalf("apps part %+v", p)
	}

	// A source.json that names another source is not that directory's.
	other := mkPart(t, snap, "other", "openmetrics")
	f, _ := os.Create(filepath.Join(other, SourceInfoFile))
	WriteJSON(f, NewSourceInfo("openmetrics", "apps", nil))
	f.Close()
	parts, _ = Parts(snap)
	if p := parts[2]; p.Source != "other" || p.Err == nil || !strings.Contains(p.Err.Error(), `names source "apps"`) {
		t.Fatalf("mismatched part %+v", p)
	}
}

func TestUnsafePartContents(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, snap string)
		want string
	}{
		{"FIFO in a part", func(t *testing.T, snap string) {
			if err := syscall.Mkfifo(filepath.Join(mkPart(t, snap, "apps", "om"), "i1.body"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "apps/i1.body is a FIFO"},
		{"directory in a part", func(t *testing.T, snap string) {
			os.Mkdir(filepath.Join(mkPart(t, snap, "apps", "om"), "deeper"), 0o755)
		}, "apps/deeper is a directory"},
		{"symlinked part", func(t *testing.T, snap string) {
			target := mkPart(t, t.TempDir(), "apps", "om")
			os.Symlink(target, filepath.Join(snap, "apps"))
		}, "apps is a symlink"},
		{"directory without source.json", func(t *testing.T, snap string) {
			os.Mkdir(filepath.Join(snap, "apps"), 0o755)
		}, "apps is a directory without source.json"},
		{"directory named like data", func(t *testing.T, snap string) {
			os.Mkdir(filepath.Join(snap, "x_stat"), 0o755)
		}, "x_stat is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap := filepath.Join(t.TempDir(), "1700000000")
			os.Mkdir(snap, 0o755)
			c.make(t, snap)
			var unsafe *UnsafeError
			if err := CheckSnapshot(snap); !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, c.want) {
				t.Fatalf("CheckSnapshot = %v, want an UnsafeError saying %q", err, c.want)
			}
		})
	}
}

func TestPartNames(t *testing.T) {
	for _, ok := range []string{"apps", "web-1", "a_b", "A9"} {
		if err := CheckPartName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".apps", "-x", "123", "a.b", "a/b", "x_stat", "y_info", strings.Repeat("a", 65)} {
		if err := CheckPartName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
