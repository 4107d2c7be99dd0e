package fc_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/scsi"
)

// FuzzParse feeds arbitrary bytes to every frame and payload parser: no
// panic, and what parses stays inside its input.
func FuzzParse(f *testing.F) {
	f.Add(fc.AppendPLOGI(nil, iniWWPN, iniWWNN, 2048))
	f.Add(fc.AppendPRLI(nil, fc.ELSPRLI, []fc.PRLIPage{{Type: 8, Flags: 0x20, Params: 0x22}}))
	f.Add(fc.AppendRSCN(nil, []fc.RSCNPage{{ID: 0x010200}, {Format: 1, ID: 0x010000}}))
	f.Add(fc.AppendCmnd(nil, &fc.Cmnd{CDB: make([]byte, 32), Write: true, DataLn: 4096}))
	f.Add(fc.AppendRsp(nil, &fc.Rsp{Status: scsi.StatusCheckCondition, Sense: make([]byte, 18), RspValid: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fr, err := fc.ParseFrame(b); err == nil && len(fr.Payload) != len(b)-fc.HeaderLen {
			t.Fatalf("payload %d of %d", len(fr.Payload), len(b))
		}
		if c, err := fc.ParseCmnd(b); err == nil && (len(c.CDB) < 16 || len(c.CDB)+16 > len(b)) {
			t.Fatalf("CDB of %d bytes from %d", len(c.CDB), len(b))
		}
		if pages, err := fc.ParsePRLI(b); err == nil && len(pages)*16+4 > len(b) {
			t.Fatalf("%d PRLI pages from %d bytes", len(pages), len(b))
		}
		if pages, err := fc.ParseRSCN(b); err == nil && len(pages)*4+4 > len(b) {
			t.Fatalf("%d RSCN pages from %d bytes", len(pages), len(b))
		}
		if r, err := fc.ParseRsp(b); err == nil && len(r.Sense)+24 > len(b) {
			t.Fatalf("sense of %d bytes from %d", len(r.Sense), len(b))
		}
		_, _ = fc.ParsePLOGI(b)
		_, _ = fc.ParseADISC(b)
		_, _, _ = fc.ParseLOGO(b)
		_, _, _ = fc.ParseXferRdy(b)
	})
}

// maxFuzzFrames bounds one program.
const maxFuzzFrames = 64

// FuzzPortFrames plays a program of frames from a logged-in initiator at
// a live target port: ELS, ABTS, FCP_CMND, FCP_DATA built around fuzzed
// payloads, and raw fuzzed frames. After it the initiator logs out: no
// panic, no session, exchange or goroutine may remain.
func FuzzPortFrames(f *testing.F) {
	rec := func(kind byte, ox uint16, p []byte) []byte {
		b := []byte{kind, byte(ox >> 8), byte(ox), byte(len(p))}
		return append(b, p...)
	}
	wr := fc.AppendCmnd(nil, write10(0, 2, 1024))
	f.Add(append(rec(2, 5, wr), rec(3|1<<3, 5, make([]byte, 200))...))
	f.Add(append(rec(2, 6, wr), rec(1|1<<3, 6, nil)...))
	f.Add(append(rec(2, 7, wr), rec(0, 1, fc.AppendLOGO(nil, iniID, iniWWPN))...))
	f.Add(append(rec(2, 8, fc.AppendCmnd(nil, &fc.Cmnd{TMF: fc.TMFLUNReset})), rec(0, 2, fc.AppendPRLI(nil, fc.ELSPRLO, []fc.PRLIPage{{Type: 8}}))...))
	f.Add(rec(4|0x80, 0, make([]byte, 40)))

	e := newEnv(f, fc.Config{MaxBurst: 512})
	f.Fuzz(func(t *testing.T, prog []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in := e.ini
		if err := in.Login(ctx); err != nil {
			t.Fatal(err)
		}
		before := goroutines()
		for n := 0; len(prog) >= 4 && n < maxFuzzFrames; n++ {
			kind, ox := prog[0], binary.BigEndian.Uint16(prog[1:])
			l := min(int(prog[3]), len(prog)-4)
			p := prog[4 : 4+l]
			prog = prog[4+l:]
			rx := uint16(kind >> 3)
			h := fc.Header{OXID: ox, RXID: fc.UnassignedXID}
			switch kind % 5 {
			case 0:
				h.RCtl, h.Type = fc.RCtlELSReq, fc.TypeELS
			case 1:
				h.RCtl, h.Type, h.RXID = fc.RCtlABTS, fc.TypeBLS, rx
			case 2:
				h.RCtl, h.Type = fc.RCtlFCPCmnd, fc.TypeFCP
			case 3:
				h.RCtl, h.Type, h.RXID, h.FCtl, h.Param = fc.RCtlFCPData, fc.TypeFCP, rx, fc.FCtlRelOffset, uint32(ox&0x3ff)
			case 4:
				raw := append([]byte(nil), p...)
				if kind&0x80 != 0 && len(raw) >= fc.HeaderLen {
					copy(raw[1:4], []byte{targetID >> 16, targetID >> 8 & 0xff, targetID & 0xff})
					copy(raw[5:8], []byte{iniID >> 16, iniID >> 8 & 0xff, iniID & 0xff})
				}
				if err := e.ad.Inject(ctx, raw); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := in.Send(ctx, fc.Frame{Header: h, Payload: p}); err != nil {
				t.Fatal(err)
			}
		}
		// An ELS the target does not implement is answered whatever the
		// login state: once it is, every frame before it was handled.
		if _, err := in.ELS(ctx, []byte{0x7e, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := in.ELS(ctx, fc.AppendLOGO(nil, iniID, iniWWPN)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if len(e.fw.Sessions()) == 0 && len(e.port.RemotePorts()) == 0 && goroutines() <= before {
				break
			}
			if time.Now().After(end) {
				buf := make([]byte, 1<<20)
				t.Fatalf("after logout: %d sessions, %d remote ports, goroutines %d before %d after\n%s",
					len(e.fw.Sessions()), len(e.port.RemotePorts()), before, goroutines(), buf[:runtime.Stack(buf, true)])
			}
		}
		for in.Pending() > 0 {
			_, _ = in.Await(cancelled(), func(*fc.Frame) bool { return true })
		}
	})
}

// goroutines counts goroutines other than stmf's idle workers, which
// outlive a task by design (they exit after a second idle).
func goroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "stmf.(*workers).loop") {
			n++
		}
	}
	return n
}
