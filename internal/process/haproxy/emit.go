package haproxy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gonum.org/v1/gonum/stat"

	"github.com/statspipe/statspipe/internal/metric"
)

// Emission follows haproxystats.md §6.2: daemon, frontends, backends, servers, each closed by
// its Metrics* count and WallClockTime*; entities in name order, metrics in list order.
//
// Metrics* counts keep upstream's definition: 1 + the number of metric cells of the section,
// including the response-time means that are not emitted because no row had traffic
// (upstream's `nan` lines). The count then depends only on the configuration and the
// entities, not on traffic, and equals what haproxystats reported.

func (p *Processor) selfInt(name string, v int) {
	b := p.ch.Start()
	start := len(b)
	b = append(b, p.prefix...)
	b = append(b, ".haproxystats."...)
	b = append(b, name...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(v), 10)
	p.endSelf(b, start)
}

func (p *Processor) selfSeconds(name string, d time.Duration) {
	b := p.ch.Start()
	start := len(b)
	b = append(b, p.prefix...)
	b = append(b, ".haproxystats."...)
	b = append(b, name...)
	b = append(b, ' ')
	b = metric.AppendSeconds(b, d.Seconds())
	p.endSelf(b, start)
}

// endSelf completes the self-metric line b[start:], or leaves it out when it is too long (the
// chunk keeps what it had before Start).
func (p *Processor) endSelf(b []byte, start int) {
	if n := len(b) - start + p.tsLen; n > p.maxLine {
		p.tooLong(b[start:], "", n)
		return
	}
	p.ch.End(b)
}

// point appends one datapoint of the current entity to b (from p.ch.Start): on the group path,
// then (double writes, or no group) on the default path. n counts the lines. Entity loops
// keep b in a local variable and hand it back with p.ch.EndLines once per entity, so writing
// a line costs no function call into the chunker and no pointer write.
func (p *Processor) point(b []byte, n int, name string, v float64, isFloat bool) ([]byte, int) {
	end := p.lineEnd.Value(v, isFloat)
	if p.checkLines {
		return p.pointBounded(b, n, name, end)
	}
	if p.hasGroup {
		b = append(b, p.gpath...)
		b = append(b, name...)
		b = append(b, end...)
		n++
		if !p.opts.DoubleWrites {
			return b, n
		}
	}
	b = append(b, p.dpath...)
	b = append(b, name...)
	b = append(b, end...)
	return b, n + 1
}

// pointBounded is point for paths that may make a line longer than max-line-length: such a
// line is counted and left out.
func (p *Processor) pointBounded(b []byte, n int, name string, end []byte) ([]byte, int) {
	// a line is path + name + end without its '\n'
	rest := len(name) + len(end) - 1
	if p.hasGroup {
		if len(p.gpath)+rest <= p.maxLine {
			b = append(b, p.gpath...)
			b = append(b, name...)
			b = append(b, end...)
			n++
		} else {
			p.tooLong(p.gpath, name, len(p.gpath)+rest)
		}
		if !p.opts.DoubleWrites {
			return b, n
		}
	}
	if len(p.dpath)+rest > p.maxLine {
		p.tooLong(p.dpath, name, len(p.dpath)+rest)
		return b, n
	}
	b = append(b, p.dpath...)
	b = append(b, name...)
	b = append(b, end...)
	return b, n + 1
}

// tooLong counts a line (path + name, length bytes) that is not written, and keeps the first
// one of the snapshot, shortened, for the log.
func (p *Processor) tooLong(path []byte, name string, length int) {
	p.stats.LongLines++
	if p.longExample != "" {
		return
	}
	line := string(path) + name // sanitised: valid UTF-8, no spaces
	if len(line) > 160 {
		head, tail := 80, len(line)-60
		for !utf8.RuneStart(line[head]) {
			head--
		}
		for !utf8.RuneStart(line[tail]) {
			tail++
		}
		line = line[:head] + "…" + line[tail:]
	}
	p.longExample = fmt.Sprintf("%s (%d bytes)", line, length)
}

// put writes one datapoint of the current entity (for the few lines outside entity loops).
func (p *Processor) put(name string, v float64, isFloat bool) {
	b, n := p.point(p.ch.Start(), 0, name, v, isFloat)
	p.ch.EndLines(b, n)
}

