package fc_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/scsi"
)

// TestBurstAndFramesFollowLogin: the FCP_XFER_RDY bursts of a write and
// the FCP_DATA frames of a read follow what the logins negotiated — the
// initiator's receive size, the adapter's largest payload and
// Config.MaxBurst — and the data round-trips.
func TestBurstAndFramesFollowLogin(t *testing.T) {
	const k = 1024
	tests := []struct {
		name       string
		adapter    int    // adapter's largest payload
		iniRx      int    // initiator's PLOGI receive data field size
		maxBurst   uint32 // Config.MaxBurst (0: default 256 KiB)
		size       int    // bytes written then read
		wantFrame  int    // negotiated frame payload (RemotePorts)
		wantBursts []uint32
	}{
		{"standard frames, default burst", fc.MaxPayload, fc.MaxPayload, 0, 600 * k, 2112,
			[]uint32{256 * k, 256 * k, 88 * k}},
		{"initiator receives 1 KiB", fc.MaxPayload, 1024, 0, 300 * k, 1024,
			[]uint32{256 * k, 44 * k}},
		{"initiator receives 600: block-aligned bursts", fc.MaxPayload, 600, 0, 300 * k, 600,
			[]uint32{256 * k, 44 * k}},
		{"small adapter", 1024, fc.MaxPayload, 0, 300 * k, 1024,
			[]uint32{256 * k, 44 * k}},
		// 100000 rounded down to whole 2048-byte frames (2112 as libfc
		// sends them): 48 frames.
		{"burst cap rounded to frames", fc.MaxPayload, fc.MaxPayload, 100000, 200 * k, 2112,
			[]uint32{98304, 98304, 200*k - 2*98304}},
		// Frames under 512 bytes are the unit themselves: 333 frames of 300.
		{"tiny frames", fc.MaxPayload, 300, 100000, 128 * k, 300,
			[]uint32{99900, 128*k - 99900}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvSized(t, fc.Config{MaxBurst: tc.maxBurst}, tc.adapter)
			e.ini.RxSize = tc.iniRx
			e.login(t)
			rps := e.port.RemotePorts()
			if len(rps) != 1 || rps[0].FrameSize != tc.wantFrame || rps[0].Burst != tc.wantBursts[0] {
				t.Fatalf("remote port %+v, want frame %d burst %d", rps, tc.wantFrame, tc.wantBursts[0])
			}
			data := pattern(tc.size, 0x5a)
			blocks := uint16(tc.size / blockLen)
			w := e.cmd(t, e.ini, write10(8, blocks, uint32(tc.size)), data)
			if w.Status != scsi.StatusGood || w.RspValid || !slices.Equal(w.Bursts, tc.wantBursts) {
				t.Fatalf("WRITE: status %v rsp %v/%#x bursts %v, want %v", w.Status, w.RspValid, w.RspCode, w.Bursts, tc.wantBursts)
			}
			r := e.cmd(t, e.ini, read10(8, blocks, uint32(tc.size)), nil)
			if r.Status != scsi.StatusGood || !bytes.Equal(r.Data, data) {
				t.Fatalf("READ: status %v, %d bytes, equal %v", r.Status, len(r.Data), bytes.Equal(r.Data, data))
			}
			wantFrames := (tc.size + tc.wantFrame - 1) / tc.wantFrame
			if r.MaxFrame != tc.wantFrame || r.DataFrames != wantFrames {
				t.Fatalf("READ in %d frames of at most %d bytes, want %d of %d", r.DataFrames, r.MaxFrame, wantFrames, tc.wantFrame)
			}
		})
	}
}

