package config

// The metric name lists of haproxystats-process (haproxystats.md §5.2, §5.4–§5.6), in its
// emission order. They are the defaults of the aggregation code and the valid names of the
// frontend-, backend- and server-metrics options. Treat them as read-only: they are shared.

// commonSiteMetrics are the columns every frontend, backend and server list ends with.
var commonSiteMetrics = []string{
	"bin", "bout", "dresp", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
	"hrsp_other", "rate", "rate_max", "scur", "slim", "smax", "stot",
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// FrontendMetrics is FRONTEND_METRICS (31 names): summed per frontend.
var FrontendMetrics = concat([]string{
	"comp_byp", "comp_in", "comp_out", "comp_rsp", "conn_rate", "conn_rate_max", "conn_tot",
	"dcon", "dses", "dreq", "ereq", "intercepted", "rate_lim", "req_rate", "req_rate_max",
	"req_tot",
}, commonSiteMetrics)

// BackendMetrics is BACKEND_METRICS (33 names): summed per backend.
var BackendMetrics = concat([]string{
	"chkdown", "cli_abrt", "comp_byp", "comp_in", "comp_out", "comp_rsp", "downtime", "dreq",
	"econ", "eresp", "intercepted", "lbtot", "qcur", "qmax", "req_tot", "srv_abrt", "wredis",
	"wretr",
}, commonSiteMetrics)

// BackendAvgMetrics is BACKEND_AVG_METRICS: the mean over all rows of a backend.
var BackendAvgMetrics = []string{"act", "bck", "weight"}

// BackendAvgTimeMetrics is BACKEND_AVG_TIME_METRICS: the mean over the rows with lbtot > 0.
var BackendAvgTimeMetrics = []string{"rtime", "ctime", "qtime", "ttime"}

// ServerMetrics is SERVER_METRICS (26 names): summed per server.
var ServerMetrics = concat([]string{
	"chkfail", "chkdown", "cli_abrt", "econ", "eresp", "lbtot", "qcur", "qmax", "srv_abrt",
	"wredis", "wretr",
}, commonSiteMetrics)

// ServerAvgMetrics is SERVER_AVG_METRICS: the mean over all rows of a server.
var ServerAvgMetrics = []string{"throttle", "weight"}

// ServerAvgTimeMetrics is SERVER_AVG_TIME_METRICS: the mean over the rows with lbtot > 0.
// The order differs from BackendAvgTimeMetrics, as upstream.
var ServerAvgTimeMetrics = []string{"ctime", "qtime", "rtime", "ttime"}

// DaemonMetrics is DAEMON_METRICS (37 `show info` keys, ASCII-sorted): summed over processes.
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

// DaemonAvgMetrics is DAEMON_AVG_METRICS: averaged over processes.
var DaemonAvgMetrics = []string{"Idle_pct", "Uptime_sec"}

// validMetricNames are the names each *-metrics option accepts (§1.5 item 8).
var validMetricNames = map[string]map[string]bool{
	"frontend-metrics": nameSet(FrontendMetrics),
	"backend-metrics":  nameSet(BackendMetrics, BackendAvgMetrics, BackendAvgTimeMetrics),
	"server-metrics":   nameSet(ServerMetrics, ServerAvgMetrics, ServerAvgTimeMetrics),
}

func nameSet(lists ...[]string) map[string]bool {
	set := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			set[n] = true
		}
	}
	return set
}
