package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/statspipe/statspipe/internal/aggregate"
)

// Bounds of [kafka] (statspipe extension).
const (
	// minKafkaBatchPath: a record batch must hold the longest line (max-line-length is at most
	// 16000 bytes) plus the record and batch overhead.
	minKafkaBatchPath = 32 << 10
	// minKafkaBatchHost: with record-key = host a record is a whole chunk (256 KiB at most).
	minKafkaBatchHost = 512 << 10
	// minKafkaBuffered: the producer buffer must hold at least one whole chunk record.
	minKafkaBuffered = 1 << 20
	maxKafkaBytes    = 1 << 30
	// maxKafkaBrokers bounds the seed list.
	maxKafkaBrokers = 1000
)

var kafkaCompressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// checkKafka validates [kafka] when the section exists: its presence turns the dispatcher on.
func (v *validator) checkKafka() {
	if v.failed() || !v.l.hasSection("kafka") {
		return
	}
	if v.l.aside["kafka"] {
		v.cfg.Kafka = &Kafka{}
		return
	}
	if k := v.kafkaProducer("kafka"); !v.failed() {
		v.cfg.Kafka = k
	}
}

// checkShip validates [ship] when the section exists: its presence turns the snapshot shipper
// on (the central tier's edge side), a producer like [kafka] whose records are whole raw
// snapshots keyed by host, so it has no record-key.
func (v *validator) checkShip() {
	if v.failed() || !v.l.hasSection("ship") {
		return
	}
	if v.l.aside["ship"] {
		v.cfg.Ship = &Kafka{}
		return
	}
	if k := v.kafkaProducer("ship"); !v.failed() {
		k.RecordKey = "host"
		v.cfg.Ship = k
	}
}

// checkCentral validates [central] when the section exists.
func (v *validator) checkCentral() {
	const sect = "central"
	if v.failed() || !v.l.hasSection(sect) {
		return
	}
	if v.l.aside[sect] {
		v.cfg.Central = &Central{}
		return
	}
	c := &Central{Conn: *v.kafkaConn(sect)}
	if s, val, ok := v.required(sect, "group"); ok && s == "" {
		v.fail(sect, "group", val, s, "must not be empty")
	} else {
		c.Group = s
	}
	c.SnapshotTopic = v.kafkaTopic(sect, "snapshot-topic", false)
	c.LineTopic = v.kafkaTopic(sect, "line-topic", false)
	if !v.failed() && c.SnapshotTopic == "" && c.LineTopic == "" {
		sec := v.l.sections[sect]
		v.err = &Error{File: sec.file, Line: sec.line, Section: sect, Option: "snapshot-topic",
			Reason: "[central] needs snapshot-topic (raw snapshots from [ship]), line-topic (per-host lines to aggregate across hosts) or both"}
	}
	c.Cluster = v.pathPart(sect, "cluster", false)
	if !v.failed() && c.LineTopic != "" && c.Cluster == "" {
		s, val, _ := v.str(sect, "cluster")
		v.fail(sect, "cluster", val, s, "must be set with line-topic: the cluster lines are <namespace>.<cluster>.<rest>")
	}
	c.Bucket = int64(v.integer(sect, "bucket", 1, 3600, "1 to 3600 seconds"))
	c.Lateness = int64(v.integer(sect, "lateness", 0, 86400, "0 to 86400 seconds"))
	if s, val, ok := v.required(sect, "work-dir"); ok && !filepath.IsAbs(s) {
		v.fail(sect, "work-dir", val, s, "must be an absolute path")
	} else {
		c.WorkDir = s
	}
	c.MaxSnapshotBytes = int64(v.integer(sect, "max-snapshot-bytes", 1<<20, maxKafkaBytes*4, fmt.Sprintf("%d to %d", 1<<20, int64(maxKafkaBytes*4))))
	if !v.failed() {
		var opts [][2]string
		for _, key := range v.l.sections[sect].keys {
			if isKnownOption(sect, key) && (key == "aggregate" || strings.HasPrefix(key, "aggregate.")) {
				s, _, _ := v.str(sect, key)
				opts = append(opts, [2]string{key, s})
			}
		}
		p, err := aggregate.ParsePolicies(opts)
		if err != nil {
			sec := v.l.sections[sect]
			v.err = &Error{File: sec.file, Line: sec.line, Section: sect, Reason: err.Error()}
		}
		p.FoldCase = true // option names, globs included, are lower-cased by the INI reader
		c.Policies = p
	}
	if !v.failed() && c.SnapshotTopic != "" && !v.cfg.Graphite.PrefixHostname {
		s, val, _ := v.str("graphite", "prefix-hostname")
		v.fail("graphite", "prefix-hostname", val, s, "must be true with [central] snapshot-topic: "+
			"the edges' lines are told apart by their host component")
	}
	if !v.failed() && v.cfg.LocalStore != nil {
		v.warnings = append(v.warnings, "[local-store] with [central]: the local store keeps one file per timestamp, "+
			"so snapshots of several edges (and the cluster lines of several partitions) with one timestamp replace "+
			"each other there; Graphite and [kafka] keep every line")
	}
	if !v.failed() {
		v.cfg.Central = c
	}
}

