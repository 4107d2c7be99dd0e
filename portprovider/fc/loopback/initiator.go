package loopback

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/scsi"
)

// Initiator is a tiny FCP initiator on a loopback adapter: enough of an
// N_Port to log in and run commands against the target, and low-level
// calls (SendCmnd, Await, ABTS) to drive exchanges step by step.
type Initiator struct {
	a        *Adapter
	ID       uint32 // our N_Port ID
	PortName fc.WWN
	NodeName fc.WWN
	Target   uint32 // the target's N_Port ID
	// RxSize is the receive data field size our PLOGI announces (default
	// fc.MaxPayload); a received frame larger than it fails the command.
	RxSize int
	// SPP are the FCP service parameters our PRLI asks for (default
	// initiator function with READ FCP_XFER_RDY DISABLED).
	SPP uint32

	mu      sync.Mutex
	txSize  int           // frame payload we send: the target's receive size and ours
	frames  []fc.Frame    // received, not yet awaited
	changed chan struct{} // closed and replaced on each arrival
	nextOX  uint16
}

// NewInitiator attaches an initiator with N_Port ID id that talks to the
// target at N_Port ID target.
func (a *Adapter) NewInitiator(id, target uint32, port, node fc.WWN) *Initiator {
	in := &Initiator{a: a, ID: id, PortName: port, NodeName: node, Target: target, RxSize: fc.MaxPayload, SPP: 0x22,
		changed: make(chan struct{}), nextOX: 1, txSize: fc.MaxPayload}
	a.mu.Lock()
	a.inits[id] = in
	a.mu.Unlock()
	return in
}

func (in *Initiator) deliver(raw []byte) {
	f, err := fc.ParseFrame(raw)
	if err != nil {
		return
	}
	in.mu.Lock()
	in.frames = append(in.frames, f)
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
}

// Pending returns how many received frames nobody awaited yet.
func (in *Initiator) Pending() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.frames)
}

// Await waits for the first received frame match accepts and removes it.
func (in *Initiator) Await(ctx context.Context, match func(*fc.Frame) bool) (fc.Frame, error) {
	for {
		in.mu.Lock()
		for i := range in.frames {
			if match(&in.frames[i]) {
				f := in.frames[i]
				in.frames = append(in.frames[:i], in.frames[i+1:]...)
				in.mu.Unlock()
				return f, nil
			}
		}
		ch := in.changed
		in.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fc.Frame{}, fmt.Errorf("loopback: awaiting a frame: %w", ctx.Err())
		}
	}
}

// OnExchange matches frames of exchange oxid.
func OnExchange(oxid uint16) func(*fc.Frame) bool {
	return func(f *fc.Frame) bool { return f.OXID == oxid }
}

// NewOXID returns a fresh originator exchange ID.
func (in *Initiator) NewOXID() uint16 {
	in.mu.Lock()
	defer in.mu.Unlock()
	x := in.nextOX
	in.nextOX++
	if in.nextOX == fc.UnassignedXID {
		in.nextOX = 1
	}
	return x
}

// Send sends one frame to the target from this port (S_ID and D_ID set).
func (in *Initiator) Send(ctx context.Context, f fc.Frame) error {
	f.SID, f.DID = in.ID, in.Target
	return in.a.Inject(ctx, f.AppendTo(nil))
}

// ELS sends an ELS request and returns the reply's payload.
func (in *Initiator) ELS(ctx context.Context, payload []byte) ([]byte, error) {
	ox := in.NewOXID()
	if err := in.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSReq, Type: fc.TypeELS,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: ox, RXID: fc.UnassignedXID}, Payload: payload}); err != nil {
		return nil, err
	}
	f, err := in.Await(ctx, func(f *fc.Frame) bool { return f.OXID == ox && f.RCtl == fc.RCtlELSRep })
	if err != nil {
		return nil, err
	}
	return f.Payload, nil
}

// ErrRejected is an LS_RJT answer.
var ErrRejected = errors.New("loopback: LS_RJT")

func accepted(p []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if len(p) < 4 || p[0] != fc.ELSLSACC {
		return p, fmt.Errorf("%w: % x", ErrRejected, p)
	}
	return p, nil
}

// PLOGI logs in to the target's N_Port, announcing RxSize; Data-Out
// frames are then at most the smaller of the two receive sizes.
func (in *Initiator) PLOGI(ctx context.Context) (fc.PLOGIParams, error) {
	p, err := accepted(in.ELS(ctx, fc.AppendPLOGI(nil, in.PortName, in.NodeName, in.RxSize)))
	if err != nil {
		return fc.PLOGIParams{}, err
	}
	prm, err := fc.ParsePLOGI(p)
	if err != nil {
		return prm, err
	}
	in.mu.Lock()
	in.txSize = min(prm.RxSize, in.RxSize)
	in.mu.Unlock()
	return prm, nil
}

// PRLI establishes the FCP image pair as an initiator and returns the
// target's FCP service parameter page.
func (in *Initiator) PRLI(ctx context.Context) (fc.PRLIPage, error) {
	p, err := accepted(in.ELS(ctx, fc.AppendPRLI(nil, fc.ELSPRLI, []fc.PRLIPage{{Type: 0x08, Flags: 0x20, Params: in.SPP}})))
	if err != nil {
		return fc.PRLIPage{}, err
	}
	pages, err := fc.ParsePRLI(p)
	if err != nil {
		return fc.PRLIPage{}, err
	}
	return pages[0], nil
}

