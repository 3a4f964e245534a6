package haproxy

import "github.com/statspipe/statspipe/internal/config"

// The metric lists of haproxystats 0.5.2 are defined once, in package config, which also
// validates the frontend-, backend- and server-metrics options against them. Their order is the
// emission order within an entity.
var (
	FrontendMetrics       = config.FrontendMetrics
	BackendMetrics        = config.BackendMetrics
	BackendAvgMetrics     = config.BackendAvgMetrics
	BackendAvgTimeMetrics = config.BackendAvgTimeMetrics
	ServerMetrics         = config.ServerMetrics
	ServerAvgMetrics      = config.ServerAvgMetrics
	ServerAvgTimeMetrics  = config.ServerAvgTimeMetrics
	DaemonMetrics         = config.DaemonMetrics
	DaemonAvgMetrics      = config.DaemonAvgMetrics
)

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
