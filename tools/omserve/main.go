// Command omserve is a synthetic fleet of Prometheus /metrics endpoints for the openmetrics
// benchmark (scripts/bench-openmetrics): one process, one loopback listener per instance, each
// serving a Prometheus text 0.0.4 body of a given number of series. The bodies are rendered
// (and gzip-compressed) once at start-up, so serving a scrape costs a write of bytes already in
// memory, and the benchmark measures the collector, not the server.
//
//	omserve -instances 50 -series 10000 -gzip=true -listen 127.0.0.1:0 -urls FILE
//
// Every instance serves the same series (as the instances of one application do) with its own
// values, drawn from a generator seeded by -seed and the instance number. The mix is that of a
// typical service: counters with two or three labels, gauges, two histograms of 10 buckets
// (+Inf, _sum, _count) and one summary. Once every listener is up, FILE (or standard output)
// receives one `name=URL` line per instance and, with -urls, standard output gets "ready".
// omserve runs until SIGINT or SIGTERM, or until its standard input is closed with -stdin.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/statspipe/statspipe/internal/sources/openmetrics/synthetic"
)

const contentType = "text/plain; version=0.0.4; charset=utf-8"

func main() {
	instances := flag.Int("instances", 50, "number of instances (one listener each)")
	series := flag.Int("series", 10000, "sample lines per instance body")
	useGzip := flag.Bool("gzip", true, "serve gzip when the client sends Accept-Encoding: gzip")
	listen := flag.String("listen", "127.0.0.1:0", "address of the first listener; with port 0 every instance gets a free port, else ports follow on")
	urlsFile := flag.String("urls", "", "file receiving the name=URL lines (default: standard output)")
	seed := flag.Uint64("seed", 1, "seed of the values")
	stdin := flag.Bool("stdin", false, "also exit when standard input is closed")
	envoyTemplate := flag.String("envoy-template", "", "serve Envoy sidecars: bodies made from this real /stats/prometheus exposition (its clusters repeated to reach -series), at /stats/prometheus; the URLs printed are the admin base URLs")
	flag.Parse()
	var template []byte
	if *envoyTemplate != "" {
		var err error
		if template, err = os.ReadFile(*envoyTemplate); err != nil {
			fatal(err)
		}
	}
	if *instances < 1 || *instances > 4096 || *series < 1 || *series > 10_000_000 {
		fatal(fmt.Errorf("-instances must be 1..4096 and -series 1..10000000"))
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		fatal(fmt.Errorf("-listen: port %q", portText))
	}

	bodies := make([]body, *instances)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() { bodies[i] = render(i, *series, *seed, *useGzip, template) })
	}
	wg.Wait()

	var urls strings.Builder
	for i := range bodies {
		addr := net.JoinHostPort(host, "0")
		if port != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(port+i))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fatal(err)
		}
		b := &bodies[i]
		srv := &http.Server{Handler: b}
		go func() { _ = srv.Serve(ln) }()
		if template != nil {
			fmt.Fprintf(&urls, "%s=http://%s\n", instanceName(i), ln.Addr())
		} else {
			fmt.Fprintf(&urls, "%s=http://%s/metrics\n", instanceName(i), ln.Addr())
		}
	}
	if *urlsFile == "" {
		fmt.Print(urls.String())
	} else {
		if err := os.WriteFile(*urlsFile, []byte(urls.String()), 0o644); err != nil {
			fatal(err)
		}
		var plain, wire int
		for i := range bodies {
			plain += len(bodies[i].plain)
			wire += len(bodies[i].gz)
		}
		fmt.Printf("ready %d instances x %d series: %d body bytes in all, %d gzipped\n", len(bodies), *series, plain, wire)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if *stdin {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); sig <- syscall.SIGTERM }()
	}
	<-sig
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "omserve:", err)
	os.Exit(1)
}

func instanceName(i int) string { return fmt.Sprintf("app%03d", i+1) }

// body is one instance's exposition, plain and (when enabled) gzipped.
type body struct {
	plain []byte
	gz    []byte
}

func (b *body) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" && r.URL.Path != "/stats/prometheus" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	out := b.plain
	if b.gz != nil && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		out = b.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// render returns instance i's body, plain and (when compress) gzipped: an Envoy sidecar's
// made from template when there is one.
func render(i, series int, seed uint64, compress bool, template []byte) body {
	var b body
	if template != nil {
		b.plain = synthetic.Envoy(template, i, series, seed)
	} else {
		b.plain = synthetic.Exposition(i, series, seed)
	}
	if compress {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z) // the default level, as client_golang's promhttp uses
		_, _ = zw.Write(b.plain)
		_ = zw.Close()
		b.gz = z.Bytes()
	}
	return b
}
