// Package initiator is a small iSCSI initiator (RFC 7143) for costar's
// integration tests and benchmarks. It is written independently of
// portprovider/iscsi, so a test sees the target's bytes, not our own
// codec's view of them.
//
// One connection per session, ERL 0, CRC32C header and data digests on
// request (Config.Digests). Several commands may be
// outstanding (the CmdSN window is respected); writes carry immediate data
// and answer R2Ts; ABORT TASK and NOP-Out/NOP-In are supported. It is not
// meant for production use: it trusts nothing from the target (every
// length is bounded) but recovers from nothing either.
package initiator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PDU opcodes.
const (
	opNopOut      = 0x00
	opSCSICmd     = 0x01
	opTMFReq      = 0x02
	opLoginReq    = 0x03
	opDataOut     = 0x05
	opLogoutReq   = 0x06
	opNopIn       = 0x20
	opSCSIResp    = 0x21
	opTMFResp     = 0x22
	opLoginResp   = 0x23
	opDataIn      = 0x25
	opLogoutResp  = 0x26
	opR2T         = 0x31
	opAsyncMsg    = 0x32
	opReject      = 0x3f
	reservedTag   = 0xffffffff
	maxDataSeg    = 16 << 20 // the most a PDU may carry that we read
	defaultMRDSL  = 262144
	defaultTarget = 8192 // a target's MaxRecvDataSegmentLength when it declares none
)

// Errors.
var (
	ErrClosed   = errors.New("initiator: session closed")
	ErrRejected = errors.New("initiator: target rejected the PDU")
)

// Config describes a session to open.
type Config struct {
	Portal    string // host:port
	Target    string // target IQN
	Initiator string // initiator IQN
	// ISID of the session; zero = a fixed default. Reusing an ISID names
	// the same I_T nexus (persistent reservations, reinstatement).
	ISID [6]byte
	// MaxRecvDataSegmentLength we declare (default 262144).
	MaxRecvDataSegmentLength uint32
	// IgnoreNOPIn leaves the target's NOP-In pings unanswered, as a hung
	// initiator would (soak tests check the target drops the connection).
	IgnoreNOPIn bool
	// Digests asks for HeaderDigest=CRC32C and DataDigest=CRC32C; the
	// session then sends and checks both (login fails if the target
	// refuses them).
	Digests bool
}

// URL is a parsed iscsi://host[:port]/target/lun address, as libiscsi's
// tools take.
type URL struct {
	Portal string
	Target string
	LUN    uint64
}

// ParseURL parses iscsi://host[:port]/target-iqn/lun.
func ParseURL(s string) (URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, fmt.Errorf("initiator: %w", err)
	}
	if u.Scheme != "iscsi" {
		return URL{}, fmt.Errorf("initiator: %q is not an iscsi:// URL", s)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" {
		return URL{}, fmt.Errorf("initiator: %q: want iscsi://host[:port]/target/lun", s)
	}
	lun, err := strconv.ParseUint(parts[1], 10, 14)
	if err != nil {
		return URL{}, fmt.Errorf("initiator: %q: bad LUN: %w", s, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3260")
	}
	return URL{Portal: host, Target: parts[0], LUN: lun}, nil
}

// Response is the outcome of a SCSI command.
type Response struct {
	Status byte   // SCSI status
	Data   []byte // Data-In
	Sense  []byte // sense data (CHECK CONDITION)
	// Overflow / Underflow residual counts from the SCSI Response.
	Overflow, Underflow uint32
}

// Pending is a command (or task management request) in flight.
type Pending struct {
	ITT   uint32
	CmdSN uint32
	lun   uint64

	dataOut []byte // for R2Ts
	readLen uint32
	buf     []byte
	done    chan struct{}
	resp    Response
	tmf     byte // TMF response code
	err     error
}

// Done is closed when the command's response (or an error) has arrived.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns the response, or ctx's error.
func (p *Pending) Wait(ctx context.Context) (Response, error) {
	select {
	case <-p.done:
		return p.resp, p.err
	case <-ctx.Done():
		return Response{}, fmt.Errorf("initiator: waiting for task %#x: %w", p.ITT, ctx.Err())
	}
}

