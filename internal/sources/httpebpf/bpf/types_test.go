package bpf

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// The codes with their own path are the Scope plugin's C enum, true codes (formats.md §6.3).
func TestStatusEnumIsScopesList(t *testing.T) {
	types, err := MapTypes()
	if err != nil {
		t.Fatal(err)
	}
	key, ok := btf.UnderlyingType(types[ResponsesMap].Key).(*btf.Struct)
	if !ok || len(key.Members) != 2 || key.Members[1].Name != "code" {
		t.Fatalf("resp_key: %v", types[ResponsesMap].Key)
	}
	enum, ok := btf.UnderlyingType(key.Members[1].Type).(*btf.Enum)
	if !ok || enum.Size != 4 {
		t.Fatalf("code is %v, want a 4-byte enum", key.Members[1].Type)
	}
	var got []uint64
	for _, v := range enum.Values {
		got = append(got, v.Value)
	}
	want := []uint64{100, 200, 201, 202, 204, 308, 400, 401, 403, 404, 408, 451, 500, 501, 502, 503}
	if !slices.Equal(got, want) {
		t.Fatalf("enum http_status %v, want %v", got, want)
	}
	for _, name := range []string{RequestsMap, DropsMap} {
		if types[name].Key == nil || types[name].Value == nil {
			t.Errorf("%s has no BTF", name)
		}
	}
}
