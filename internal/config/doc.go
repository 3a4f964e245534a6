// Package config reads the haproxystats configuration (haproxystats.md §1): built-in
// defaults, the -f file and the -d files, in Python configparser's dialect with extended
// interpolation; it prints -p / -P and validates for one program.
//
// Use: Load (no validation, so -P works on an invalid file), then Loaded.Print for -P or
// Loaded.Config for the typed, validated Config. PrintDefaults is -p. Every configuration
// error is an *Error whose text is one line (Print also passes on the writer's error).
//
// Decisions (haproxystats.md §10.3 DECIDE items and statspipe extensions):
//
//   - Reader. The INI dialect is configparser's strict mode, reproduced line by line in
//     parse.go rather than through gopkg.in/ini.v1's parser, which swallows indented
//     `key = value` lines into the previous value, turns a continuation line containing ':'
//     into a new key, overwrites duplicate options silently and strips quotes. Sections are
//     case-sensitive, option names are lower-cased, values keep inline '#' and ';' (so
//     `workers = 4 # x` is an invalid int), indented lines continue a value, a duplicate
//     section or option within one file is an error (a repeated [DEFAULT] header is not, as
//     in configparser) and a later file overrides an earlier one.
//   - Files. A missing default file (/etc/haproxystats.conf) gives the defaults plus a
//     Notice; a missing -f file is an error. -d reads dir/*.conf sorted by name (upstream:
//     directory order); names starting with '.' are skipped like Python's glob, and a
//     directory named *.conf is skipped with a warning. An unreadable file is an error
//     (haproxystats skipped it silently). A UTF-8 byte-order mark is ignored; other invalid
//     UTF-8 is an error.
//   - Messages. `invalid configuration, file:'F' line:N section:'S' option:'O' value:'V'
//     error: <reason>`, one line, with the parts that apply: file and line when a file set
//     the value, "(inherited from [DEFAULT])" for inherited values, raw:'…' when
//     interpolation changed or broke the value. The reason keeps haproxystats' wording,
//     sic included ("you can set a value less than 1 for 'buffer-limit' option of
//     'pull'section"), followed by a hint in parentheses where one helps.
//   - Validation order is §1.5. After it come the statspipe checks: *-groups patterns must
//     compile as Go RE2 (upstream skipped bad ones at run time), [local-store] needs dir,
//     [kafka] and [ship] (present only when a file has them; kafka.go) need brokers and topic,
//     [central] (the central tier) needs brokers and snapshot-topic or line-topic (cluster
//     with line-topic, prefix-hostname with snapshot-topic) and makes src-dir unused,
//     the host name must be known when prefix-hostname is on, Graphite may only be
//     disabled when [local-store], [kafka] or [ship] exists, and max-line-length must hold the longest Graphite
//     line with 32-byte names (an estimate from the path layout, linelength.go; with names of
//     max-component-length bytes that do not fit, a warning). Range checks sit with each option's type check and
//     keep any configuration from crashing or spinning the programs (README "Configuration
//     reference" lists them): workers 1..1024, [pull] queue-size 1..10^6, [graphite]
//     queue-size 1..10^8, buffer-limit ≥ 1, port 1..65535, retries ≥ -1, backoff 1..1000,
//     every duration at most 1 day, timeouts at least 1 ms, pull-interval and
//     liveness-check-interval at least 0.1 s, a connection retry pause of at least 0.01 s
//     when retries is -1 or above 10, [graphite] delay and interval not both below 0.01 s,
//     every float finite; at most 1024 servers; namespace, group-namespace and hostname at
//     most 1024 bytes (they are part of every Graphite path).
//   - Work bounds: the files read together are at most 16 MiB; one interpolated value at most
//     1 MiB and 10^5 substitutions, counting the literal text of referenced values; all the
//     reads of one Print or Config together at most 64 MiB (each read also costs its option
//     name and 32 bytes, so a wide [DEFAULT] inherited by thousands of sections is bounded
//     too) and 10^6 substitutions; the group patterns together at most 100000 steps with
//     repetitions expanded. A value quoted in a message is shortened past 256 bytes.
//   - Durations are float seconds with fractions honoured (BUG 11: upstream truncated
//     pull-timeout, so values below 1 meant no deadline; statspipe honours them and warns).
//     pull-interval accepts floats (upstream: int only).
//   - Unknown options in known sections and unknown sections are warnings naming the file,
//     line and the closest known name; options and sections used by a ${...} reference are
//     variables and not flagged. [graphite] timeout (when it differs from DEFAULT's),
//     prefix_hostname and prefix-name are reported as having no effect.
//   - Extensions: [pull] allow-partial (default false), [pull] typed (default false: pull the
//     typed forms of show info / show stat), [graphite] enabled (default true),
//     [graphite] hostname (default: the system host name; -p omits it, -P shows the
//     effective value, an empty value means the default).
//   - servers: items are stripped of whitespace; unix:///abs/path (Name = base name) and
//     tcp://host:port or tcp://[v6]:port (Name = lower-cased host and decimal port without
//     brackets, as urlparse gave haproxystats). Anything else, an empty item, a port outside
//     1..65535 or a user/path part is an error.
//   - Named sources: `[source.<name>]` sections (a dot, not a colon, so ${section:option}
//     keeps working), each with `type = <kind>`; kinds register their options
//     (RegisterSourceKind). The name is letters, digits, '_' and '-', at most 64 bytes, not
//     "haproxy" (the [pull] HAProxy source), not an integer, not ending in _info/_stat; at most
//     256 sections. A source section does not inherit [DEFAULT] (its values, then its kind's
//     defaults). Missing or unknown type, a bad name and a kind's own check are errors in the
//     usual one-line form; an unknown option is a warning with the closest name. Both programs
//     validate the sections (pull everything, process the processing options); -p prints every
//     kind's options as comments (so -p stays a configuration without sources) and -P prints
//     every source with its kind's defaults. Config.Sources lists them, after the [pull] HAProxy
//     source when socket-dir or servers is set. RecordedSource rebuilds a source from the
//     processing options a snapshot recorded.
//   - loglevel (any case): debug → Debug; info, notset → Info; warning, warn → Warn; error,
//     critical, fatal → Error.
//   - -P prints like haproxystats (sorted, inherited DEFAULT options in every section) but
//     escapes '$' as "$$" and indents continuation lines, so Load reads it back to the same
//     configuration; a value no INI line can hold (whitespace at a line end after
//     interpolation) is an error instead of silently different output.
//   - Interpolation is configparser's ExtendedInterpolation with its depth limit of 10; a
//     reference cycle is reported as a cycle. Values are interpolated when read, so an
//     unknown option with a broken reference only fails -P, never Config.
package config