// Session is one logged-in iSCSI session on one connection.
type Session struct {
	cfg  Config
	conn net.Conn

	wmu sync.Mutex // serialises writes (and CmdSN assignment with them)

	mu        sync.Mutex
	itt       uint32
	cmdSN     uint32
	expCmdSN  uint32
	maxCmdSN  uint32
	expStatSN uint32
	window    chan struct{} // closed and replaced when MaxCmdSN moves
	pending   map[uint32]*Pending
	closed    bool
	detaching bool // Detach stops the reader at the next PDU boundary
	readErr   error
	readDone  chan struct{}

	// Negotiated.
	targetMRDSL  uint32
	firstBurst   uint32
	immediate    bool
	initialR2T   bool
	hdrDigest    bool // set once in full feature phase (login PDUs carry none)
	dataDigest   bool
	TargetParams map[string]string
}

// Dial connects and logs in. The context bounds the login; the session
// lives until Close or Logout.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.MaxRecvDataSegmentLength == 0 {
		cfg.MaxRecvDataSegmentLength = defaultMRDSL
	}
	if cfg.ISID == ([6]byte{}) {
		cfg.ISID = [6]byte{0x80, 0x00, 0x43, 0x53, 0x54, 0x01}
	}
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", cfg.Portal)
	if err != nil {
		return nil, fmt.Errorf("initiator: dial %s: %w", cfg.Portal, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	s := &Session{
		cfg: cfg, conn: conn, itt: 1, cmdSN: 1, expCmdSN: 1, maxCmdSN: 1,
		window: make(chan struct{}), pending: map[uint32]*Pending{}, readDone: make(chan struct{}),
		targetMRDSL: defaultTarget, firstBurst: 65536, immediate: true, initialR2T: true,
		TargetParams: map[string]string{},
	}
	if dead, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dead)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := s.login(); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	go s.readLoop()
	return s, nil
}

// Close drops the connection; every pending command fails with ErrClosed.
func (s *Session) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	err := s.conn.Close()
	if !already {
		<-s.readDone
	}
	return err
}

// Done is closed when the session's connection has ended (Close, logout,
// or the target dropped it).
func (s *Session) Done() <-chan struct{} { return s.readDone }

// ErrForgotten is how a command given up with Forget fails.
var ErrForgotten = errors.New("initiator: command given up")

// Forget gives up on a command still waiting for its response: it fails
// with ErrForgotten wrapping why, and a late response is ignored. Use it
// after ABORT TASK or LUN RESET answered FUNCTION COMPLETE (the target
// then sends no response) or when a response is overdue. It reports
// whether p was still pending.
func (s *Session) Forget(p *Pending, why error) bool {
	s.mu.Lock()
	q, ok := s.pending[p.ITT]
	if ok && q == p {
		delete(s.pending, p.ITT)
	}
	s.mu.Unlock()
	if !ok || q != p {
		return false
	}
	p.err = fmt.Errorf("%w: %w", ErrForgotten, why)
	close(p.done)
	return true
}

// Err returns why the session ended, or nil while it is up.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readErr
}

func textKV(kv ...string) []byte {
	var b []byte
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func parseKV(data []byte, into map[string]string) {
	for _, f := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(f, "="); ok {
			into[k] = v
		}
	}
}

