package config

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Without [kafka] the dispatcher is off; with it, the defaults fill the unset options, and
// -P prints them so that the output reads back to the same configuration.
func TestKafkaSection(t *testing.T) {
	l, _ := loadText(t, "[graphite]\nenabled = false\n[local-store]\ndir = /x\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil || cfg.Kafka != nil {
		t.Fatalf("no [kafka]: %v, %+v", err, cfg)
	}
	l, _ = loadText(t, "[graphite]\nenabled = false\n[kafka]\nbrokers = k1:9092, k2:9093\ntopic = metrics\n")
	cfg, err = l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	want := &Kafka{Brokers: []string{"k1:9092", "k2:9093"}, Topic: "metrics", ClientID: "statspipe",
		Compression: "lz4", BatchMaxBytes: 1000000, Linger: 10 * time.Millisecond, MaxBufferedRecords: 100000,
		MaxBufferedBytes: 4194304, RecordKey: "path", DeliveryTimeout: 60 * time.Second}
	if !reflect.DeepEqual(cfg.Kafka, want) {
		t.Fatalf("got %+v\nwant %+v", cfg.Kafka, want)
	}
	var out bytes.Buffer
	if err := l.Print(&out, ProcessProgram); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"[kafka]\n", "acks = all\n", "compression = lz4\n", "brokers = k1:9092, k2:9093\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("-P lacks %q:\n%s", line, out.String())
		}
	}
	again, _ := loadText(t, out.String())
	cfg2, err := again.Config(ProcessProgram)
	if err != nil || !reflect.DeepEqual(cfg2.Kafka, want) {
		t.Fatalf("-P read back: %v %+v", err, cfg2)
	}
}

func TestKafkaFullOptions(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "secret\n")
	ca := writeFile(t, dir, "ca.pem", "x")
	l, _ := loadText(t, "[kafka]\nbrokers = [::1]:9092\ntopic = a.b_c-d\nrecord-key = host\ncompression = zstd\n"+
		"batch-max-bytes = 600000\nlinger = 0\ntls = on\nca-file = "+ca+"\nserver-name = k\n"+
		"sasl-mechanism = SCRAM-SHA-512\nsasl-user = u\nsasl-password-file = "+pw+"\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka
	if k.RecordKey != "host" || k.Compression != "zstd" || !k.TLS || k.CAFile != ca || k.ServerName != "k" ||
		k.SASLMechanism != "SCRAM-SHA-512" || k.SASLUser != "u" || k.SASLPasswordFile != pw || k.Linger != 0 {
		t.Fatalf("%+v", k)
	}
}

func TestKafkaErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	base := "[kafka]\nbrokers = k:9092\ntopic = t\n"
	for _, tc := range []struct{ name, text, want string }{
		{"no brokers", "[kafka]\ntopic = t\n", "line:1 section:'kafka' option:'brokers' value:'' error: No option 'brokers' in section: 'kafka' (the section turns the Kafka dispatcher on, so it needs brokers)"},
		{"empty brokers", "[kafka]\nbrokers =\ntopic = t\n", "error: must list at least one host:port"},
		{"broker without port", "[kafka]\nbrokers = k\ntopic = t\n", "error: k: must be host:port (e.g. kafka1:9092 or [::1]:9092)"},
		{"broker bad port", "[kafka]\nbrokers = k:0\ntopic = t\n", "error: k:0: the port must be a number from 1 to 65535"},
		{"no topic", "[kafka]\nbrokers = k:1\n", "option:'topic' value:'' error: No option 'topic' in section: 'kafka'"},
		{"bad topic", "[kafka]\nbrokers = k:1\ntopic = a/b\n", "error: must be 1 to 249 characters of a-z A-Z 0-9 . _ - (and not . or ..)"},
		{"acks", base + "acks = 1\n", "option:'acks' value:'1' error: must be all: a snapshot counts as delivered only when every in-sync replica has its records"},
		{"compression", base + "compression = brotli\n", "error: must be one of none, gzip, snappy, lz4, zstd"},
		{"record-key", base + "record-key = value\n", "error: must be one of path, series, host"},
		{"batch too small for host", base + "record-key = host\nbatch-max-bytes = 100000\n", "error: must be 524288 to 1073741824 with record-key = host"},
		{"buffer too small", base + "max-buffered-bytes = 1000\n", "error: must be 1048576 to 1073741824 (it must hold a whole chunk)"},
		{"delivery-timeout", base + "delivery-timeout = 0.5\n", "error: must be 1 to 86400 seconds (1 day)"},
		{"tls file without tls", base + "ca-file = /etc/hostname\n", "option:'ca-file' value:'/etc/hostname' error: is set but tls is off"},
		{"missing ca file", base + "tls = on\nca-file = " + missing + "\n", "error: cannot read the file: "},
		{"cert without key", base + "tls = on\ncert-file = /etc/hostname\n", "option:'key-file' value:'' error: cert-file and key-file go together (a client certificate)"},
		{"sasl mechanism", base + "sasl-mechanism = GSSAPI\n", "error: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"},
		{"sasl without user", base + "sasl-mechanism = PLAIN\n", "option:'sasl-user' value:'' error: must be set with sasl-mechanism PLAIN"},
		{"sasl without password file", base + "sasl-mechanism = PLAIN\nsasl-user = u\n", "error: must be set with sasl-mechanism PLAIN (the password is read from a file, never from the configuration)"},
		{"sasl user without mechanism", base + "sasl-user = u\n", "error: sasl-user or sasl-password-file is set without a sasl-mechanism"},
		{"sasl password file missing", base + "sasl-mechanism = PLAIN\nsasl-user = u\nsasl-password-file = " + missing + "\n", "option:'sasl-password-file'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			_, err := l.Config(ProcessProgram)
			if err == nil {
				t.Fatal("Config succeeded")
			}
			e := asConfigError(t, err)
			if !strings.Contains(e.Error(), tc.want) {
				t.Fatalf("got  %s\nwant …%s", e.Error(), tc.want)
			}
		})
	}
}

