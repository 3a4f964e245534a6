module github.com/statspipe/statspipe

go 1.26.0

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/docopt/docopt-go v0.0.0-20180111231733-ee0de3bc6815
	github.com/fsnotify/fsnotify v1.10.1
	gonum.org/v1/gonum v0.17.0
)

require (
	github.com/prometheus/client_model v0.6.3
	golang.org/x/sys v0.49.0
)

require github.com/cilium/ebpf v0.22.0

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.3 // indirect
	github.com/prometheus/common v0.73.1
	google.golang.org/protobuf v1.36.12 // indirect
)

tool github.com/cilium/ebpf/cmd/bpf2go
