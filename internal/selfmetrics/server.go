package selfmetrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves /metrics and /healthz on a listen address.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Timeouts and limits of the HTTP server: a client that is slow or sends too much is cut off.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	maxRequestBody    = 1 << 10
)

// Serve listens on addr (host:port; port 0 picks one, see Addr) and serves, until Close:
//
//   - /metrics: reg's values as OpenMetrics text (application/openmetrics-text; version=1.0.0),
//     or as the Prometheus text format 0.0.4 to a client whose Accept asks for text/plain and
//     not for OpenMetrics;
//   - /healthz: 200 "ok", or 503 with health's reason.
//
// Only GET and HEAD are answered; request bodies are not read past 1 KiB.
func Serve(addr string, reg *Registry, health func() (bool, string), log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		samples := reg.Collect()
		var body []byte
		if acceptsOpenMetrics(r.Header.Get("Accept")) {
			w.Header().Set("Content-Type", OpenMetricsType)
			body = AppendOpenMetrics(make([]byte, 0, 4096), samples)
		} else {
			w.Header().Set("Content-Type", PrometheusTextType)
			body = AppendPrometheusText(make([]byte, 0, 4096), samples)
		}
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := true, ""
		if health != nil {
			ok, reason = health()
		}
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, reason+"\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	s := &Server{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("self-metrics server stopped", "address", ln.Addr().String(), "error", err)
		}
	}()
	log.Info("serving /metrics and /healthz", "listen", ln.Addr().String())
	return s, nil
}

func allowed(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: requests in progress get up to 2 s. Nil-safe.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}