// setPaths sets the paths of the next datapoints: "P.<suffix>" and, when group g matched,
// "P.<group-namespace>.<group>.<suffix>". suffix ends with '.'.
func (p *Processor) setPaths(g int32, groupPrefixes []string, suffix ...string) {
	p.dpath = append(p.dpath[:0], p.prefix...)
	p.dpath = append(p.dpath, '.')
	n := len(p.dpath)
	for _, s := range suffix {
		p.dpath = append(p.dpath, s...)
	}
	p.hasGroup = g >= 0
	if p.hasGroup {
		p.gpath = append(p.gpath[:0], p.prefix...)
		p.gpath = append(p.gpath, '.')
		p.gpath = append(p.gpath, groupPrefixes[g]...)
		p.gpath = append(p.gpath, '.')
		p.gpath = append(p.gpath, p.dpath[n:]...)
	}
	// Checked once per entity, so that the lines of the common case cost one test of a flag.
	p.checkLines = len(p.dpath)+p.lineSlack > p.maxLine || p.hasGroup && len(p.gpath)+p.lineSlack > p.maxLine
}

// groupOf returns the first group whose pattern is found in the entity's sanitised name
// (cached per entity: the patterns do not change during a Processor's life).
func (p *Processor) groupOf(t *table, e int32, groups []Group) int32 {
	if p.opts.GroupNamespace == "" || len(groups) == 0 {
		return groupNone
	}
	if g := t.group[e]; g != groupUnknown {
		return g
	}
	g := int32(groupNone)
	for i, gr := range groups {
		if gr.Pattern != nil && gr.Pattern.MatchString(t.names[e]) {
			g = int32(i)
			break
		}
	}
	t.group[e] = g
	return g
}

// growInt32 resizes *buf to n entries, reusing its memory.
func growInt32(buf *[]int32, n int) []int32 {
	*buf = slices.Grow((*buf)[:0], n)[:n]
	return *buf
}

// sortedLive returns the live entities of t that keep(e), sorted by name (code point order:
// sanitised names are valid UTF-8, so byte order is code point order).
func (p *Processor) sortedLive(t *table, keep func(int32) bool) []int32 {
	p.order = p.order[:0]
	for _, e := range t.live {
		if keep(e) {
			p.order = append(p.order, e)
		}
	}
	names := t.names
	slices.SortFunc(p.order, func(a, b int32) int { return strings.Compare(names[a], names[b]) })
	return p.order
}

// presentCols returns the positions in slots whose column was in at least one used file. A
// column no file has (an older HAProxy) is not emitted: there is no value to report.
func (p *Processor) presentCols(slots []int, buf []int) []int {
	buf = buf[:0]
	for i, s := range slots {
		if p.slotPresent[s] {
			buf = append(buf, i)
		}
	}
	return buf
}

func (p *Processor) emitFrontends() {
	lay := &p.lay
	cols := p.presentCols(lay.fe, nil)
	// pandas printed every frontend value as float once one selected column was a float column
	isFloat := false
	for _, i := range cols {
		isFloat = isFloat || p.slotFloat[lay.fe[i]]
	}
	// (after isFloat: a metric left out does not change how the others are written)
	cols = p.keptCols(cols, lay.feNames)
	order := p.sortedLive(p.fe, func(e int32) bool { return !p.fe.excl[e] })
	for _, e := range order {
		if p.ch.Err() != nil {
			return
		}
		p.setPaths(p.groupOf(p.fe, e, p.opts.FrontendGroups), p.feGroupPrefix, "frontend.", p.fe.names[e], ".")
		acc := p.fe.accOf(e)
		b, n := p.ch.Start(), 0
		for _, i := range cols {
			b, n = p.point(b, n, lay.feNames[i], acc[i], isFloat)
		}
		p.ch.EndLines(b, n)
	}
	p.selfInt("MetricsFrontend", 1+len(order)*len(cols))
}

func (p *Processor) emitBackends() {
	lay := &p.lay
	sumCols := p.keptCols(p.presentCols(lay.beSum, nil), lay.beSumNames)
	avgCols := p.keptCols(p.presentCols(lay.beAvg, nil), lay.beAvgNames)
	timeCols := p.keptCols(p.presentCols(lay.beTime, nil), lay.beTimeNames)
	nSum, nAvg := len(lay.beSum), len(lay.beAvg)
	order := p.sortedLive(p.be, func(e int32) bool { return p.be.rows[e] > 0 && !p.be.excl[e] })
	for _, e := range order {
		if p.ch.Err() != nil {
			return
		}
		p.setPaths(p.groupOf(p.be, e, p.opts.BackendGroups), p.beGroupPrefix, "backend.", p.be.names[e], ".")
		acc := p.be.accOf(e)
		b, n := p.ch.Start(), 0
		for _, i := range sumCols {
			b, n = p.point(b, n, lay.beSumNames[i], acc[i], p.slotFloat[lay.beSum[i]])
		}
		rows := float64(p.be.rows[e])
		for _, i := range avgCols {
			b, n = p.point(b, n, lay.beAvgNames[i], acc[nSum+i]/rows, true)
		}
		if trows := float64(p.be.trows[e]); trows > 0 {
			for _, i := range timeCols {
				b, n = p.point(b, n, lay.beTimeNames[i], acc[nSum+nAvg+i]/trows, true)
			}
		}
		p.ch.EndLines(b, n)
	}
	p.selfInt("MetricsBackend", 1+len(order)*(len(sumCols)+len(avgCols)+len(timeCols)))
}

