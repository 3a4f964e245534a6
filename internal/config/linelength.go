package config

import (
	"fmt"

	"github.com/statspipe/statspipe/internal/metric"
)

// A line longer than max-line-length is not written and its snapshot is quarantined. When the
// parts of the paths that come from the configuration leave no room in max-line-length, that is
// nearly every line of every snapshot, so such a configuration is rejected at start-up. The
// check is an estimate of the longest line from the path layout of stats-process
// (internal/process/haproxy emit.go), built like its paths (metric.Prefix, metric.Names.Path):
//
//	<namespace>[.<host>].haproxy[.<group-namespace>.<group>].backend.<backend>.server.<server>.<metric> <value> <timestamp>
//
// (a grouped server; frontends, backends, server.* aggregates and daemon.process.<id> have one
// name from the data, not two). Proxy and server names come from the data; the estimate gives
// each lineNameRoom bytes, so that it rejects only what breaks ordinary names and accepts every
// sane configuration. A configuration in which names of max-component-length bytes (what a
// shortened name is) would not fit is accepted with a warning saying what to change.

const (
	// LineTailRoom is room for ".<metric> <value> <timestamp>": the longest metric name is 27
	// bytes, a value at most 24 characters ("-1.7976931348623157e+308"), a timestamp at most 20
	// (internal/process/haproxy checks that its longest tail fits).
	LineTailRoom = 80
	// lineNameRoom is the room the rejection gives each name from the data: the smallest
	// max-component-length, longer than most HAProxy proxy and server names.
	lineNameRoom = metric.MinComponentLength
)

// lineLayout is the parts of the longest lines that come from the configuration.
type lineLayout struct {
	prefix                    int // "<namespace>[.<host>].haproxy", as stats-process shortens it
	groupFe, groupBe, groupSv int // "<group-namespace>.<group>." for the longest group of each section, or 0
}

func newLineLayout(cfg *Config) lineLayout {
	g := &cfg.Graphite
	names := metric.Names{MaxLength: cfg.Process.MaxComponentLength}
	prefix, _ := names.Path(metric.Prefix(g.Namespace, g.Hostname, g.PrefixHostname, g.FQDN))
	ns, _ := names.Path(g.GroupNamespace)
	groupPart := func(groups []Group) int {
		if g.GroupNamespace == "" || len(groups) == 0 {
			return 0
		}
		longest := 0
		for _, gr := range groups {
			name, _ := names.Path(gr.Name)
			longest = max(longest, len(name))
		}
		return len(ns) + 1 + longest + 1
	}
	return lineLayout{prefix: len(prefix), groupFe: groupPart(cfg.FrontendGroups),
		groupBe: groupPart(cfg.BackendGroups), groupSv: groupPart(cfg.ServerGroups)}
}

// serverPath is ".backend." and ".server." around a grouped server's two names.
const serverPath = len(".backend..server.")

// longest estimates the longest line for names of nameLen bytes.
func (l lineLayout) longest(nameLen int) int {
	two, one := l.paths(nameLen)
	return l.prefix + max(two, one) + LineTailRoom
}

// paths are the lengths after the prefix, tail excluded, of a grouped backend's server (two
// names), and of the longest path with one name (a grouped frontend or server.* aggregate, or
// daemon.process.<id>, never grouped), which is longer only when its group is much longer.
func (l lineLayout) paths(nameLen int) (two, one int) {
	two = l.groupBe + serverPath + 2*nameLen
	one = max(l.groupFe+len(".frontend."), l.groupSv+len(".server."), len(".daemon.process.")) + nameLen
	return two, one
}

// explain says what longest(nameLen) is made of.
func (l lineLayout) explain(nameLen int) string {
	if two, one := l.paths(nameLen); one > two {
		return fmt.Sprintf("prefix %d + group namespace, group and path parts %d + one name %d + "+
			"metric, value and timestamp %d", l.prefix, one-nameLen, nameLen, LineTailRoom)
	}
	return fmt.Sprintf("prefix %d + group namespace and group %d + .backend..server. %d + 2 names × %d + "+
		"metric, value and timestamp %d", l.prefix, l.groupBe, serverPath, nameLen, LineTailRoom)
}

// checkLineLength rejects a max-line-length that even lines with short names cannot fit in, and
// warns when a line with names of max-component-length bytes would not fit.
func (v *validator) checkLineLength() {
	if v.failed() {
		return
	}
	p := &v.cfg.Process
	limit := p.MaxLineLength
	l := newLineLayout(v.cfg)
	if need := l.longest(lineNameRoom); need > limit {
		s, val, _ := v.str("process", "max-line-length")
		v.fail("process", "max-line-length", val, s, fmt.Sprintf("the longest Graphite line with names of "+
			"%d bytes is about %d bytes (%s), more than max-line-length, so nearly every line would be left out "+
			"and every snapshot quarantined; raise max-line-length to at least %d, or shorten namespace, "+
			"hostname, group-namespace or the group names", lineNameRoom, need, l.explain(lineNameRoom), need))
		return
	}
	need := l.longest(p.MaxComponentLength)
	if need <= limit {
		return
	}
	fits := p.MaxComponentLength // the largest max-component-length that fits: ≥ lineNameRoom, checked above
	for fits > lineNameRoom && l.longest(fits) > limit {
		fits--
	}
	v.warnings = append(v.warnings, fmt.Sprintf("[process] max-line-length = %d is shorter than the longest "+
		"Graphite line whose names are max-component-length (%d) bytes long, as shortened names are: about %d "+
		"bytes (%s); such lines are left out and their snapshots quarantined. Raise max-line-length to %d or "+
		"lower max-component-length to %d", limit, p.MaxComponentLength, need, l.explain(p.MaxComponentLength), need, fits))
}
