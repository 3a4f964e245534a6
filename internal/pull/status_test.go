package pull

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/status"
)

func (r *rig) status(t *testing.T) *status.Pull {
	t.Helper()
	st, err := status.ReadPull(filepath.Join(r.dst, status.PullFile))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The status file says what each round did: a start-up record, the last publish, and for a
// round that published nothing the error the loop logged, with the last publish kept.
func TestRoundStatusFile(t *testing.T) {
	bad := &fakeSource{name: "bad.sock", err: errors.New("read: connection reset"), files: map[string]string{"bad.sock_info": "x"}}
	src := &switchingProvider{sources: []Source{good("a.sock")}}
	r := newRigOf(t, Options{}, src)

	st := r.status(t)
	if st.Program != "stats-pull" || st.LastPublish != nil || st.LastError != nil || st.Started.IsZero() {
		t.Fatalf("start-up record: %+v", st)
	}
	r.loop.round(context.Background(), tick0)
	st = r.status(t)
	if st.LastPublish == nil || st.LastPublish.Snapshot != "1795312744" || st.LastError != nil || st.RoundsWithoutPublish != 0 {
		t.Fatalf("after a publish: %+v", st)
	}
	published := st.LastPublish.Time

	src.sources = nil // socket-dir emptied
	r.loop.round(context.Background(), tick0.Add(time.Second))
	r.loop.round(context.Background(), tick0.Add(2*time.Second))
	st = r.status(t)
	if st.LastPublish == nil || !st.LastPublish.Time.Equal(published) || st.RoundsWithoutPublish != 2 || st.LastError == nil ||
		!strings.HasPrefix(st.LastError.Error, "found zero sources to pull from; nothing published this round") {
		t.Fatalf("after two empty rounds: %+v %+v", st, st.LastError)
	}

	src.sources = []Source{bad}
	r.loop.round(context.Background(), tick0.Add(3*time.Second))
	st = r.status(t)
	if st.RoundsWithoutPublish != 3 || st.LastError.Error != "failed to pull stats; nothing published this round (bad.sock: read: connection reset)" {
		t.Fatalf("after a failed source: %+v", st.LastError)
	}

	src.sources = []Source{good("a.sock")}
	r.loop.round(context.Background(), tick0.Add(4*time.Second))
	st = r.status(t)
	if st.RoundsWithoutPublish != 0 || st.LastError != nil || st.LastPublish.Snapshot != "1795312748" {
		t.Fatalf("recovered: %+v", st)
	}

	// A restart keeps the last publish: a pull that restarts must not look fresh.
	r2, err := NewLoop(r.loop.spool, []Provider{src}, Options{Interval: time.Second}, r.loop.log)
	if err != nil {
		t.Fatal(err)
	}
	_ = r2
	if st2 := r.status(t); st2.LastPublish == nil || st2.LastPublish.Snapshot != "1795312748" || !st2.Started.After(st.Started) {
		t.Fatalf("after a restart: %+v", st2)
	}
}

func TestRoundStatusPartialAndSuspended(t *testing.T) {
	bad := &fakeSource{name: "bad.sock", err: errors.New("received zero data"), files: map[string]string{"bad.sock_info": "x"}}
	r := newPartialRig(t, Options{QueueSize: 1}, good("a.sock"), bad)
	r.loop.round(context.Background(), tick0)
	st := r.status(t)
	if st.LastPublish == nil || len(st.LastPublish.FailedSources) != 1 || st.LastPublish.FailedSources[0] != "bad.sock" ||
		st.LastError == nil || st.LastError.Error != "partial snapshot 1795312744: bad.sock: received zero data" {
		t.Fatalf("partial: %+v %+v", st.LastPublish, st.LastError)
	}
	r.loop.round(context.Background(), tick0.Add(time.Second)) // the queue is full: warned once
	r.loop.round(context.Background(), tick0.Add(2*time.Second))
	st = r.status(t)
	if st.RoundsWithoutPublish != 2 || !strings.HasPrefix(st.LastError.Error, "pulling suspended: the queue is full") {
		t.Fatalf("suspended: %+v", st.LastError)
	}

	// A round cut short by a shutdown is not a failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.loop.round(ctx, tick0.Add(3*time.Second))
	if st2 := r.status(t); st2.RoundsWithoutPublish != 2 {
		t.Fatalf("a cancelled round counted: %+v", st2)
	}
}

// switchingProvider lists whatever sources the test sets, like a socket-dir whose sockets come
// and go.
type switchingProvider struct{ sources []Source }

func (p *switchingProvider) Info() ProviderInfo {
	return ProviderInfo{Source: "haproxy", Kind: "haproxy", TopLevel: true}
}
func (p *switchingProvider) Sources(context.Context) ([]Source, error) { return p.sources, nil }
