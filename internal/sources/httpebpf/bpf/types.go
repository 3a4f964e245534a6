package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The pinned maps stats-pull reads (their pin names under the loader's pin directory).
const (
	RequestsMap  = httpStatsMapHttpRequests  // struct req_key {pid, method} → requests
	ResponsesMap = httpStatsMapHttpResponses // struct resp_key {pid, code} → responses
	DropsMap     = httpStatsMapHttpDrops     // per CPU, enum drop_reason → events not counted
)

// KeyValue is a map's key and value type as the program declares them.
type KeyValue struct {
	Key, Value btf.Type
}

// MapTypes returns the BTF key and value types of the pinned maps, read from the embedded
// object: pure Go, no privileges. So stats-pull decodes the maps exactly (field names, the
// names of the codes in enum http_status) without the CAP_SYS_ADMIN that reading a map's BTF
// from the kernel needs.
func MapTypes() (map[string]KeyValue, error) {
	spec, err := loadHttpStats()
	if err != nil {
		return nil, err
	}
	out := map[string]KeyValue{}
	for _, name := range []string{RequestsMap, ResponsesMap, DropsMap} {
		m, ok := spec.Maps[name]
		if !ok || m.Key == nil || m.Value == nil {
			return nil, fmt.Errorf("the embedded HTTP statistics object has no map %s with BTF", name)
		}
		out[name] = KeyValue{Key: m.Key, Value: m.Value}
	}
	return out, nil
}

// CollectionSpec returns the embedded program's specification (for tests that make its maps
// without loading it).
func CollectionSpec() (*ebpf.CollectionSpec, error) { return loadHttpStats() }
