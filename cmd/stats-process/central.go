package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/statspipe/statspipe/internal/central"
	"github.com/statspipe/statspipe/internal/central/tier"
	"github.com/statspipe/statspipe/internal/cli"
	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/consume"
	"github.com/statspipe/statspipe/internal/dispatch/kafka"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
)

// runCentral runs the central tier ([central]): the consumers of the snapshot-topic and the
// line-topic feeding one runner's dispatchers, until SIGTERM; SIGHUP starts the next
// configuration's tier after stopping this one (what was not committed is consumed again).
func runCentral(cfg *config.Config, req cli.ConfigRequest, level *slog.LevelVar, log *slog.Logger) int {
	ctx, stop, reload := cli.Signals(log)
	defer stop()
	sd := cli.NewSystemd(log)
	t, err := startCentral(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stats-process:", err)
		return 1
	}
	srv, err := serveSelfMetrics(cfg.Process.Listen, func() bool { return true }, log)
	if err != nil {
		log.Error(err.Error())
		t.stop(log)
		return 1
	}
	defer func() { srv.Close() }()
	log.Info("started", "version", cli.Version, "central", t.describe())
	sd.Ready(ctx, t.describe(), func() bool { return true })
	for {
		select {
		case <-ctx.Done():
			sd.Stopping()
			t.stop(log)
			sum := t.runner.Summary()
			log.Info("stopped", "delivered", sum.Delivered, "quarantined", sum.Quarantined, "kept", sum.Failed)
			return 0
		case <-t.failed:
			t.stop(log)
			return 1
		case <-reload:
			sd.Reloading()
			ncfg, _, err := cli.Reload(req)
			if err == nil && ncfg.Central == nil {
				err = errors.New("the new configuration has no [central] section: restart stats-process to leave central mode")
			}
			if err != nil {
				log.Error("reload rejected: the running configuration stays", "error", err)
				sd.Reloaded("reload rejected, running the previous configuration: " + err.Error())
				continue
			}
			t.stop(log)
			if t, err = startCentral(ctx, ncfg, log); err != nil {
				log.Error("the reloaded configuration cannot start", "error", err)
				return 1
			}
			level.Set(ncfg.Process.Loglevel)
			cfg = ncfg
			sd.Reloaded(t.describe())
			log.Info("reloaded", "central", t.describe())
		}
	}
}

// centralTier is one configuration's consumers and runner.
type centralTier struct {
	cfg    *config.Central
	runner *process.Runner
	cancel context.CancelFunc
	done   sync.WaitGroup
	failed chan struct{} // closed when a consumer's Run failed
}

func startCentral(parent context.Context, cfg *config.Config, log *slog.Logger) (*centralTier, error) {
	// The status file is kept in work-dir from the start.
	if err := os.MkdirAll(cfg.Central.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("[central] work-dir: %w", err)
	}
	runner, err := newRunner(cfg, false, 0, log)
	if err != nil {
		return nil, err
	}
	c := cfg.Central
	conn, err := kafka.ConnOptions(c.Conn)
	if err != nil {
		runner.Close(context.Background())
		return nil, err
	}
	g := cfg.Graphite
	ns := metric.Namespace(g.Namespace)
	var consumers []*consume.Consumer
	if c.SnapshotTopic != "" {
		h, err := tier.NewSnapshots(tier.SnapshotOptions{Runner: runner, Namespace: ns,
			OwnPrefix: metric.HostPrefix(g.Namespace, g.Hostname, true, g.FQDN), WorkDir: c.WorkDir,
			MaxSnapshotBytes: c.MaxSnapshotBytes, Log: log.With("topic", c.SnapshotTopic)})
		if err == nil {
			var k *consume.Consumer
			k, err = consume.New(consume.Options{Conn: conn, Topic: c.SnapshotTopic, Group: c.Group,
				Log: log.With("topic", c.SnapshotTopic)}, h)
			consumers = append(consumers, k)
		}
		if err != nil {
			runner.Close(context.Background())
			return nil, err
		}
	}
	if c.LineTopic != "" {
		h, err := tier.NewLines(tier.LineOptions{Runner: runner, WorkDir: c.WorkDir, Log: log.With("topic", c.LineTopic),
			Central: central.Options{Namespace: ns, Cluster: c.Cluster, Bucket: c.Bucket, Lateness: c.Lateness,
				Policies: c.Policies}})
		if err == nil {
			var k *consume.Consumer
			// A group of its own: its members subscribe to another topic.
			k, err = consume.New(consume.Options{Conn: conn, Topic: c.LineTopic, Group: c.Group + ".lines",
				Log: log.With("topic", c.LineTopic)}, h)
			consumers = append(consumers, k)
		}
		if err != nil {
			runner.Close(context.Background())
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(parent)
	t := &centralTier{cfg: c, runner: runner, cancel: cancel, failed: make(chan struct{})}
	var once sync.Once
	for _, k := range consumers {
		t.done.Add(1)
		go func() {
			defer t.done.Done()
			if err := k.Run(ctx); err != nil {
				log.Error("consumer stopped", "error", err)
				once.Do(func() { close(t.failed) })
			}
		}()
	}
	return t, nil
}

// stop ends the consumers (they commit what was delivered and leave their groups), then lets
// the dispatchers deliver what they hold for up to 10 s.
func (t *centralTier) stop(log *slog.Logger) {
	t.cancel()
	t.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.runner.Close(ctx)
}

func (t *centralTier) describe() string {
	s := "central tier, group " + t.cfg.Group
	if t.cfg.SnapshotTopic != "" {
		s += ", snapshots from " + t.cfg.SnapshotTopic
	}
	if t.cfg.LineTopic != "" {
		s += fmt.Sprintf(", lines from %s (cluster %s, bucket %d s, lateness %d s)", t.cfg.LineTopic, t.cfg.Cluster, t.cfg.Bucket, t.cfg.Lateness)
	}
	return s
}
