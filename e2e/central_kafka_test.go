package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statspipe/statspipe/internal/testrig"
)

// The central tier end to end, through Kafka (kfake on 127.0.0.1): three simulated hosts, each
// a real HAProxy pulled by a real stats-pull, ship their raw snapshots with an edge
// stats-process ([ship] only) to the snapshot-topic; one central stats-process ([central])
// processes them under each edge's host name into its local store and, through its [kafka]
// dispatcher (record-key = series), into the line-topic, which it consumes again to aggregate
// across hosts. The cluster lines (read back from the line-topic, where the tier's [kafka]
// dispatcher delivers them too) equal the functions of the hosts' values of the bucket; a late
// snapshot inside the lateness window is included, one after it is delivered per host, left
// out of the cluster lines and logged.
func TestCentralThroughKafka(t *testing.T) {
	const bucket, lateness = 60, 120
	base := int64(1796000040) // a bucket start (a multiple of 60), in the past
	c := testrig.StartKafka(t, 4, "snapshots", kfake.SeedTopics(4, "lines"))
	brokers := strings.Join(c.ListenAddrs(), ",")
	tap := tapLines(t, c.ListenAddrs(), "lines")

	tierDir := t.TempDir()
	os.MkdirAll(filepath.Join(tierDir, "incoming"), 0o755)
	store := filepath.Join(tierDir, "store")
	tierConf := writeConfig(t, tierDir, `
[process]
src-dir = `+tierDir+`/incoming
[graphite]
enabled = false
namespace = lb
hostname = tier
[local-store]
dir = `+store+`
[kafka]
brokers = `+brokers+`
topic = lines
record-key = series
[central]
brokers = `+brokers+`
snapshot-topic = snapshots
line-topic = lines
cluster = eu
bucket = `+strconv.Itoa(bucket)+`
lateness = `+strconv.Itoa(lateness)+`
work-dir = `+tierDir+`/central
`)
	tier := start(t, "stats-process", "-f", tierConf)

	// ship sends a copy of snap as host's snapshot ts through an edge stats-process and waits
	// until the tier delivered it (its local-store file for ts is there), so that every line
	// of it is in the line-topic before the next one is shipped.
	ship := func(host string, ts int64, snap string) string {
		t.Helper()
		edge := t.TempDir()
		name := strconv.FormatInt(ts, 10)
		copyTree(t, snap, filepath.Join(edge, "incoming", name))
		conf := writeConfig(t, edge, `
[process]
src-dir = `+edge+`/incoming
[graphite]
enabled = false
namespace = lb
hostname = `+host+`
[ship]
brokers = `+brokers+`
topic = snapshots
`)
		if out, code := runProcess(t, nil, "-f", conf, "--once"); code != 0 {
			t.Fatalf("edge %s: stats-process --once exited %d:\n%s", host, code, out)
		}
		file := filepath.Join(store, name, "stats")
		waitUntil(t, 60*time.Second, "the tier's delivery of "+host+"'s snapshot "+name, func() bool {
			_, err := os.Stat(file)
			return err == nil
		})
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	raw := map[string]string{}
	for i, host := range []string{"lb1", "lb2", "lb3"} {
		raw[host], _, _ = pullHAProxyHost(t, host, 20*(i+1))
	}
	perHost := map[string]string{} // host → the tier's lines of its snapshot in bucket base
	for i, host := range []string{"lb1", "lb2", "lb3"} {
		perHost[host] = ship(host, base+int64(10*(i+1)), raw[host])
	}

	// The tier's per-host lines are those of a stats-process on the edge itself: the same
	// snapshot processed locally with hostname lb1 gives the same paths (only the processing
	// times differ).
	_, lb1Dir, lb1Conf := pullHAProxyHost(t, "lb1", 1)
	copyTree(t, raw["lb1"], filepath.Join(lb1Dir, "incoming", strconv.FormatInt(base+10, 10)))
	local := omProcess(t, lb1Conf, filepath.Join(lb1Dir, "store"), strconv.FormatInt(base+10, 10))
	central := clusterLines(t, perHost["lb1"], base+10)
	for p := range local {
		if _, ok := central[p]; !ok {
			t.Errorf("the tier did not write %s", p)
		}
	}
	if len(central) != len(local) {
		t.Errorf("the tier wrote %d lines for lb1, a local stats-process %d", len(central), len(local))
	}

	ship("lb1", base+bucket+10, raw["lb1"])          // the next bucket
	perHost["lb4"] = ship("lb4", base+5, raw["lb1"]) // late, inside the window
	ship("lb2", base+bucket+lateness, raw["lb2"])    // closes bucket base

	values := map[string][]float64{}
	for host, text := range perHost {
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil || !strings.HasPrefix(f[0], "lb."+host+".") {
				t.Fatalf("%s: line %q", host, l)
			}
			p := "lb.eu." + strings.TrimPrefix(f[0], "lb."+host+".")
			values[p] = append(values[p], v)
		}
	}
	var got map[string]float64
	waitUntil(t, 60*time.Second, "the cluster lines of every path", func() bool {
		got = tap.at("lb.eu.", base)
		for p := range values {
			if _, sum := got[p]; !sum {
				if _, avg := got[p+".avg"]; !avg {
					if _, mx := got[p+".max"]; !mx {
						if _, mn := got[p+".min"]; !mn {
							return false
						}
					}
				}
			}
		}
		return true
	})
	checkClusterLines(t, values, got)
	if n := len(values["lb.eu.haproxy.frontend.fe_main.req_tot"]); n != 4 {
		t.Errorf("fe_main.req_tot has %d hosts' values in the model, want 4 (lb1–lb4)", n)
	}

	// After the window: delivered per host, left out of the cluster lines, logged.
	ship("lb5", base+35, raw["lb3"])
	waitUntil(t, 30*time.Second, "the tier's log of the late lines", func() bool {
		return strings.Contains(tier.out.String(), "arrived after its bucket's lateness window")
	})
	if after := tap.at("lb.eu.", base); after["lb.eu.haproxy.frontend.fe_main.req_tot"] != got["lb.eu.haproxy.frontend.fe_main.req_tot"] {
		t.Errorf("a late snapshot changed the cluster lines: %v, was %v", after["lb.eu.haproxy.frontend.fe_main.req_tot"],
			got["lb.eu.haproxy.frontend.fe_main.req_tot"])
	}

	// The Nagios freshness check on the tier's own file: its status file in work-dir records
	// the deliveries (per host and cluster lines); no pull, no spool on this host.
	out, err := exec.Command(filepath.Join(binDir, "check_statspipe_freshness"), "-f", tierConf).CombinedOutput()
	if first, _, _ := strings.Cut(string(out), "\n"); err != nil || !strings.HasPrefix(first, "OK: central tier delivered ") ||
		!strings.Contains(first, ", 0 quarantined|delivery_age=") {
		t.Errorf("check_statspipe_freshness on the tier: %v\n%s", err, out)
	}
	tier.stop(t)
}