func (p *Processor) emitServers() {
	lay := &p.lay
	// Group the live servers by backend: backends sorted by name, servers within each
	// (a counting sort on the backend index, then a sort per backend).
	nb := len(p.be.keys)
	count := growInt32(&p.srvCount, nb)
	clear(count)
	// A live server without rows had all its rows dropped (skip-maint-servers): it is left
	// out everywhere, as if it were not there.
	nServers := 0
	for _, s := range p.srv.live {
		if p.srv.rows[s] > 0 {
			count[p.srv.parent[s]]++
			nServers++
		}
	}
	backends := p.sortedLive(p.be, func(e int32) bool { return count[e] > 0 })
	end := growInt32(&p.srvEnd, nb)
	off := int32(0)
	for _, e := range backends {
		end[e] = off // start for now; the fill below moves it to the end
		off += count[e]
	}
	servers := growInt32(&p.beServers, int(off))
	for _, s := range p.srv.live {
		if p.srv.rows[s] == 0 {
			continue
		}
		e := p.srv.parent[s]
		servers[end[e]] = s
		end[e]++
	}
	names := p.srv.names
	byName := func(a, b int32) int { return strings.Compare(names[a], names[b]) }

	for _, e := range backends {
		if p.ch.Err() != nil {
			return
		}
		p.setPaths(p.groupOf(p.be, e, p.opts.BackendGroups), p.beGroupPrefix, "backend.", p.be.names[e], ".")
		if p.filt.keepTotalServers {
			p.put("TotalServers", float64(count[e]), false)
		}
		if p.opts.ServerStates {
			p.putStateCounts(servers[end[e]-count[e] : end[e]])
		}
	}

	sumCols := p.keptCols(p.presentCols(lay.srvSum, nil), lay.srvSumNames)
	avgCols := p.keptCols(p.presentCols(lay.srvAvg, nil), lay.srvAvgNames)
	timeCols := p.keptCols(p.presentCols(lay.srvTime, nil), lay.srvTimeNames)
	stateLines := 0
	for _, e := range backends {
		mine := servers[end[e]-count[e] : end[e]]
		slices.SortFunc(mine, byName)
		g := p.groupOf(p.be, e, p.opts.BackendGroups)
		for _, s := range mine {
			if p.ch.Err() != nil {
				return
			}
			p.setPaths(g, p.beGroupPrefix, "backend.", p.be.names[e], ".server.", names[s], ".")
			p.putServer(p.srv, s, lay.srvSum, lay.srvSumNames, sumCols, avgCols, timeCols)
			if p.opts.ServerStates {
				stateLines += p.putServerStates(s)
			}
		}
	}
	metrics := 1 + nServers*(len(sumCols)+len(avgCols)+len(timeCols))
	if p.filt.keepTotalServers {
		metrics += len(backends)
	}
	if p.opts.ServerStates {
		metrics += len(backends)*p.filt.nCountsKept + stateLines
	}

	if lay.aggrSum != nil {
		// (p.order, which backends aliases, is reused from here on)
		aggrCols := p.keptCols(p.presentCols(lay.aggrSum, nil), lay.aggrSumNames)
		order := p.sortedLive(p.aggr, func(a int32) bool { return p.aggr.rows[a] > 0 })
		for _, a := range order {
			if p.ch.Err() != nil {
				return
			}
			p.setPaths(p.groupOf(p.aggr, a, p.opts.ServerGroups), p.srvGroupPrefix, "server.", p.aggr.names[a], ".")
			p.putServer(p.aggr, a, lay.aggrSum, lay.aggrSumNames, aggrCols, avgCols, timeCols)
		}
		metrics += len(order) * (len(aggrCols) + len(avgCols) + len(timeCols))
	}
	p.selfInt("MetricsServer", metrics)
}

