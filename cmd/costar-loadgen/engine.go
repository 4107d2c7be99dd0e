package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"time"

	"github.com/costar-project/costar/internal/initiator"
)

// engine runs one session's commands from one goroutine, the way
// libiscsi's iscsi-perf does: responses are read through a buffer, each
// completion queues the slot's next command, and the queue goes out in
// one write once no whole PDU is left to read. The first loadgen ran a
// goroutine per command on initiator.Session (a write and two reads per
// command, a wake-up per completion) and took 14.7 CPU s per million 4 KiB
// reads where iscsi-perf takes 6: on a 2-core machine the client then
// took the CPU a faster target would have used, and squeezed every ratio
// toward 1 (BENCHMARKS.md, issue 14).
type engine struct {
	raw      *initiator.Raw
	o        options
	lun      [8]byte
	bsz      uint32
	span     uint64 // commands of -bs that fit the LU
	deadline time.Time
	rng      *rand.Rand
	cursor   uint64 // next sequential command (per session)
	ss       *session
	c        *counts

	br      *bufio.Reader
	out     []byte   // PDUs queued for the next write
	hdr     [48]byte // the PDU being read
	scratch []byte   // data segments that must be looked at
	wbuf    []byte   // every write's data
	slots   []slot
	waiting []int // slots held back by a closed CmdSN window
	busy    int   // slots in flight
	pinged  bool  // a NOP-Out asks for the window (nothing in flight)
	// loggedOut: the Logout Response arrived.
	loggedOut bool

	cmdSN, maxCmdSN, expStatSN uint32
}

// slot is one of the session's -qd commands; its index is the ITT.
type slot struct {
	busy  bool
	write bool
	lba   uint64
	got   uint32 // Data-In bytes so far
	t0    time.Time
}

// iSCSI opcodes and fields the engine uses (RFC 7143 11).
const (
	opNopOut     = 0x00
	opSCSICmd    = 0x01
	opDataOut    = 0x05
	opLogoutReq  = 0x06
	opNopIn      = 0x20
	opSCSIResp   = 0x21
	opDataIn     = 0x25
	opLogoutResp = 0x26
	opR2T        = 0x31
	opAsyncMsg   = 0x32
	opReject     = 0x3f
	flagImmed    = 0x40
	reservedTag  = 0xffffffff
	pingITT      = 0x10000 // above every slot's ITT (-qd <= 256)
	logoutITT    = 0x10001
	flushAt      = 256 << 10 // write the queue out at this size even mid-batch
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newEngine(raw *initiator.Raw, o options, lun uint64, bsz uint32, span uint64, deadline time.Time,
	seed uint64, ss *session, c *counts) *engine {
	e := &engine{raw: raw, o: o, bsz: bsz, span: span, deadline: deadline, ss: ss, c: c,
		rng:     rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))),
		br:      bufio.NewReaderSize(raw.Conn, 256<<10),
		scratch: make([]byte, raw.MRDSL+8), wbuf: make([]byte, o.bs), slots: make([]slot, o.qd),
		cmdSN: raw.CmdSN, maxCmdSN: raw.MaxCmdSN, expStatSN: raw.ExpStatSN}
	binary.BigEndian.PutUint64(e.lun[:], initiator.LUNField(lun))
	for i := range e.wbuf {
		e.wbuf[i] = pattern(i, seed)
	}
	return e
}

// pattern is byte i of a session's write data: it differs from block to
// block (every 512 bytes), so data sent from the wrong offset shows.
func pattern(i int, seed uint64) byte { return byte(i*7) ^ byte(i>>9) ^ byte(i>>17) ^ byte(seed) }

// run keeps -qd commands in flight until the deadline, waits for the
// last ones and logs out. Every command and its outcome is counted.
func (e *engine) run() error {
	// A target that stops answering ends the run 30 s after the deadline.
	_ = e.raw.Conn.SetDeadline(e.deadline.Add(30 * time.Second))
	defer e.raw.Conn.Close()
	for i := range e.slots {
		e.issue(i)
	}
	for {
		if err := e.flushIfIdle(); err != nil {
			return err
		}
		if e.busy == 0 && len(e.waiting) == 0 { // (flushIfIdle drops the waiting after the deadline)
			return e.logout()
		}
		if err := e.readOne(); err != nil {
			return err
		}
	}
}

