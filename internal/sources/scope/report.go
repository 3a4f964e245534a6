package scope

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The report parser, shared by the pull half (which checks every body as it streams in) and
// the process half (which reads the checked body again): formats.md §6.2.
//
// The top level is read one key at a time, so that at most one topology is decoded at once:
// memory follows the largest topology, not the whole report. Within a topology the node IDs and
// metric names are visited in sorted order (Go's JSON objects have no order of their own), so
// the lines of one body always come in the same order.

// idPattern is Scope's plugin ID rule (probe/plugins/registry.go).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)

// validID says whether id is a Scope plugin ID.
func validID(id string) bool { return len(id) <= maxIDLength && idPattern.MatchString(id) }

// maxIDLength bounds a plugin ID: it is a file name and a path component.
const maxIDLength = 200

// spec is a report's plugin description (formats.md §6.1).
type spec struct {
	ID         string   `json:"id"`
	Label      string   `json:"label"`
	Interfaces []string `json:"interfaces"`
	APIVersion string   `json:"api_version"`
}

type topology struct {
	Nodes map[string]node `json:"nodes"`
}

// node keeps only the metrics: `latest` (string values), `sets`, `counters` and controls are
// not numbers over time, and are skipped by the decoder.
type node struct {
	Metrics map[string]metricJSON `json:"metrics"`
}

type metricJSON struct {
	Samples []sampleJSON `json:"samples"`
}

type sampleJSON struct {
	Date  string   `json:"date"`
	Value *float64 `json:"value"`
}

// metricValue is one metric's latest sample.
type metricValue struct {
	Name  string
	Value float64
}

// nodeFunc gets each node that has at least one metric with a sample; metrics is reused.
type nodeFunc func(topology, id string, metrics []metricValue) error

// parseReport reads a report from r, checks its plugin spec against pluginID (Scope's checks:
// exactly one spec, the same id, api_version "1", a label, the "reporter" interface), and calls
// fn for each node. Nodes are visited as their topologies come, before the spec may have been
// seen: a caller must treat what fn got as void when parseReport fails.
func parseReport(r io.Reader, pluginID string, fn nodeFunc) error {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	specs := -1
	var metrics []metricValue
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if key == "Plugins" {
			if specs >= 0 {
				return errors.New("Plugins given twice")
			}
			var list []spec
			if err := dec.Decode(&list); err != nil {
				return fmt.Errorf("Plugins: %w", err)
			}
			if err := checkSpecs(list, pluginID); err != nil {
				return err
			}
			specs = len(list)
			continue
		}
		// Decoded in one pass, straight from the stream. Only objects are topologies: a value
		// of another type at the top (Window: "15s") is a type error at the root of the value,
		// which the decoder has then read whole, and it is skipped.
		var t topology
		if err := dec.Decode(&t); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field == "" {
				continue
			}
			return fmt.Errorf("topology %s: %w", key, err)
		}
		if metrics, err = visitTopology(key, &t, metrics, fn); err != nil {
			return err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the report")
	}
	if specs < 0 {
		return errors.New("report must contain exactly one plugin (found 0)")
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		if want == '{' {
			return fmt.Errorf("the report is not a JSON object (starts with %v)", tok)
		}
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

func checkSpecs(list []spec, pluginID string) error {
	if len(list) != 1 {
		return fmt.Errorf("report must contain exactly one plugin (found %d)", len(list))
	}
	s := list[0]
	switch {
	case s.ID != pluginID:
		return fmt.Errorf("plugin must not change its id (is %q, the socket says %q)", s.ID, pluginID)
	case s.APIVersion != "1":
		return fmt.Errorf("plugin %s: api_version %q, want \"1\"", pluginID, s.APIVersion)
	case s.Label == "":
		return fmt.Errorf("plugin %s: spec must have a label", pluginID)
	case !slices.Contains(s.Interfaces, "reporter"):
		return fmt.Errorf("plugin %s: spec must implement the \"reporter\" interface (has %q)", pluginID, s.Interfaces)
	}
	return nil
}

func visitTopology(name string, t *topology, metrics []metricValue, fn nodeFunc) ([]metricValue, error) {
	ids := make([]string, 0, len(t.Nodes))
	for id := range t.Nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var names []string
	for _, id := range ids {
		n := t.Nodes[id]
		names = names[:0]
		for m := range n.Metrics {
			names = append(names, m)
		}
		slices.Sort(names)
		metrics = metrics[:0]
		for _, m := range names {
			v, ok, err := latest(n.Metrics[m].Samples)
			if err != nil {
				return metrics, fmt.Errorf("topology %s node %q metric %q: %w", name, id, m, err)
			}
			if ok {
				metrics = append(metrics, metricValue{Name: m, Value: v})
			}
		}
		if len(metrics) == 0 {
			continue
		}
		if err := fn(name, id, metrics); err != nil {
			return metrics, err
		}
	}
	return metrics, nil
}

// latest returns the value of the sample with the latest date (the last of equal dates); a
// sample without a value is skipped, a date that is not RFC 3339 is an error.
func latest(samples []sampleJSON) (float64, bool, error) {
	var best time.Time
	var v float64
	found := false
	for i := range samples {
		s := &samples[i]
		d, err := parseDate(s.Date)
		if err != nil {
			return 0, false, err
		}
		if s.Value == nil {
			continue
		}
		if !found || !d.Before(best) {
			best, v, found = d, *s.Value, true
		}
	}
	return v, found, nil
}

// parseDate reads a sample date: RFC 3339 with a fraction of any length, or none (Go plugins
// write 9 digits, the Python one 6, or none when the microsecond is 0).
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("date %q is not RFC 3339", s)
	}
	return t, nil
}

// processNode splits a Process node ID, "<host>;<pid>".
func processNode(id string) (host, pid string, ok bool) {
	host, pid, ok = strings.Cut(id, ";")
	if !ok || pid == "" || len(pid) > 10 {
		return "", "", false
	}
	for i := 0; i < len(pid); i++ {
		if pid[i] < '0' || pid[i] > '9' {
			return "", "", false
		}
	}
	return host, pid, true
}
