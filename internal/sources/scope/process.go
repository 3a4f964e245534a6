package scope

import (
	"errors"
	"io"

	"github.com/statspipe/statspipe/internal/sample"
	"github.com/statspipe/statspipe/internal/sources/httpsource"
	"github.com/statspipe/statspipe/internal/spool"
)

// The process half: a MultiParser. Every node of every topology of a plugin's report is one
// aggregation instance, so the engine's functions across instances are functions across nodes:
//
//   - a Process node of this host ("<host>;<pid>" with the host the pull side recorded) is the
//     instance <plugin>_<pid>, its samples named <plugin>.<comm>.<metric>, so that the sum over
//     instances is the sum across the PIDs of that program, and avg, stddev or pNN are across
//     those processes;
//   - a Process node of another host, or of a PID whose name was not found (the process had
//     ended), counts under the program name "_unknown" (instance <plugin>_<node id>);
//   - a node of any other topology (Host, Container, …) is the instance
//     <plugin>_<topology>_<node id>, its samples named <plugin>.<topology>.<metric>.
//
// Each of these name parts has its dots replaced by '_' (the kind's names are dotted paths,
// aggregate.Options.DottedNames); the engine sanitises the rest.

// processTopology is the topology whose node IDs are "<host>;<pid>".
const processTopology = "Process"

// unknownComm is the program name of Process nodes whose name is not known.
const unknownComm = "_unknown"

type parser struct {
	name []byte // the sample name being built
	inst []byte // the instance name being built
	s    sample.Sample
}

var errNoPlugin = errors.New("the instance is not a Scope plugin ID")

// Parse feeds every node's samples as one instance; the format calls ParseMulti instead.
func (p *parser) Parse(meta spool.InstanceMeta, body io.Reader, fn sample.Func) error {
	return p.parse(meta, body, nil, fn)
}

// ParseMulti feeds each node as one instance.
func (p *parser) ParseMulti(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances) error {
	return p.parse(meta, body, in, nil)
}

func (p *parser) parse(meta spool.InstanceMeta, body io.Reader, in httpsource.Instances, fn sample.Func) error {
	plugin := meta.Instance
	if !validID(plugin) {
		return errNoPlugin
	}
	host := meta.Extra["host"]
	return parseReport(body, plugin, func(topo, id string, metrics []metricValue) error {
		p.inst = append(p.inst[:0], plugin...)
		p.inst = append(p.inst, '_')
		var group string
		if topo == processTopology {
			group = unknownComm
			h, pid, ok := processNode(id)
			if ok && host != "" && h == host {
				if comm, known := meta.Extra["pid:"+pid]; known && comm != "" {
					group = comm
				}
				p.inst = append(p.inst, pid...)
			} else {
				p.inst = append(p.inst, id...)
			}
		} else {
			group = topo
			p.inst = append(p.inst, topo...)
			p.inst = append(p.inst, '_')
			p.inst = append(p.inst, id...)
		}
		if in != nil {
			in.Begin(string(p.inst))
		}
		for _, m := range metrics {
			p.name = append(p.name[:0], plugin...)
			p.name = append(p.name, '.')
			p.name = sample.AppendPart(p.name, group)
			p.name = append(p.name, '.')
			p.name = sample.AppendPart(p.name, m.Name)
			p.s = sample.Sample{Family: p.name, Name: p.name, Kind: sample.Gauge, Value: m.Value}
			if in != nil {
				in.Add(&p.s)
			} else if err := fn(&p.s); err != nil {
				return err
			}
		}
		if in != nil {
			in.End(true)
		}
		return nil
	})
}
