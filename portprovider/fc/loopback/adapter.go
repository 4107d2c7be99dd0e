// Package loopback is an in-process FC adapter: frames go between the
// target's fc.Port and tiny FCP initiators in the same process. It is the
// worked example of the fc.Adapter contract for driver writers, and the
// wire for unit tests and fuzzing.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/costar-project/costar/portprovider/fc"
)

// queueLen bounds the frames and events waiting for the handler; Inject
// blocks (like a full receive ring) when it is full.
const queueLen = 256

// event is one item for the handler goroutine: a raw frame or a link event.
type event struct {
	raw  []byte
	link *fc.LinkEvent
}

// Adapter is a loopback HBA. Frames the target sends are routed to the
// Initiator with the destination N_Port ID; frames initiators send are
// parsed and handed to the target on one goroutine, in order, as a
// hardware driver's receive path would.
type Adapter struct {
	info fc.AdapterInfo

	mu      sync.Mutex
	h       fc.Handler
	q       chan event
	stop    chan struct{}
	stopped bool
	inits   map[uint32]*Initiator
	wg      sync.WaitGroup
}

// New returns a stopped loopback adapter with the given names and the
// standard 2112-byte payload.
func New(port, node fc.WWN) *Adapter {
	return &Adapter{info: fc.AdapterInfo{Driver: "loopback", PortName: port, NodeName: node, MaxPayload: fc.MaxPayload},
		q: make(chan event, queueLen), stop: make(chan struct{}), inits: map[uint32]*Initiator{}}
}

// WithMaxPayload sets the largest frame payload the adapter announces
// (256..2112), as a driver whose buffers are smaller would; call it before
// the port is built over the adapter.
func (a *Adapter) WithMaxPayload(n int) *Adapter {
	a.info.MaxPayload = n
	return a
}

// Info implements fc.Adapter.
func (a *Adapter) Info() fc.AdapterInfo { return a.info }

// Start implements fc.Adapter: it starts the receive goroutine.
func (a *Adapter) Start(_ context.Context, h fc.Handler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.h != nil || a.stopped {
		return errors.New("loopback: adapter already started")
	}
	a.h = h
	a.wg.Add(1)
	go a.run(h)
	return nil
}

// run is the receive path: the only goroutine that calls the handler.
func (a *Adapter) run(h fc.Handler) {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case ev := <-a.q:
			if ev.link != nil {
				h.LinkEvent(*ev.link)
				continue
			}
			f, err := fc.ParseFrame(ev.raw)
			if err != nil {
				continue // a real HBA drops a runt frame too
			}
			h.Receive(&f)
		}
	}
}

// Stop implements fc.Adapter: after it returns no handler call runs.
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	close(a.stop)
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("loopback: stop: %w", ctx.Err())
	}
}

// Send implements fc.Adapter: the frame is encoded (copied) and queued to
// the initiator it is addressed to; frames to nobody are lost, as on a wire.
func (a *Adapter) Send(f *fc.Frame) error {
	if len(f.Payload) > a.info.MaxPayload {
		return fmt.Errorf("loopback: payload of %d bytes exceeds %d", len(f.Payload), a.info.MaxPayload)
	}
	raw := f.AppendTo(make([]byte, 0, fc.HeaderLen+len(f.Payload)))
	a.mu.Lock()
	in := a.inits[f.DID]
	a.mu.Unlock()
	if in == nil {
		return fmt.Errorf("loopback: no port %06x", f.DID)
	}
	in.deliver(raw)
	return nil
}

// post queues an event for the handler; false once the adapter stopped.
func (a *Adapter) post(ctx context.Context, ev event) error {
	select {
	case a.q <- ev:
		return nil
	case <-a.stop:
		return errors.New("loopback: adapter stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LinkUp reports the link up with our N_Port ID.
func (a *Adapter) LinkUp(ctx context.Context, portID uint32, speedMbs int) error {
	return a.post(ctx, event{link: &fc.LinkEvent{Up: true, PortID: portID, SpeedMbs: speedMbs, Topology: "loopback"}})
}

// LinkDown reports the link down.
func (a *Adapter) LinkDown(ctx context.Context) error {
	return a.post(ctx, event{link: &fc.LinkEvent{}})
}

// Inject hands raw frame bytes (header and payload) to the target, as if
// received from the wire. The bytes are copied.
func (a *Adapter) Inject(ctx context.Context, raw []byte) error {
	return a.post(ctx, event{raw: append([]byte(nil), raw...)})
}
