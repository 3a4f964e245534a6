package config

import (
	"log/slog"
	"regexp"
	"time"

	"github.com/statspipe/statspipe/internal/aggregate"
)

// Program selects which sections a program validates and prints (-p / -P).
type Program int

const (
	PullProgram Program = iota
	ProcessProgram
)

// Config is the typed, validated configuration (see Loaded.Config). The -P text comes from
// Loaded.Print.
type Config struct {
	// File is the main configuration file that was read ("" when the default path was
	// missing and only defaults apply).
	File string

	Pull     Pull
	Process  Process
	Graphite Graphite
	// LocalStore is nil unless the file has a [local-store] section: its presence turns the
	// local-store dispatcher on (haproxystats semantics).
	LocalStore *LocalStore
	// Kafka is nil unless the file has a [kafka] section: its presence turns the Kafka
	// dispatcher on (statspipe extension).
	Kafka *Kafka
	// Ship is nil unless the file has a [ship] section: the snapshot shipper, which sends each
	// raw snapshot to Kafka for the central tier (statspipe extension). Its RecordKey is "host".
	Ship *Kafka
	// Central is nil unless the file has a [central] section: stats-process then consumes
	// from Kafka instead of watching src-dir (statspipe extension).
	Central *Central

	// Sources are the named sources: for stats-pull the HAProxy source of [pull] first when
	// socket-dir or servers is set (Legacy, named LegacySourceName), then every [source.*] section in file order; for
	// stats-process the [source.*] sections (their processing options).
	Sources []Source

	// Group patterns in file order; first match wins. Empty unless the section exists.
	FrontendGroups []Group
	BackendGroups  []Group
	ServerGroups   []Group
}

// Pull is section [pull].
type Pull struct {
	Loglevel  slog.Level
	SocketDir string   // "" when unset
	Servers   []Server // parsed `servers`, in order, duplicates kept
	// MasterSockets are the UNIX master CLI sockets of `master-socket` (haproxy -W -S), absolute
	// paths in order, duplicates kept (statspipe extension): every worker behind each one is
	// pulled, old workers included.
	MasterSockets []string
	Retries       int // -1 forever, 0 one attempt, N → N+1 attempts
	Timeout       time.Duration
	Interval      time.Duration
	PullTimeout   time.Duration
	PullInterval  time.Duration
	BufferLimit   int
	DstDir        string
	TmpDstDir     string
	Workers       int
	QueueSize     int
	// AllowPartial publishes a snapshot even when some sources failed, with a record of
	// which (statspipe extension; default false = haproxystats' all-or-nothing).
	AllowPartial bool
	// MaxReplySize ends a source's reply that grows past this many bytes: the source fails
	// for that round (statspipe extension).
	MaxReplySize int64
	// SelfMetrics writes stats-pull's own metrics into every snapshot (the statspipe part);
	// Listen, when not "", serves /metrics and /healthz there (statspipe extensions).
	SelfMetrics bool
	Listen      string
	// Typed asks every HAProxy socket `show info typed` / `show stat typed` instead of the
	// plain forms, into <name>_info.typed / <name>_stat.typed (statspipe extension).
	Typed bool
}

// Server is one item of [pull] servers.
type Server struct {
	Network string // "unix" or "tcp"
	Address string // filesystem path, or host:port as net.Dial wants it ("[::1]:4444")
	// Name is the snapshot file prefix: the socket's base name for unix, "<host>:<port>"
	// for tcp with IPv6 brackets removed ("::1:4444"), exactly as haproxystats.
	Name string
}

// Process is section [process].
type Process struct {
	Loglevel              slog.Level
	Workers               int
	SrcDir                string
	AggrServerMetrics     bool
	PerProcessMetrics     bool
	CalculatePercentages  bool
	LivenessCheckInterval time.Duration
	// nil when unset (the built-in lists apply). Otherwise the option split on single
	// spaces, in the user's order, every name valid for its list (duplicates kept).
	FrontendMetrics []string
	BackendMetrics  []string
	ServerMetrics   []string
	// "" when unset; files are re-read per snapshot
	ExcludeFrontends string
	ExcludeBackends  string
	// MaxComponentLength bounds one path component in bytes; longer names are shortened
	// deterministically (prefix plus hash). MaxLineLength bounds a whole line, '\n' excluded,
	// below carbon's 16 KiB line limit (statspipe extensions).
	MaxComponentLength int
	MaxLineLength      int
	// LogDeliveries logs each delivered snapshot at info (else at debug).
	LogDeliveries bool
	// SelfMetrics appends stats-process's own metrics to every snapshot's lines; Listen, when
	// not "", serves /metrics and /healthz there (statspipe extensions).
	SelfMetrics bool
	Listen      string
	// ServerStates emits each server's status, check_status and agent_status as numeric
	// codes and per-backend counts of servers by state (statspipe extension).
	ServerStates bool
	// Cardinality controls (statspipe extensions): RE2 patterns, nil when unset, searched
	// unanchored in the raw HAProxy names (servers as "<backend>/<server>") and in the
	// metric names; an empty include keeps everything, an exclude wins over an include.
	// SkipMaintServers drops server rows whose status is MAINT….
	FrontendInclude, FrontendExclude *regexp.Regexp
	BackendInclude, BackendExclude   *regexp.Regexp
	ServerInclude, ServerExclude     *regexp.Regexp
	MetricInclude, MetricExclude     *regexp.Regexp
	SkipMaintServers                 bool
	// AllMetrics emits every numeric field of every row type and of show info, aggregated
	// across processes by its nature; AllMetricsAggregate are the extra functions of the
	// all-metrics-aggregate.<glob> options, in file order, their globs matching
	// "<kind>.<field>" lower-cased (statspipe extensions).
	AllMetrics          bool
	AllMetricsAggregate []aggregate.Rule
}

