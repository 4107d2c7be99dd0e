package iscsi

import (
	"testing"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
)

// abortTMF sends an immediate ABORT TASK for ref/refCmdSN and returns the
// TMF response code.
func (in *initiator) abortTMF(ref, refCmdSN uint32) byte {
	in.t.Helper()
	in.sendAbortTMF(ref, refCmdSN)
	r, _ := in.expect(pdu.OpTaskMgmtResp)
	return r[2]
}

// sendAbortTMF sends an immediate ABORT TASK for ref/refCmdSN.
func (in *initiator) sendAbortTMF(ref, refCmdSN uint32) {
	in.t.Helper()
	var h pdu.Header
	h.SetOpcode(pdu.OpTaskMgmtReq, true)
	h.SetFlags(pdu.FlagFinal | tmfAbortTask)
	h.SetITT(in.nextITT())
	h.SetU32(pdu.OffTTT, ref)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	h.SetU32(pdu.OffExpStatSN, in.expStatSN)
	h.SetU32(pdu.OffRefCmdSN, refCmdSN)
	if err := in.send(&h, nil, nil); err != nil {
		in.t.Fatal(err)
	}
}

// TestAbortTaskPolicy checks both ABORT TASK policies for a task the
// target does not know (RFC 7143 11.5.1), and that a task in flight is
// aborted under either.
func TestAbortTaskPolicy(t *testing.T) {
	type want struct{ completed, gap, beyond, inFlight byte }
	for _, tc := range []struct {
		policy string
		want   want
	}{
		{"", want{tmfRespNoTask, tmfRespComplete, tmfRespNoTask, tmfRespComplete}},
		{AbortFunctionComplete, want{tmfRespComplete, tmfRespComplete, tmfRespComplete, tmfRespComplete}},
		{AbortTaskDoesNotExist, want{tmfRespNoTask, tmfRespComplete, tmfRespNoTask, tmfRespComplete}},
	} {
		t.Run("policy="+tc.policy, func(t *testing.T) {
			env := startServer(t, func(c *Config) { c.AbortCompletedTask = tc.policy })
			in := dial(t, env.addr)
			in.login(testTarget)

			// A task that already completed: its CmdSN is below the window.
			sn := in.cmdSN
			itt := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
			in.wait(nil, itt)
			if got := in.abortTMF(itt, sn); got != tc.want.completed {
				t.Errorf("completed task: response %d, want %d", got, tc.want.completed)
			}

			// A task that never arrived, its CmdSN a hole in the window
			// before the TMF: with the RFC policy the hole is filled and
			// the command queued behind it runs.
			hole := in.cmdSN
			in.cmdSN++
			later := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
			// Filling the hole runs the command behind it, whose response
			// may arrive before the TMF's: responses come in any order.
			in.sendAbortTMF(0xbeef, hole)
			laterDone := false
			for gap := -1; gap < 0; {
				h, _, err := in.recv()
				switch {
				case err != nil:
					t.Fatalf("waiting for the TMF response: %v", err)
				case h.Opcode() == pdu.OpTaskMgmtResp:
					if gap = int(h[2]); byte(gap) != tc.want.gap {
						t.Errorf("lost task: response %d, want %d", gap, tc.want.gap)
					}
				case h.Opcode() == pdu.OpSCSIResp && h.ITT() == later && h[3] == 0:
					laterDone = true
				default:
					t.Fatalf("got %s (ITT %#x, status %#x) while waiting for the TMF response", h.Opcode(), h.ITT(), h[3])
				}
			}
			if tc.policy == AbortFunctionComplete {
				// Fill the hole ourselves.
				saved := in.cmdSN
				in.cmdSN = hole
				in.nopOut(in.nextITT(), pdu.ReservedTag, false, nil)
				in.cmdSN = saved
				in.expect(pdu.OpNOPIn)
			}
			if laterDone && tc.policy == AbortFunctionComplete {
				t.Fatal("the command behind the hole ran before the hole was filled")
			}
			if !laterDone {
				if r := in.wait(nil, later)[later]; r.status != 0 {
					t.Fatalf("command behind the hole: %v", r)
				}
			}
			// The hole's CmdSN is consumed: a late copy is dropped.
			saved := in.cmdSN
			in.cmdSN = hole
			in.scsiCmd([]byte{0}, false, false, 0, nil, false)
			in.cmdSN = saved
			in.nopOut(in.nextITT(), pdu.ReservedTag, true, []byte("x"))
			if h, _ := in.expect(pdu.OpNOPIn); h.U32(pdu.OffExpCmdSN) != in.cmdSN {
				t.Fatalf("ExpCmdSN %d, want %d", h.U32(pdu.OffExpCmdSN), in.cmdSN)
			}

			// RefCmdSN beyond the window.
			if got := in.abortTMF(0xbeef, in.maxCmdSN+10); got != tc.want.beyond {
				t.Errorf("beyond the window: response %d, want %d", got, tc.want.beyond)
			}

			// A task in flight is aborted and never answers.
			sn = in.cmdSN
			slow := in.scsiCmd([]byte{opWait}, false, false, 0, nil, false)
			env.waitStarted(t)
			if got := in.abortTMF(slow, sn); got != tc.want.inFlight {
				t.Errorf("task in flight: response %d, want %d", got, tc.want.inFlight)
			}
			tur := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
			if r := in.wait(nil, tur)[tur]; r.status != 0 {
				t.Fatalf("TUR after abort: %v", r)
			}
			in.logout()
		})
	}
}

func TestAbortPolicyValidation(t *testing.T) {
	c := Config{AbortCompletedTask: "sometimes"}
	if _, err := c.withDefaults(); err == nil {
		t.Fatal("unknown AbortCompletedTask accepted")
	}
	c = Config{}
	o, err := c.withDefaults()
	if err != nil || o.AbortCompletedTask != AbortTaskDoesNotExist || o.DataOutBudget != DefaultDataOutBudget {
		t.Fatalf("defaults: %q %d %v", o.AbortCompletedTask, o.DataOutBudget, err)
	}
}