// flushIfIdle writes the queue when the next read would wait for the
// target (no whole PDU is buffered), or when it has grown large.
func (e *engine) flushIfIdle() error {
	if len(e.waiting) > 0 && e.busy == 0 && !e.pinged {
		if time.Now().Before(e.deadline) {
			e.ping() // the window is shut and nothing in flight will open it
		} else {
			e.waiting = nil // the run is over: nothing more to issue
		}
	}
	if len(e.out) == 0 || len(e.out) < flushAt && e.wholePDUBuffered() {
		return nil
	}
	_, err := e.raw.Conn.Write(e.out)
	e.out = e.out[:0]
	if err != nil {
		return fmt.Errorf("loadgen: write: %w", err)
	}
	return nil
}

func (e *engine) wholePDUBuffered() bool {
	n := e.br.Buffered()
	if n < 48 {
		return false
	}
	h, _ := e.br.Peek(48)
	return n >= e.pduLen(h)
}

// pduLen is the length on the wire of the PDU whose header is h.
func (e *engine) pduLen(h []byte) int {
	n := 48 + int(h[4])*4 + (int(h[5])<<16|int(h[6])<<8|int(h[7])+3)&^3
	if e.raw.HeaderDigest {
		n += 4
	}
	if e.raw.DataDigest && h[5]|h[6]|h[7] != 0 {
		n += 4
	}
	return n
}

// issue starts slot i's next command, or holds it while the CmdSN window
// is shut. Past the deadline the slot stays idle.
func (e *engine) issue(i int) {
	if !time.Now().Before(e.deadline) {
		return
	}
	if !initiator.SerialLE(e.cmdSN, e.maxCmdSN) {
		e.waiting = append(e.waiting, i)
		return
	}
	s := &e.slots[i]
	var n uint64
	switch e.o.rw {
	case "read", "write":
		n = e.cursor % e.span
		e.cursor++
	default:
		n = e.rng.Uint64N(e.span)
	}
	s.lba = n * uint64(e.o.bs) / uint64(e.bsz)
	s.write = e.o.rw == "write" || e.o.rw == "randwrite" || e.o.rw == "randrw" && e.rng.IntN(100) >= e.o.rwmix
	s.got, s.busy, s.t0 = 0, true, time.Now()
	e.busy++

	var h [48]byte
	h[0] = opSCSICmd
	h[1] = 0x80 | 0x01 // Final (no unsolicited Data-Out follows the immediate data), SIMPLE
	copy(h[8:16], e.lun[:])
	binary.BigEndian.PutUint32(h[16:], uint32(i))
	binary.BigEndian.PutUint32(h[20:], uint32(e.o.bs))
	binary.BigEndian.PutUint32(h[24:], e.cmdSN)
	binary.BigEndian.PutUint32(h[28:], e.expStatSN)
	cdb := h[32:48]
	cdb[0] = 0x88 // READ (16)
	var imm []byte
	if s.write {
		h[1] |= 0x20
		cdb[0] = 0x8a // WRITE (16)
		if e.o.fua {
			cdb[1] |= 0x08
		}
		if e.raw.ImmediateData {
			imm = e.wbuf[:min(uint32(len(e.wbuf)), e.raw.FirstBurstLength, e.raw.TargetMRDSL)]
		}
	} else {
		h[1] |= 0x40
	}
	binary.BigEndian.PutUint64(cdb[2:], s.lba)
	binary.BigEndian.PutUint32(cdb[10:], uint32(e.o.bs)/e.bsz)
	e.cmdSN++
	e.appendPDU(&h, imm)
}

// appendPDU queues a PDU with its digests.
func (e *engine) appendPDU(h *[48]byte, data []byte) {
	e.out = initiator.AppendPDU(e.out, h, data, e.raw.HeaderDigest, e.raw.DataDigest)
}