// Graphite is section [graphite].
type Graphite struct {
	Loglevel       slog.Level
	Server         string
	Port           int
	Retries        int
	Interval       time.Duration
	ConnectTimeout time.Duration
	WriteTimeout   time.Duration
	Delay          time.Duration
	Backoff        float64
	Namespace      string
	PrefixHostname bool
	FQDN           bool
	QueueSize      int
	GroupNamespace string // "" when unset
	// GroupNamespaceDoubleWrites is required when GroupNamespace is set.
	GroupNamespaceDoubleWrites bool
	// Hostname pins the host path component (statspipe extension); default os.Hostname().
	// It is the raw host name: the fqdn and '.'→'_' rules of haproxystats.md §5.1 still apply.
	Hostname string
	// Enabled is false when the config turns Graphite off (statspipe extension,
	// `[graphite] enabled = false`, for local-store-only set-ups such as the demo).
	Enabled bool
	// QueueBytes bounds the bytes of lines the dispatcher holds (queued, in flight, or not yet
	// proven read by the peer) before processing waits (statspipe extension).
	QueueBytes int
	// StallTimeout: a connection on which the peer shows no sign of reading for this long is
	// given up (closed gracefully) and its unread lines are sent again on a new one.
	StallTimeout time.Duration
}

// LocalStore is section [local-store].
type LocalStore struct {
	Dir string
}

// Central is section [central]: the central tier's consumers.
type Central struct {
	// Conn holds the options that reach the brokers (Brokers, ClientID, TLS, SASL).
	Conn  Kafka
	Group string
	// SnapshotTopic (optional) carries raw snapshots from [ship]: each is processed like a
	// spool snapshot, its lines written with the edge's host name, to the dispatchers.
	SnapshotTopic string
	// LineTopic (optional) carries per-host lines keyed by path ([kafka] record-key = path):
	// they are aggregated across hosts per Bucket into <namespace>.<Cluster>.<rest>.
	LineTopic string
	Cluster   string
	// Bucket and Lateness are whole seconds.
	Bucket, Lateness int64
	WorkDir          string
	// MaxSnapshotBytes bounds one received snapshot archive.
	MaxSnapshotBytes int64
	// Policies are the functions across hosts (aggregate, aggregate.<glob>), tried before
	// central.DefaultRules.
	Policies aggregate.Policies
}

// Kafka is section [kafka] (statspipe extension): the Kafka dispatcher. acks is always all
// (with franz-go's idempotent producer), so it has no field.
type Kafka struct {
	Brokers     []string // host:port, in order
	Topic       string
	ClientID    string
	Compression string // none, gzip, snappy, lz4 or zstd
	// BatchMaxBytes bounds one record batch (Kafka's max.message.bytes applies on the broker).
	BatchMaxBytes int
	Linger        time.Duration
	// MaxBufferedRecords and MaxBufferedBytes bound what the producer holds unacknowledged;
	// Submit blocks at either limit (back-pressure).
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// RecordKey is "path" (one record per line, keyed by its metric path), "series" (the
	// same, keyed by the path without the host component: the central tier) or "host" (one
	// record per chunk, keyed by the host prefix).
	RecordKey string
	// DeliveryTimeout: a record not acknowledged after this long fails its chunk, which keeps
	// the snapshot in the spool.
	DeliveryTimeout    time.Duration
	TLS                bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
	// SASLMechanism is "" (none), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"; the password is
	// read from SASLPasswordFile at every authentication.
	SASLMechanism    string
	SASLUser         string
	SASLPasswordFile string
}

// Group is one `<name> = <regex>` of a *-groups section.
type Group struct {
	Name    string
	Pattern *regexp.Regexp
}