func (p *Processor) putServer(t *table, e int32, sum []int, sumNames []string, sumCols, avgCols, timeCols []int) {
	lay := &p.lay
	acc := t.accOf(e)
	b, n := p.ch.Start(), 0
	for _, i := range sumCols {
		b, n = p.point(b, n, sumNames[i], acc[i], p.slotFloat[sum[i]])
	}
	nSum := len(sum)
	rows := float64(t.rows[e])
	for _, i := range avgCols {
		b, n = p.point(b, n, lay.srvAvgNames[i], acc[nSum+i]/rows, true)
	}
	if trows := float64(t.trows[e]); trows > 0 {
		for _, i := range timeCols {
			b, n = p.point(b, n, lay.srvTimeNames[i], acc[nSum+len(lay.srvAvg)+i]/trows, true)
		}
	}
	p.ch.EndLines(b, n)
}

// putStateCounts writes the per-state server counts of the current backend, whose servers
// are srvs (ServerStates). A server whose status is other text, or missing, counts nowhere.
func (p *Processor) putStateCounts(srvs []int32) {
	var counts [nCounts]int
	for _, s := range srvs {
		if rank := int(p.srv.accOf(s)[p.srv.width-nStates+stateStatus]); rank > 0 {
			if c := countOfStatus[statusOfRank[rank]+1]; c >= 0 {
				counts[c]++
			}
		}
	}
	b, n := p.ch.Start(), 0
	for c, name := range countNames {
		if p.filt.keepCounts[c] {
			b, n = p.point(b, n, name, float64(counts[c]), false)
		}
	}
	p.ch.EndLines(b, n)
}

// putServerStates writes the state codes of server s that some row gave a value (a status, a
// check or agent result), and returns how many.
func (p *Processor) putServerStates(s int32) int {
	acc := p.srv.accOf(s)[p.srv.width-nStates:]
	b, n := p.ch.Start(), 0
	written := 0
	for k, name := range stateNames {
		v := acc[k]
		if v == 0 || !p.filt.keepStates[k] {
			continue
		}
		if k == stateStatus {
			v = float64(statusOfRank[int(v)])
		}
		b, n = p.point(b, n, name, v, false)
		written++
	}
	p.ch.EndLines(b, n)
	return written
}

// emitDaemon writes the daemon section from p.infos (haproxystats.md §5.2). A key missing from
// some replies is aggregated over the replies that have it; a key missing from all is skipped.
func (p *Processor) emitDaemon() {
	infos := p.infos
	n := len(infos)
	count := 1
	p.setPaths(groupNone, nil, "daemon.")
	nSums := 0
	for k, name := range DaemonMetrics {
		if !p.keepMetric(name) {
			continue
		}
		sum, cnt := p.daemonSum(k)
		p.logPartialKey(k, cnt)
		if cnt > 0 {
			nSums++
			p.put(name, float64(sum), true)
		}
	}
	nAvgs := 0
	for i, name := range DaemonAvgMetrics {
		if !p.keepMetric(name) {
			continue
		}
		k := len(DaemonMetrics) + i
		sum, cnt := p.daemonSum(k)
		p.logPartialKey(k, cnt)
		if cnt > 0 {
			nAvgs++
			p.put(name, float64(sum)/float64(cnt), true)
		}
	}
	count += nSums + nAvgs
	keepCPU, keepStd := p.keepMetric("CpuUsagePct"), p.keepMetric("StdCpuUsagePct")

	if n > 1 {
		for _, pc := range percentiles {
			if p.keepMetric(pc.name) {
				count++
			}
		}
		if keepStd {
			count++
		}
		cpu := make([]int64, 0, n)
		for i := range infos {
			if infos[i].has[keyIdlePct] {
				cpu = append(cpu, 100-infos[i].vals[keyIdlePct])
			}
		}
		slices.Sort(cpu)
		if len(cpu) > 0 {
			for _, pc := range percentiles {
				if p.keepMetric(pc.name) {
					p.put(pc.name, float64(cpu[percentileIndex(pc.q, len(cpu))]), false)
				}
			}
		}
		if len(cpu) > 1 && keepStd {
			p.put("StdCpuUsagePct", sampleStdDev(cpu), true)
		}
	}

	if p.opts.CalculatePercentages {
		for _, pm := range percentageMetrics {
			if !p.keepMetric(pm.title) {
				continue
			}
			count++
			v, vn := p.daemonSum(daemonKeyIndex[pm.value])
			l, ln := p.daemonSum(daemonKeyIndex[pm.limit])
			if vn == 0 || ln == 0 {
				p.log.Warn("cannot calculate percentage: metric is missing from every show info reply",
					"percentage", pm.title, "value", pm.value, "limit", pm.limit)
				continue
			}
			p.put(pm.title, float64(percentage(v, l)), false)
		}
	}

	if p.opts.PerProcessMetrics {
		ids := p.processIDs()
		for i := range infos {
			iv := &infos[i]
			p.setPaths(groupNone, nil, "daemon.process.", ids[i], ".")
			for k, name := range DaemonMetrics {
				if iv.has[k] && p.keepMetric(name) {
					p.put(name, float64(iv.vals[k]), false)
				}
			}
			if iv.has[keyIdlePct] && keepCPU {
				p.put("CpuUsagePct", float64(100-iv.vals[keyIdlePct]), false)
			}
			for j, name := range DaemonAvgMetrics {
				if k := len(DaemonMetrics) + j; iv.has[k] && p.keepMetric(name) {
					p.put(name, float64(iv.vals[k]), false)
				}
			}
		}
		perProcess := nSums + nAvgs
		if keepCPU {
			perProcess++
		}
		count += n * perProcess
		if p.opts.CalculatePercentages {
			for _, pm := range percentageMetrics {
				if !p.keepMetric(pm.title) {
					continue
				}
				count += n
				vk, lk := daemonKeyIndex[pm.value], daemonKeyIndex[pm.limit]
				for i := range infos {
					iv := &infos[i]
					if !iv.has[vk] || !iv.has[lk] {
						continue
					}
					p.setPaths(groupNone, nil, "daemon.process.", ids[i], ".")
					p.put(pm.title, float64(percentage(iv.vals[vk], iv.vals[lk])), false)
				}
			}
		}
	}
	p.selfInt("MetricsHAProxy", count)
}

