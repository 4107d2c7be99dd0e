package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// dataOutGate is a loopback TCP proxy in front of a target portal that
// can hold the initiator's Data-Out PDUs (every other PDU passes): a WRITE
// larger than the first burst is then admitted by the target (ALUA checked,
// handler waiting for its data after the R2T) and stays there until the
// gate opens.
type dataOutGate struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool // hold Data-Out
	held   [][]byte
	toT    net.Conn // the target side of the one connection
	heldCh chan struct{}
}

func newDataOutGate(t *testing.T, target string) *dataOutGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &dataOutGate{ln: ln, target: target, heldCh: make(chan struct{}, 1)}
	t.Cleanup(func() { ln.Close() })
	go g.accept(t)
	return g
}

func (g *dataOutGate) accept(t *testing.T) {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		g.mu.Lock()
		g.toT = s
		g.mu.Unlock()
		go func() { _, _ = io.Copy(c, s) }()
		go g.forward(c, s)
	}
}

// forward copies initiator PDUs to the target one at a time (no digests:
// BHS, AHS, data segment padded to 4 bytes), holding Data-Out (0x05)
// while the gate is closed.
func (g *dataOutGate) forward(from, to net.Conn) {
	for {
		bhs := make([]byte, 48)
		if _, err := io.ReadFull(from, bhs); err != nil {
			return
		}
		ahs := int(bhs[4]) * 4
		dlen := int(binary.BigEndian.Uint32(bhs[4:8]) & 0xffffff)
		rest := make([]byte, ahs+(dlen+3)&^3)
		if _, err := io.ReadFull(from, rest); err != nil {
			return
		}
		pdu := append(bhs, rest...)
		g.mu.Lock()
		if g.closed && bhs[0]&0x3f == 0x05 {
			g.held = append(g.held, pdu)
			g.mu.Unlock()
			select {
			case g.heldCh <- struct{}{}:
			default:
			}
			continue
		}
		_, err := to.Write(pdu)
		g.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (g *dataOutGate) hold() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// release sends the held Data-Out PDUs on and opens the gate.
func (g *dataOutGate) release() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.held {
		if _, err := g.toT.Write(p); err != nil {
			return err
		}
	}
	g.held, g.closed = nil, false
	return nil
}

// TestClusterFencedLateWrite: the owner admits a WRITE (its Data-Out
// held by a proxy, so the command is past the ALUA check and waiting in
// the handler), then freezes (SIGSTOP) past its self-fence deadline. The
// other node takes the LU over, records its newer fencing token and
// writes. When the old owner resumes, its data arrives and the write must
// be refused with NOT READY / TARGET PORT IN STANDBY STATE by the fencing
// check, leaving the new owner's data on the shared file.
func TestClusterFencedLateWrite(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	n := startTwoNodes(ctx, t, 1, 64<<20)
	da, guid := n.a, n.guid
	portalB := n.targetOnB(t)

	// Make a the owner (it may have lost the first campaign to b).
	if own := ownerOf(t, da, guid, ""); own.Owner != "a" {
		da.OK("stmfadm", "move-lu", guid, "a")
	}
	own := ownerOf(t, da, guid, "")
	if own.Owner != "a" {
		t.Fatalf("owner %s after move-lu to a", own.Owner)
	}
	gate := newDataOutGate(t, da.Portal)
	sa := harness.Login(ctx, t, gate.ln.Addr().String(), iqnA, testInit, 1)
	sb := harness.Login(ctx, t, portalB, iqnB, testInit, 2)

	const lba, blocks = 64, 1024 // 512 KiB: more than the 256 KiB first burst, so an R2T follows
	old := bytes.Repeat(pattern(0xa1), blocks)
	late := bytes.Repeat(pattern(0xa2), blocks)
	newer := bytes.Repeat(pattern(0xb1), blocks)
	if r := cmd(ctx, t, sa, initiator.Write16(lba, blocks), old, 0); r.Status != initiator.StatusGood {
		t.Fatalf("WRITE on owner a: %v", r)
	}

	gate.hold()
	p, err := sa.Start(ctx, 0, initiator.Write16(lba, blocks), late, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.heldCh: // a sent the R2T: the WRITE is admitted and waits for its data
	case <-time.After(10 * time.Second):
		t.Fatal("no Data-Out to hold within 10s")
	}
	if err := syscall.Kill(da.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(da.PID(), syscall.SIGCONT)
		}
	}
	defer resume()

	// b takes over once a's lease expired, then writes.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := cmd(ctx, t, sb, initiator.Write16(lba, blocks), newer, 0)
		if r.Status == initiator.StatusGood {
			break
		}
		if !isStandby(r) {
			t.Fatalf("WRITE on b during the takeover: %v", r)
		}
		if time.Now().After(end) {
			t.Fatal("b did not take over within 30s of a's SIGSTOP")
		}
	}
	t.Logf("b serves %v after a was frozen", time.Since(frozen).Round(time.Millisecond))

	// a resumes with the write's data arriving.
	if err := gate.release(); err != nil {
		t.Fatal(err)
	}
	resume()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := p.Wait(wctx)
	if err != nil {
		t.Fatalf("the late WRITE on a: %v", err)
	}
	if !isStandby(r) {
		t.Fatalf("the late WRITE on a: %v, want NOT READY / TARGET PORT IN STANDBY STATE (02/04/0B)", r)
	}
	if rd := cmd(ctx, t, sb, initiator.Read16(lba, blocks), nil, blocks*blockSize); rd.Status != initiator.StatusGood || !bytes.Equal(rd.Data, newer) {
		t.Fatalf("READ on b: %v; the shared file does not hold b's data (a's late write landed: %v)",
			rd, bytes.Equal(rd.Data, late))
	}
	waitFor(t, "node a logs the fencing refusal", func() bool {
		return strings.Contains(da.Log(), "a newer owner fenced this LU")
	})
}
