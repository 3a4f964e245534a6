package envoy

import (
	"bytes"
	"strings"

	"github.com/statspipe/statspipe/internal/sample"
)

// The Prometheus form (/stats/prometheus) names a stat by its tag-extracted name, with '.'
// turned into '_' and "envoy_" in front, and moves the tag values Envoy's default tag
// extractors found (the cluster name, the HTTP stat prefix, the listener address, …) into
// labels: `cluster.svc.a.upstream_rq_2xx` is served as
// `envoy_cluster_upstream_rq_xx{envoy_cluster_name="svc.a",envoy_response_code_class="2"}`.
// The mapper puts those values back where Envoy took them from, each as one path component
// (its dots turned into '_'), so that the Graphite layout is Envoy's own dotted one:
// `cluster.svc_a.upstream_rq_2xx`. The dots of the rest of the stat name cannot be recovered
// (they are '_' in the exposition), so the rest is one component.

// templates are the stat-name shapes of Envoy's default tag extractors
// (source/common/config/well_known_names.cc), most specific first: each component is a
// literal, a tag value ({label}), or a literal glued to a tag value (worker_{label}). A
// template applies when the sample's name, after "envoy_", starts with the template's
// literals joined as Envoy leaves them (listener.{a}.http.{p} → "listener_http_") and every
// label it names is present; those labels are consumed.
var templateText = []string{
	"listener.admin.http.{envoy_http_conn_manager_prefix}",
	"listener.{envoy_listener_address}.http.{envoy_http_conn_manager_prefix}",
	"listener.{envoy_listener_address}.worker_{envoy_worker_id}",
	"listener.{envoy_listener_address}",
	"listener.admin", // the admin listener has no address tag
	"http.{envoy_http_conn_manager_prefix}.user_agent.{envoy_http_user_agent}",
	"http.{envoy_http_conn_manager_prefix}.fault.{envoy_fault_downstream_cluster}",
	"http.{envoy_http_conn_manager_prefix}.rds.{envoy_rds_route_config}",
	"http.{envoy_http_conn_manager_prefix}.ext_authz.{envoy_ext_authz_prefix}",
	"http.{envoy_http_conn_manager_prefix}",
	"cluster.{envoy_cluster_name}.grpc.{envoy_grpc_bridge_service}.{envoy_grpc_bridge_method}",
	"cluster.{envoy_cluster_name}.grpc.{envoy_grpc_bridge_service}",
	"cluster.{envoy_cluster_name}.ext_authz.{envoy_ext_authz_prefix}",
	"cluster.{envoy_cluster_name}",
	"vhost.{envoy_virtual_host}.vcluster.{envoy_virtual_cluster}",
	"vhost.{envoy_virtual_host}.route.{envoy_route}",
	"vhost.{envoy_virtual_host}",
	"server.worker_{envoy_worker_id}",
	"listener_manager.worker_{envoy_worker_id}",
	"tcp.{envoy_tcp_prefix}",
	"udp.{envoy_udp_prefix}",
	"auth.clientssl.{envoy_clientssl_prefix}",
	"ratelimit.{envoy_ratelimit_prefix}",
	"mongo.{envoy_mongo_prefix}.cmd.{envoy_mongo_cmd}",
	"mongo.{envoy_mongo_prefix}.collection.{envoy_mongo_collection}",
	"mongo.{envoy_mongo_prefix}",
	"thrift.{envoy_thrift_prefix}",
	"redis.{envoy_redis_prefix}",
	"dns_filter.{envoy_dns_filter_prefix}",
}

// roots are the first components of Envoy's untagged stats: `envoy_server_uptime` is
// `server.uptime`. Longer roots first (cluster_manager before cluster). A name with none of
// them is one component.
var roots = []string{
	"cluster_manager", "listener_manager", "control_plane", "main_thread", "access_log",
	"filesystem", "overload", "runtime", "workers", "server", "stats", "http1", "http2",
	"http3", "dns", "sds", "cluster", "listener", "http", "vhost", "tcp", "udp",
}

type component struct {
	lit string // literal text ("" when the component is only a tag value)
	tag string // label name ("" for a literal component)
}

type template struct {
	comps []component
	prom  string // the literals as they are left in the exposition name
}

var templates = func() []template {
	out := make([]template, 0, len(templateText))
	for _, t := range templateText {
		var tp template
		for _, c := range strings.Split(t, ".") {
			lit, tag, ok := strings.Cut(c, "{")
			comp := component{lit: lit}
			if ok {
				comp.tag = strings.TrimSuffix(tag, "}")
				tp.prom += lit // the value and its dot were removed; a glued literal stays
			} else {
				tp.prom += lit + "_"
			}
			tp.comps = append(tp.comps, comp)
		}
		out = append(out, tp)
	}
	return out
}()

// The response code tags are taken from the end of the name: `…_rq_2xx` → `…_rq_xx` with
// envoy_response_code_class="2", `…_rq_200` → `…_rq` with envoy_response_code="200".
const (
	labelCodeClass = "envoy_response_code_class"
	labelCode      = "envoy_response_code"
)

