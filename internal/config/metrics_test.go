package config

import (
	"strings"
	"testing"
)

// The lists as haproxystats.md §5.2 and §5.4–§5.6 print them, order included.
func TestMetricLists(t *testing.T) {
	const common = "bin, bout, dresp, hrsp_1xx, hrsp_2xx, hrsp_3xx, hrsp_4xx, hrsp_5xx, hrsp_other, rate, rate_max, scur, slim, smax, stot"
	for _, tc := range []struct {
		name  string
		list  []string
		count int
		want  string
	}{
		{"FrontendMetrics", FrontendMetrics, 31, "comp_byp, comp_in, comp_out, comp_rsp, conn_rate, conn_rate_max, conn_tot, dcon, dses, dreq, ereq, intercepted, rate_lim, req_rate, req_rate_max, req_tot, " + common},
		{"BackendMetrics", BackendMetrics, 33, "chkdown, cli_abrt, comp_byp, comp_in, comp_out, comp_rsp, downtime, dreq, econ, eresp, intercepted, lbtot, qcur, qmax, req_tot, srv_abrt, wredis, wretr, " + common},
		{"BackendAvgMetrics", BackendAvgMetrics, 3, "act, bck, weight"},
		{"BackendAvgTimeMetrics", BackendAvgTimeMetrics, 4, "rtime, ctime, qtime, ttime"},
		{"ServerMetrics", ServerMetrics, 26, "chkfail, chkdown, cli_abrt, econ, eresp, lbtot, qcur, qmax, srv_abrt, wredis, wretr, " + common},
		{"ServerAvgMetrics", ServerAvgMetrics, 2, "throttle, weight"},
		{"ServerAvgTimeMetrics", ServerAvgTimeMetrics, 4, "ctime, qtime, rtime, ttime"},
		{"DaemonMetrics", DaemonMetrics, 37, "CompressBpsIn, CompressBpsOut, CompressBpsRateLim, ConnRate, ConnRateLimit, " +
			"CumConns, CumReq, CumSslConns, CurrConns, CurrSslConns, Hard_maxconn, MaxConnRate, MaxSessRate, MaxSslConns, " +
			"MaxSslRate, MaxZlibMemUsage, Maxconn, Maxpipes, Maxsock, Memmax_MB, PipesFree, PipesUsed, Run_queue, SessRate, " +
			"SessRateLimit, SslBackendKeyRate, SslBackendMaxKeyRate, SslCacheLookups, SslCacheMisses, SslFrontendKeyRate, " +
			"SslFrontendMaxKeyRate, SslFrontendSessionReuse_pct, SslRate, SslRateLimit, Tasks, Ulimit-n, ZlibMemUsage"},
		{"DaemonAvgMetrics", DaemonAvgMetrics, 2, "Idle_pct, Uptime_sec"},
	} {
		if got := strings.Join(tc.list, ", "); got != tc.want || len(tc.list) != tc.count {
			t.Errorf("%s (%d names)\n got %s\nwant %s", tc.name, len(tc.list), got, tc.want)
		}
	}
}
