package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Defaults of the loader (stats-http-ebpf) and of Options.
const (
	DefaultPinDir      = "/sys/fs/bpf/statspipe/http"
	DefaultPinMode     = os.FileMode(0o640)
	DefaultExitedGrace = 30 * time.Second
)

// ErrNoPrivilege is wrapped by the errors of Load that the kernel refused with EPERM: loading
// the programs or creating the maps needs root or CAP_BPF+CAP_PERFMON.
var ErrNoPrivilege = errors.New("insufficient privileges for eBPF")

// ErrNotBPFFS is wrapped by the error of Load when the pin directory is not on a bpf
// filesystem.
var ErrNotBPFFS = errors.New("not on a bpf filesystem")

// Options configure Load.
type Options struct {
	PinDir     string      // where the maps are pinned (by name); "" = DefaultPinDir
	MaxEntries uint32      // max_entries of http_requests and http_responses; 0 = the C default (16384)
	AllFDs     bool        // count every file descriptor, not only accepted sockets (only_accepted=0)
	PinMode    os.FileMode // mode of the three pins; 0 = DefaultPinMode (0640)
	PinGroup   int         // group (gid) of the three pins; -1 = leave it (the zero value is gid 0)

	// ExitedGrace is how long Prune keeps the keys of a process after it first found it gone,
	// so that stats-pull reads its final counts at least once; 0 = DefaultExitedGrace.
	ExitedGrace time.Duration
	// Alive reports whether a process exists; nil = ProcessAlive. For tests.
	Alive func(pid uint32) bool
}

// Tracer is the loaded and attached HTTP statistics program. Its maps are pinned in the pin
// directory; Close detaches the programs and leaves the pins (and so the counts) in place.
type Tracer struct {
	objs       httpStatsObjects
	links      []link.Link
	pinDir     string
	maxEntries uint32
	grace      time.Duration
	alive      func(pid uint32) bool
	replaced   []string

	mu   sync.Mutex
	dead map[uint32]time.Time // pid → when Prune first found it gone
}

// PruneStats is what one Prune did.
type PruneStats struct {
	Pids      int // processes whose keys were deleted
	Keys      int // keys deleted (both maps)
	Waiting   int // exited processes whose keys are kept until ExitedGrace has passed
	Requests  int // entries left in http_requests
	Responses int // entries left in http_responses
}

