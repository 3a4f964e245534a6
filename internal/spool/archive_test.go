package spool

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A snapshot with top-level HAProxy files and a part directory goes through Pack and Unpack
// unchanged, with its Edge.
func TestArchiveRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "1700000000")
	files := map[string]string{
		"admin1.sock_info": "Name: HAProxy\n", "admin1.sock_stat": "# pxname,svname,\n",
		"web/source.json": `{"format":1,"kind":"openmetrics","source":"web"}` + "\n",
		"web/a.body":      "x 1\n", "web/a.meta.json": `{"instance":"a"}` + "\n",
	}
	for name, body := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	var b bytes.Buffer
	if err := Pack(&b, src, "lb1.example.com"); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	edge, dir, err := Unpack(bytes.NewReader(b.Bytes()), tmp, ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if edge != (Edge{Format: 1, Host: "lb1.example.com", Snapshot: "1700000000"}) || dir != filepath.Join(tmp, "1700000000") {
		t.Fatalf("edge %+v dir %s", edge, dir)
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || string(got) != body {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	// Packing is reproducible (name order, fixed mode and time).
	var again bytes.Buffer
	Pack(&again, src, "lb1.example.com")
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Error("two packs of one snapshot differ")
	}
	if err := Pack(&again, filepath.Join(t.TempDir(), "notasnapshot"), "h"); err == nil {
		t.Error("a directory that is no snapshot was packed")
	}
}

type entry struct {
	name string
	typ  byte
	body string
	link string
}

func archive(t *testing.T, edge string, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	all := append([]entry{{name: EdgeFile, typ: tar.TypeReg, body: edge}}, entries...)
	if edge == "" {
		all = entries
	}
	for _, e := range all {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Size: int64(len(e.body)), Mode: 0o644, Linkname: e.link}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

// Anything a snapshot may not hold fails the whole archive, naming the entry, and leaves
// nothing behind.
func TestUnpackRefuses(t *testing.T) {
	const edge = `{"format":1,"host":"lb1","snapshot":"1700000000"}`
	reg := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "x"} }
	cases := map[string]struct {
		data []byte
		want string
	}{
		"no edge file":             {archive(t, "", reg("a_stat")), "not statspipe-edge.json"},
		"bad edge json":            {archive(t, "{", reg("a_stat")), "statspipe-edge.json"},
		"future format":            {archive(t, `{"format":9,"host":"h","snapshot":"1"}`), "format 9"},
		"bad snapshot name":        {archive(t, `{"format":1,"host":"h","snapshot":"../x"}`), "not an epoch name"},
		"bad host":                 {archive(t, `{"format":1,"host":"a/b","snapshot":"1"}`), "not a host name"},
		"traversal":                {archive(t, edge, reg("../etc/passwd")), "../etc/passwd"},
		"absolute":                 {archive(t, edge, reg("/etc/passwd")), "/etc/passwd"},
		"nested":                   {archive(t, edge, reg("web/sub/a.body")), "web/sub/a.body"},
		"dot file":                 {archive(t, edge, reg(".hidden")), ".hidden"},
		"bad part name":            {archive(t, edge, reg(".x/a.body")), ".x/a.body"},
		"symlink":                  {archive(t, edge, entry{name: "a_stat", typ: tar.TypeSymlink, link: "/etc/passwd"}), "not a regular file"},
		"hard link":                {archive(t, edge, entry{name: "a_stat", typ: tar.TypeLink, link: "b"}), "not a regular file"},
		"device":                   {archive(t, edge, entry{name: "a_stat", typ: tar.TypeChar}), "not a regular file"},
		"directory entry":          {archive(t, edge, entry{name: "web/", typ: tar.TypeDir}), "not a regular file"},
		"twice":                    {archive(t, edge, reg("a_stat"), reg("a_stat")), "twice"},
		"truncated":                {archive(t, edge, reg("a_stat"))[:600], "statspipe"},
		"part without source.json": {archive(t, edge, reg("web/a.body")), "source.json"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			_, _, err := Unpack(bytes.NewReader(c.data), tmp, ArchiveLimits{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("left in tmp: %v", left)
			}
		})
	}
	// Limits.
	tmp := t.TempDir()
	many := archive(t, edge, reg("a_stat"), reg("b_stat"), reg("c_stat"))
	if _, _, err := Unpack(bytes.NewReader(many), tmp, ArchiveLimits{Files: 2}); !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), "more than 2 files") {
		t.Errorf("files limit: %v", err)
	}
	if _, _, err := Unpack(bytes.NewReader(many), tmp, ArchiveLimits{Bytes: 2}); err == nil || !strings.Contains(err.Error(), "more than 2 bytes") {
		t.Errorf("bytes limit: %v", err)
	}
}

// FuzzUnpack: arbitrary bytes never panic, and a refused archive leaves nothing in tmp.
func FuzzUnpack(f *testing.F) {
	f.Add([]byte{})
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	edge := `{"format":1,"host":"h","snapshot":"1700000000"}`
	tw.WriteHeader(&tar.Header{Name: EdgeFile, Typeflag: tar.TypeReg, Size: int64(len(edge)), Mode: 0o644})
	tw.Write([]byte(edge))
	tw.WriteHeader(&tar.Header{Name: "a_stat", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("x\n"))
	tw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp := t.TempDir()
		_, dir, err := Unpack(bytes.NewReader(data), tmp, ArchiveLimits{Files: 100, Bytes: 1 << 20})
		left, _ := os.ReadDir(tmp)
		if err != nil && len(left) != 0 {
			t.Fatalf("refused (%v) but left %v", err, left)
		}
		if err == nil {
			if CheckSnapshot(dir) != nil {
				t.Fatalf("accepted an unsafe snapshot %s", dir)
			}
		}
	})
}
