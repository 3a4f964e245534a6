package haproxy

// The metric lists of haproxystats 0.5.2 (haproxystats.md §5.2, §5.4–5.6), names and order
// exactly as upstream: the order is the emission order within an entity.

// commonMetrics is shared by the frontend, backend and server sum lists.
var commonMetrics = []string{
	"bin", "bout", "dresp", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
	"hrsp_other", "rate", "rate_max", "scur", "slim", "smax", "stot",
}

// FrontendMetrics are summed over the frontend rows of one name.
var FrontendMetrics = concat([]string{
	"comp_byp", "comp_in", "comp_out", "comp_rsp", "conn_rate", "conn_rate_max", "conn_tot",
	"dcon", "dses", "dreq", "ereq", "intercepted", "rate_lim", "req_rate", "req_rate_max",
	"req_tot",
}, commonMetrics)

// BackendMetrics are summed over the backend rows of one name.
var BackendMetrics = concat([]string{
	"chkdown", "cli_abrt", "comp_byp", "comp_in", "comp_out", "comp_rsp", "downtime", "dreq",
	"econ", "eresp", "intercepted", "lbtot", "qcur", "qmax", "req_tot", "srv_abrt", "wredis",
	"wretr",
}, commonMetrics)

// BackendAvgMetrics are averaged over all backend rows of one name.
var BackendAvgMetrics = []string{"act", "bck", "weight"}

// BackendAvgTimeMetrics are averaged over the backend rows with lbtot > 0.
var BackendAvgTimeMetrics = []string{"rtime", "ctime", "qtime", "ttime"}

// ServerMetrics are summed over the rows of one (backend, server).
var ServerMetrics = concat([]string{
	"chkfail", "chkdown", "cli_abrt", "econ", "eresp", "lbtot", "qcur", "qmax", "srv_abrt",
	"wredis", "wretr",
}, commonMetrics)

// ServerAvgMetrics are averaged over all rows of one (backend, server).
var ServerAvgMetrics = []string{"throttle", "weight"}

// ServerAvgTimeMetrics are averaged over the rows of one (backend, server) with lbtot > 0.
// The order differs from BackendAvgTimeMetrics, as upstream.
var ServerAvgTimeMetrics = []string{"ctime", "qtime", "rtime", "ttime"}

// DaemonMetrics are summed over the `show info` replies (ASCII-sorted, as upstream).
var DaemonMetrics = []string{
	"CompressBpsIn", "CompressBpsOut", "CompressBpsRateLim", "ConnRate", "ConnRateLimit",
	"CumConns", "CumReq", "CumSslConns", "CurrConns", "CurrSslConns", "Hard_maxconn",
	"MaxConnRate", "MaxSessRate", "MaxSslConns", "MaxSslRate", "MaxZlibMemUsage", "Maxconn",
	"Maxpipes", "Maxsock", "Memmax_MB", "PipesFree", "PipesUsed", "Run_queue", "SessRate",
	"SessRateLimit", "SslBackendKeyRate", "SslBackendMaxKeyRate", "SslCacheLookups",
	"SslCacheMisses", "SslFrontendKeyRate", "SslFrontendMaxKeyRate",
	"SslFrontendSessionReuse_pct", "SslRate", "SslRateLimit", "Tasks", "Ulimit-n",
	"ZlibMemUsage",
}

// DaemonAvgMetrics are averaged over the `show info` replies.
var DaemonAvgMetrics = []string{"Idle_pct", "Uptime_sec"}

// percentageMetrics are the calculate-percentages triples (value, limit, title), in emission
// order.
var percentageMetrics = []struct{ value, limit, title string }{
	{"CurrConns", "Maxconn", "ConnPercentage"},
	{"ConnRate", "ConnRateLimit", "ConnRatePercentage"},
	{"CurrSslConns", "MaxSslConns", "SslConnPercentage"},
	{"SslRate", "SslRateLimit", "SslRatePercentage"},
}

// percentiles are the CpuUsagePct percentiles: name prefix and q.
var percentiles = []struct {
	name string
	q    float64
}{
	{"25PercentileCpuUsagePct", 0.25},
	{"50PercentileCpuUsagePct", 0.50},
	{"75PercentileCpuUsagePct", 0.75},
	{"95PercentileCpuUsagePct", 0.95},
	{"99PercentileCpuUsagePct", 0.99},
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	out = append(out, a...)
	return append(out, b...)
}
