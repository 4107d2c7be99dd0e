package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/progress"
)

// Streamed progress for long calls (see api.StreamContentType).

// streamHeartbeat is how often a streamed call repeats its current phase
// with the elapsed time while nothing else is reported (a zfs command
// says nothing until it ends).
const streamHeartbeat = time.Second

// routeLong registers a long call: answered as route does, or streamed
// when the client asks for it.
func routeLong[Req, Resp any](mux *http.ServeMux, log *slog.Logger, method string, f func(context.Context, Req) (Resp, error)) {
	plain := func(w http.ResponseWriter, r *http.Request, req Req) {
		resp, err := f(context.WithoutCancel(r.Context()), req)
		answer(w, log, method, resp, err)
	}
	mux.HandleFunc("POST /v1/"+method, func(w http.ResponseWriter, r *http.Request) {
		req, ok := decodeRequest[Req](w, r, log, method)
		if !ok {
			return
		}
		if r.Header.Get("Accept") != api.StreamContentType {
			plain(w, r, req)
			return
		}
		// Only once the body is read to its end does the server watch the
		// connection, cancelling r.Context() when the client closes it.
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			writeError(w, log, api.Errorf(api.CodeInvalidArgument, method, "bad request body: %v", err))
			return
		}
		stream(r.Context(), w, log, method, func(ctx context.Context) (any, error) { return f(ctx, req) })
	})
}

// stream runs op under ctx, writing its progress events and then its
// outcome. It returns only when op has returned, so a cancelled operation
// has finished undoing itself before the connection is let go.
func stream(ctx context.Context, w http.ResponseWriter, log *slog.Logger, method string, op func(context.Context) (any, error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newSink()
	type outcome struct {
		resp any
		err  error
	}
	done := make(chan outcome, 1)
	opCtx := progress.With(ctx, s.report)
	go func() {
		resp, err := op(opCtx)
		done <- outcome{resp, err}
	}()

	w.Header().Set("Content-Type", api.StreamContentType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	gone := false // the client stopped reading: keep going, quietly
	send := func(ev api.StreamEvent) {
		if gone {
			return
		}
		if err := enc.Encode(ev); err != nil {
			gone = true
			return
		}
		if err := rc.Flush(); err != nil {
			gone = true
		}
	}
	sendProgress := func() {
		for _, p := range s.take() {
			send(api.StreamEvent{Progress: &p})
		}
	}
	tick := time.NewTicker(streamHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-s.notify:
			sendProgress()
		case <-tick.C:
			if p, ok := s.current(); ok {
				send(api.StreamEvent{Progress: &p})
			}
		case o := <-done:
			sendProgress()
			if o.err != nil {
				ae := streamErr(o.err, ctx.Err() != nil, log, method)
				send(api.StreamEvent{Error: ae})
				return
			}
			raw, err := json.Marshal(o.resp)
			if err != nil {
				send(api.StreamEvent{Error: api.Errorf(api.CodeInternal, method, "encoding the result: %v", err)})
				return
			}
			send(api.StreamEvent{Result: raw})
			return
		}
	}
}

// streamErr is the final error of a streamed call; a call that failed
// once its client had cancelled it failed because of that.
func streamErr(err error, cancelled bool, log *slog.Logger, method string) *api.Error {
	if cancelled {
		log.Info("management API call cancelled by the client", "method", method, "err", err)
		return api.Errorf(api.CodeCancelled, method, "cancelled: %v", err)
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		log.Error("management API call failed", "err", err)
		ae = api.Errorf(api.CodeInternal, "", "%v", err)
	}
	return ae
}

// sink collects an operation's progress reports for the stream: each
// phase change is kept, byte counts within a phase coalesce (the stream
// shows the latest).
type sink struct {
	start  time.Time
	notify chan struct{}

	mu         sync.Mutex
	pending    []api.Progress
	cur        api.Progress
	phaseStart time.Time
	have       bool
}

func newSink() *sink {
	now := time.Now()
	return &sink{start: now, phaseStart: now, notify: make(chan struct{}, 1)}
}

func (s *sink) report(e progress.Event) {
	now := time.Now()
	s.mu.Lock()
	if !s.have || e.Phase != s.cur.Phase {
		s.phaseStart = now
	}
	p := api.Progress{Phase: e.Phase, Done: e.Done, Total: e.Total,
		ElapsedMS: now.Sub(s.start).Milliseconds(), PhaseMS: now.Sub(s.phaseStart).Milliseconds()}
	if n := len(s.pending); n > 0 && s.pending[n-1].Phase == p.Phase {
		s.pending[n-1] = p
	} else {
		s.pending = append(s.pending, p)
	}
	s.cur, s.have = p, true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take returns the reports not yet sent, in order.
func (s *sink) take() []api.Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.pending
	s.pending = nil
	return out
}

// current is the phase in progress with its times brought up to now.
func (s *sink) current() (api.Progress, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.have {
		return api.Progress{}, false
	}
	now := time.Now()
	p := s.cur
	p.ElapsedMS, p.PhaseMS = now.Sub(s.start).Milliseconds(), now.Sub(s.phaseStart).Milliseconds()
	return p, true
}