// ProcessAlive reports whether pid exists, with kill(pid, 0): unlike a look at /proc/<pid>,
// it also sees processes that a hidepid=/ProtectProc= /proc hides. EPERM means it exists.
func ProcessAlive(pid uint32) bool {
	if pid == 0 || pid > 1<<30 {
		return false // never signal a process group; not a tgid the kernel hands out
	}
	err := unix.Kill(int(pid), 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Load checks that opts.PinDir is on a bpffs, creates it, loads the program with its maps
// pinned there (reusing compatible pins, so counts survive restarts of the loader, and
// replacing incompatible ones, see Replaced), attaches sys_enter and sys_exit (the links are
// not pinned: Close, or the end of the process, detaches), and sets the pins' mode and group.
func Load(opts Options) (*Tracer, error) {
	if opts.PinDir == "" {
		opts.PinDir = DefaultPinDir
	}
	if opts.PinMode == 0 {
		opts.PinMode = DefaultPinMode
	}
	if opts.ExitedGrace <= 0 {
		opts.ExitedGrace = DefaultExitedGrace
	}
	if opts.Alive == nil {
		opts.Alive = ProcessAlive
	}
	dir := filepath.Clean(opts.PinDir)
	if err := checkBPFFS(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the pin directory: %w", err)
	}

	spec, err := loadHttpStats()
	if err != nil {
		return nil, fmt.Errorf("the embedded HTTP statistics object: %w", err)
	}
	if opts.MaxEntries > 0 {
		spec.Maps[RequestsMap].MaxEntries = opts.MaxEntries
		spec.Maps[ResponsesMap].MaxEntries = opts.MaxEntries
	}
	if opts.AllFDs {
		if err := spec.Variables[httpStatsVarOnlyAccepted].Set(uint8(0)); err != nil {
			return nil, fmt.Errorf("setting only_accepted: %w", err)
		}
	}
	t := &Tracer{
		pinDir:     dir,
		maxEntries: spec.Maps[RequestsMap].MaxEntries,
		grace:      opts.ExitedGrace,
		alive:      opts.Alive,
		dead:       map[uint32]time.Time{},
	}
	if t.replaced, err = removeIncompatiblePins(spec, dir); err != nil {
		return nil, err
	}

	err = spec.LoadAndAssign(&t.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if err != nil {
		return nil, loadError("loading the HTTP statistics program", err)
	}
	for _, p := range []*ebpf.Program{t.objs.SysEnter, t.objs.SysExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			t.Close()
			return nil, loadError("attaching "+p.String(), err)
		}
		t.links = append(t.links, l)
	}
	for _, name := range []string{RequestsMap, ResponsesMap, DropsMap} {
		path := filepath.Join(dir, name)
		if err := os.Chmod(path, opts.PinMode.Perm()); err != nil {
			t.Close()
			return nil, fmt.Errorf("setting the mode of the pin: %w", err)
		}
		if opts.PinGroup >= 0 && !hasGroup(path, opts.PinGroup) {
			if err := os.Lchown(path, -1, opts.PinGroup); err != nil {
				t.Close()
				return nil, fmt.Errorf("setting the group of the pin to %d (the loader must be a member of it): %w", opts.PinGroup, err)
			}
		}
	}
	return t, nil
}

func hasGroup(path string, gid int) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && int(st.Gid) == gid
}

// checkBPFFS checks that dir, or its nearest existing ancestor when dir does not exist yet, is
// on a bpf filesystem.
func checkBPFFS(dir string) error {
	p := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				break
			}
			return nil
		}
		if !errors.Is(err, unix.ENOENT) || filepath.Dir(p) == p {
			return fmt.Errorf("checking the pin directory %s: %w", dir, err)
		}
		p = filepath.Dir(p)
	}
	return fmt.Errorf("%s is %w: mount one with \"mount -t bpf bpf /sys/fs/bpf\" (README http-ebpf, \"Privileges\")", dir, ErrNotBPFFS)
}

// removeIncompatiblePins unpins the maps pinned in dir that the spec cannot reuse (another
// max_entries, an older layout), so that loading creates them anew; it returns what it
// replaced, for a log line. A pin that is not a map, or cannot be opened, is left for the load
// to report.
func removeIncompatiblePins(spec *ebpf.CollectionSpec, dir string) ([]string, error) {
	var replaced []string
	for _, name := range []string{RequestsMap, ResponsesMap, DropsMap} {
		path := filepath.Join(dir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			continue
		}
		cerr := spec.Maps[name].Compatible(m)
		m.Close()
		if cerr == nil {
			continue
		}
		if !errors.Is(cerr, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("checking the pinned map %s: %w", path, cerr)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("replacing the incompatible pinned map %s: %w", path, err)
		}
		replaced = append(replaced, fmt.Sprintf("%s (%s)", name, strings.TrimSuffix(cerr.Error(), ": "+ebpf.ErrMapIncompatible.Error())))
	}
	return replaced, nil
}

// privilegeError is ErrNoPrivilege with the kernel's errno, without cilium/ebpf's hint about
// RLIMIT_MEMLOCK (memory is accounted to the memory cgroup on our kernels; the hint misleads).
type privilegeError struct {
	what  string
	errno error
}

func (e *privilegeError) Error() string {
	return fmt.Sprintf("%s: %s: loading eBPF programs needs root or CAP_BPF+CAP_PERFMON (%s)", e.what, ErrNoPrivilege, e.errno)
}

func (e *privilegeError) Unwrap() []error { return []error{ErrNoPrivilege, e.errno} }

