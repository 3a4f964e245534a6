package config

import "strings"

// DefaultFile is the configuration file read when -f is not given.
const DefaultFile = "/etc/haproxystats.conf"

// defaultSection is configparser's default_section: every section inherits its keys.
const defaultSection = "DEFAULT"

// option is one known option of a section. Options without a built-in default are unset
// unless a file sets them, and -p does not print them.
type option struct {
	name       string
	def        string
	hasDefault bool
	extension  bool // statspipe extension, unknown to haproxystats
}

func def(name, value string) option { return option{name: name, def: value, hasDefault: true} }
func unset(name string) option      { return option{name: name} }

// sectionSchema lists a section's options in the order of haproxystats.md §1.3, which is also
// the order in which Config validates them.
type sectionSchema struct {
	name    string
	options []option
}

// presenceSections exist only when a file has them (their presence turns a dispatcher on):
// their defaults are filled in then (fillPresenceDefaults), and -p prints them commented out,
// so that its output read back as a file still leaves them off.
// The value says what the presence turns on.
var presenceSections = map[string]string{
	"kafka":   "the section turns the Kafka dispatcher on",
	"ship":    "the section turns the snapshot shipper on",
	"central": "the section makes stats-process consume from Kafka",
}

// schema holds the built-in defaults exactly as haproxystats writes them (-p prints them as
// written, e.g. "connect-timeout = 1.0"). A missing default file or option falls back to these.
var schema = []sectionSchema{
	{defaultSection, []option{
		def("retries", "2"),
		def("timeout", "1"),
		def("interval", "2"),
		def("loglevel", "info"),
	}},
	{"paths", []option{
		def("base-dir", "/var/lib/haproxystats"),
	}},
	{"pull", []option{
		unset("socket-dir"),
		unset("servers"),
		def("retries", "1"),
		def("timeout", "0.1"),
		def("interval", "0.5"),
		def("pull-timeout", "2"),
		def("pull-interval", "10"),
		def("buffer-limit", "6291456"),
		def("dst-dir", "/var/lib/haproxystats/incoming"),
		def("tmp-dst-dir", "/var/lib/haproxystats/incoming.tmp"),
		def("workers", "8"),
		def("queue-size", "360"),
		{name: "allow-partial", def: "false", hasDefault: true, extension: true},
		{name: "max-reply-size", def: "268435456", hasDefault: true, extension: true},
		{name: "self-metrics", def: "false", hasDefault: true, extension: true},
		{name: "listen", def: "", hasDefault: true, extension: true},
		{name: "master-socket", extension: true},
		{name: "typed", def: "false", hasDefault: true, extension: true},
	}},
	{"process", []option{
		def("workers", "4"),
		def("src-dir", "/var/lib/haproxystats/incoming"),
		def("aggr-server-metrics", "false"),
		def("per-process-metrics", "false"),
		def("calculate-percentages", "false"),
		def("liveness-check-interval", "10"),
		unset("frontend-metrics"),
		unset("backend-metrics"),
		unset("server-metrics"),
		unset("exclude-frontends"),
		unset("exclude-backends"),
		{name: "max-component-length", def: "255", hasDefault: true, extension: true},
		{name: "max-line-length", def: "16000", hasDefault: true, extension: true},
		{name: "log-deliveries", def: "true", hasDefault: true, extension: true},
		{name: "self-metrics", def: "false", hasDefault: true, extension: true},
		{name: "listen", def: "", hasDefault: true, extension: true},
		{name: "server-states", def: "false", hasDefault: true, extension: true},
		{name: "frontend-include", def: "", hasDefault: true, extension: true},
		{name: "frontend-exclude", def: "", hasDefault: true, extension: true},
		{name: "backend-include", def: "", hasDefault: true, extension: true},
		{name: "backend-exclude", def: "", hasDefault: true, extension: true},
		{name: "server-include", def: "", hasDefault: true, extension: true},
		{name: "server-exclude", def: "", hasDefault: true, extension: true},
		{name: "metric-include", def: "", hasDefault: true, extension: true},
		{name: "metric-exclude", def: "", hasDefault: true, extension: true},
		{name: "skip-maint-servers", def: "false", hasDefault: true, extension: true},
		{name: "all-metrics", def: "false", hasDefault: true, extension: true},
	}},
	{"graphite", []option{
		def("server", "127.0.0.1"),
		def("port", "3002"),
		def("retries", "3"),
		def("interval", "1.8"),
		def("connect-timeout", "1.0"),
		def("write-timeout", "1.0"),
		def("delay", "10"),
		def("backoff", "2"),
		def("namespace", "loadbalancers"),
		def("prefix-hostname", "true"),
		def("fqdn", "true"),
		def("queue-size", "1000000"),
		unset("group-namespace"),
		unset("group-namespace-double-writes"),
		{name: "hostname", extension: true},
		{name: "enabled", def: "true", hasDefault: true, extension: true},
		{name: "queue-bytes", def: "4194304", hasDefault: true, extension: true},
		{name: "stall-timeout", def: "60", hasDefault: true, extension: true},
	}},
	{"local-store", []option{
		unset("dir"),
	}},
	{"kafka", append(append(kafkaConnOptions(), kafkaProducerOptions()...),
		option{name: "record-key", def: "path", hasDefault: true, extension: true})},
	{"ship", append(kafkaConnOptions(), kafkaProducerOptions()...)},
	{"central", append(kafkaConnOptions(),
		option{name: "group", def: "statspipe-central", hasDefault: true, extension: true},
		option{name: "snapshot-topic", extension: true},
		option{name: "line-topic", extension: true},
		option{name: "cluster", extension: true},
		option{name: "bucket", def: "10", hasDefault: true, extension: true},
		option{name: "lateness", def: "30", hasDefault: true, extension: true},
		option{name: "work-dir", def: DefaultCentralWorkDir, hasDefault: true, extension: true},
		option{name: "max-snapshot-bytes", def: "268435456", hasDefault: true, extension: true},
	)},
}

