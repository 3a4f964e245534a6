module github.com/statspipe/statspipe

go 1.26

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/docopt/docopt-go v0.0.0-20180111231733-ee0de3bc6815
	github.com/fsnotify/fsnotify v1.10.1
	gonum.org/v1/gonum v0.17.0
)

require golang.org/x/sys v0.13.0