// login runs the security stage (AuthMethod=None) and the operational
// stage until full feature phase.
func (s *Session) login() error {
	csg, nsg := byte(0), byte(1)
	keys := textKV("InitiatorName="+s.cfg.Initiator, "TargetName="+s.cfg.Target,
		"SessionType=Normal", "AuthMethod=None")
	for round := 0; round < 16; round++ {
		var h [48]byte
		h[0] = 0x40 | opLoginReq
		h[1] = 0x80 | csg<<2 | nsg
		copy(h[8:14], s.cfg.ISID[:])
		binary.BigEndian.PutUint32(h[16:], s.itt)
		binary.BigEndian.PutUint32(h[24:], s.cmdSN)
		binary.BigEndian.PutUint32(h[28:], s.expStatSN)
		if err := s.writePDU(h, keys); err != nil {
			return err
		}
		rh, data, err := s.readPDU()
		if err != nil {
			return err
		}
		if rh[0]&0x3f != opLoginResp {
			return fmt.Errorf("initiator: login: got opcode %#x", rh[0]&0x3f)
		}
		if cls, det := rh[36], rh[37]; cls != 0 {
			return fmt.Errorf("initiator: login to %s refused: status class %d detail %d", s.cfg.Target, cls, det)
		}
		parseKV(data, s.TargetParams)
		s.expStatSN = binary.BigEndian.Uint32(rh[24:]) + 1
		s.expCmdSN = binary.BigEndian.Uint32(rh[28:])
		s.maxCmdSN = binary.BigEndian.Uint32(rh[32:])
		s.cmdSN = s.expCmdSN
		transit, rnsg := rh[1]&0x80 != 0, rh[1]&0x03
		switch {
		case transit && rnsg == 3:
			return s.applyParams()
		case transit && rnsg == 1:
			csg, nsg = 1, 3
			digest := "None"
			if s.cfg.Digests {
				digest = "CRC32C"
			}
			keys = textKV("HeaderDigest="+digest, "DataDigest="+digest,
				fmt.Sprintf("MaxRecvDataSegmentLength=%d", s.cfg.MaxRecvDataSegmentLength),
				"InitialR2T=No", "ImmediateData=Yes", "MaxBurstLength=1048576",
				"FirstBurstLength=262144", "MaxOutstandingR2T=1", "ErrorRecoveryLevel=0",
				"DefaultTime2Wait=0", "DefaultTime2Retain=0", "MaxConnections=1",
				"DataPDUInOrder=Yes", "DataSequenceInOrder=Yes")
		default:
			keys = nil // the target wants another round in this stage
		}
	}
	return errors.New("initiator: login did not reach full feature phase")
}

func (s *Session) applyParams() error {
	p := s.TargetParams
	if s.cfg.Digests {
		if p["HeaderDigest"] != "CRC32C" || p["DataDigest"] != "CRC32C" {
			return fmt.Errorf("initiator: the target refused CRC32C digests (HeaderDigest=%q DataDigest=%q)",
				p["HeaderDigest"], p["DataDigest"])
		}
		s.hdrDigest, s.dataDigest = true, true
	}
	if v, err := strconv.ParseUint(p["MaxRecvDataSegmentLength"], 10, 32); err == nil && v >= 512 {
		s.targetMRDSL = uint32(min(v, maxDataSeg))
	}
	if v, err := strconv.ParseUint(p["FirstBurstLength"], 10, 32); err == nil && v >= 512 {
		s.firstBurst = uint32(v)
	} else {
		s.firstBurst = min(s.firstBurst, 262144)
	}
	if v, ok := p["ImmediateData"]; ok {
		s.immediate = v == "Yes"
	}
	if v, ok := p["InitialR2T"]; ok {
		s.initialR2T = v == "Yes"
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendCRC(b, over []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(over, castagnoli))
}

func (s *Session) writePDU(h [48]byte, data []byte) error {
	buf := AppendPDU(make([]byte, 0, 48+4+len(data)+3+4), &h, data, s.hdrDigest, s.dataDigest)
	if _, err := s.conn.Write(buf); err != nil {
		return fmt.Errorf("initiator: write: %w", err)
	}
	return nil
}

// AppendPDU appends the PDU with header h (its AHS length and data segment
// length are set here) and data, padded, with the digests asked for.
func AppendPDU(dst []byte, h *[48]byte, data []byte, hdrDigest, dataDigest bool) []byte {
	n := len(data)
	h[4], h[5], h[6], h[7] = 0, byte(n>>16), byte(n>>8), byte(n)
	dst = append(dst, h[:]...)
	if hdrDigest {
		dst = appendCRC(dst, h[:])
	}
	if n == 0 {
		return dst
	}
	start := len(dst)
	dst = append(dst, data...)
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0)
	}
	if dataDigest {
		dst = appendCRC(dst, dst[start:])
	}
	return dst
}