// TestDataOutFrameBeyondReceiveSize: a Data-Out frame larger than the
// receive size our PLOGI announced fails the write (CHECK CONDITION,
// ABORTED COMMAND: the initiator retries), and nothing of it reaches the LU.
func TestDataOutFrameBeyondReceiveSize(t *testing.T) {
	e := newEnvSized(t, fc.Config{}, 1024)
	e.login(t)
	ctx := ctxT(t)
	before := e.cmd(t, e.ini, read10(0, 4, 2048), nil).Data
	ox, err := e.ini.SendCmnd(ctx, write10(0, 4, 2048))
	if err != nil {
		t.Fatal(err)
	}
	xr, err := e.ini.Await(ctx, func(f *fc.Frame) bool { return f.OXID == ox && f.RCtl == fc.RCtlFCPXferRdy })
	if err != nil {
		t.Fatal(err)
	}
	if ro, burst, err := fc.ParseXferRdy(xr.Payload); err != nil || ro != 0 || burst != 2048 {
		t.Fatalf("FCP_XFER_RDY %d+%d: %v", ro, burst, err)
	}
	// One 2048-byte frame where our PLOGI said 1024.
	if err := e.ini.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPData, Type: fc.TypeFCP,
		FCtl: fc.FCtlRelOffset | fc.FCtlEndSeq | fc.FCtlSeqInit, OXID: ox, RXID: xr.RXID}, Payload: pattern(2048, 1)}); err != nil {
		t.Fatal(err)
	}
	r, err := e.ini.Finish(ctx, ox, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != scsi.StatusCheckCondition || senseKey(r.Sense) != scsi.KeyAbortedCommand {
		t.Fatalf("oversized Data-Out frame: %+v", r.Rsp)
	}
	if after := e.cmd(t, e.ini, read10(0, 4, 2048), nil).Data; !bytes.Equal(after, before) {
		t.Fatal("the failed write changed the LU")
	}
}

// TestPRLIServiceParameters: our PRLI answer offers the target function
// with READ FCP_XFER_RDY DISABLED and clears what we do not do (WRITE
// FCP_XFER_RDY DISABLED, data overlay, confirmed completion, retry), so a
// write still waits for FCP_XFER_RDY; a port without the initiator
// function gets no image pair.
func TestPRLIServiceParameters(t *testing.T) {
	const (
		writeXRdyDis = 0x01
		readXRdyDis  = 0x02
		target       = 0x10
		initiator    = 0x20
		overlay      = 0x40
		confirmed    = 0x80
		retry        = 0x100
	)
	tests := []struct {
		name      string
		spp       uint32
		wantResp  byte // PRLI page response code (flags bits 3..0)
		wantPair  bool
		wantSess  bool
		wantParam uint32
	}{
		{"initiator", initiator | readXRdyDis, 0x01, true, true, target | readXRdyDis},
		{"initiator asking for everything", initiator | readXRdyDis | writeXRdyDis | overlay | confirmed | retry,
			0x01, true, true, target | readXRdyDis},
		{"target only", target | readXRdyDis, 0x05, false, false, target | readXRdyDis},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fc.Config{})
			ctx := ctxT(t)
			e.ini.SPP = tc.spp
			if _, err := e.ini.PLOGI(ctx); err != nil {
				t.Fatal(err)
			}
			pg, err := e.ini.PRLI(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pg.Flags&0x0f != tc.wantResp || (pg.Flags&0x20 != 0) != tc.wantPair || pg.Params != tc.wantParam {
				t.Fatalf("PRLI answer %+v", pg)
			}
			rps := e.port.RemotePorts()
			if len(rps) != 1 || rps[0].Initiator != tc.wantSess {
				t.Fatalf("remote ports %+v", rps)
			}
			if !tc.wantSess {
				return
			}
			if rps[0].ServiceParams != tc.spp {
				t.Fatalf("recorded service parameters %#x, want %#x", rps[0].ServiceParams, tc.spp)
			}
			e.cmd(t, e.ini, tur(), nil) // unit attention
			w := e.cmd(t, e.ini, write10(0, 8, 4096), pattern(4096, 3))
			if w.Status != scsi.StatusGood || len(w.Bursts) != 1 {
				t.Fatalf("WRITE: %+v bursts %v", w.Rsp, w.Bursts)
			}
		})
	}
}