// Login is PLOGI then PRLI.
func (in *Initiator) Login(ctx context.Context) error {
	if _, err := in.PLOGI(ctx); err != nil {
		return err
	}
	_, err := in.PRLI(ctx)
	return err
}

// LOGO logs out.
func (in *Initiator) LOGO(ctx context.Context) error {
	_, err := accepted(in.ELS(ctx, fc.AppendLOGO(nil, in.ID, in.PortName)))
	return err
}

// SendCmnd starts an exchange with an FCP_CMND and returns its OX_ID.
func (in *Initiator) SendCmnd(ctx context.Context, c *fc.Cmnd) (uint16, error) {
	ox := in.NewOXID()
	err := in.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPCmnd, Type: fc.TypeFCP,
		FCtl: fc.FCtlFirstSeq | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: ox, RXID: fc.UnassignedXID},
		Payload: fc.AppendCmnd(nil, c)})
	return ox, err
}

// SendData sends data at relative offset ro on exchange (ox, rx), split
// into frames of the negotiated size rounded down to 512 bytes (as Linux
// libfc does: 2048 for the standard 2112).
func (in *Initiator) SendData(ctx context.Context, ox, rx uint16, ro uint32, data []byte) error {
	in.mu.Lock()
	chunk := in.txSize
	in.mu.Unlock()
	if chunk > 512 {
		chunk &^= 511
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		fctl := uint32(fc.FCtlRelOffset)
		if end == len(data) {
			fctl |= fc.FCtlEndSeq | fc.FCtlSeqInit
		}
		if err := in.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPData, Type: fc.TypeFCP, FCtl: fctl,
			OXID: ox, RXID: rx, Param: ro + uint32(off)}, Payload: data[off:end]}); err != nil {
			return err
		}
	}
	return nil
}

// Response is the outcome of a command.
type Response struct {
	fc.Rsp
	Data []byte // Data-In, placed by relative offset
	// Bursts are the BURST_LENs of the exchange's FCP_XFER_RDYs;
	// DataFrames and MaxFrame count its Data-In frames and the largest.
	Bursts     []uint32
	DataFrames int
	MaxFrame   int
}

// Command runs one SCSI command to completion: Data-Out on each
// FCP_XFER_RDY (out must hold c.DataLn bytes for a write), Data-In
// gathered by relative offset.
func (in *Initiator) Command(ctx context.Context, c *fc.Cmnd, out []byte) (Response, error) {
	ox, err := in.SendCmnd(ctx, c)
	if err != nil {
		return Response{}, err
	}
	return in.Finish(ctx, ox, out)
}

// Finish drives an exchange started with SendCmnd until its FCP_RSP.
func (in *Initiator) Finish(ctx context.Context, ox uint16, out []byte) (Response, error) {
	var r Response
	for {
		f, err := in.Await(ctx, OnExchange(ox))
		if err != nil {
			return r, err
		}
		switch f.RCtl {
		case fc.RCtlFCPXferRdy:
			ro, burst, err := fc.ParseXferRdy(f.Payload)
			if err != nil {
				return r, err
			}
			if uint64(ro)+uint64(burst) > uint64(len(out)) {
				return r, fmt.Errorf("loopback: FCP_XFER_RDY for %d+%d beyond %d bytes", ro, burst, len(out))
			}
			r.Bursts = append(r.Bursts, burst)
			if err := in.SendData(ctx, ox, f.RXID, ro, out[ro:ro+burst]); err != nil {
				return r, err
			}
		case fc.RCtlFCPData:
			if len(f.Payload) > in.RxSize {
				return r, fmt.Errorf("loopback: FCP_DATA frame of %d bytes beyond our receive size %d", len(f.Payload), in.RxSize)
			}
			r.DataFrames++
			r.MaxFrame = max(r.MaxFrame, len(f.Payload))
			end := int(f.Param) + len(f.Payload)
			if end > len(r.Data) {
				r.Data = append(r.Data, make([]byte, end-len(r.Data))...)
			}
			copy(r.Data[f.Param:], f.Payload)
		case fc.RCtlFCPRsp:
			rsp, err := fc.ParseRsp(f.Payload)
			if err != nil {
				return r, err
			}
			rsp.Sense = append([]byte(nil), rsp.Sense...)
			r.Rsp = rsp
			return r, nil
		default:
			return r, fmt.Errorf("loopback: unexpected R_CTL 0x%02x on exchange %#x", f.RCtl, ox)
		}
	}
}

// ABTS aborts exchange (ox, rx) and returns the BA_ACC or BA_RJT frame.
func (in *Initiator) ABTS(ctx context.Context, ox, rx uint16) (fc.Frame, error) {
	if err := in.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlABTS, Type: fc.TypeBLS,
		FCtl: fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: ox, RXID: rx}}); err != nil {
		return fc.Frame{}, err
	}
	return in.Await(ctx, func(f *fc.Frame) bool {
		return f.OXID == ox && (f.RCtl == fc.RCtlBAACC || f.RCtl == fc.RCtlBARJT)
	})
}

// TMF sends a task management function on lun and returns the FCP_RSP.
func (in *Initiator) TMF(ctx context.Context, lun [8]byte, flag byte) (fc.Rsp, error) {
	r, err := in.Command(ctx, &fc.Cmnd{LUN: lun, TMF: flag, Attr: scsi.TaskSimple}, nil)
	return r.Rsp, err
}
