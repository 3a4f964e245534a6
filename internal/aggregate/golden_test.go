package aggregate

import (
	"testing"

	"github.com/statspipe/statspipe/internal/sample"
)

func goldenPolicies(t *testing.T) Policies {
	p, err := ParsePolicies([][2]string{
		{"aggregate", "sum avg"},
		{"aggregate.*_bytes", "sum max p50"},
		{"aggregate.mem_*", "min"}, // never applies to mem_bytes: *_bytes came first
		{"aggregate.go_*", "none"},
		{"aggregate.rpc", "avg"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goldenInput() []inst {
	q := func(v, quantile float64) sample.Sample {
		return fam(smp(sample.Quantile, "rpc", v, "svc", "x"), "rpc", quantile)
	}
	lat := func(v, quantile float64) sample.Sample {
		return fam(smp(sample.Quantile, "lat", v), "lat", quantile)
	}
	return []inst{
		{"web-1", []sample.Sample{
			smp(sample.Counter, "req_total", 10, "method", "GET", "code", "200"),
			smp(sample.Gauge, "mem_bytes", 100),
			smp(sample.Gauge, "mem_free", 7),
			smp(sample.Gauge, "go_threads", 8),
			smp(sample.Gauge, "temp", 20, "zone", "a.b", "path", "/x y", "city", "Zürich", "empty", "", "name", "n", "instance", "i"),
			q(0.25, 0.5), q(0.9, 0.99),
			lat(3, 0.5),
			fam(smp(sample.SummarySum, "rpc_sum", 12, "svc", "x"), "rpc", 0),
			fam(smp(sample.SummaryCount, "rpc_count", 4, "svc", "x"), "rpc", 0),
			bkt("h", "1", 1), bkt("h", "+Inf", 2),
		}},
		{"web-2", []sample.Sample{
			smp(sample.Counter, "req_total", 5, "code", "200", "method", "GET"),
			smp(sample.Counter, "req_total", 99, "code", "200", "method", "GET"), // duplicate: the first wins
			smp(sample.Counter, "req_total", 1, "code", "500", "method", "GET"),
			smp(sample.Gauge, "mem_bytes", 300),
			smp(sample.Gauge, "go_threads", 9),
			q(0.75, 0.5), q(0.8, 0.99),
			lat(5, 0.5),
			bkt("h", "+Inf", 4), bkt("h", "1.0", 3),
		}},
		{brokenName, []sample.Sample{
			smp(sample.Counter, "req_total", 1000, "code", "200", "method", "GET"),
			smp(sample.Gauge, "broken_only", 1),
		}},
		{"web/3 ü", []sample.Sample{
			smp(sample.Gauge, "mem_bytes", 200),
			smp(sample.Gauge, "temp", 30, "city", "Zürich", "path", "/x y", "zone", "a.b", "name", "n", "instance", "i"),
			bkt("h", "1", 0), bkt("h", "+Inf", 0),
		}},
	}
}

func TestGoldenPaths(t *testing.T) {
	o := Options{Prefix: "ns.host.src", Policies: goldenPolicies(t), PerInstance: true, HistogramQuantiles: []int{50}}
	got := run(t, o, goldenInput()...)
	diff(t, got, lines(
		"ns.host.src.req_total.code.200.method.GET 15.0",
		"ns.host.src.req_total.code.200.method.GET.avg 7.5",
		"ns.host.src.mem_bytes 600.0",
		"ns.host.src.mem_bytes.max 300.0",
		"ns.host.src.mem_bytes.p50 200.0",
		"ns.host.src.mem_free.min 7.0",
		"ns.host.src.temp.city.Z_rich.instance.i.name.n.path._x_y.zone.a_b 50.0",
		"ns.host.src.temp.city.Z_rich.instance.i.name.n.path._x_y.zone.a_b.avg 25.0",
		"ns.host.src.rpc.svc.x.quantile.0_5.avg 0.5",
		"ns.host.src.rpc.svc.x.quantile.0_99.avg 0.8500000000000001", // (0.9+0.8)/2 in float64
		"ns.host.src.lat.quantile.0_5.max 5.0",
		"ns.host.src.rpc_sum.svc.x 12.0",
		"ns.host.src.rpc_count.svc.x 4.0",
		// h: (1, 1+3+0 = 4) (+Inf, 2+4+0 = 6): p50 rank 3 → 0 + 1·3/4
		"ns.host.src.h.p50 0.75",
		"ns.host.src.req_total.code.500.method.GET 1.0",
		"ns.host.src.req_total.code.500.method.GET.avg 1.0",
		"ns.host.src.instance.web-1.req_total.code.200.method.GET 10.0",
		"ns.host.src.instance.web-1.mem_bytes 100.0",
		"ns.host.src.instance.web-1.mem_free 7.0",
		"ns.host.src.instance.web-1.go_threads 8.0",
		"ns.host.src.instance.web-1.temp.city.Z_rich.instance.i.name.n.path._x_y.zone.a_b 20.0",
		"ns.host.src.instance.web-1.rpc.svc.x.quantile.0_5 0.25",
		"ns.host.src.instance.web-1.rpc.svc.x.quantile.0_99 0.9",
		"ns.host.src.instance.web-1.lat.quantile.0_5 3.0",
		"ns.host.src.instance.web-1.rpc_sum.svc.x 12.0",
		"ns.host.src.instance.web-1.rpc_count.svc.x 4.0",
		// (1,1) (+Inf,2): rank 1 → 1·1/1
		"ns.host.src.instance.web-1.h.p50 1.0",
		"ns.host.src.instance.web-2.req_total.code.200.method.GET 5.0",
		"ns.host.src.instance.web-2.req_total.code.500.method.GET 1.0",
		"ns.host.src.instance.web-2.mem_bytes 300.0",
		"ns.host.src.instance.web-2.go_threads 9.0",
		"ns.host.src.instance.web-2.rpc.svc.x.quantile.0_5 0.75",
		"ns.host.src.instance.web-2.rpc.svc.x.quantile.0_99 0.8",
		"ns.host.src.instance.web-2.lat.quantile.0_5 5.0",
		// (1,3) (+Inf,4): rank 2 → 1·2/3
		"ns.host.src.instance.web-2.h.p50 0.6666666666666666",
		"ns.host.src.instance.web_3__.mem_bytes 200.0",
		"ns.host.src.instance.web_3__.temp.city.Z_rich.instance.i.name.n.path._x_y.zone.a_b 30.0",
		// web/3 has no observation: no quantile
	))
}

func TestGoldenTags(t *testing.T) {
	o := Options{Prefix: "ns.host.src", Policies: goldenPolicies(t), PerInstance: true, GraphiteTags: true,
		HistogramQuantiles: []int{50}, HistogramBuckets: true}
	got := run(t, o, goldenInput()...)
	diff(t, got, lines(
		"ns.host.src.req_total;code=200;method=GET 15.0",
		"ns.host.src.req_total.avg;code=200;method=GET 7.5",
		"ns.host.src.mem_bytes 600.0",
		"ns.host.src.mem_bytes.max 300.0",
		"ns.host.src.mem_bytes.p50 200.0",
		"ns.host.src.mem_free.min 7.0",
		"ns.host.src.temp;_instance=i;_name=n;city=Zürich;path=/x_y;zone=a.b 50.0",
		"ns.host.src.temp.avg;_instance=i;_name=n;city=Zürich;path=/x_y;zone=a.b 25.0",
		"ns.host.src.rpc.avg;quantile=0.5;svc=x 0.5",
		"ns.host.src.rpc.avg;quantile=0.99;svc=x 0.8500000000000001", // (0.9+0.8)/2 in float64
		"ns.host.src.lat.max;quantile=0.5 5.0",
		"ns.host.src.rpc_sum;svc=x 12.0",
		"ns.host.src.rpc_count;svc=x 4.0",
		"ns.host.src.h.p50 0.75",
		"ns.host.src.h_bucket;le=1.0 4.0",
		"ns.host.src.h_bucket;le=inf 6.0",
		"ns.host.src.req_total;code=500;method=GET 1.0",
		"ns.host.src.req_total.avg;code=500;method=GET 1.0",
		"ns.host.src.req_total;code=200;instance=web-1;method=GET 10.0",
		"ns.host.src.mem_bytes;instance=web-1 100.0",
		"ns.host.src.mem_free;instance=web-1 7.0",
		"ns.host.src.go_threads;instance=web-1 8.0",
		"ns.host.src.temp;_instance=i;_name=n;city=Zürich;instance=web-1;path=/x_y;zone=a.b 20.0",
		"ns.host.src.rpc;instance=web-1;quantile=0.5;svc=x 0.25",
		"ns.host.src.rpc;instance=web-1;quantile=0.99;svc=x 0.9",
		"ns.host.src.lat;instance=web-1;quantile=0.5 3.0",
		"ns.host.src.rpc_sum;instance=web-1;svc=x 12.0",
		"ns.host.src.rpc_count;instance=web-1;svc=x 4.0",
		"ns.host.src.h.p50;instance=web-1 1.0",
		"ns.host.src.req_total;code=200;instance=web-2;method=GET 5.0",
		"ns.host.src.req_total;code=500;instance=web-2;method=GET 1.0",
		"ns.host.src.mem_bytes;instance=web-2 300.0",
		"ns.host.src.go_threads;instance=web-2 9.0",
		"ns.host.src.rpc;instance=web-2;quantile=0.5;svc=x 0.75",
		"ns.host.src.rpc;instance=web-2;quantile=0.99;svc=x 0.8",
		"ns.host.src.lat;instance=web-2;quantile=0.5 5.0",
		"ns.host.src.h.p50;instance=web-2 0.6666666666666666",
		"ns.host.src.mem_bytes;instance=web/3_ü 200.0",
		"ns.host.src.temp;_instance=i;_name=n;city=Zürich;instance=web/3_ü;path=/x_y;zone=a.b 30.0",
	))
}