func (s *Session) readPDU() ([48]byte, []byte, error) {
	var h [48]byte
	if n, err := io.ReadFull(s.conn, h[:]); err != nil {
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			s.mu.Lock()
			detaching := s.detaching
			s.mu.Unlock()
			if detaching {
				return h, nil, errDetached
			}
		}
		return h, nil, fmt.Errorf("initiator: read: %w", err)
	}
	ahs := int(h[4]) * 4
	n := int(h[5])<<16 | int(h[6])<<8 | int(h[7])
	if n > maxDataSeg || n > int(s.cfg.MaxRecvDataSegmentLength) && h[0]&0x3f != opLoginResp {
		return h, nil, fmt.Errorf("initiator: the target sent a %d-byte data segment (we accept %d)", n, s.cfg.MaxRecvDataSegmentLength)
	}
	hd, dd := 0, 0
	if s.hdrDigest {
		hd = 4
	}
	padded := (n + 3) &^ 3
	if s.dataDigest && n > 0 {
		dd = 4
	}
	rest := make([]byte, ahs+hd+padded+dd)
	if _, err := io.ReadFull(s.conn, rest); err != nil {
		return h, nil, fmt.Errorf("initiator: read: %w", err)
	}
	if hd > 0 {
		// The header digest covers the BHS and the AHS.
		sum := crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, rest[:ahs])
		if got := binary.LittleEndian.Uint32(rest[ahs:]); got != sum {
			return h, nil, fmt.Errorf("initiator: header digest %#x, want %#x", got, sum)
		}
	}
	seg := rest[ahs+hd : ahs+hd+padded]
	if dd > 0 {
		if got, want := binary.LittleEndian.Uint32(rest[ahs+hd+padded:]), crc32.Checksum(seg, castagnoli); got != want {
			return h, nil, fmt.Errorf("initiator: data digest %#x, want %#x", got, want)
		}
	}
	return h, seg[:n], nil
}

// SerialLE reports a <= b in serial number arithmetic (RFC 1982).
func SerialLE(a, b uint32) bool { return int32(b-a) >= 0 }

// updateSNLocked records ExpCmdSN/MaxCmdSN from a target PDU (s.mu held)
// and wakes commands waiting for the window to open.
func (s *Session) updateSNLocked(h *[48]byte) {
	exp := binary.BigEndian.Uint32(h[28:])
	maxSN := binary.BigEndian.Uint32(h[32:])
	if !SerialLE(exp-1, maxSN) { // MaxCmdSN < ExpCmdSN-1: ignore (RFC 7143 4.2.2.1)
		return
	}
	if SerialLE(s.expCmdSN, exp) {
		s.expCmdSN = exp
	}
	if maxSN != s.maxCmdSN && SerialLE(s.maxCmdSN, maxSN) {
		s.maxCmdSN = maxSN
		close(s.window)
		s.window = make(chan struct{})
	}
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.readErr == nil {
		s.readErr = err
	}
	ps := s.pending
	s.pending = map[uint32]*Pending{}
	s.mu.Unlock()
	for _, p := range ps {
		p.err = fmt.Errorf("%w: %w", ErrClosed, err)
		close(p.done)
	}
}

func (s *Session) take(itt uint32, final bool) *Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[itt]
	if final {
		delete(s.pending, itt)
	}
	return p
}

