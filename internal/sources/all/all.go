// Package all imports every source kind, for the programs: each registers itself from init.
package all

import (
	_ "github.com/statspipe/statspipe/internal/sources/ebpfmaps"    // [source.*] type = ebpf-maps
	_ "github.com/statspipe/statspipe/internal/sources/envoy"       // [source.*] type = envoy
	_ "github.com/statspipe/statspipe/internal/sources/haproxy"     // HAProxy stats sockets of [pull]
	_ "github.com/statspipe/statspipe/internal/sources/httpebpf"    // [source.*] type = http-ebpf
	_ "github.com/statspipe/statspipe/internal/sources/mesos"       // [source.*] type = mesos
	_ "github.com/statspipe/statspipe/internal/sources/openmetrics" // [source.*] type = openmetrics
	_ "github.com/statspipe/statspipe/internal/sources/scope"       // [source.*] type = scope
	_ "github.com/statspipe/statspipe/internal/sources/statspipe"   // stats-pull's self-metrics ([pull] self-metrics)
)