// DefaultCentralWorkDir is [central] work-dir's default (the Nagios freshness check reads the
// raw file, without the programs' defaults, and needs this one).
const DefaultCentralWorkDir = "/var/lib/haproxystats/central"

// kafkaConnOptions are the options of [kafka], [ship] and [central] that reach the brokers.
func kafkaConnOptions() []option {
	return []option{
		{name: "brokers", extension: true},
		{name: "client-id", def: "statspipe", hasDefault: true, extension: true},
		{name: "tls", def: "false", hasDefault: true, extension: true},
		{name: "ca-file", extension: true},
		{name: "cert-file", extension: true},
		{name: "key-file", extension: true},
		{name: "server-name", extension: true},
		{name: "insecure-skip-verify", def: "false", hasDefault: true, extension: true},
		{name: "sasl-mechanism", extension: true},
		{name: "sasl-user", extension: true},
		{name: "sasl-password-file", extension: true},
	}
}

// kafkaProducerOptions are the producer options of [kafka] and [ship].
func kafkaProducerOptions() []option {
	return []option{
		{name: "topic", extension: true},
		{name: "acks", def: "all", hasDefault: true, extension: true},
		{name: "compression", def: "lz4", hasDefault: true, extension: true},
		{name: "batch-max-bytes", def: "1000000", hasDefault: true, extension: true},
		{name: "linger", def: "0.01", hasDefault: true, extension: true},
		{name: "max-buffered-records", def: "100000", hasDefault: true, extension: true},
		{name: "max-buffered-bytes", def: "4194304", hasDefault: true, extension: true},
		{name: "delivery-timeout", def: "60", hasDefault: true, extension: true},
	}
}

// groupSections are the sections of `<group> = <regex>` items, in the order Config reads them.
var groupSections = []string{"frontend-groups", "backend-groups", "server-groups"}

// noEffect are options that shipped sample configs use but haproxystats never read.
var noEffect = map[string]map[string]string{
	"graphite": {
		"timeout":         "connect-timeout and write-timeout apply instead",
		"prefix_hostname": "the option is spelled prefix-hostname",
		"prefix-name":     "haproxystats never read it",
	},
}

func schemaOf(section string) *sectionSchema {
	for i := range schema {
		if schema[i].name == section {
			return &schema[i]
		}
	}
	return nil
}

// knownOptions are the options a section may set: its own plus the inherited DEFAULT ones,
// which any section may override.
func knownOptions(section string) []string {
	s := schemaOf(section)
	if s == nil {
		return nil
	}
	var names []string
	seen := map[string]bool{}
	for _, src := range []*sectionSchema{s, schemaOf(defaultSection)} {
		for _, o := range src.options {
			if !seen[o.name] {
				seen[o.name] = true
				names = append(names, o.name)
			}
		}
	}
	return names
}

func isKnownOption(section, name string) bool {
	if section == "central" && (name == "aggregate" || strings.HasPrefix(name, "aggregate.")) {
		return true // the cross-host policies: aggregate = <functions>, aggregate.<glob> = <functions>
	}
	if section == "process" && strings.HasPrefix(name, allMetricsAggregate) {
		return true // all-metrics-aggregate.<glob> = <functions>
	}
	for _, o := range knownOptions(section) {
		if o == name {
			return true
		}
	}
	return false
}

// knownSectionNames are the sections statspipe reads, for "did you mean" suggestions.
func knownSectionNames() []string {
	names := make([]string, 0, len(schema)+len(groupSections))
	for _, s := range schema {
		names = append(names, s.name)
	}
	return append(names, groupSections...)
}

func isGroupSection(name string) bool {
	for _, g := range groupSections {
		if g == name {
			return true
		}
	}
	return false
}