func (s *Session) readLoop() {
	defer close(s.readDone)
	for {
		h, data, err := s.readPDU()
		if errors.Is(err, errDetached) {
			return
		}
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				err = ErrClosed
			}
			s.fail(err)
			return
		}
		op := h[0] & 0x3f
		itt := binary.BigEndian.Uint32(h[16:])
		s.mu.Lock()
		s.updateSNLocked(&h)
		s.mu.Unlock()
		switch op {
		case opDataIn:
			sbit := h[1]&0x01 != 0
			p := s.take(itt, sbit)
			if p == nil {
				continue
			}
			off := binary.BigEndian.Uint32(h[40:])
			if uint64(off)+uint64(len(data)) > uint64(p.readLen) || int(off) != len(p.buf) {
				s.finish(p, fmt.Errorf("initiator: Data-In at offset %d (+%d) after %d bytes, expected length %d", off, len(data), len(p.buf), p.readLen), sbit)
				continue
			}
			p.buf = append(p.buf, data...)
			if sbit {
				s.statSN(&h)
				p.resp = Response{Status: h[3], Data: p.buf}
				residual(&p.resp, &h)
				close(p.done)
			}
		case opSCSIResp:
			s.statSN(&h)
			p := s.take(itt, true)
			if p == nil {
				continue
			}
			if h[2] != 0 {
				p.err = fmt.Errorf("initiator: SCSI response code %#x", h[2])
				close(p.done)
				continue
			}
			p.resp = Response{Status: h[3], Data: p.buf}
			if len(data) >= 2 {
				sl := int(binary.BigEndian.Uint16(data[:2]))
				if 2+sl <= len(data) {
					p.resp.Sense = append([]byte(nil), data[2:2+sl]...)
				}
			}
			residual(&p.resp, &h)
			close(p.done)
		case opR2T:
			p := s.take(itt, false)
			if p == nil {
				continue
			}
			ttt := binary.BigEndian.Uint32(h[20:])
			off := binary.BigEndian.Uint32(h[40:])
			n := binary.BigEndian.Uint32(h[44:])
			go s.sendDataOut(p, ttt, off, n)
		case opTMFResp:
			s.statSN(&h)
			if p := s.take(itt, true); p != nil {
				p.tmf = h[2]
				close(p.done)
			}
		case opLogoutResp:
			s.statSN(&h)
			if p := s.take(itt, true); p != nil {
				p.tmf = h[2]
				close(p.done)
			}
		case opNopIn:
			if itt == reservedTag {
				// Target-initiated ping; StatSN is not advanced.
				if ttt := binary.BigEndian.Uint32(h[20:]); ttt != reservedTag && !s.cfg.IgnoreNOPIn {
					go s.nopOut(ttt, h[8:16], data)
				}
			} else if p := s.take(itt, true); p != nil {
				s.statSN(&h)
				close(p.done)
			}
		case opAsyncMsg:
			s.statSN(&h)
		case opReject:
			s.statSN(&h)
			if len(data) >= 48 {
				if p := s.take(binary.BigEndian.Uint32(data[16:20]), true); p != nil {
					p.err = fmt.Errorf("%w (reason %#x)", ErrRejected, h[2])
					close(p.done)
				}
			}
		}
	}
}

func (s *Session) finish(p *Pending, err error, removed bool) {
	if !removed && s.take(p.ITT, true) != p {
		return // given up (Forget) meanwhile
	}
	p.err = err
	close(p.done)
}

func residual(r *Response, h *[48]byte) {
	switch {
	case h[1]&0x04 != 0:
		r.Overflow = binary.BigEndian.Uint32(h[44:])
	case h[1]&0x02 != 0:
		r.Underflow = binary.BigEndian.Uint32(h[44:])
	}
}

func (s *Session) statSN(h *[48]byte) {
	sn := binary.BigEndian.Uint32(h[24:])
	s.mu.Lock()
	if SerialLE(s.expStatSN, sn+1) {
		s.expStatSN = sn + 1
	}
	s.mu.Unlock()
}

func (s *Session) nopOut(ttt uint32, lun []byte, data []byte) {
	var h [48]byte
	h[0] = 0x40 | opNopOut
	h[1] = 0x80
	copy(h[8:16], lun)
	binary.BigEndian.PutUint32(h[16:], reservedTag)
	binary.BigEndian.PutUint32(h[20:], ttt)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	binary.BigEndian.PutUint32(h[24:], s.cmdSN)
	binary.BigEndian.PutUint32(h[28:], s.expStatSN)
	s.mu.Unlock()
	_ = s.writePDU(h, data)
}