// --check reports one [kafka] problem and goes on with the other sections: the rest of the
// section depends on the failing option, so it is set aside.
func TestKafkaCheck(t *testing.T) {
	l, _ := loadText(t, "[graphite]\nenabled = false\n[kafka]\nbrokers = k:9092\ntopic = t\n"+
		"sasl-mechanism = PLAIN\nsasl-user = u\nsasl-password-file = /nonexistent/pw\n[process]\nworkers = two\n")
	_, p := l.Check(ProcessProgram)
	var kafka, process int
	for _, e := range p.List {
		switch e.Section {
		case "kafka":
			kafka++
		case "process":
			process++
		}
	}
	if kafka != 1 || process < 1 {
		t.Fatalf("problems %v: want one in [kafka] and the [process] ones after it", p.List)
	}
}

// [ship] and [central]: the same connection options as [kafka], their own defaults and rules.
func TestShipAndCentral(t *testing.T) {
	l, _ := loadText(t, "[graphite]\nenabled = false\n[ship]\nbrokers = k1:9092\ntopic = snapshots\n"+
		"[central]\nbrokers = k2:9092\nsnapshot-topic = snapshots\nline-topic = lines\ncluster = eu\n"+
		"aggregate.*.Conn_Rate = avg max\naggregate = sum\n")
	cfg, err := l.Config(ProcessProgram)
	if err != nil {
		t.Fatal(err)
	}
	s, c := cfg.Ship, cfg.Central
	if s == nil || s.Topic != "snapshots" || s.RecordKey != "host" || s.Compression != "lz4" || s.BatchMaxBytes != 1000000 {
		t.Fatalf("ship %+v", s)
	}
	if c == nil || c.Conn.Brokers[0] != "k2:9092" || c.Group != "statspipe-central" || c.SnapshotTopic != "snapshots" ||
		c.LineTopic != "lines" || c.Cluster != "eu" || c.Bucket != 10 || c.Lateness != 30 ||
		c.WorkDir != "/var/lib/haproxystats/central" || c.MaxSnapshotBytes != 256<<20 {
		t.Fatalf("central %+v", c)
	}
	if p := c.Policies; len(p.Rules) != 1 || p.Rules[0].Glob != "*.conn_rate" || len(p.Rules[0].Funcs) != 2 ||
		len(p.Default) != 1 || !p.FoldCase || len(l.Warnings) != 0 {
		t.Fatalf("policies %+v, warnings %q", p, l.Warnings)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"central bad policy", "[central]\nbrokers = k:1\nline-topic = l\ncluster = c\naggregate.x = p101\n", "option aggregate.x: "},
		{"ship without brokers", "[ship]\ntopic = t\n", "No option 'brokers' in section: 'ship' (the section turns the snapshot shipper on, so it needs brokers)"},
		{"ship has no record-key", "[ship]\nbrokers = k:1\ntopic = t\nrecord-key = path\n", "option 'record-key'"},
		{"central without topics", "[central]\nbrokers = k:1\n", "[central] needs snapshot-topic"},
		{"central lines without cluster", "[central]\nbrokers = k:1\nline-topic = l\n", "must be set with line-topic"},
		{"central bucket", "[central]\nbrokers = k:1\nline-topic = l\ncluster = c\nbucket = 0\n", "error: must be 1 to 3600 seconds"},
		{"central work-dir", "[central]\nbrokers = k:1\nsnapshot-topic = s\nwork-dir = rel\n", "error: must be an absolute path"},
		{"central needs host names", "[graphite]\nprefix-hostname = false\n[central]\nbrokers = k:1\nsnapshot-topic = s\n", "the edges' lines are told apart by their host component"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := loadText(t, tc.text)
			_, err := l.Config(ProcessProgram)
			if err == nil {
				if tc.name == "ship has no record-key" && len(l.Warnings) > 0 && strings.Contains(strings.Join(l.Warnings, "\n"), "record-key") {
					return // an unknown option is a warning, as for every section
				}
				t.Fatalf("Config succeeded; warnings %q", l.Warnings)
			}
			if e := asConfigError(t, err); !strings.Contains(e.Error(), tc.want) {
				t.Fatalf("got  %s\nwant …%s", e.Error(), tc.want)
			}
		})
	}
}