// kafkaProducer reads the producer options of sect ([kafka] or [ship]).
func (v *validator) kafkaProducer(sect string) *Kafka {
	k := v.kafkaConn(sect)
	k.Topic = v.kafkaTopic(sect, "topic", true)
	if s, val, ok := v.required(sect, "acks"); ok && s != "all" {
		v.fail(sect, "acks", val, s, "must be all: a snapshot counts as delivered only when every in-sync replica has its records")
	}
	k.Compression = v.oneOf(sect, "compression", kafkaCompressions)
	lo := minKafkaBatchHost
	if sect == "kafka" {
		k.RecordKey = v.oneOf(sect, "record-key", []string{"path", "series", "host"})
		if k.RecordKey != "host" {
			lo = minKafkaBatchPath
		}
	}
	rangeText := fmt.Sprintf("%d to %d with record-key = %s", lo, maxKafkaBytes, k.RecordKey)
	if sect != "kafka" {
		rangeText = fmt.Sprintf("%d to %d", lo, maxKafkaBytes)
	}
	k.BatchMaxBytes = v.integer(sect, "batch-max-bytes", int64(lo), maxKafkaBytes, rangeText)
	k.Linger = v.duration(sect, "linger", 0, "")
	k.MaxBufferedRecords = v.integer(sect, "max-buffered-records", 1, 1<<31-1, "1 to 2147483647")
	k.MaxBufferedBytes = v.integer(sect, "max-buffered-bytes", minKafkaBuffered, maxKafkaBytes,
		fmt.Sprintf("%d to %d (it must hold a whole chunk)", minKafkaBuffered, maxKafkaBytes))
	k.DeliveryTimeout = v.duration(sect, "delivery-timeout", time.Second, "")
	return k
}

