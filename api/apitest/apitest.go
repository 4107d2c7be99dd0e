// Package apitest serves a scripted management API on a unix socket, for
// testing clients (the CLIs) without a daemon.
package apitest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
)

// Reply answers one call: Err, when set, is returned as an API error;
// otherwise Body is the JSON response. With Progress set, a call asking
// for a stream (api.StreamContentType) gets these events first and then
// the outcome as the final event.
type Reply struct {
	Body     any
	Err      *api.Error
	Progress []api.Progress
	// Pace is the pause before each progress event (a slow operation).
	Pace time.Duration
}

// Call is a request the server received.
type Call struct {
	Method string
	Body   string
}

// Server is a scripted API server.
type Server struct {
	Socket string

	mu      sync.Mutex
	replies map[string]Reply
	calls   []Call
}

// Serve starts a server answering method calls from replies (unlisted
// methods answer {}); it stops when the test ends.
func Serve(t testing.TB, replies map[string]Reply) *Server {
	t.Helper()
	s := &Server{Socket: filepath.Join(t.TempDir(), "api.sock"), replies: replies}
	l, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Calls returns the calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/v1/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Body: string(body)})
	rep, ok := s.replies[method]
	s.mu.Unlock()
	if ok && rep.Progress != nil && r.Header.Get("Accept") == api.StreamContentType {
		streamReply(w, rep)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case ok && rep.Err != nil:
		w.WriteHeader(api.HTTPStatus(rep.Err.Code))
		_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: rep.Err})
	case ok && rep.Body != nil:
		_ = json.NewEncoder(w).Encode(rep.Body)
	default:
		_, _ = io.WriteString(w, "{}\n")
	}
}

func streamReply(w http.ResponseWriter, rep Reply) {
	w.Header().Set("Content-Type", api.StreamContentType)
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	for _, p := range rep.Progress {
		time.Sleep(rep.Pace)
		_ = enc.Encode(api.StreamEvent{Progress: &p})
		_ = rc.Flush()
	}
	if rep.Err != nil {
		_ = enc.Encode(api.StreamEvent{Error: rep.Err})
		return
	}
	body := rep.Body
	if body == nil {
		body = struct{}{}
	}
	raw, _ := json.Marshal(body)
	_ = enc.Encode(api.StreamEvent{Result: raw})
}