// sendDataOut answers an R2T with Data-Out PDUs of at most the target's
// MaxRecvDataSegmentLength.
func (s *Session) sendDataOut(p *Pending, ttt, off, n uint32) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(p.dataOut)) {
		end = uint64(len(p.dataOut))
	}
	var dataSN uint32
	for pos := uint64(off); pos < end; {
		seg := min(end-pos, uint64(s.targetMRDSL))
		var h [48]byte
		h[0] = opDataOut
		if pos+seg == end {
			h[1] = 0x80
		}
		binary.BigEndian.PutUint64(h[8:], LUNField(p.lun))
		binary.BigEndian.PutUint32(h[16:], p.ITT)
		binary.BigEndian.PutUint32(h[20:], ttt)
		binary.BigEndian.PutUint32(h[36:], dataSN)
		binary.BigEndian.PutUint32(h[40:], uint32(pos))
		s.wmu.Lock()
		s.mu.Lock()
		binary.BigEndian.PutUint32(h[28:], s.expStatSN)
		s.mu.Unlock()
		err := s.writePDU(h, p.dataOut[pos:pos+seg])
		s.wmu.Unlock()
		if err != nil {
			return // the read loop will see the connection fail
		}
		dataSN++
		pos += seg
	}
}

// LUNField encodes a LUN (0..16383) in SAM's single-level format:
// peripheral addressing below 256, flat addressing above.
func LUNField(lun uint64) uint64 {
	if lun < 256 {
		return lun << 48
	}
	return (0x4000 | lun&0x3fff) << 48
}

// waitWindow blocks until CmdSN fits the target's window (s.mu held on
// entry and exit).
func (s *Session) waitWindowLocked(ctx context.Context) error {
	for !SerialLE(s.cmdSN, s.maxCmdSN) {
		if s.readErr != nil {
			return fmt.Errorf("%w: %w", ErrClosed, s.readErr)
		}
		w := s.window
		s.mu.Unlock()
		select {
		case <-w:
		case <-s.readDone:
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("initiator: CmdSN window closed: %w", ctx.Err())
		}
		s.mu.Lock()
	}
	return nil
}

