package fc

// What a remote port's logins negotiate for its exchanges (FC-LS-3 PLOGI
// service parameters, FCP-4 PRLI service parameter page).
//
//   - Frame size: each side announces the largest frame payload it
//     receives (class 3 receive data field size). Our FCP_DATA frames to
//     the remote port are at most its size and our adapter's; its frames
//     to us at most the size we announced (the adapter's). Buffer-to-buffer
//     credit is link-level flow control the adapter (or Ethernet, for
//     FCoE) keeps; it does not shape sequences.
//   - Burst: each FCP_XFER_RDY asks for at most Config.MaxBurst bytes, a
//     whole number of the frames the initiator sends — the negotiated
//     frame size rounded down to 512 bytes as Linux libfc sends them — so
//     no burst ends in a runt frame, and at most one sequence's worth of
//     frames (SEQ_CNT counts 65536).
//   - FCP service parameters: we answer target function only, READ
//     FCP_XFER_RDY DISABLED set (FCP-4 requires it), and none of WRITE
//     FCP_XFER_RDY DISABLED, data overlay, confirmed completion, retry or
//     task retry identification: an initiator asking for them gets them
//     cleared in our answer, so every write waits for FCP_XFER_RDY and
//     Data-Out arrives in order. A page without the initiator function
//     establishes no image pair (nothing would send us commands).

// FCP service parameter bits of PRLI word 3 (FCP-4 table 61).
const (
	sppWriteXRdyDis = 0x0001
	sppReadXRdyDis  = 0x0002
	sppTarget       = 0x0010
	sppInitiator    = 0x0020
	sppDataOverlay  = 0x0040
	sppConfirmed    = 0x0080
	sppRetry        = 0x0100
	sppTaskRetryID  = 0x0200
)

// Our FCP service parameters in a PRLI LS_ACC.
const ourSPP = sppTarget | sppReadXRdyDis

// maxSeqFrames is how many frames one sequence (one burst) can carry.
const maxSeqFrames = 1 << 16

// negotiatedFrame is the largest payload of frames to a remote port that
// receives rx bytes, over an adapter of maxPayload.
func negotiatedFrame(rx, maxPayload int) int { return min(rx, maxPayload) }

// burstFor is the BURST_LEN for a remote port with negotiated frame size
// frame under the configured limit max (see the package comment above).
func burstFor(frame int, max uint32) uint32 {
	unit := uint32(frame)
	if unit > 512 {
		unit &^= 511
	}
	b := min(max, unit*maxSeqFrames)
	if b < unit {
		return b // a cap below one frame is still a cap
	}
	return b - b%unit
}
