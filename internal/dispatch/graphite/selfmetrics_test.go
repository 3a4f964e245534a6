package graphite

import (
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/selfmetrics"
)

// The self-metrics counters follow the dispatcher's own: lines and bytes proven read, errors
// (lost connections and refused connects), a reconnection after the outage, and no replayed
// line when nothing unproven was lost.
func TestSelfMetricsCounters(t *testing.T) {
	reg := selfmetrics.New("process")
	m := selfmetrics.NewProcess(reg)
	s := startSink(t, "127.0.0.1:0")
	log, _ := newLogger()
	d := New(testConfig(s.addr), log)
	d.SetMetrics(m.Dispatcher("graphite"))
	rec := newDoneRecorder(t)
	a := makeSnapshot(0, 5, 200, ts)
	b := makeSnapshot(1, 5, 200, ts+10)
	submitAll(t, d, rec, a)
	waitAllDone(t, rec, [][]*metric.Batch{a})
	s.stop()
	submitAll(t, d, rec, b)
	waitFor(t, 10*time.Second, "a refused reconnect", func() bool { return d.Stats().ConnectFailures >= 1 })
	s.start()
	waitAllDone(t, rec, [][]*metric.Batch{a, b})
	closeOK(t, d)
	st := d.Stats()
	get := func(name string) float64 {
		v, _ := reg.Get("dispatcher.graphite." + name)
		return v
	}
	if get("lines") != float64(st.Lines) || st.Lines != 2*5*200 || get("bytes") != float64(st.Bytes) {
		t.Errorf("lines %v bytes %v, Stats %+v", get("lines"), get("bytes"), st)
	}
	if get("errors") != float64(st.Losses+st.ConnectFailures) || get("errors") < 1 {
		t.Errorf("errors %v, Stats %+v", get("errors"), st)
	}
	if get("reconnects") < 1 || get("reconnects") > float64(st.Reconnects) {
		t.Errorf("reconnects %v, Stats %+v", get("reconnects"), st)
	}
	if (get("replayed_lines") > 0) != (st.ResentBytes > 0) {
		t.Errorf("replayed_lines %v, resent bytes %d", get("replayed_lines"), st.ResentBytes)
	}
}