// Start sends a SCSI command: dataOut for writes (nil for none), readLen
// the Data-In it may receive (0 for none). It returns once the command
// (and its immediate data) is sent.
func (s *Session) Start(ctx context.Context, lun uint64, cdb []byte, dataOut []byte, readLen uint32) (*Pending, error) {
	if len(cdb) > 16 {
		return nil, errors.New("initiator: CDB longer than 16 bytes")
	}
	if len(dataOut) > 0 && readLen > 0 {
		return nil, errors.New("initiator: bidirectional commands are not supported")
	}
	p := &Pending{lun: lun, dataOut: dataOut, readLen: readLen, done: make(chan struct{})}
	if readLen > 0 {
		p.buf = make([]byte, 0, min(readLen, 1<<20))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed || s.readErr != nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if err := s.waitWindowLocked(ctx); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.itt++
	if s.itt == reservedTag {
		s.itt = 1
	}
	p.ITT, p.CmdSN = s.itt, s.cmdSN
	s.cmdSN++
	s.pending[p.ITT] = p
	expStat := s.expStatSN
	s.mu.Unlock()

	var h [48]byte
	h[0] = opSCSICmd
	h[1] = 0x80 | 0x01 // Final (no unsolicited Data-Out follows), SIMPLE
	var imm []byte
	if readLen > 0 {
		h[1] |= 0x40
	}
	edtl := readLen
	if len(dataOut) > 0 {
		h[1] |= 0x20
		edtl = uint32(len(dataOut))
		if s.immediate {
			imm = dataOut[:min(uint32(len(dataOut)), s.firstBurst, s.targetMRDSL)]
		}
	}
	binary.BigEndian.PutUint64(h[8:], LUNField(lun))
	binary.BigEndian.PutUint32(h[16:], p.ITT)
	binary.BigEndian.PutUint32(h[20:], edtl)
	binary.BigEndian.PutUint32(h[24:], p.CmdSN)
	binary.BigEndian.PutUint32(h[28:], expStat)
	copy(h[32:48], cdb)
	if err := s.writePDU(h, imm); err != nil {
		s.take(p.ITT, true)
		return nil, err
	}
	return p, nil
}

// Do runs one command to completion.
func (s *Session) Do(ctx context.Context, lun uint64, cdb []byte, dataOut []byte, readLen uint32) (Response, error) {
	p, err := s.Start(ctx, lun, cdb, dataOut, readLen)
	if err != nil {
		return Response{}, err
	}
	return p.Wait(ctx)
}

// TMF function codes.
const (
	TMFAbortTask    = 1
	TMFAbortTaskSet = 2
	TMFLUNReset     = 5
)

// TMF response codes.
const (
	TMFComplete     = 0
	TMFTaskNotExist = 1
	TMFLUNNotExist  = 2
	TMFNotSupported = 5
	TMFAuthFailed   = 6
	TMFRejected     = 255
)

// AbortTask sends ABORT TASK (immediate) for ref and returns the TMF
// response code.
func (s *Session) AbortTask(ctx context.Context, ref *Pending) (byte, error) {
	return s.tmfRequest(ctx, TMFAbortTask, ref.lun, ref.ITT, ref.CmdSN)
}

// TaskManagement sends a task management function without a referenced
// task (ABORT TASK SET, LUN RESET, ...).
func (s *Session) TaskManagement(ctx context.Context, function byte, lun uint64) (byte, error) {
	return s.tmfRequest(ctx, function, lun, reservedTag, 0)
}

func (s *Session) tmfRequest(ctx context.Context, function byte, lun uint64, rtt, refCmdSN uint32) (byte, error) {
	p := &Pending{lun: lun, done: make(chan struct{})}
	s.wmu.Lock()
	s.mu.Lock()
	if s.closed || s.readErr != nil {
		s.mu.Unlock()
		s.wmu.Unlock()
		return 0, ErrClosed
	}
	s.itt++
	if s.itt == reservedTag {
		s.itt = 1
	}
	p.ITT = s.itt
	s.pending[p.ITT] = p
	var h [48]byte
	h[0] = 0x40 | opTMFReq // immediate
	h[1] = 0x80 | function&0x7f
	binary.BigEndian.PutUint64(h[8:], LUNField(lun))
	binary.BigEndian.PutUint32(h[16:], p.ITT)
	binary.BigEndian.PutUint32(h[20:], rtt)
	binary.BigEndian.PutUint32(h[24:], s.cmdSN) // immediate: CmdSN not advanced
	binary.BigEndian.PutUint32(h[28:], s.expStatSN)
	binary.BigEndian.PutUint32(h[32:], refCmdSN)
	s.mu.Unlock()
	err := s.writePDU(h, nil)
	s.wmu.Unlock()
	if err != nil {
		s.take(p.ITT, true)
		return 0, err
	}
	if _, err := p.Wait(ctx); err != nil {
		return 0, err
	}
	return p.tmf, nil
}

// Logout closes the session cleanly and then the connection.
func (s *Session) Logout(ctx context.Context) error {
	p := &Pending{done: make(chan struct{})}
	s.wmu.Lock()
	s.mu.Lock()
	if s.closed || s.readErr != nil {
		s.mu.Unlock()
		s.wmu.Unlock()
		return ErrClosed
	}
	s.itt++
	p.ITT = s.itt
	s.pending[p.ITT] = p
	var h [48]byte
	h[0] = 0x40 | opLogoutReq
	h[1] = 0x80 // close the session
	binary.BigEndian.PutUint32(h[16:], p.ITT)
	binary.BigEndian.PutUint32(h[24:], s.cmdSN)
	binary.BigEndian.PutUint32(h[28:], s.expStatSN)
	s.mu.Unlock()
	err := s.writePDU(h, nil)
	s.wmu.Unlock()
	if err == nil {
		_, err = p.Wait(ctx)
		if err == nil && p.tmf != 0 {
			err = fmt.Errorf("initiator: logout response %d", p.tmf)
		}
	}
	cerr := s.Close()
	if err != nil {
		return err
	}
	return cerr
}
