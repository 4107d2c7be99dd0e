package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics on one listen address, or on none (off). The
// address can change while stmfd runs (Reconfigure, for a config reload).
type Server struct {
	log     *slog.Logger
	handler http.Handler

	mu   sync.Mutex
	addr string // as configured; "" when off
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// New builds the exporter: stmfd's collector, the Go runtime, the process
// and build info. Nothing listens before Reconfigure.
func New(src Sources, log *slog.Logger) (*Server, error) {
	if src.Stats == nil {
		return nil, errors.New("metrics: no stats source")
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		newCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4, // a scrape storm cannot pile up snapshots
		Timeout:             10 * time.Second,
	}))
	return &Server{log: log, handler: mux}, nil
}

// Handler serves /metrics (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Reconfigure makes the exporter listen on addr ("" turns it off). The
// same address keeps the running listener; a new one is opened before the
// old one closes, so a bad address leaves the old one serving.
func (s *Server) Reconfigure(ctx context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == s.addr && (addr == "") == (s.ln == nil) {
		return nil
	}
	var ln net.Listener
	if addr != "" {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("metrics: listen %s: %w", addr, err)
		}
	}
	if err := s.stopLocked(ctx); err != nil {
		s.log.Warn("metrics: stopping the old listener", "err", err)
	}
	s.addr = addr
	if ln == nil {
		return nil
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics: serving", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.ln, s.http, s.done = ln, hs, done
	s.log.Info("metrics: serving /metrics", "addr", ln.Addr().String())
	return nil
}

// Addr is the actual listen address, or "" when off.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop closes the listener, letting scrapes in progress finish until ctx
// ends.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = ""
	return s.stopLocked(ctx)
}

func (s *Server) stopLocked(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	<-s.done
	s.ln, s.http, s.done = nil, nil, nil
	return err
}
