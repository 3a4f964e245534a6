package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// connSampler counts the TCP connections made to a loopback port by a process we cannot put a
// proxy in front of (a proxy would change the fault): it samples /proc/net/tcp every 10 ms and
// notes when each client socket (by its local port) is first seen established or later. A
// connection that lives less than one sample is missed, so the counts are lower bounds.
type connSampler struct {
	port  int
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	first map[string]time.Time
}

func sampleConnections(t *testing.T, port int) *connSampler {
	s := &connSampler{port: port, stop: make(chan struct{}), done: make(chan struct{}), first: map[string]time.Time{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.end)
	return s
}

func (s *connSampler) end() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *connSampler) sample() {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return
	}
	now := time.Now()
	want := fmt.Sprintf(":%04X", s.port)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st …; st 01 established … 0B closing; 02 SYN_SENT and 0A LISTEN are not
		// connections yet.
		if len(f) < 4 || !strings.HasSuffix(f[2], want) || f[3] == "02" || f[3] == "0A" {
			continue
		}
		if _, seen := s.first[f[1]]; !seen {
			s.first[f[1]] = now
		}
	}
}

// maxPerSecond is the most connections first seen within one second, and the total.
func (s *connSampler) maxPerSecond() (int, int) {
	s.mu.Lock()
	var times []time.Time
	for _, t := range s.first {
		times = append(times, t)
	}
	s.mu.Unlock()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i, j := 0, 0; j < len(times); j++ {
		for times[j].Sub(times[i]) >= time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	return most, len(times)
}

// row fills in the connections column of a fault row and checks the bound.
func (s *connSampler) check(t *testing.T, row *faultRow) {
	s.end()
	most, total := s.maxPerSecond()
	row.connsPerSecond = "≥" + strconv.Itoa(most) + " (sampled)"
	t.Logf("connections to carbon: at least %d, at most %d within one second (sampled)", total, most)
	if most > maxConnsPerSecond {
		t.Errorf("at least %d connections to carbon within one second (bound %d): reconnects do not back off", most, maxConnsPerSecond)
	}
}
