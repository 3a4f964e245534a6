// Command stats-http-ebpf loads the HTTP statistics eBPF program of the http-ebpf source kind,
// attaches it, and pins its maps for stats-pull, which only reads them. It needs CAP_BPF and
// CAP_PERFMON (or root) and nothing else; while it runs it deletes the counts of processes
// that have exited and warns when a map is full. Stopping it detaches the program; the pinned
// maps, and their counts, stay for the next start.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/sources/httpebpf/bpf"
)

const usage = `Load and attach the HTTP statistics eBPF program (source kind http-ebpf) and pin its maps
for stats-pull.

Usage:
    stats-http-ebpf [options]
    stats-http-ebpf (-h | --help)
    stats-http-ebpf (-v | --version)

Options:
    --pin-dir <dir>          where the maps are pinned; on a bpf filesystem
                             [default: /sys/fs/bpf/statspipe/http]
    --max-entries <n>        keys per map (http_requests, http_responses); a full map
                             counts what it drops [default: 16384]
    --prune-interval <d>     how often to delete the keys of exited processes and check
                             for drops [default: 10s]
    --exited-grace <d>       keep an exited process's keys this long, so that stats-pull
                             reads its final counts; at least its pull-interval
                             [default: 30s]
    --pin-mode <mode>        mode of the pins, octal [default: 0640]
    --pin-group <group>      group (name or gid) of the pins: stats-pull's group; the
                             loader must be a member
    --all-fds                count every file descriptor, not only the sockets accepted
                             since the start (counts HTTP clients too; for tests)
    -h, --help               show this screen
    -v, --version            show version

Exit status: 0 after SIGTERM, SIGINT or SIGHUP (the program is detached); 1 on an error;
2 on a usage error (as every statspipe program); 3 when the pin directory is not on a bpf
filesystem; 4 without the privileges (CAP_BPF and CAP_PERFMON).
`

const (
	exitError       = 1
	exitNotBPFFS    = 3
	exitNoPrivilege = 4
	readme          = `see README "http-ebpf", section "Privileges"`
)

// Capability bits (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(argv []string, stderr io.Writer) int {
	args, code, ok := cli.ParseArgs(usage, argv)
	if !ok {
		return code
	}
	opts, prune, err := options(args)
	if err != nil {
		fmt.Fprintln(stderr, "stats-http-ebpf:", err)
		return exitError
	}
	// STATS_HTTP_EBPF_NO_CAP_CHECK=1 lets the tests see what the kernel itself refuses.
	if os.Getenv("STATS_HTTP_EBPF_NO_CAP_CHECK") != "1" {
		if missing, err := missingCaps(); err != nil {
			fmt.Fprintln(stderr, "stats-http-ebpf: cannot read the capabilities:", err)
			return exitError
		} else if missing != "" {
			fmt.Fprintf(stderr, "stats-http-ebpf: loading the HTTP statistics program needs CAP_BPF and CAP_PERFMON, which this process lacks (%s); %s\n", missing, readme)
			return exitNoPrivilege
		}
	}

	log := cli.Logger(slog.LevelInfo, "stats-http-ebpf", nil)
	ctx, stop := cli.SignalContext(log)
	defer stop()

	tr, err := bpf.Load(opts)
	switch {
	case errors.Is(err, bpf.ErrNoPrivilege):
		fmt.Fprintf(stderr, "stats-http-ebpf: %v; %s\n", err, readme)
		return exitNoPrivilege
	case errors.Is(err, bpf.ErrNotBPFFS):
		fmt.Fprintln(stderr, "stats-http-ebpf:", err)
		return exitNotBPFFS
	case err != nil:
		log.Error("cannot load the HTTP statistics program", "error", fmt.Sprintf("%+v", err))
		return exitError
	}
	defer tr.Close()
	for _, r := range tr.Replaced() {
		log.Warn("replaced an incompatible pinned map; its counts restart from zero", "map", r)
	}
	lastReq, lastResp, err := tr.Drops()
	if err != nil {
		log.Error("cannot read the drops", "error", err)
		return exitError
	}
	log.Info("attached", "version", cli.Version, "pin-dir", tr.PinDir(), "max-entries", tr.MaxEntries(),
		"all-fds", opts.AllFDs, "prune-interval", prune, "exited-grace", opts.ExitedGrace,
		"pin-mode", fmt.Sprintf("%04o", opts.PinMode), "pin-group", opts.PinGroup)

	// The watchdog is pinged unless a prune round has been running for longer than a minute.
	var busySince atomic.Int64
	sd := cli.NewSystemd(log)
	sd.Ready(ctx, fmt.Sprintf("attached; maps pinned in %s (max entries %d)", tr.PinDir(), tr.MaxEntries()), func() bool {
		s := busySince.Load()
		return s == 0 || time.Since(time.Unix(0, s)) < time.Minute
	})

	tick := time.NewTicker(prune)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sd.Stopping()
			if err := tr.Close(); err != nil {
				log.Error("detaching", "error", err)
				return exitError
			}
			log.Info("stopped", "detached", true, "pin-dir", tr.PinDir())
			return 0
		case now := <-tick.C:
			busySince.Store(now.UnixNano())
			st, err := tr.Prune(now)
			if err != nil {
				log.Error("pruning", "error", err)
			} else if st.Pids > 0 {
				log.Info("deleted the counts of exited processes", "pids", st.Pids, "keys", st.Keys,
					"requests-entries", st.Requests, "responses-entries", st.Responses, "waiting", st.Waiting)
			}
			r, s, err := tr.Drops()
			busySince.Store(0)
			if err != nil {
				log.Error("reading the drops", "error", err)
				continue
			}
			if r > lastReq || s > lastResp {
				log.Warn("maps full: events not counted; raise --max-entries", "requests-dropped", r-lastReq,
					"responses-dropped", s-lastResp, "requests-dropped-total", r, "responses-dropped-total", s,
					"max-entries", tr.MaxEntries())
			}
			lastReq, lastResp = r, s
		}
	}
}

