package scope

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/statspipe/statspipe/internal/httpfetch"
	"github.com/statspipe/statspipe/internal/pull"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
)

// The pull half. Every round socket-dir is listed again (Scope rescans its plugins root every
// 5 s): each UNIX socket named <id>.sock directly in it or in one of its real directories is a
// plugin, the instance <id>. Symlinks are never followed (neither to a directory nor to a
// socket: whoever can write socket-dir could otherwise point the collector anywhere), which is
// also what Scope's own walk does. A socket whose name is not a Scope plugin ID is skipped and
// logged once. Each plugin's report is streamed to <id>.body and, on the way, through the
// report parser (plugin spec checks included), which also collects the PIDs of this host's
// Process nodes; their names (/proc/<pid>/comm) go into <id>.meta.json's extra.

// reportURL is what Scope's probe asks (less its probe_id, which plugins ignore); the host
// part is only the Host header.
const reportURL = "http://plugin/report?api_version=1"

// maxPIDs bounds the process names recorded for one plugin (meta.json stays well under the
// spool's 1 MiB for small metadata): further PIDs go without a name.
const maxPIDs = 8192

// procDir is where process names are read (a variable for tests).
var procDir = "/proc"

type provider struct {
	info pull.ProviderInfo
	st   pullSettings
	log  *slog.Logger

	mu      sync.Mutex
	clients map[string]*pluginClient // by socket path, for keep-alive between rounds
	warned  map[string]bool          // sockets already logged as skipped
}

type pluginClient struct {
	c    *httpfetch.Client
	seen bool
}

func (p *provider) Info() pull.ProviderInfo { return p.info }

// plugin is one socket found this round.
type plugin struct {
	id, socket string
}

func (p *provider) Sources(ctx context.Context) ([]pull.Source, error) {
	found, err := p.discover()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.seen = false
	}
	out := make([]pull.Source, 0, len(found))
	for _, pl := range found {
		c := p.clients[pl.socket]
		if c == nil {
			hc, err := httpfetch.New(httpfetch.Options{Timeout: p.st.timeout, MaxBodySize: p.st.maxBody, UnixSocket: pl.socket, MaxIdleConnsPerHost: 1})
			if err != nil {
				return nil, err
			}
			c = &pluginClient{c: hc}
			p.clients[pl.socket] = c
		}
		c.seen = true
		out = append(out, &instance{p: p, plugin: pl, client: c.c})
	}
	// A plugin that went away takes its kept connection with it.
	for path, c := range p.clients {
		if !c.seen {
			c.c.CloseIdle()
			delete(p.clients, path)
		}
	}
	return out, nil
}

// discover lists this round's plugins, sorted by ID.
func (p *provider) discover() ([]plugin, error) {
	root := p.st.socketDir
	entries, err := readDirBounded(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no plugin runs (Scope's plugins create their directories)
	}
	if err != nil {
		return nil, err
	}
	var found []plugin
	byID := map[string]string{}
	add := func(dir string, e fs.DirEntry) {
		path := filepath.Join(dir, e.Name())
		id, isSock := strings.CutSuffix(e.Name(), ".sock")
		if e.Type()&fs.ModeSocket == 0 || !isSock {
			return
		}
		if !validID(id) {
			p.skip(path, "its name is not a Scope plugin ID (letters and digits, single inner hyphens, then .sock)")
			return
		}
		if first, dup := byID[id]; dup {
			p.skip(path, "plugin "+id+" is already "+first)
			return
		}
		byID[id] = path
		found = append(found, plugin{id: id, socket: path})
	}
	for _, e := range entries {
		switch {
		case e.Type()&fs.ModeSocket != 0:
			add(root, e)
		case e.Type().IsDir(): // a real directory: DirEntry types come from lstat
			dir := filepath.Join(root, e.Name())
			sub, err := readDirBounded(dir)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) { // removed by its plugin meanwhile
					p.skip(dir, err.Error())
				}
				continue
			}
			for _, s := range sub {
				add(dir, s)
			}
		}
	}
	if len(found) > p.st.maxPlugins {
		return nil, fmt.Errorf("%d plugins in %s, more than max-plugins %d", len(found), root, p.st.maxPlugins)
	}
	slices.SortFunc(found, func(a, b plugin) int { return strings.Compare(a.id, b.id) })
	return found, nil
}

// skip logs a socket left out, once per path (the set is bounded: cleared when large).
func (p *provider) skip(path, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warned == nil || len(p.warned) > 1024 {
		p.warned = map[string]bool{}
	}
	if !p.warned[path] {
		p.warned[path] = true
		p.log.Warn("socket left out", "path", path, "reason", why)
	}
}

// readDirBounded lists a directory, sorted, refusing one with more than maxDirEntries entries.
func readDirBounded(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(maxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(entries) > maxDirEntries {
		return nil, fmt.Errorf("%s: more than %d entries", dir, maxDirEntries)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

type instance struct {
	p      *provider
	plugin plugin
	client *httpfetch.Client
}

func (in *instance) Name() string { return in.plugin.id }

func (in *instance) Pull(ctx context.Context, snap pull.SnapshotWriter) error {
	var pids []string // this host's PIDs the report names, filled by the check
	morePIDs := 0
	check := func(res httpfetch.Result) (func(io.Reader) error, error) {
		// Scope: "any status other than 200 is an error"; httpfetch accepts every 2xx.
		if res.Status != 200 {
			return nil, fmt.Errorf("HTTP status %d, want 200", res.Status)
		}
		return func(body io.Reader) error {
			seen := map[string]bool{}
			return parseReport(body, in.plugin.id, func(topo, id string, _ []metricValue) error {
				if topo != processTopology {
					return nil
				}
				if host, pid, ok := processNode(id); ok && host == in.p.st.hostID && !seen[pid] {
					if len(pids) < maxPIDs {
						seen[pid] = true
						pids = append(pids, pid)
					} else {
						morePIDs++
					}
				}
				return nil
			})
		}, nil
	}
	extra := func() map[string]string {
		m := map[string]string{"socket": in.plugin.socket, "host": in.p.st.hostID}
		for _, pid := range pids {
			if comm, ok := readComm(pid); ok {
				m["pid:"+pid] = comm
			}
		}
		if morePIDs > 0 {
			in.p.log.Warn("process names not recorded past the bound", "plugin", in.plugin.id, "max", maxPIDs, "left_out", morePIDs)
		}
		return m
	}
	err := httpsource.PullBody(ctx, snap, in.client, in.plugin.id, reportURL, check, extra)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", in.plugin.socket, err)
	}
	return nil
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