// readOne reads and handles one PDU from the target.
func (e *engine) readOne() error {
	h := &e.hdr
	if _, err := io.ReadFull(e.br, h[:]); err != nil {
		return fmt.Errorf("loadgen: read: %w", err)
	}
	if e.raw.HeaderDigest || h[4] != 0 {
		if err := e.checkHeader(); err != nil {
			return err
		}
	}
	op := h[0] & 0x3f
	n := int(h[5])<<16 | int(h[6])<<8 | int(h[7])
	if n > int(e.raw.MRDSL) {
		return fmt.Errorf("loadgen: the target sent a %d-byte data segment (we accept %d)", n, e.raw.MRDSL)
	}
	// Data-In is counted, not kept; other segments are looked at.
	var data []byte
	if op == opDataIn && !e.raw.DataDigest {
		if _, err := e.br.Discard((n + 3) &^ 3); err != nil {
			return fmt.Errorf("loadgen: read: %w", err)
		}
	} else if n > 0 {
		var err error
		if data, err = e.readData(n); err != nil {
			return err
		}
	}
	e.window()
	itt := binary.BigEndian.Uint32(h[16:])
	switch op {
	case opDataIn:
		return e.dataIn(itt, n)
	case opSCSIResp:
		e.statSN()
		if h[2] != 0 {
			return fmt.Errorf("loadgen: ITT %#x: SCSI response code %#x", itt, h[2])
		}
		return e.complete(itt, h[3], data)
	case opR2T:
		return e.r2t(itt)
	case opNopIn:
		if itt == pingITT {
			e.statSN()
			e.pinged = false
			for _, i := range e.take() {
				e.issue(i)
			}
		} else if ttt := binary.BigEndian.Uint32(h[20:]); itt == reservedTag && ttt != reservedTag {
			e.nopOut(ttt, data) // the target pings us
		}
	case opLogoutResp:
		e.statSN()
		e.loggedOut = true
	case opAsyncMsg:
		e.statSN()
	case opReject:
		e.statSN()
		return fmt.Errorf("loadgen: the target rejected a PDU (reason %#x)", h[2])
	default:
		return fmt.Errorf("loadgen: unexpected PDU opcode %#x", op)
	}
	return nil
}

// checkHeader reads (and skips) any AHS and checks the header digest.
func (e *engine) checkHeader() error {
	ahs := make([]byte, int(e.hdr[4])*4)
	if _, err := io.ReadFull(e.br, ahs); err != nil {
		return fmt.Errorf("loadgen: read: %w", err)
	}
	if !e.raw.HeaderDigest {
		return nil
	}
	var d [4]byte
	if _, err := io.ReadFull(e.br, d[:]); err != nil {
		return fmt.Errorf("loadgen: read: %w", err)
	}
	sum := crc32.Update(crc32.Checksum(e.hdr[:], castagnoli), castagnoli, ahs)
	if got := binary.LittleEndian.Uint32(d[:]); got != sum {
		return fmt.Errorf("loadgen: header digest %#x, want %#x", got, sum)
	}
	return nil
}

// readData reads a data segment of n bytes with its padding and digest.
func (e *engine) readData(n int) ([]byte, error) {
	padded := (n + 3) &^ 3
	m := padded
	if e.raw.DataDigest {
		m += 4
	}
	b := e.scratch[:m]
	if _, err := io.ReadFull(e.br, b); err != nil {
		return nil, fmt.Errorf("loadgen: read: %w", err)
	}
	if e.raw.DataDigest {
		if got, want := binary.LittleEndian.Uint32(b[padded:]), crc32.Checksum(b[:padded], castagnoli); got != want {
			return nil, fmt.Errorf("loadgen: data digest %#x, want %#x", got, want)
		}
	}
	return b[:n], nil
}

// window records ExpCmdSN/MaxCmdSN (RFC 7143 4.2.2.1) and issues the
// commands a wider window lets out.
func (e *engine) window() {
	exp := binary.BigEndian.Uint32(e.hdr[28:])
	maxSN := binary.BigEndian.Uint32(e.hdr[32:])
	if !initiator.SerialLE(exp-1, maxSN) || !initiator.SerialLE(e.maxCmdSN, maxSN) {
		return
	}
	e.maxCmdSN = maxSN
	if len(e.waiting) > 0 && initiator.SerialLE(e.cmdSN, maxSN) {
		for _, i := range e.take() {
			e.issue(i)
		}
	}
}

func (e *engine) take() []int {
	w := e.waiting
	e.waiting = nil
	return w
}

func (e *engine) statSN() {
	if sn := binary.BigEndian.Uint32(e.hdr[24:]); initiator.SerialLE(e.expStatSN, sn+1) {
		e.expStatSN = sn + 1
	}
}

// slotOf is the busy slot an ITT names.
func (e *engine) slotOf(itt uint32) (*slot, error) {
	if itt >= uint32(len(e.slots)) || !e.slots[itt].busy {
		return nil, fmt.Errorf("loadgen: a PDU for ITT %#x, which is not in flight", itt)
	}
	return &e.slots[itt], nil
}