// options turns the command line into bpf.Options and the prune interval.
func options(args cli.Args) (bpf.Options, time.Duration, error) {
	opts := bpf.Options{PinDir: args.String("--pin-dir"), AllFDs: args.Bool("--all-fds"), PinGroup: -1}
	n, err := strconv.ParseUint(args.String("--max-entries"), 10, 32)
	if err != nil || n < 1 {
		return opts, 0, fmt.Errorf("--max-entries %q: want a positive number", args.String("--max-entries"))
	}
	opts.MaxEntries = uint32(n)
	prune, err := time.ParseDuration(args.String("--prune-interval"))
	if err != nil || prune <= 0 {
		return opts, 0, fmt.Errorf("--prune-interval %q: want a positive duration such as 10s", args.String("--prune-interval"))
	}
	opts.ExitedGrace, err = time.ParseDuration(args.String("--exited-grace"))
	if err != nil || opts.ExitedGrace <= 0 {
		return opts, 0, fmt.Errorf("--exited-grace %q: want a positive duration such as 30s", args.String("--exited-grace"))
	}
	mode, err := strconv.ParseUint(args.String("--pin-mode"), 8, 32)
	if err != nil || mode == 0 || mode > 0o777 {
		return opts, 0, fmt.Errorf("--pin-mode %q: want an octal mode such as 0640", args.String("--pin-mode"))
	}
	opts.PinMode = os.FileMode(mode)
	if g := args.String("--pin-group"); g != "" {
		if opts.PinGroup, err = strconv.Atoi(g); err != nil {
			grp, err := user.LookupGroup(g)
			if err != nil {
				return opts, 0, fmt.Errorf("--pin-group: %w", err)
			}
			opts.PinGroup, _ = strconv.Atoi(grp.Gid)
		}
	}
	return opts, prune, nil
}

// missingCaps names the capabilities the effective set lacks for loading the program: CAP_BPF
// and CAP_PERFMON, each also granted by CAP_SYS_ADMIN (as the kernel does). Root on our
// machines lacks CAP_SYS_RESOURCE, so the bits are tested one by one.
func missingCaps() (string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return "", fmt.Errorf("CapEff %q: %w", hex, err)
		}
		has := func(bit uint) bool { return eff&(1<<bit) != 0 || eff&(1<<capSysAdmin) != 0 }
		var missing []string
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
		return strings.Join(missing, " and "), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no CapEff line in /proc/self/status")
}
