// Package synthetic writes snapshot directories that look like what stats-pull captures from a
// fleet of HAProxy 2.6 processes, at any size: the real 2.6 header, the real per-row-type
// pattern of empty cells, names with dots, seeded random counters and a share of idle
// backends (lbtot = 0 everywhere, the case without response-time means). Benchmarks and
// tools/gensnapshot use it.
package synthetic

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config sizes a snapshot.
type Config struct {
	Procs     int     // HAProxy processes: one *_info/*_stat pair each
	Backends  int     // backends per process
	Servers   int     // servers per backend
	Frontends int     // frontends per process
	Idle      float64 // share of frontends and backends (with their servers) without traffic
	Seed      uint64
}

// DefaultConfig is the 4 × 1000 × 10 + 50 frontends snapshot of the performance targets.
var DefaultConfig = Config{Procs: 4, Backends: 1000, Servers: 10, Frontends: 50, Idle: 0.2, Seed: 1}

// FrontendName, BackendName and ServerName are the entity names used.
func FrontendName(i int) string { return fmt.Sprintf("fe_%04d.example", i) }
func BackendName(i int) string  { return fmt.Sprintf("be_%04d.example.com", i) }
func ServerName(i int) string   { return fmt.Sprintf("srv%02d.example", i) }

// cellKind says how a template cell is filled.
type cellKind uint8

const (
	cellEmpty   cellKind = iota // empty in the template: not applicable to this row type
	cellCopy                    // text or structural value copied from the template
	cellCounter                 // random counter, 0 when idle
	cellBytes                   // random byte counter (larger), 0 when idle
	cellNonZero                 // random, ≥ 1 unless idle (lbtot: decides the time means)
	cellWeight                  // small positive weight
	cellName                    // pxname / svname
	cellPid                     // process number
)

type rowTemplate struct {
	kinds []cellKind
	text  []string
}

var header = strings.Split(templateHeader[2:], ",") // without "# "

func newTemplate(row string) rowTemplate {
	cells := strings.Split(row, ",")
	if len(cells) != len(header) {
		panic(fmt.Sprintf("synthetic: template row has %d cells, header %d", len(cells), len(header)))
	}
	t := rowTemplate{kinds: make([]cellKind, len(cells)), text: cells}
	for i, c := range cells {
		name := header[i]
		switch {
		case name == "pxname" || name == "svname":
			t.kinds[i] = cellName
		case c == "":
			t.kinds[i] = cellEmpty
		case name == "pid":
			t.kinds[i] = cellPid
		case name == "lbtot":
			t.kinds[i] = cellNonZero
		case name == "weight" || name == "uweight":
			t.kinds[i] = cellWeight
		case name == "bin" || name == "bout" || strings.HasSuffix(name, "bytes_in") || strings.HasSuffix(name, "bytes_out"):
			t.kinds[i] = cellBytes
		// structural numbers and text keep the template's value
		case name == "type" || name == "iid" || name == "sid" || name == "act" || name == "bck" ||
			name == "check_code" || name == "check_rise" || name == "check_fall" || name == "check_health" ||
			name == "lastsess" || name == "throttle" || name == "tracked" || name == "-":
			t.kinds[i] = cellCopy
		default:
			if _, err := strconv.ParseInt(c, 10, 64); err == nil {
				t.kinds[i] = cellCounter
			} else {
				t.kinds[i] = cellCopy
			}
		}
	}
	return t
}

var (
	frontendTemplate = newTemplate(templateFrontend)
	serverTemplate   = newTemplate(templateServer)
	backendTemplate  = newTemplate(templateBackend)
)

func (t rowTemplate) write(w *bufio.Writer, r *rand.Rand, px, sv string, proc int, idle bool) {
	for i, k := range t.kinds {
		if i > 0 {
			w.WriteByte(',')
		}
		switch k {
		case cellEmpty:
		case cellCopy:
			w.WriteString(t.text[i])
		case cellName:
			if header[i] == "pxname" {
				w.WriteString(px)
			} else {
				w.WriteString(sv)
			}
		case cellPid:
			w.WriteString(strconv.Itoa(proc + 1))
		case cellWeight:
			w.WriteString(strconv.Itoa(1 + r.IntN(100)))
		case cellCounter, cellBytes, cellNonZero:
			var v uint64
			switch {
			case idle:
			case k == cellBytes:
				v = r.Uint64N(1 << 38)
			case k == cellNonZero:
				v = 1 + r.Uint64N(999_999)
			default:
				v = r.Uint64N(1_000_000)
			}
			w.WriteString(strconv.FormatUint(v, 10))
		}
	}
	w.WriteByte('\n')
}

// Write creates the snapshot files in dir (which must exist): admin<N>.sock_info and
// admin<N>.sock_stat for N = 1..Procs.
func Write(dir string, cfg Config) error {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	// idle decisions are per entity, the same in every process
	idleFe := make([]bool, cfg.Frontends)
	for i := range idleFe {
		idleFe[i] = r.Float64() < cfg.Idle
	}
	idleBe := make([]bool, cfg.Backends)
	for i := range idleBe {
		idleBe[i] = r.Float64() < cfg.Idle
	}
	feNames := make([]string, cfg.Frontends)
	for i := range feNames {
		feNames[i] = FrontendName(i)
	}
	beNames := make([]string, cfg.Backends)
	for i := range beNames {
		beNames[i] = BackendName(i)
	}
	srvNames := make([]string, cfg.Servers)
	for i := range srvNames {
		srvNames[i] = ServerName(i)
	}
	for proc := 0; proc < cfg.Procs; proc++ {
		base := filepath.Join(dir, fmt.Sprintf("admin%d.sock", proc+1))
		if err := writeInfo(base+"_info", r, proc); err != nil {
			return err
		}
		f, err := os.Create(base + "_stat")
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 256<<10)
		w.WriteString(templateHeader)
		w.WriteByte('\n')
		for i, name := range feNames {
			frontendTemplate.write(w, r, name, "FRONTEND", proc, idleFe[i])
		}
		for i, be := range beNames {
			for _, srv := range srvNames {
				serverTemplate.write(w, r, be, srv, proc, idleBe[i])
			}
			backendTemplate.write(w, r, be, "BACKEND", proc, idleBe[i])
		}
		w.WriteByte('\n') // `show stat` ends with an empty line
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeInfo writes a `show info` reply: the real 2.6 reply with per-process values, plus the
// zlib keys that zlib builds print.
func writeInfo(path string, r *rand.Rand, proc int) error {
	var sb strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(templateInfo, "\n"), "\n") {
		key, _, _ := strings.Cut(line, ": ")
		switch key {
		case "Nbproc":
			line = "Nbproc: 1"
		case "Process_num":
			line = fmt.Sprintf("Process_num: %d", proc+1)
		case "Pid":
			line = fmt.Sprintf("Pid: %d", 1000+proc)
		case "Idle_pct":
			line = fmt.Sprintf("Idle_pct: %d", 40+r.IntN(61))
		case "CurrConns", "CumConns", "CumReq", "ConnRate", "SessRate", "Run_queue", "Tasks", "MaxConnRate", "MaxSessRate":
			line = fmt.Sprintf("%s: %d", key, r.IntN(10000))
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
		if key == "CompressBpsRateLim" {
			fmt.Fprintf(&sb, "ZlibMemUsage: %d\nMaxZlibMemUsage: 0\n", r.IntN(1<<20))
		}
	}
	sb.WriteByte('\n')
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