// daemonSum sums key k over the replies that have it.
func (p *Processor) daemonSum(k int) (sum int64, cnt int) {
	for i := range p.infos {
		if p.infos[i].has[k] {
			sum += p.infos[i].vals[k]
			cnt++
		}
	}
	return sum, cnt
}

func (p *Processor) logPartialKey(k, cnt int) {
	if cnt == 0 || cnt == len(p.infos) {
		return
	}
	var missing []string
	for i := range p.infos {
		if !p.infos[i].has[k] {
			missing = append(missing, p.infoNames[i])
		}
	}
	p.log.Info("daemon metric missing from some show info replies, aggregated over the others",
		"metric", daemonKeys[k], "replies", len(p.infos), "missing_from", strings.Join(missing, ","))
}

// processIDs names the per-process paths: Process_num when every reply has a distinct one
// (nbproc); otherwise (HAProxy ≥ 2.5 reports 1 everywhere) the reply's file name without
// "_info", sanitised ("admin1.sock_info" → "admin1_sock"), which is stable across snapshots.
func (p *Processor) processIDs() []string {
	p.procIDs = p.procIDs[:0]
	distinct := true
	seen := make(map[int64]bool, len(p.infos))
	for i := range p.infos {
		iv := &p.infos[i]
		if !iv.has[keyProcessNum] || seen[iv.vals[keyProcessNum]] {
			distinct = false
			break
		}
		seen[iv.vals[keyProcessNum]] = true
	}
	for i := range p.infos {
		if distinct {
			p.procIDs = append(p.procIDs, strconv.FormatInt(p.infos[i].vals[keyProcessNum], 10))
		} else {
			id, _ := p.names.Component(strings.TrimSuffix(p.infoNames[i], infoSuffix))
			p.procIDs = append(p.procIDs, id)
		}
	}
	if !distinct && len(p.infos) > 0 {
		p.log.Debug("Process_num is not distinct across show info replies; per-process paths use the socket name",
			"example", p.procIDs[0])
	}
	return p.procIDs
}

// percentileIndex is numpy's "nearest" method: index round-half-to-even(q·(n−1)).
func percentileIndex(q float64, n int) int {
	return int(math.RoundToEven(q * float64(n-1)))
}

// sampleStdDev is the sample standard deviation (n−1 in the denominator, as pandas' std),
// computed by gonum over the per-process values.
func sampleStdDev(x []int64) float64 {
	f := make([]float64, len(x))
	for i, v := range x {
		f[i] = float64(v)
	}
	return stat.StdDev(f, nil)
}

// percentage is trunc(100·value / limit), multiplying first as upstream (100·29/100 = 29, not
// 28), and 0 when the limit is 0.
func percentage(value, limit int64) int64 {
	if limit == 0 {
		return 0
	}
	return int64(float64(100*value) / float64(limit))
}