func (e *engine) dataIn(itt uint32, n int) error {
	s, err := e.slotOf(itt)
	if err != nil {
		return err
	}
	off := binary.BigEndian.Uint32(e.hdr[40:])
	if s.write || off != s.got || uint64(off)+uint64(n) > uint64(e.o.bs) {
		return fmt.Errorf("loadgen: Data-In for ITT %#x at offset %d (+%d) after %d bytes", itt, off, n, s.got)
	}
	s.got += uint32(n)
	if e.hdr[1]&0x01 == 0 { // no status yet
		return nil
	}
	e.statSN()
	return e.complete(itt, e.hdr[3], nil)
}

// complete counts a command's outcome and starts the slot's next one.
func (e *engine) complete(itt uint32, status byte, sense []byte) error {
	s, err := e.slotOf(itt)
	if err != nil {
		return err
	}
	now := time.Now()
	s.busy = false
	e.busy--
	switch {
	case status != 0:
		e.c.fail(fmt.Errorf("LBA %d: status %#x, sense % x", s.lba, status, sense))
	case !s.write && s.got != uint32(e.o.bs):
		e.c.fail(fmt.Errorf("LBA %d: GOOD after %d of %d bytes of Data-In", s.lba, s.got, e.o.bs))
	default:
		e.ss.h.Add(now.Sub(s.t0))
		if s.write {
			e.c.writes.Add(1)
		} else {
			e.c.reads.Add(1)
		}
	}
	e.issue(int(itt))
	return nil
}

// r2t answers an R2T with the Data-Out it solicits.
func (e *engine) r2t(itt uint32) error {
	s, err := e.slotOf(itt)
	if err != nil {
		return err
	}
	ttt := binary.BigEndian.Uint32(e.hdr[20:])
	off := binary.BigEndian.Uint32(e.hdr[40:])
	n := binary.BigEndian.Uint32(e.hdr[44:])
	if !s.write || n == 0 || uint64(off)+uint64(n) > uint64(len(e.wbuf)) {
		return fmt.Errorf("loadgen: R2T for ITT %#x: offset %d length %d", itt, off, n)
	}
	for sn, end := uint32(0), off+n; off < end; sn++ {
		k := min(end-off, e.raw.TargetMRDSL)
		var h [48]byte
		h[0] = opDataOut
		if off+k == end {
			h[1] = 0x80
		}
		copy(h[8:16], e.lun[:])
		binary.BigEndian.PutUint32(h[16:], itt)
		binary.BigEndian.PutUint32(h[20:], ttt)
		binary.BigEndian.PutUint32(h[28:], e.expStatSN)
		binary.BigEndian.PutUint32(h[36:], sn)
		binary.BigEndian.PutUint32(h[40:], off)
		e.appendPDU(&h, e.wbuf[off:off+k])
		off += k
	}
	return nil
}

// nopOut answers the target's NOP-In ping (its data echoed).
func (e *engine) nopOut(ttt uint32, data []byte) {
	var h [48]byte
	h[0] = flagImmed | opNopOut
	h[1] = 0x80
	copy(h[8:16], e.hdr[8:16])
	binary.BigEndian.PutUint32(h[16:], reservedTag)
	binary.BigEndian.PutUint32(h[20:], ttt)
	binary.BigEndian.PutUint32(h[24:], e.cmdSN)
	binary.BigEndian.PutUint32(h[28:], e.expStatSN)
	e.appendPDU(&h, data)
}

// ping sends an immediate NOP-Out; its NOP-In carries a fresh MaxCmdSN.
func (e *engine) ping() {
	var h [48]byte
	h[0] = flagImmed | opNopOut
	h[1] = 0x80
	binary.BigEndian.PutUint32(h[16:], pingITT)
	binary.BigEndian.PutUint32(h[20:], reservedTag)
	binary.BigEndian.PutUint32(h[24:], e.cmdSN)
	binary.BigEndian.PutUint32(h[28:], e.expStatSN)
	e.appendPDU(&h, nil)
	e.pinged = true
}

// logout closes the session; a target that does not answer within 5 s
// has its connection dropped.
func (e *engine) logout() error {
	var h [48]byte
	h[0] = flagImmed | opLogoutReq
	h[1] = 0x80 // close the session
	binary.BigEndian.PutUint32(h[16:], logoutITT)
	binary.BigEndian.PutUint32(h[24:], e.cmdSN)
	binary.BigEndian.PutUint32(h[28:], e.expStatSN)
	e.appendPDU(&h, nil)
	_ = e.raw.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := e.raw.Conn.Write(e.out); err != nil {
		return fmt.Errorf("loadgen: logout: %w", err)
	}
	for !e.loggedOut {
		if err := e.readOne(); err != nil {
			return fmt.Errorf("loadgen: logout: %w", err)
		}
	}
	return nil
}
