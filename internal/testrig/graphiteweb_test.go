package testrig

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The graphite-web rig over the carbon rig: points sent to carbon are found and rendered
// (sumSeries over hosts, found by /metrics/find), a PNG renders, and a bad target is an error.
func TestGraphiteWebRendersCarbonPoints(t *testing.T) {
	c := StartCarbon(t)
	g := StartGraphiteWeb(t, c)
	now := time.Now().Unix()
	var b strings.Builder
	for i, h := range []string{"h1", "h2", "h3"} {
		for s := int64(0); s < 3; s++ {
			fmt.Fprintf(&b, "lb.%s.haproxy.frontend.fe1.req_tot %d %d\n", h, int64(i+1)*10+s, now-10+s)
		}
	}
	sendLines(t, c.LineAddr(), b.String())

	from, until := fmt.Sprint(now-60), fmt.Sprint(now+1)
	var sum map[int64]float64
	deadline := time.Now().Add(15 * time.Second)
	for {
		series, err := g.Render("sumSeries(lb.*.haproxy.frontend.fe1.req_tot)", from, until)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) == 1 {
			sum = series[0].Values()
			if len(sum) == 3 && sum[now-8] == 10+20+30+6 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sumSeries = %+v, want 3 points (60, 63, 66)\n%s", sum, g.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sum[now-10] != 60 || sum[now-9] != 63 {
		t.Errorf("sumSeries = %v", sum)
	}
	hosts, err := g.Find("lb.*")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(hosts, " ") != "lb.h1 lb.h2 lb.h3" {
		t.Errorf("find lb.* = %q", hosts)
	}
	png, err := g.Get(strings.TrimPrefix(g.RenderURL([]string{"lb.*.haproxy.frontend.fe1.req_tot"},
		url.Values{"from": {from}, "until": {until}, "width": {"300"}, "height": {"200"}}), g.URL))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("render without format is not a PNG: %.40q", png)
	}
	if _, err := g.Render("noSuchFunction(lb.*)", from, until); err == nil {
		t.Error("an unknown function rendered without an error")
	}
}