// mapper turns the samples of the Prometheus form into dotted Graphite names. Its buffers
// are reused: a mapped sample is valid until the next call.
type mapper struct {
	out      sample.Sample
	name     []byte
	family   []byte
	labels   []sample.Label
	consumed []bool

	// cache maps a family name and its labels (key) to the dotted family and the labels it
	// consumed: the instances of a fleet, and the buckets of a histogram, repeat them, and a
	// lookup is cheaper than trying the templates.
	cache   map[string]cached
	key     []byte
	noCache bool // for tests: always map anew
}

type cached struct {
	family   string
	consumed uint64 // bit i: label i was consumed
}

// maxCached bounds the cache (it is cleared when full); a parser keeps it across bodies.
const maxCached = 1 << 16

// label returns the index of the label named n, or -1.
func (m *mapper) label(labels []sample.Label, n string) int {
	for i := range labels {
		if !m.consumed[i] && string(labels[i].Name) == n {
			return i
		}
	}
	return -1
}

// appendValue appends a tag value as one dotted-name component: its dots become '_' (the
// engine sanitises the rest), and an empty value is "_".
func appendValue(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, '_')
	}
	for _, c := range v {
		if c == '.' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// mapName appends the dotted name of the exposition name n (a family's or a sample's, without
// a histogram's suffix) to dst, marking the labels it consumes.
func (m *mapper) mapName(dst, n []byte, labels []sample.Label) []byte {
	rest, ok := bytes.CutPrefix(n, []byte("envoy_"))
	if !ok {
		return appendValue(dst, n) // not one of Envoy's names: one component
	}
	// The response code tags come from the end.
	var suffixCode []byte
	class := false
	if i := m.label(labels, labelCodeClass); i >= 0 && bytes.HasSuffix(rest, []byte("_rq_xx")) {
		m.consumed[i] = true
		suffixCode, class = labels[i].Value, true
		rest = rest[:len(rest)-2] // "…_rq_", the class goes before "xx"
	} else if i := m.label(labels, labelCode); i >= 0 && bytes.HasSuffix(rest, []byte("_rq")) {
		m.consumed[i] = true
		suffixCode = labels[i].Value
	}
	matched := false
	for ti := range templates {
		t := &templates[ti]
		if len(rest) <= len(t.prom) || !bytes.HasPrefix(rest, []byte(t.prom)) {
			continue
		}
		all := true
		for _, c := range t.comps {
			if c.tag != "" && m.label(labels, c.tag) < 0 {
				all = false
				break
			}
		}
		if !all {
			continue
		}
		for ci, c := range t.comps {
			if ci > 0 {
				dst = append(dst, '.')
			}
			dst = append(dst, c.lit...)
			if c.tag != "" {
				i := m.label(labels, c.tag)
				m.consumed[i] = true
				dst = appendValue(dst, labels[i].Value)
			}
		}
		dst = append(dst, '.')
		rest = rest[len(t.prom):]
		matched = true
		break
	}
	if !matched {
		for _, r := range roots {
			if len(rest) > len(r)+1 && rest[len(r)] == '_' && string(rest[:len(r)]) == r {
				dst = append(dst, r...)
				dst = append(dst, '.')
				rest = rest[len(r)+1:]
				break
			}
		}
	}
	dst = appendValue(dst, rest)
	switch {
	case class:
		dst = appendValue(dst, suffixCode)
		dst = append(dst, "xx"...)
	case suffixCode != nil:
		dst = append(dst, '_')
		dst = appendValue(dst, suffixCode)
	}
	return dst
}

// Map returns s with its name dotted and the labels the name took out. Family is the dotted
// family: the name policies match and histograms are merged by.
func (m *mapper) Map(s *sample.Sample) *sample.Sample {
	m.consumed = m.consumed[:0]
	for range s.Labels {
		m.consumed = append(m.consumed, false)
	}
	fam := s.Family
	if len(fam) == 0 || !bytes.HasPrefix(s.Name, fam) {
		fam = s.Name
	}
	useCache := !m.noCache && len(s.Labels) <= 64
	if useCache {
		m.key = append(m.key[:0], fam...)
		for _, l := range s.Labels {
			m.key = append(m.key, 0)
			m.key = append(m.key, l.Name...)
			m.key = append(m.key, 0)
			m.key = append(m.key, l.Value...)
		}
	}
	if c, ok := m.cache[string(m.key)]; useCache && ok {
		m.family = append(m.family[:0], c.family...)
		for i := range m.consumed {
			m.consumed[i] = c.consumed&(1<<i) != 0
		}
	} else {
		m.family = m.mapName(m.family[:0], fam, s.Labels)
		if useCache {
			if m.cache == nil || len(m.cache) >= maxCached {
				m.cache = make(map[string]cached)
			}
			var bits uint64
			for i, c := range m.consumed {
				if c {
					bits |= 1 << i
				}
			}
			m.cache[string(m.key)] = cached{family: string(m.family), consumed: bits}
		}
	}
	m.name = append(m.name[:0], m.family...)
	for _, c := range s.Name[len(fam):] { // _bucket, _sum, _count
		if c == '.' {
			c = '_'
		}
		m.name = append(m.name, c)
	}
	m.labels = m.labels[:0]
	for i, l := range s.Labels {
		if !m.consumed[i] {
			m.labels = append(m.labels, l)
		}
	}
	m.out = sample.Sample{Family: m.family, Name: m.name, Kind: s.Kind, Labels: m.labels, Bound: s.Bound, Value: s.Value}
	return &m.out
}