// loadError classifies an error of loading or attaching: EPERM → ErrNoPrivilege, a verifier
// error with its log (%+v), anything else as it is.
func loadError(what string, err error) error {
	if errors.Is(err, unix.EPERM) {
		return &privilegeError{what: what, errno: syscall.EPERM}
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%s: the verifier rejected it: %w\n%+v", what, err, ve)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// PinDir is the directory the maps are pinned in.
func (t *Tracer) PinDir() string { return t.pinDir }

// MaxEntries is max_entries of http_requests and http_responses.
func (t *Tracer) MaxEntries() uint32 { return t.maxEntries }

// Replaced lists the pinned maps Load found incompatible (with the differences) and replaced
// with empty ones: their counts restarted from zero.
func (t *Tracer) Replaced() []string { return t.replaced }

// Prune deletes the keys of processes that have exited: a pid that Alive reports gone is
// marked dead at now, and its keys in http_requests and http_responses are deleted by the
// first Prune at least ExitedGrace later (a pid found alive again, i.e. reused, is unmarked).
// One call reads at most MaxEntries keys of each map. Prune and Drops may be called from
// several goroutines.
func (t *Tracer) Prune(now time.Time) (PruneStats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var st PruneStats
	reqKeys, err := keys[httpStatsReqKey](t.objs.HttpRequests, t.maxEntries)
	if err != nil {
		return st, fmt.Errorf("reading %s: %w", RequestsMap, err)
	}
	respKeys, err := keys[httpStatsRespKey](t.objs.HttpResponses, t.maxEntries)
	if err != nil {
		return st, fmt.Errorf("reading %s: %w", ResponsesMap, err)
	}

	expired := map[uint32]bool{} // pid → its keys go now
	seen := map[uint32]bool{}
	judge := func(pid uint32) bool {
		if done, ok := expired[pid]; ok || seen[pid] {
			return done
		}
		seen[pid] = true
		if t.alive(pid) {
			delete(t.dead, pid)
			return false
		}
		since, ok := t.dead[pid]
		if !ok {
			t.dead[pid] = now
			return false
		}
		if now.Sub(since) >= t.grace {
			expired[pid] = true
			return true
		}
		return false
	}
	st.Requests, st.Responses = len(reqKeys), len(respKeys)
	for _, k := range reqKeys {
		if judge(k.Pid) {
			if err := deleteKey(t.objs.HttpRequests, &k); err != nil {
				return st, fmt.Errorf("deleting from %s: %w", RequestsMap, err)
			}
			st.Keys++
			st.Requests--
		}
	}
	for _, k := range respKeys {
		if judge(k.Pid) {
			if err := deleteKey(t.objs.HttpResponses, &k); err != nil {
				return st, fmt.Errorf("deleting from %s: %w", ResponsesMap, err)
			}
			st.Keys++
			st.Responses--
		}
	}
	// Forget pids that are no longer in the maps, and those just deleted: the bookkeeping
	// stays bounded by the maps' entries.
	for pid := range t.dead {
		if !seen[pid] || expired[pid] {
			delete(t.dead, pid)
		}
	}
	st.Pids = len(expired)
	st.Waiting = len(t.dead)
	return st, nil
}

// keys returns up to max keys of m, walking it with BPF_MAP_GET_NEXT_KEY (the kernel never
// deletes from these maps, so the walk does not restart).
func keys[K any](m *ebpf.Map, max uint32) ([]K, error) {
	var out []K
	var cur K
	var prev any // nil: the first key
	for uint32(len(out)) < max {
		var next K
		err := m.NextKey(prev, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, next)
		cur = next
		prev = &cur
	}
	return out, nil
}

func deleteKey(m *ebpf.Map, k any) error {
	if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// Drops returns the events not counted because http_requests or http_responses was full,
// summed over the CPUs, since the map was created.
func (t *Tracer) Drops() (requests, responses uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sum := func(reason uint32) (uint64, error) {
		var per []uint64
		if err := t.objs.HttpDrops.Lookup(reason, &per); err != nil {
			return 0, fmt.Errorf("reading %s: %w", DropsMap, err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n, nil
	}
	if requests, err = sum(uint32(httpStatsDropReasonREQUESTS_MAP_FULL)); err != nil {
		return 0, 0, err
	}
	if responses, err = sum(uint32(httpStatsDropReasonRESPONSES_MAP_FULL)); err != nil {
		return 0, 0, err
	}
	return requests, responses, nil
}

// Close detaches the programs and closes the maps; the pins stay.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}
