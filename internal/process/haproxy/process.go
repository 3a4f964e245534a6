package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/spool"
)

const (
	infoSuffix = "_info"
	statSuffix = "_stat"
)

// layout maps metric names to value slots: one slot per distinct CSV column that any output
// needs. Each row's cells are parsed once into the slots, then summed into the entities.
type layout struct {
	slotNames []string
	slotIndex map[string]int

	fe, beSum, beAvg, beTime, srvSum, srvAvg, srvTime, aggrSum []int
	// the distinct slots each row type needs parsed
	feParse, beParse, srvParse []int
	// emission names (sanitised), parallel to the slot lists
	feNames, beSumNames, beAvgNames, beTimeNames, srvSumNames, srvAvgNames, srvTimeNames, aggrSumNames []string

	lbtot int
}

func (l *layout) slots(names []string) ([]int, []string) {
	var slots []int
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		s, ok := l.slotIndex[n]
		if !ok {
			s = len(l.slotNames)
			l.slotNames = append(l.slotNames, n)
			l.slotIndex[n] = s
		}
		slots = append(slots, s)
		out = append(out, metric.Component(n))
	}
	return slots, out
}

// without returns list minus the names in drop: averaged metrics named in a user sum list are
// emitted once, in their averaged position (haproxystats wrote both act_x and act_y).
func without(list []string, drop ...[]string) []string {
	var out []string
	for _, n := range list {
		skip := false
		for _, d := range drop {
			if slices.Contains(d, n) {
				skip = true
			}
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}

func union(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		for _, s := range l {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func newLayout(o *Options) layout {
	l := layout{slotIndex: map[string]int{}}
	fe := o.FrontendMetrics
	if fe == nil {
		fe = FrontendMetrics
	}
	be := o.BackendMetrics
	if be == nil {
		be = BackendMetrics
	}
	srv := o.ServerMetrics
	if srv == nil {
		srv = ServerMetrics
	}
	l.fe, l.feNames = l.slots(fe)
	l.beSum, l.beSumNames = l.slots(without(be, BackendAvgMetrics, BackendAvgTimeMetrics))
	l.beAvg, l.beAvgNames = l.slots(BackendAvgMetrics)
	l.beTime, l.beTimeNames = l.slots(BackendAvgTimeMetrics)
	l.srvSum, l.srvSumNames = l.slots(without(srv, ServerAvgMetrics, ServerAvgTimeMetrics))
	l.srvAvg, l.srvAvgNames = l.slots(ServerAvgMetrics)
	l.srvTime, l.srvTimeNames = l.slots(ServerAvgTimeMetrics)
	if o.AggrServerMetrics {
		// upstream ignores server-metrics here and always uses the built-in list
		l.aggrSum, l.aggrSumNames = l.slots(ServerMetrics)
	}
	lb, _ := l.slots([]string{"lbtot"})
	l.lbtot = lb[0]
	l.feParse = union(l.fe)
	l.beParse = union(l.beSum, l.beAvg, l.beTime, lb)
	l.srvParse = union(l.srvSum, l.srvAvg, l.srvTime, lb, l.aggrSum)
	return l
}

// Processor turns snapshot directories into Graphite lines. It keeps its buffers and interned
// names from one snapshot to the next; it is not for concurrent use.
type Processor struct {
	opts Options
	log  *slog.Logger
	lay  layout
	ch   *metric.Chunker

	prefix         []byte // Options.Prefix, line-safe, its components bounded
	feGroupPrefix  []string
	beGroupPrefix  []string
	srvGroupPrefix []string

	// reading
	rd     fileReader
	sc     csvScanner
	keyBuf []byte

	// current stat file
	file       string
	colOfSlot  []int32 // slot → column of the current file, -1 if absent
	colCode    []int32 // column → slot or code*, up to the last column any row needs
	svCol      int
	typeCol    int
	nHeader    int
	plans      [3]rowPlan // per row class
	plansDirty bool
	plansOK    bool // the plans apply to this file (else every row takes the generic path)
	class      int  // row class of the current row
	typingDone bool
	logCells   bool
	badCells   int

	// current row: values by slot (vals is valArr[:slots] when there are ≤ 256 slots);
	// field ends (fast path); offsets of pxname, svname and type; line number
	vals               []float64
	valArr             *[maxPlanCols]float64
	fieldEnds          [fieldEndsLen]int32
	slowCols           [maxPlanCols]uint8
	pxS, pxE, svS, svE int
	tyS, tyE           int
	curLine            int
	// with ServerStates: the state cells of the current row (offsets in its base, 0, 0 when
	// absent) and their columns in the current file (-1 when absent)
	stateS, stateE [nStates]int
	stateCol       [nStates]int32

	// current pass over the stat files
	gen         uint32
	slotFloat   []bool
	slotPresent []bool
	fe, be      *table
	srv, aggr   *table
	lastFe      []byte
	lastFeIdx   int32
	lastFeOK    bool
	lastBe      []byte
	lastBeIdx   int32
	lastBeOK    bool
	exclFe      map[string]struct{}
	exclBe      map[string]struct{}
	exclBuf     []byte                // the exclude file being read (reused)
	caches      map[string]*fileCache // by stat file name
	fileCache   *fileCache            // of the current file
	cache       *rowCache             // of the current file
	cacheNext   int                   // index in cache of the current row
	prevCache   *rowCache             // of the file before: where a new file's cache starts

	// daemon
	infos     []infoValues
	infoNames []string
	procIDs   []string

	excludeReports *ExcludeReports // what was logged about the exclude files (Options.ExcludeReports)

	// names and lines bounds (see Options)
	names        metric.Names
	maxComponent int
	maxLine      int
	lineSlack    int  // longest " <metric> <value> <timestamp>" after a path
	tsLen        int  // " <timestamp>" of the current snapshot
	checkLines   bool // the current paths may make lines longer than maxLine
	shortOrig    string
	shortOrigLen int
	shortTo      string
	longExample  string

	// emission
	dpath, gpath []byte
	hasGroup     bool
	lineEnd      metric.LineEnd
	order        []int32
	beServers    []int32
	srvCount     []int32
	srvEnd       []int32

	filt filterState // the cardinality controls (filter.go)
	// with AllMetrics (nil without)
	am *allMetrics

	stats Stats

	typedState // typed snapshots (typed.go)
}

// NewProcessor returns a Processor for opts. log receives per-file problems.
func NewProcessor(opts Options, log *slog.Logger) *Processor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxComponent := opts.MaxComponentLength
	if maxComponent <= 0 {
		maxComponent = metric.DefaultMaxComponentLength
	}
	maxComponent = max(maxComponent, metric.MinComponentLength)
	maxLine := opts.MaxLineLength
	if maxLine <= 0 {
		maxLine = metric.DefaultMaxLineLength
	}
	names := metric.Names{MaxLength: maxComponent}
	prefix, shortened := names.Path(opts.Prefix)
	p := &Processor{
		opts:           opts,
		log:            log,
		lay:            newLayout(&opts),
		ch:             metric.NewChunker(opts.ChunkSize),
		prefix:         []byte(prefix),
		names:          names,
		maxComponent:   maxComponent,
		maxLine:        maxLine,
		exclFe:         map[string]struct{}{},
		exclBe:         map[string]struct{}{},
		excludeReports: opts.ExcludeReports,
		caches:         map[string]*fileCache{},
	}
	if p.excludeReports == nil {
		p.excludeReports = &ExcludeReports{}
	}
	p.initFilters()
	p.lineSlack = longestMetricName(&p.lay) + maxLineEnd
	n := len(p.lay.slotNames)
	p.colOfSlot = make([]int32, n)
	if n <= maxPlanCols {
		p.valArr = new([maxPlanCols]float64)
		p.vals = p.valArr[:n]
	} else {
		p.vals = make([]float64, n)
	}
	p.slotFloat = make([]bool, n)
	p.slotPresent = make([]bool, n)
	p.fe = newTable(len(p.lay.fe))
	p.be = newTable(len(p.lay.beSum) + len(p.lay.beAvg) + len(p.lay.beTime))
	srvWidth := len(p.lay.srvSum) + len(p.lay.srvAvg) + len(p.lay.srvTime)
	if opts.ServerStates {
		srvWidth += nStates // the state maxima, after the metric accumulators
		for _, name := range append(stateNames[:], countNames[:]...) {
			p.lineSlack = max(p.lineSlack, len(name)+maxLineEnd)
		}
	}
	p.srv = newTable(srvWidth)
	p.aggr = newTable(len(p.lay.aggrSum) + len(p.lay.srvAvg) + len(p.lay.srvTime))
	if opts.GroupNamespace != "" {
		n := 0
		p.feGroupPrefix, n = groupPrefixes(names, opts.GroupNamespace, opts.FrontendGroups)
		shortened += n
		p.beGroupPrefix, n = groupPrefixes(names, opts.GroupNamespace, opts.BackendGroups)
		shortened += n
		p.srvGroupPrefix, n = groupPrefixes(names, opts.GroupNamespace, opts.ServerGroups)
		shortened += n
	}
	if shortened > 0 {
		log.Warn("namespace, group namespace or group name components longer than max-component-length are shortened",
			"count", shortened, "max_component_length", maxComponent, "prefix", prefix)
	}
	if opts.AllMetrics {
		p.am = newAllMetrics(&opts, &p.lay)
	}
	p.rd.buf = make([]byte, readBufferSize)
	return p
}

func groupPrefixes(names metric.Names, ns string, groups []Group) ([]string, int) {
	out := make([]string, len(groups))
	nsPath, shortened := names.Path(ns)
	for i, g := range groups {
		name, n := names.Path(g.Name)
		out[i] = nsPath + "." + name
		shortened += n
	}
	return out, shortened
}

// maxLineEnd bounds " <value> <timestamp>": a value is at most 24 characters
// ("-1.7976931348623157e+308"), an int64 timestamp at most 20.
const maxLineEnd = 1 + 24 + 1 + 20

// longestMetricName is the longest last component that point appends to an entity's path.
func longestMetricName(lay *layout) int {
	n := len("TotalServers")
	lists := [][]string{lay.feNames, lay.beSumNames, lay.beAvgNames, lay.beTimeNames, lay.srvSumNames,
		lay.srvAvgNames, lay.srvTimeNames, lay.aggrSumNames, DaemonMetrics, DaemonAvgMetrics,
		{"CpuUsagePct", "StdCpuUsagePct"}}
	for _, l := range lists {
		for _, name := range l {
			n = max(n, len(name))
		}
	}
	for _, pc := range percentiles {
		n = max(n, len(pc.name))
	}
	for _, pm := range percentageMetrics {
		n = max(n, len(pm.title))
	}
	return n
}

// Process reads every *_info and *_stat file of the snapshot directory dir and emits its lines,
// stamped ts, in chunks through flush (Seq 0, 1, …; the final chunk has Last set). The lines end
// with the self-metrics WallClockTimeAllStats and TotalWallClockTime (time since Process
// began). A bad file or cell is logged and skipped; the good files are still used. When nothing
// is usable it returns *UnusableError without flushing anything. A flush error aborts
// processing and is returned as is; an unreadable directory is returned as an error too.
func (p *Processor) Process(dir string, ts int64, flush metric.FlushFunc) (Stats, error) {
	start := time.Now()
	p.stats = Stats{}
	p.shortOrig, p.shortTo, p.longExample = "", "", ""
	entries, err := spool.ReadSnapshotDir(dir) // never follows dir if it is a symlink
	if err != nil {
		return p.stats, fmt.Errorf("reading snapshot directory: %w", err)
	}
	var infoFiles, statFiles []string
	for _, e := range entries { // sorted by name: file order is stable
		name := e.Name()
		if !spool.IsSnapshotFile(name) {
			continue // dot files are not data; an entry that is not a regular file is refused when opened
		}
		switch plain := strings.TrimSuffix(name, typedSuffix); {
		case strings.HasSuffix(plain, infoSuffix):
			infoFiles = append(infoFiles, name)
		case strings.HasSuffix(plain, statSuffix):
			statFiles = append(statFiles, name)
		}
	}
	p.startTyped()
	infoFiles, statFiles = p.preferTyped(dir, infoFiles), p.preferTyped(dir, statFiles)
	if len(infoFiles) == 0 && len(statFiles) == 0 {
		return p.stats, &UnusableError{Dir: dir, Reason: "no *_info or *_stat file"}
	}
	if len(infoFiles) == 0 {
		p.log.Warn("snapshot has no *_info file: no daemon statistics", "dir", dir)
	}
	if len(statFiles) == 0 {
		p.log.Warn("snapshot has no *_stat file: no frontend, backend or server statistics", "dir", dir)
	}

	allStart := time.Now()
	if p.am != nil {
		p.amStartPass()
	}
	p.loadInfos(dir, infoFiles)
	infoTime := time.Since(allStart)
	statsUsed := p.loadStats(dir, statFiles)
	if p.am != nil && statsUsed > 0 {
		p.amStats(dir)
	}
	p.rd.shrink()
	p.tc.shrink()
	if len(p.infos) == 0 && statsUsed == 0 {
		return p.stats, &UnusableError{Dir: dir, Reason: fmt.Sprintf(
			"all %d *_info and *_stat files were rejected", len(infoFiles)+len(statFiles))}
	}
	if len(statFiles) > 0 && statsUsed == 0 {
		p.log.Error("every *_stat file was rejected: no frontend, backend or server statistics", "dir", dir)
	}

	p.ch.Reset(flush, dir, ts)
	p.lineEnd.SetTimestamp(ts)
	var digits [24]byte
	p.tsLen = 1 + len(strconv.AppendInt(digits[:0], ts, 10))
	if len(infoFiles) > 0 {
		t := time.Now()
		if len(p.infos) > 0 {
			p.emitDaemon()
		} else {
			p.log.Error("every *_info file was rejected: no daemon statistics", "dir", dir)
		}
		p.selfSeconds("WallClockTimeHAProxy", infoTime+time.Since(t))
	}
	if statsUsed > 0 {
		t := time.Now()
		p.emitFrontends()
		p.selfSeconds("WallClockTimeFrontends", time.Since(t))
		t = time.Now()
		p.emitBackends()
		p.selfSeconds("WallClockTimeBackends", time.Since(t))
		t = time.Now()
		p.emitServers()
		p.selfSeconds("WallClockTimeServers", time.Since(t))
	}
	if p.am != nil {
		p.emitAllMetrics()
	}
	p.selfSeconds("WallClockTimeAllStats", time.Since(allStart))
	p.selfSeconds("TotalWallClockTime", time.Since(start))
	err = p.ch.Close()
	p.stats.Lines = p.ch.Lines()
	return p.stats, p.reportBounds(dir, err)
}

// reportBounds logs, once per snapshot, the names that were shortened and the lines that were
// not written, and turns the latter into *LinesTooLongError (unless flushing failed: then the
// snapshot is retried anyway).
func (p *Processor) reportBounds(dir string, err error) error {
	p.stats.ShortenedNames = p.fe.liveShort() + p.be.liveShort() + p.srv.liveShort() + p.aggr.liveShort()
	if p.stats.ShortenedNames > 0 {
		p.log.Warn("names longer than max-component-length were shortened to their start and a hash",
			"dir", dir, "count", p.stats.ShortenedNames, "max_component_length", p.maxComponent,
			"example", p.shortOrig, "example_bytes", p.shortOrigLen, "shortened_to", p.shortTo)
	}
	if p.stats.LongLines == 0 || err != nil {
		return err
	}
	e := &LinesTooLongError{Dir: dir, Lines: p.stats.LongLines, Limit: p.maxLine, Example: p.longExample}
	p.log.Error("lines longer than max-line-length were not written; the rest of the snapshot was",
		"dir", dir, "count", e.Lines, "max_line_length", e.Limit, "example", e.Example)
	return e
}

// noteShortened keeps the first shortened name of the snapshot for the log line.
func (p *Processor) noteShortened(orig, shortened []byte) {
	if p.shortTo != "" {
		return
	}
	// the log handler quotes what needs quoting; cut at a rune boundary to keep it readable
	n := min(len(orig), 64)
	for n > 0 && n < len(orig) && !utf8.RuneStart(orig[n]) {
		n--
	}
	p.shortOrig = string(orig[:n])
	p.shortOrigLen = len(orig)
	p.shortTo = string(shortened)
}

// shrink gives back a read buffer that grew for one long record (up to maxRecord), which the
// worker would otherwise keep for its life.
func (fr *fileReader) shrink() {
	if len(fr.buf) > readBufferSize {
		fr.buf = make([]byte, readBufferSize)
	}
}

// problem records a per-file problem for Stats and logs it.
func (p *Processor) problem(level slog.Level, msg string, attrs ...any) {
	var sb strings.Builder
	sb.WriteString(msg)
	for i := 0; i+1 < len(attrs); i += 2 {
		fmt.Fprintf(&sb, " %v=%v", attrs[i], attrs[i+1])
	}
	p.stats.Problems = append(p.stats.Problems, sb.String())
	p.log.Log(context.Background(), level, msg, attrs...)
}

// loadInfos parses every *_info file into p.infos (the usable ones, in file order).
func (p *Processor) loadInfos(dir string, names []string) {
	p.infos = p.infos[:0]
	p.infoNames = p.infoNames[:0]
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := p.rd.readAll(path)
		raw := data
		if err == nil && strings.HasSuffix(name, typedSuffix) {
			data, err = p.typedInfo(raw)
		}
		if err != nil {
			p.stats.FilesSkipped++
			p.problem(slog.LevelError, "skipping info file", "file", path, "problem", err)
			continue
		}
		p.infos = append(p.infos, infoValues{})
		iv := &p.infos[len(p.infos)-1]
		parseInfo(data, iv)
		if iv.numeric == 0 {
			p.infos = p.infos[:len(p.infos)-1]
			p.stats.FilesSkipped++
			p.problem(slog.LevelError, "skipping info file", "file", path,
				"problem", "no `Key: <integer>` line, not a `show info` reply: "+firstLine(data))
			continue
		}
		p.stats.FilesUsed++
		if strings.HasSuffix(name, typedSuffix) {
			p.keepInfoNatures(raw)
			name = strings.TrimSuffix(name, typedSuffix) // the per-process paths of either form
		}
		p.infoNames = append(p.infoNames, name)
		if p.am != nil {
			p.amInfo(data)
		}
	}
}

// loadStats aggregates every *_stat file and returns how many were used. A file rejected after
// some of its rows were aggregated (a row wider than the header, an unterminated quote) makes
// the pass start over without it, so that a rejected file never contributes: the reference
// skipped such files whole.
func (p *Processor) loadStats(dir string, names []string) int {
	p.loadExcludes()
	rejected := make([]bool, len(names))
	logged := make([]bool, len(names))
	for {
		p.startPass()
		restart := false
		used := 0
		for i, name := range names {
			if rejected[i] {
				continue
			}
			path := filepath.Join(dir, name)
			p.logCells = !logged[i]
			aggregated, err := p.parseStatFile(path)
			logged[i] = true
			if err != nil {
				rejected[i] = true
				p.stats.FilesSkipped++
				p.problem(slog.LevelError, "skipping stat file", "file", path, "problem", err)
				if aggregated {
					restart = true
					break
				}
				continue
			}
			used++
		}
		if !restart {
			if p.am != nil {
				p.am.used = p.am.used[:0]
				for i, name := range names {
					if !rejected[i] {
						p.am.used = append(p.am.used, name)
					}
				}
			}
			p.stats.FilesUsed += used
			p.dropStaleCaches()
			return used
		}
	}
}

// startPass forgets everything aggregated from stat files so far.
func (p *Processor) startPass() {
	p.gen++
	if p.gen == 0 { // wrapped: entries of generation 0 would look current
		p.gen = 1
		p.fe.reset()
		p.be.reset()
		p.srv.reset()
		p.aggr.reset()
	}
	p.fe.startPass()
	if p.be.startPass() {
		p.srv.reset() // its keys hold backend indices
	}
	p.srv.startPass()
	p.aggr.startPass()
	clear(p.slotFloat)
	clear(p.slotPresent)
}

func firstLine(data []byte) string {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	if len(data) > 80 {
		data = data[:80]
	}
	return fmt.Sprintf("%q", data)
}