// lineTap reads a topic from its start in the background, keeping every line.
type lineTap struct {
	mu    sync.Mutex
	lines map[int64]map[string]float64 // timestamp → path → value
}

func tapLines(t *testing.T, brokers []string, topic string) *lineTap {
	t.Helper()
	cl := testrig.KafkaReader(t, brokers, topic)
	tap := &lineTap{lines: map[int64]map[string]float64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				for _, l := range strings.Split(strings.TrimSpace(string(r.Value)), "\n") {
					f := strings.Fields(l)
					if len(f) != 3 {
						continue
					}
					v, err1 := strconv.ParseFloat(f[1], 64)
					ts, err2 := strconv.ParseInt(f[2], 10, 64)
					if err1 != nil || err2 != nil {
						continue
					}
					tap.mu.Lock()
					if tap.lines[ts] == nil {
						tap.lines[ts] = map[string]float64{}
					}
					tap.lines[ts][f[0]] = v
					tap.mu.Unlock()
				}
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return tap
}

// at returns the lines stamped ts whose path starts with prefix.
func (tap *lineTap) at(prefix string, ts int64) map[string]float64 {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	out := map[string]float64{}
	for p, v := range tap.lines[ts] {
		if strings.HasPrefix(p, prefix) {
			out[p] = v
		}
	}
	return out
}
