package haproxy

import "strings"

// The row types of the all-metrics output, indexed as the arrays of capturedNatures, and the
// daemon (`show info`).
const (
	kindFrontend = iota
	kindBackend
	kindServer
	kindListener
	kindDaemon
	nKinds
)

// kindObj is the obj letter of each kind in FieldNatures keys and typed replies; kindNames is
// the <kind> of the all-metrics-aggregate globs and of the paths.
var (
	kindObj   = [nKinds]byte{'F', 'B', 'S', 'L', 'I'}
	kindNames = [nKinds]string{"frontend", "backend", "server", "listener", "daemon"}
)

// natureOf is the nature of field of row type obj (F, B, S, L, or I for `show info`): what a
// typed snapshot said (typedNature), else the built-in table, else NatureUnknown.
func (p *Processor) natureOf(obj byte, field string) Nature {
	if n := p.typedNature(obj, field); n != NatureUnknown {
		return n
	}
	return builtinNature(obj, field)
}

// builtinNature looks field up in the captured table, then in the documented one.
func builtinNature(obj byte, field string) Nature {
	if obj == 'I' {
		if n, ok := capturedInfoNatures[field]; ok {
			return n
		}
		return documentedInfoNatures[field]
	}
	k := objKind(obj)
	if k < 0 {
		return NatureUnknown
	}
	if n := capturedNatures[field][k]; n != NatureUnknown {
		return n
	}
	return documentedNatures[field][k]
}

func objKind(obj byte) int {
	for k, o := range kindObj {
		if o == obj {
			return k
		}
	}
	return -1
}

// moduleNature is the nature of a module counter (a column after `-`, formats.md §1.3) that no
// table describes, by HAProxy's naming: the modules' current levels are named *_open_*,
// *_cur or *_curr (h1_open_connections, h2_backend_open_streams, quic's *_cur), everything
// else they export is a running count (h2_headers_rcvd, ssl_sess, quic_retry_sent, …).
func moduleNature(field string) Nature {
	if strings.Contains(field, "_open") || strings.HasSuffix(field, "_cur") || strings.HasSuffix(field, "_curr") {
		return NatureGauge
	}
	return NatureCounter
}

// identityFields are numeric columns that identify a row or a process rather than measure
// it (a process id, proxy/server/socket ids, the row type): HAProxy tags them gauges, but a
// sum of process ids means nothing, so all-metrics leaves them out.
var identityFields = map[string]bool{
	"pid": true, "iid": true, "sid": true, "srid": true, "type": true,
	"Pid": true, "Process_num": true,
}

// textColumns hold text (formats.md §1.4) whatever tag HAProxy gives them (status is tagged
// a gauge): their cells are not parsed.
var textColumns = map[string]bool{
	"pxname": true, "svname": true, "status": true, "check_status": true, "last_chk": true,
	"last_agt": true, "agent_status": true, "check_desc": true, "agent_desc": true, "addr": true,
	"cookie": true, "mode": true, "algo": true, "tracked": true, "proto": true,
	"agg_server_status": true, "agg_server_check_status": true, "agg_check_status": true,
	"-": true,
}

const u = NatureUnknown

// documentedNatures are the `show stat` columns of HAProxy 2.0–3.5 that the 2.6 capture has no
// value for (a feature the capture's configuration does not use: agents, queue limits,
// slow start, tracking, cookies; or a column of a later version, formats.md §1.2), with the
// nature HAProxy's source (src/stats.c, src/stats-proxy.c: the FN_* of each field) gives them.
var documentedNatures = map[string][4]Nature{
	// 2.6 columns without a value in the capture
	"qlimit":         {u, u, NatureLimit, u},
	"throttle":       {u, u, NatureAvg, u},
	"hanafail":       {u, u, NatureCounter, u},
	"check_code":     {u, u, NatureOutput, u},
	"agent_code":     {u, u, NatureOutput, u},
	"agent_duration": {u, u, NatureDuration, u},
	"agent_rise":     {u, u, NatureGauge, u},
	"agent_fall":     {u, u, NatureGauge, u},
	"agent_health":   {u, u, NatureGauge, u},
	"src_ilim":       {u, u, NatureLimit, u},
	"slim":           {u, u, NatureLimit, u},
	"cookie":         {u, NatureName, NatureName, u},
	"tracked":        {u, u, NatureName, u},
	"last_agt":       {u, u, NatureOutput, u},
	"agent_status":   {u, u, NatureOutput, u},
	"agent_desc":     {u, u, NatureOutput, u},
	// 2.8: per-protocol sessions and requests of frontends, server ids
	"srid":       {u, u, NatureGauge, u},
	"sess_other": {NatureCounter, u, u, u},
	"h1sess":     {NatureCounter, u, u, u},
	"h2sess":     {NatureCounter, u, u, u},
	"h3sess":     {NatureCounter, u, u, u},
	"req_other":  {NatureCounter, u, u, u},
	"h1req":      {NatureCounter, u, u, u},
	"h2req":      {NatureCounter, u, u, u},
	"h3req":      {NatureCounter, u, u, u},
	// 3.0: the listener's protocol (text)
	"proto": {u, u, u, NatureOutput},
	// 3.3: private idle connections, request/response bytes before/after compression
	"priv_idle_cur": {u, u, NatureGauge, u},
	"reqbin":        {NatureCounter, NatureCounter, NatureCounter, NatureCounter},
	"reqbout":       {NatureCounter, NatureCounter, NatureCounter, NatureCounter},
	"resbin":        {NatureCounter, NatureCounter, NatureCounter, NatureCounter},
	"resbout":       {NatureCounter, NatureCounter, NatureCounter, NatureCounter},
	// 3.5-dev
	"cache_hint_hits": {NatureCounter, NatureCounter, u, u},
}

// documentedInfoNatures are the `show info` keys of HAProxy 2.0–3.x the 2.6 capture lacks
// (Debian builds 2.6 with libslz, without zlib; the rest are later keys, formats.md §2).
var documentedInfoNatures = map[string]Nature{
	"ZlibMemUsage":           NatureGauge,
	"MaxZlibMemUsage":        NatureLimit,
	"description":            NatureOutput,
	"TotalSplicedBytesOut":   NatureGauge,
	"TotalWarnings":          NatureCounter,
	"MaxconnReached":         NatureCounter,
	"BootTime_ms":            NatureDuration,
	"Niced_tasks":            NatureGauge,
	"CurrStreams":            NatureGauge,
	"CumStreams":             NatureCounter,
	"BlockedTrafficWarnings": NatureCounter,
	"PatternsAdded":          NatureCounter,
	"PatternsFreed":          NatureCounter,
	"NbThreadGroups":         NatureGauge,
}