// kafkaConn reads the options that reach the brokers of sect ([kafka], [ship] or
// [central]): brokers, client-id, TLS and SASL.
func (v *validator) kafkaConn(sect string) *Kafka {
	k := &Kafka{}
	k.Brokers = v.kafkaBrokers(sect)
	if s, val, ok := v.required(sect, "client-id"); ok && s == "" {
		v.fail(sect, "client-id", val, s, "must not be empty")
	} else {
		k.ClientID = s
	}
	k.TLS = v.boolean(sect, "tls")
	k.InsecureSkipVerify = v.boolean(sect, "insecure-skip-verify")
	k.CAFile = v.kafkaFile(sect, "ca-file")
	k.CertFile = v.kafkaFile(sect, "cert-file")
	k.KeyFile = v.kafkaFile(sect, "key-file")
	k.ServerName, _, _ = v.str(sect, "server-name")
	if !v.failed() && !k.TLS {
		for _, o := range []string{"ca-file", "cert-file", "key-file", "server-name"} {
			if s, val, set := v.str(sect, o); set && s != "" {
				v.fail(sect, o, val, s, "is set but tls is off")
			}
		}
	}
	if !v.failed() && (k.CertFile == "") != (k.KeyFile == "") {
		o := "key-file"
		if k.CertFile == "" {
			o = "cert-file"
		}
		v.fail(sect, o, nil, "", "cert-file and key-file go together (a client certificate)")
	}
	k.SASLMechanism = v.oneOf(sect, "sasl-mechanism", []string{"", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
	k.SASLUser, _, _ = v.str(sect, "sasl-user")
	k.SASLPasswordFile = v.kafkaFile(sect, "sasl-password-file")
	if !v.failed() {
		switch {
		case k.SASLMechanism == "" && (k.SASLUser != "" || k.SASLPasswordFile != ""):
			s, val, _ := v.str(sect, "sasl-mechanism")
			v.fail(sect, "sasl-mechanism", val, s, "sasl-user or sasl-password-file is set without a sasl-mechanism")
		case k.SASLMechanism != "" && k.SASLUser == "":
			s, val, _ := v.str(sect, "sasl-user")
			v.fail(sect, "sasl-user", val, s, "must be set with sasl-mechanism "+k.SASLMechanism)
		case k.SASLMechanism != "" && k.SASLPasswordFile == "":
			s, val, _ := v.str(sect, "sasl-password-file")
			v.fail(sect, "sasl-password-file", val, s, "must be set with sasl-mechanism "+k.SASLMechanism+
				" (the password is read from a file, never from the configuration)")
		}
	}
	return k
}

// kafkaBrokers reads brokers: host:port items separated by commas or white space.
func (v *validator) kafkaBrokers(sect string) []string {
	s, val, ok := v.str(sect, "brokers")
	if v.failed() {
		return nil
	}
	if !ok {
		sec := v.l.sections[sect]
		v.err = &Error{File: sec.file, Line: sec.line, Section: sect, Option: "brokers",
			Reason: "No option 'brokers' in section: '" + sect + "' (" + presenceSections[sect] + ", so it needs brokers)"}
		return nil
	}
	items := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(items) == 0 {
		v.fail(sect, "brokers", val, s, "must list at least one host:port")
		return nil
	}
	if len(items) > maxKafkaBrokers {
		v.fail(sect, "brokers", val, s, fmt.Sprintf("lists more than %d brokers", maxKafkaBrokers))
		return nil
	}
	for _, it := range items {
		host, port, err := net.SplitHostPort(it)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			v.fail(sect, "brokers", val, s, fmt.Sprintf("%s: must be host:port (e.g. kafka1:9092 or [::1]:9092)", it))
		case host == "":
			v.fail(sect, "brokers", val, s, it+": the host must not be empty")
		case perr != nil || n < 1 || n > 65535:
			v.fail(sect, "brokers", val, s, it+": the port must be a number from 1 to 65535")
		}
		if v.failed() {
			return nil
		}
	}
	return items
}

// kafkaTopic reads a topic option, which Kafka restricts to 249 characters of [a-zA-Z0-9._-];
// unset (or empty) is an error when required, else "".
func (v *validator) kafkaTopic(sect, option string, required bool) string {
	s, val, ok := v.str(sect, option)
	if v.failed() {
		return ""
	}
	if !ok || !required && s == "" {
		if required {
			sec := v.l.sections[sect]
			v.err = &Error{File: sec.file, Line: sec.line, Section: sect, Option: option,
				Reason: "No option '" + option + "' in section: '" + sect + "'"}
		}
		return ""
	}
	valid := s != "" && s != "." && s != ".." && len(s) <= 249
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			valid = false
		}
	}
	if !valid {
		v.fail(sect, option, val, s, "must be 1 to 249 characters of a-z A-Z 0-9 . _ - (and not . or ..)")
	}
	return s
}

// oneOf reads an option whose value must be one of choices ("" allowed only if listed; an
// unset option reads as "").
func (v *validator) oneOf(sect, option string, choices []string) string {
	s, val, _ := v.str(sect, option)
	if v.failed() {
		return ""
	}
	for _, c := range choices {
		if s == c {
			return s
		}
	}
	var named []string
	for _, c := range choices {
		if c != "" {
			named = append(named, c)
		}
	}
	v.fail(sect, option, val, s, "must be one of "+strings.Join(named, ", "))
	return ""
}

// kafkaFile reads an optional file option of sect: when set it must name a readable regular
// file (a typo fails at start, not at the first connection).
func (v *validator) kafkaFile(sect, option string) string {
	s, val, set := v.str(sect, option)
	if v.failed() || !set || s == "" {
		return ""
	}
	f, err := os.Open(s)
	if err == nil {
		var fi os.FileInfo
		fi, err = f.Stat()
		f.Close()
		if err == nil && !fi.Mode().IsRegular() {
			v.fail(sect, option, val, s, "is not a regular file")
			return ""
		}
	}
	if err != nil {
		v.fail(sect, option, val, s, "cannot read the file: "+osReason(err))
		return ""
	}
	return s
}
