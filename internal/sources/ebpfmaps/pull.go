package ebpfmaps

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/pin"
	"golang.org/x/sys/unix"

	"log/slog"

	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/spool"
)

// The pull half. Every round each configured path is classified again (maps come and go with
// the programs that pin them): a pin file is one map; a directory must be on a bpffs and is
// walked recursively (symlinks not followed, `*.debug` skipped, bounded), each pin in it
// opened read-only and kept if it is a map (link and program pins are skipped with a debug
// line). Each map is one instance: its entries are iterated (bounded by max-entries), decoded,
// and written as JSON lines to <map>.body, its metadata to <map>.meta.json's extra.

// procDir is where process names are read (a variable for tests).
var procDir = "/proc"

// maxPIDs bounds the process names recorded for one map.
const maxPIDs = 8192

type provider struct {
	info pull.ProviderInfo
	st   pullSettings
	log  *slog.Logger

	mu     sync.Mutex
	warned map[string]bool // things already logged once
}

func (p *provider) Info() pull.ProviderInfo { return p.info }

// once logs msg once per key (the set is bounded: cleared when large).
func (p *provider) once(key string, level slog.Level, msg string, args ...any) {
	p.mu.Lock()
	if p.warned == nil || len(p.warned) > 1024 {
		p.warned = map[string]bool{}
	}
	seen := p.warned[key]
	p.warned[key] = true
	p.mu.Unlock()
	if !seen {
		p.log.Log(context.Background(), level, msg, args...)
	}
}

// mapPin is one map found this round.
type mapPin struct {
	name, path string
}

func (p *provider) Sources(ctx context.Context) ([]pull.Source, error) {
	pins, err := p.discover()
	if err != nil {
		return nil, err
	}
	out := make([]pull.Source, 0, len(pins))
	for _, m := range pins {
		out = append(out, &instance{p: p, pin: m})
	}
	return out, nil
}

// ErrNotBPFFS is returned for a configured path that is not on a bpf filesystem.
var ErrNotBPFFS = errors.New("not on a bpf filesystem")

func checkBPFFS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("%s: %w (mount one: mount -t bpf bpf %s, or point pins at the bpffs where the maps are pinned)", path, ErrNotBPFFS, path)
	}
	return nil
}

func (p *provider) discover() ([]mapPin, error) {
	var found []mapPin
	byName := map[string]string{}
	add := func(name, path string) error {
		if len(found) >= maxPins {
			return fmt.Errorf("more than %d pins", maxPins)
		}
		if first, dup := byName[name]; dup {
			if first != path {
				p.once("dup:"+path, slog.LevelWarn, "map pin left out", "path", path, "reason", "map name "+name+" is already "+first)
			}
			return nil
		}
		byName[name] = path
		found = append(found, mapPin{name: name, path: path})
		return nil
	}
	for _, root := range p.st.pins {
		fi, err := os.Lstat(root)
		if err != nil {
			if p.st.missing != "" && errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w (%s)", err, p.st.missing)
			}
			return nil, err
		}
		if err := checkBPFFS(root); err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if ok := p.isMap(root); ok {
				if err := add(instanceName(filepath.Base(root)), root); err != nil {
					return nil, err
				}
			}
			continue
		}
		var paths []string
		visited := 0
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			visited++
			if visited > maxWalkEntries {
				return fmt.Errorf("%s: more than %d entries", root, maxWalkEntries)
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // removed meanwhile, or a *.debug file
					return nil
				}
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".debug") {
				return nil
			}
			paths = append(paths, path)
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(paths)
		for _, path := range paths {
			if !p.isMap(path) || !p.readable(path) {
				continue
			}
			rel, _ := filepath.Rel(root, path)
			if err := add(instanceName(rel), path); err != nil {
				return nil, err
			}
		}
	}
	return found, nil
}

// readable says whether a map found by a walk can be read entry by entry; one that cannot (a
// ring buffer, a perf event array, a queue) is skipped with a warning, so that it does not fail
// the source every round. A pin file named in pins is read whatever it is, and fails.
func (p *provider) readable(path string) bool {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return true // the instance reports why
	}
	defer m.Close()
	if iterable(m.Type()) {
		return true
	}
	p.once("unsupported:"+path, slog.LevelWarn, "map skipped: its type cannot be read entry by entry", "path", path, "map_type", m.Type().String())
	return false
}

