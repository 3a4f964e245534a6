package spool

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A snapshot in transit (the central tier, issue 12): one tar stream, readable with tar(1) and
// kcat, holding first EdgeFile — who pulled it — then every file of the snapshot, top-level
// files and part directories' files ("<source>/<file>"), in name order, mode 0644, time 0. The
// receiving side unpacks it into a tmp directory of its own spool and publishes it with one
// rename, like stats-pull; everything a spool snapshot may not hold (links, devices, names
// outside the snapshot, nested directories, names that are no part's) fails the whole archive,
// naming the entry.

// EdgeFile is the first entry of an archive.
const EdgeFile = "statspipe-edge.json"

const archiveFormat = 1

// Edge says where an archived snapshot comes from.
type Edge struct {
	Format   int    `json:"format"`
	Host     string `json:"host"`     // the edge's host name, the path component after the namespace
	Snapshot string `json:"snapshot"` // its directory name (epoch seconds)
}

// ArchiveLimits bound what Unpack accepts.
type ArchiveLimits struct {
	Files int   // default 100000
	Bytes int64 // all files together; default 1 GiB
}

func (l ArchiveLimits) orDefaults() ArchiveLimits {
	if l.Files <= 0 {
		l.Files = 100000
	}
	if l.Bytes <= 0 {
		l.Bytes = 1 << 30
	}
	return l
}

// Pack writes the snapshot directory dir, pulled on host, as an archive to w.
func Pack(w io.Writer, dir, host string) error {
	name := filepath.Base(dir)
	if _, ok := TimestampOf(name); !ok {
		return fmt.Errorf("pack %s: not a snapshot directory name", dir)
	}
	if err := CheckSnapshot(dir); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	var files []string
	top, err := ReadSnapshotDir(dir)
	if err != nil {
		return err
	}
	for _, e := range top {
		if e.IsDir() {
			sub, err := ReadSnapshotDir(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			for _, f := range sub {
				files = append(files, e.Name()+"/"+f.Name())
			}
			continue
		}
		files = append(files, e.Name())
	}
	slices.Sort(files)
	tw := tar.NewWriter(w)
	edge, err := json.Marshal(Edge{Format: archiveFormat, Host: host, Snapshot: name})
	if err != nil {
		return err
	}
	if err := writeEntry(tw, EdgeFile, int64(len(edge)), strings.NewReader(string(edge))); err != nil {
		return err
	}
	for _, f := range files {
		file, err := os.Open(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		fi, err := file.Stat()
		if err == nil {
			err = writeEntry(tw, f, fi.Size(), file)
		}
		file.Close()
		if err != nil {
			return fmt.Errorf("pack %s: %s: %w", dir, f, err)
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.CopyN(tw, r, size)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ErrBadArchive wraps every reason an archive is refused.
var ErrBadArchive = errors.New("not a statspipe snapshot archive")

// Unpack reads an archive from r into tmp/<snapshot> (tmp must be on the filesystem of the
// spool the caller publishes into) and returns its Edge and that directory. On an error
// nothing is left in tmp.
func Unpack(r io.Reader, tmp string, limits ArchiveLimits) (Edge, string, error) {
	limits = limits.orDefaults()
	tr := tar.NewReader(r)
	var edge Edge
	fail := func(format string, a ...any) (Edge, string, error) {
		return Edge{}, "", fmt.Errorf("%w: "+format, append([]any{ErrBadArchive}, a...)...)
	}
	h, err := tr.Next()
	if err != nil {
		return fail("no %s: %v", EdgeFile, err)
	}
	if h.Name != EdgeFile || h.Typeflag != tar.TypeReg || h.Size > 64<<10 {
		return fail("the first entry is %q, not %s", h.Name, EdgeFile)
	}
	b, err := io.ReadAll(io.LimitReader(tr, 64<<10))
	if err != nil {
		return fail("%s: %v", EdgeFile, err)
	}
	if err := json.Unmarshal(b, &edge); err != nil {
		return fail("%s: %v", EdgeFile, err)
	}
	if edge.Format != archiveFormat {
		return fail("%s: format %d, this program reads %d", EdgeFile, edge.Format, archiveFormat)
	}
	if _, ok := TimestampOf(edge.Snapshot); !ok {
		return fail("%s: snapshot %q is not an epoch name", EdgeFile, edge.Snapshot)
	}
	if edge.Host == "" || strings.ContainsAny(edge.Host, " \t\n/") || len(edge.Host) > 255 {
		return fail("%s: host %q is not a host name", EdgeFile, edge.Host)
	}
	dir := filepath.Join(tmp, edge.Snapshot)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Edge{}, "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	seen := map[string]bool{}
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail("entry %d: %v", n+1, err)
		}
		if n >= limits.Files {
			return fail("more than %d files", limits.Files)
		}
		if h.Typeflag != tar.TypeReg {
			return fail("%q is not a regular file (type %q)", h.Name, h.Typeflag)
		}
		if err := checkArchiveName(h.Name); err != nil {
			return fail("%v", err)
		}
		if seen[h.Name] {
			return fail("%q twice", h.Name)
		}
		seen[h.Name] = true
		if total += h.Size; h.Size < 0 || total > limits.Bytes {
			return fail("more than %d bytes", limits.Bytes)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if part, _, nested := strings.Cut(h.Name, "/"); nested {
			if err := os.Mkdir(filepath.Join(dir, part), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return Edge{}, "", err
			}
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return Edge{}, "", err
		}
		_, err = io.CopyN(f, tr, h.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail("%q: %v", h.Name, err)
		}
	}
	if len(seen) == 0 {
		return fail("no file after %s (a truncated archive?)", EdgeFile)
	}
	if err := CheckSnapshot(dir); err != nil {
		return fail("%v", err)
	}
	ok = true
	return edge, dir, nil
}

// checkArchiveName accepts "<file>" or "<source>/<file>": a part directory's name and file
// names without '/', dot-first names or control characters.
func checkArchiveName(name string) error {
	part, file, nested := strings.Cut(name, "/")
	if !nested {
		file, part = part, ""
	}
	if part != "" {
		if err := CheckPartName(part); err != nil {
			return fmt.Errorf("%q: %v", name, err)
		}
	}
	if file == "" || len(file) > 255 || file[0] == '.' || strings.ContainsAny(file, "/\\") || file == EdgeFile {
		return fmt.Errorf("%q is not a snapshot file name", name)
	}
	for _, c := range file {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%q has a control character", name)
		}
	}
	return nil
}
