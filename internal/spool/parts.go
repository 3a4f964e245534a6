package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
)

// The parts of a snapshot (see the package documentation, "Parts"): the HAProxy files at its
// top, and one directory per named source, described by its SourceInfoFile.

const (
	// SourceInfoFile describes a named source's directory (SourceInfo, JSON).
	SourceInfoFile = "source.json"
	// BodySuffix and MetaSuffix end an instance's body and its metadata (InstanceMeta, JSON).
	BodySuffix = ".body"
	MetaSuffix = ".meta.json"
	// TopLevelKind is the kind of the files at the top of a snapshot: HAProxy's *_info and
	// *_stat files, as haproxystats wrote them, from the HAProxy source of [pull].
	TopLevelKind = "haproxy"
	// TopLevelSource is the name of that source.
	TopLevelSource = "haproxy"
	// sourceInfoFormat is the version of SourceInfo written; readers accept it and lower.
	sourceInfoFormat = 1
	// maxMetaBytes bounds a SourceInfoFile or an instance's metadata file.
	maxMetaBytes = 1 << 20
)

// CheckPartName validates a named source's directory name: the source name, as the
// configuration allows it (letters, digits, '_', '-'; not starting with '.' or '-'; not an
// integer; not ending in _info or _stat, HAProxy's data files; at most 64 bytes).
func CheckPartName(name string) error {
	bad := name == "" || len(name) > 64 || name[0] == '.' || name[0] == '-'
	for i := 0; i < len(name) && !bad; i++ {
		c := name[i]
		bad = !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-')
	}
	if _, isInt := TimestampOf(name); bad || isInt || IsSnapshotFile(name) {
		return fmt.Errorf("invalid source directory name %q", name)
	}
	return nil
}

// Option is one recorded option of a source.
type Option struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SourceInfo is a named source's SourceInfoFile: enough for a processor with no pull-side
// configuration to process the directory.
type SourceInfo struct {
	Format int    `json:"format"`
	Kind   string `json:"kind"`
	Source string `json:"source"`
	// Options are the source's processing options (aggregation policies, path options), in
	// the order of its section, so that the snapshot is processed the same way anywhere.
	Options []Option `json:"options,omitempty"`
}

// InstanceMeta is an instance's metadata file, written beside its body.
type InstanceMeta struct {
	Instance        string  `json:"instance"`
	URL             string  `json:"url,omitempty"`
	ContentType     string  `json:"content_type,omitempty"`
	ContentEncoding string  `json:"content_encoding,omitempty"`
	Status          int     `json:"status,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	Bytes           int64   `json:"bytes"`
	WireBytes       int64   `json:"wire_bytes,omitempty"`
	// Extra is a kind's own small metadata about the instance (for Weave Scope plugins, the
	// name of each process of this host the report names: "pid:<pid>" → comm), so that the
	// snapshot stays processable elsewhere.
	Extra map[string]string `json:"extra,omitempty"`
}

// WriteJSON writes v as one line of JSON.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadJSON reads a small JSON file of a snapshot into v, with OpenSnapshotFile's safety, at
// most 1 MiB.
func ReadJSON(path string, v any) error {
	f, err := OpenSnapshotFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetaBytes+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxMetaBytes {
		return fmt.Errorf("%s is larger than %d bytes", path, maxMetaBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadSourceInfo reads and checks dir's SourceInfoFile.
func ReadSourceInfo(dir string) (SourceInfo, error) {
	var info SourceInfo
	if err := ReadJSON(filepath.Join(dir, SourceInfoFile), &info); err != nil {
		return info, err
	}
	switch {
	case info.Format < 1 || info.Format > sourceInfoFormat:
		return info, fmt.Errorf("%s: format %d is not one this program reads (1 to %d)",
			filepath.Join(dir, SourceInfoFile), info.Format, sourceInfoFormat)
	case info.Kind == "":
		return info, fmt.Errorf("%s: no kind", filepath.Join(dir, SourceInfoFile))
	case info.Source != filepath.Base(dir):
		return info, fmt.Errorf("%s: names source %q, but the directory is %q",
			filepath.Join(dir, SourceInfoFile), info.Source, filepath.Base(dir))
	}
	return info, nil
}

// NewSourceInfo returns the SourceInfo stats-pull writes.
func NewSourceInfo(kind, source string, options []Option) SourceInfo {
	return SourceInfo{Format: sourceInfoFormat, Kind: kind, Source: source, Options: options}
}

// Part is one part of a snapshot: the HAProxy files at its top (Info nil) or a named source's
// directory.
type Part struct {
	Dir    string // the directory holding the part's files
	Source string
	Kind   string
	Info   *SourceInfo
	// Err is why a part directory cannot be used (no or a bad SourceInfoFile); Kind and Info
	// are then unknown.
	Err error
}

// Parts lists a snapshot's parts: the top-level part when the snapshot has a data file at its
// top (IsSnapshotFile), then each part directory in name order. Call CheckSnapshot first.
func Parts(snapshotPath string) ([]Part, error) {
	entries, err := ReadSnapshotDir(snapshotPath)
	if err != nil {
		return nil, err
	}
	var parts []Part
	top := false
	for _, e := range entries {
		if e.Type().IsRegular() && IsSnapshotFile(e.Name()) {
			top = true
			break
		}
	}
	if top {
		parts = append(parts, Part{Dir: snapshotPath, Source: TopLevelSource, Kind: TopLevelKind})
	}
	for _, e := range entries {
		if !e.Type().IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(snapshotPath, e.Name())
		p := Part{Dir: dir, Source: e.Name()}
		if err := CheckPartName(e.Name()); err != nil {
			p.Err = err
		} else if info, err := ReadSourceInfo(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("%s has no %s: it is not a source directory", dir, SourceInfoFile)
			}
			p.Err = err
		} else {
			p.Kind, p.Info = info.Kind, &info
		}
		parts = append(parts, p)
	}
	return parts, nil
}