// isMap opens a pin to learn what it is; a pin that is no map is skipped with a debug line.
func (p *provider) isMap(path string) bool {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err == nil {
		m.Close()
		return true
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	// Link pins refuse BPF_F_RDONLY (EINVAL); program pins say they are not a map. Ask what
	// the pin is, without the flag.
	obj, lerr := pin.Load(path, nil)
	if lerr != nil {
		// Unreadable: keep it, so that the instance fails with the reason.
		if errors.Is(err, os.ErrPermission) {
			return true
		}
		p.once("skip:"+path, slog.LevelDebug, "pin skipped", "path", path, "reason", err.Error())
		return false
	}
	defer obj.Close()
	if _, ok := obj.(*ebpf.Map); ok {
		return true
	}
	p.once("skip:"+path, slog.LevelDebug, "pin skipped: not a map", "path", path, "object", fmt.Sprintf("%T", obj))
	return false
}

// instanceName makes a pin's path below its root a file and path component: characters
// other than letters, digits, '-' and '_' become '_'.
func instanceName(rel string) string {
	b := []byte(rel)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '_' && len(b) == 1 {
		return "_map"
	}
	return string(b)
}

type instance struct {
	p   *provider
	pin mapPin
}

func (in *instance) Name() string { return in.pin.name }

// Entry is one map entry as the snapshot keeps it (one JSON line of <map>.body).
type Entry struct {
	// Key and Value are the decoded fields; absent when the bytes could not be decoded. For a
	// per-CPU map, Value is the sum over CPUs of each numeric field (the other fields: CPU 0's)
	// and PerCPU each CPU's fields.
	Key    []Field   `json:"key,omitempty"`
	Value  []Field   `json:"value,omitempty"`
	PerCPU [][]Field `json:"per_cpu,omitempty"`
	// RawKey and RawValue are the bytes as hex (RawValues: one per possible CPU).
	RawKey    string   `json:"raw_key"`
	RawValue  string   `json:"raw_value,omitempty"`
	RawValues []string `json:"raw_values,omitempty"`
}

// bpfMapInfo is a prefix of the kernel's struct bpf_map_info (include/uapi/linux/bpf.h):
// cilium/ebpf v0.22.0 does not expose btf_key_type_id and btf_value_type_id. The kernel
// accepts an info_len shorter than its own struct.
type bpfMapInfo struct {
	Type, ID, KeySize, ValueSize, MaxEntries, MapFlags uint32
	Name                                               [16]byte
	Ifindex, BtfVmlinuxValueTypeID                     uint32
	NetnsDev, NetnsIno                                 uint64
	BtfID, BtfKeyTypeID, BtfValueTypeID, BtfVmlinuxID  uint32
}

func mapInfo(m *ebpf.Map) (bpfMapInfo, error) {
	var info bpfMapInfo
	attr := struct {
		BpfFD, InfoLen uint32
		Info           uint64
	}{uint32(m.FD()), uint32(unsafe.Sizeof(info)), uint64(uintptr(unsafe.Pointer(&info)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return info, fmt.Errorf("BPF_OBJ_GET_INFO_BY_FD: %w", errno)
	}
	return info, nil
}

func perCPU(t ebpf.MapType) bool {
	switch t {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		return true
	}
	return false
}

func iterable(t ebpf.MapType) bool {
	switch t {
	case ebpf.Hash, ebpf.Array, ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUHash, ebpf.LRUCPUHash, ebpf.LPMTrie:
		return true
	}
	return false
}

// openError words an error opening a pin.
func openError(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		mode := ""
		if fi, serr := os.Stat(path); serr == nil {
			mode = fmt.Sprintf("mode %04o, ", fi.Mode().Perm())
		}
		return fmt.Errorf("pin %s not readable by uid %d (%schmod the pin, or run as root; reading the maps' BTF needs CAP_SYS_ADMIN): %w", path, os.Getuid(), mode, err)
	}
	return fmt.Errorf("pin %s: %w", path, err)
}

func (in *instance) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	p := in.p
	start := time.Now()
	m, err := ebpf.LoadPinnedMap(in.pin.path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return openError(in.pin.path, err)
	}
	defer m.Close()
	info, err := mapInfo(m)
	if err != nil {
		return fmt.Errorf("pin %s: %w", in.pin.path, err)
	}
	typ := ebpf.MapType(info.Type)
	if !iterable(typ) {
		return fmt.Errorf("pin %s: map type %s cannot be read entry by entry (not supported)", in.pin.path, typ)
	}
	keyT, valT, source := in.types(info)
	extra := map[string]string{
		"path":        in.pin.path,
		"map_name":    string(info.Name[:clen(info.Name[:])]),
		"map_type":    typ.String(),
		"key_size":    strconv.FormatUint(uint64(info.KeySize), 10),
		"value_size":  strconv.FormatUint(uint64(info.ValueSize), 10),
		"max_entries": strconv.FormatUint(uint64(info.MaxEntries), 10),
		"types":       source,
	}
	if keyT != nil {
		extra["key_type"] = typeName(keyT)
	}
	if valT != nil {
		extra["value_type"] = typeName(valT)
	}
	if p.st.groupBy != "" {
		extra["group_by"] = p.st.groupBy
	}
	pcpu := perCPU(typ)
	if pcpu {
		extra["per_cpu_map"] = "true"
		if p.st.perCPU {
			extra["per_cpu"] = "true"
		}
	}

	body, err := snap.Create(in.pin.name + spool.BodySuffix)
	if err != nil {
		return err
	}
	counted := &countingWriter{w: body}
	bw := bufio.NewWriterSize(counted, 64<<10)
	var (
		k      []byte
		v      []byte
		vs     [][]byte
		n      int
		left   int
		undec  int
		pids   []string
		seen   = map[string]bool{}
		morePD int
		dups   int
		keys   = map[string]struct{}{}
	)
	it := m.Iterate()
	for {
		var ok bool
		if pcpu {
			ok = it.Next(&k, &vs)
		} else {
			ok = it.Next(&k, &v)
		}
		if !ok {
			break
		}
		if n >= p.st.maxEntries {
			left++
			if left > 10*p.st.maxEntries { // a map that grows as fast as it is read
				break
			}
			continue
		}
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rawKey := hex.EncodeToString(k)
		// A hash iteration whose current key is deleted starts over: a key seen twice would
		// count twice in every sum.
		if _, dup := keys[rawKey]; dup {
			dups++
			continue
		}
		keys[rawKey] = struct{}{}
		n++
		e := Entry{RawKey: rawKey}
		if keyT != nil {
			if e.Key, err = Decode(keyT, k); err != nil {
				undec++
				e.Key = nil
			}
		}
		if pcpu {
			e.RawValues = make([]string, len(vs))
			for i, b := range vs {
				e.RawValues[i] = hex.EncodeToString(b)
			}
			if valT != nil {
				e.PerCPU = make([][]Field, 0, len(vs))
				for _, b := range vs {
					f, err := Decode(valT, b)
					if err != nil {
						undec++
						e.PerCPU = nil
						break
					}
					e.PerCPU = append(e.PerCPU, f)
				}
				if e.PerCPU != nil {
					e.Value = SumFields(e.PerCPU)
				}
			}
		} else {
			e.RawValue = hex.EncodeToString(v)
			if valT != nil {
				if e.Value, err = Decode(valT, v); err != nil {
					undec++
					e.Value = nil
				}
			}
		}
		if p.st.groupBy != "" {
			if pid, ok := fieldNum(e.Key, p.st.groupBy); ok && !seen[pid] {
				if len(pids) < maxPIDs {
					seen[pid] = true
					pids = append(pids, pid)
				} else {
					morePD++
				}
			}
		}
		if err := spool.WriteJSON(bw, &e); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("pin %s: iterating: %w", in.pin.path, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := body.Commit(); err != nil {
		return err
	}
	extra["entries"] = strconv.Itoa(n)
	if left > 0 {
		extra["entries_left_out"] = strconv.Itoa(left)
		p.log.Warn("map entries over max-entries left out", "map", in.pin.name, "max_entries", p.st.maxEntries, "left_out", left)
	}
	if dups > 0 {
		extra["duplicate_keys"] = strconv.Itoa(dups)
	}
	if undec > 0 {
		extra["undecoded"] = strconv.Itoa(undec)
		p.once("undec:"+in.pin.path, slog.LevelWarn, "map entries that do not fit their types kept as hex", "map", in.pin.name, "count", undec)
	}
	for _, pid := range pids {
		if comm, ok := readComm(pid); ok {
			extra["pid:"+pid] = comm
		}
	}
	if morePD > 0 {
		p.log.Warn("process names not recorded past the bound", "map", in.pin.name, "max", maxPIDs, "left_out", morePD)
	}
	meta, err := snap.Create(in.pin.name + spool.MetaSuffix)
	if err != nil {
		return err
	}
	if err := spool.WriteJSON(meta, spool.InstanceMeta{Instance: in.pin.name, URL: "file://" + in.pin.path,
		DurationSeconds: time.Since(start).Seconds(), Bytes: counted.n, Extra: extra}); err != nil {
		return err
	}
	return meta.Commit()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// types returns the key and value types of a map and where they came from: "btf" (the map's
// own), "layout" (configured), "default" (no BTF: hex keys, u64 values).
func (in *instance) types(info bpfMapInfo) (key, value btf.Type, source string) {
	p := in.p
	if info.BtfID != 0 {
		key, value, err := mapBTF(info)
		if err == nil {
			return key, value, "btf"
		}
		if errors.Is(err, os.ErrPermission) {
			p.once("btfperm:"+in.pin.path, slog.LevelWarn, "map has BTF but reading it needs CAP_SYS_ADMIN; falling back to the layout or hex", "map", in.pin.name)
		} else {
			p.once("btf:"+in.pin.path, slog.LevelWarn, "map BTF unusable; falling back to the layout or hex", "map", in.pin.name, "error", err)
		}
	}
	if d, ok := p.st.declared[in.pin.name]; ok {
		if sizeOf(d.Key) == info.KeySize && sizeOf(d.Value) == info.ValueSize {
			return d.Key, d.Value, "declared"
		}
		p.once("declared:"+in.pin.path, slog.LevelWarn, "the map's key or value size is not what its program declares; read as without BTF",
			"map", in.pin.name, "key_size", info.KeySize, "value_size", info.ValueSize)
	}
	if l, ok := p.st.layouts[in.pin.name]; ok {
		key, value = l.Key, l.Value
		if key != nil && sizeOf(key) != info.KeySize || value != nil && sizeOf(value) != info.ValueSize {
			p.once("layout:"+in.pin.path, slog.LevelWarn, "layout does not match the map's key or value size; ignored",
				"map", in.pin.name, "key_size", info.KeySize, "value_size", info.ValueSize)
			return nil, defaultValue(info.ValueSize), "default"
		}
		if value == nil {
			value = defaultValue(info.ValueSize)
		}
		return key, value, "layout"
	}
	return nil, defaultValue(info.ValueSize), "default"
}

func mapBTF(info bpfMapInfo) (btf.Type, btf.Type, error) {
	h, err := btf.NewHandleFromID(btf.ID(info.BtfID))
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	spec, err := h.Spec(nil)
	if err != nil {
		return nil, nil, err
	}
	var key, value btf.Type
	if info.BtfKeyTypeID != 0 {
		if key, err = spec.TypeByID(btf.TypeID(info.BtfKeyTypeID)); err != nil {
			return nil, nil, err
		}
	}
	if info.BtfValueTypeID != 0 {
		if value, err = spec.TypeByID(btf.TypeID(info.BtfValueTypeID)); err != nil {
			return nil, nil, err
		}
	}
	return key, value, nil
}

// typeName is a short description of a type: its kind and name.
func typeName(t btf.Type) string {
	name := t.TypeName()
	kind := strings.TrimPrefix(fmt.Sprintf("%T", t), "*btf.")
	if name == "" {
		return kind
	}
	return kind + " " + name
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// fieldNum returns the integer text of a field.
func fieldNum(fs []Field, name string) (string, bool) {
	for _, f := range fs {
		if f.Name == name && (f.Kind == KindUint || f.Kind == KindInt || f.Kind == KindEnum) {
			return string(f.Num), true
		}
	}
	return "", false
}

// SumFields sums each numeric field over CPUs (integers exactly; a uint sum that would
// overflow is written as a float); other fields are CPU 0's.
func SumFields(cpus [][]Field) []Field {
	if len(cpus) == 0 {
		return nil
	}
	out := slices.Clone(cpus[0])
	for i := range out {
		f := &out[i]
		switch f.Kind {
		case KindUint:
			var sum uint64
			var fsum float64
			overflow := false
			for _, c := range cpus {
				if i >= len(c) {
					continue
				}
				u, _ := strconv.ParseUint(string(c[i].Num), 10, 64)
				fsum += float64(u)
				if sum+u < sum {
					overflow = true
				}
				sum += u
			}
			if overflow {
				f.Kind = KindFloat
				f.Num = jsonNumber(strconv.FormatFloat(fsum, 'g', -1, 64))
			} else {
				f.Num = jsonNumber(strconv.FormatUint(sum, 10))
			}
		case KindInt:
			var sum int64
			for _, c := range cpus {
				if i < len(c) {
					s, _ := strconv.ParseInt(string(c[i].Num), 10, 64)
					sum += s
				}
			}
			f.Num = jsonNumber(strconv.FormatInt(sum, 10))
		case KindFloat:
			var sum float64
			for _, c := range cpus {
				if i < len(c) {
					s, _ := strconv.ParseFloat(string(c[i].Num), 64)
					sum += s
				}
			}
			f.Num = jsonNumber(strconv.FormatFloat(sum, 'g', -1, 64))
		}
	}
	return out
}

// readComm returns a process's name, if the process still exists.
func readComm(pid string) (string, bool) {
	f, err := os.Open(filepath.Join(procDir, pid, "comm"))
	if err != nil {
		return "", false
	}
	defer f.Close()
	var buf [64]byte // the kernel's TASK_COMM_LEN is 16
	n, _ := io.ReadFull(f, buf[:])
	comm := strings.TrimSuffix(string(buf[:n]), "\n")
	return comm, comm != ""
}
