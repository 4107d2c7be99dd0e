package integration

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// rawInitiator is a deliberately small iSCSI initiator (RFC 7143), written
// independently of portprovider/iscsi, so the tests can see bytes that the
// libiscsi command-line tools do not print (iscsi-inq prints binary
// designators with %s). One connection, one command at a time, no digests.
type rawInitiator struct {
	conn     net.Conn
	itt      uint32
	cmdSN    uint32
	expStat  uint32
	maxRecvD int
}

const (
	opLoginReq   = 0x03
	opLoginResp  = 0x23
	opSCSICmd    = 0x01
	opSCSIResp   = 0x21
	opDataIn     = 0x25
	opNopIn      = 0x20
	opNopOut     = 0x00
	opLogoutReq  = 0x06
	opLogoutResp = 0x26
	opReject     = 0x3f
	maxDataIn    = 1 << 20 // refuse to allocate more for one PDU
)

type pdu struct {
	bhs  [48]byte
	data []byte
}

func (p *pdu) opcode() byte { return p.bhs[0] & 0x3f }

func dialRaw(ctx context.Context, portal, target, initiator string) (*rawInitiator, error) {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", portal)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", portal, err)
	}
	if dead, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dead)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	r := &rawInitiator{conn: conn, itt: 1, cmdSN: 1, maxRecvD: 262144}
	if err := r.login(target, initiator); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

func (r *rawInitiator) Close() error { return r.conn.Close() }

func textData(kv ...string) []byte {
	var b strings.Builder
	for _, s := range kv {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return []byte(b.String())
}

// login negotiates security (AuthMethod=None) then operational parameters
// until the target moves the connection to full feature phase.
func (r *rawInitiator) login(target, initiator string) error {
	isid := [6]byte{0x80, 0x00, 0x43, 0x53, 0x54, 0x01}
	csg, nsg := byte(0), byte(1)
	keys := textData("InitiatorName="+initiator, "TargetName="+target,
		"SessionType=Normal", "AuthMethod=None")
	for round := 0; round < 8; round++ {
		var p pdu
		p.bhs[0] = 0x40 | opLoginReq
		p.bhs[1] = 0x80 | csg<<2 | nsg // Transit
		copy(p.bhs[8:14], isid[:])
		binary.BigEndian.PutUint32(p.bhs[16:], r.itt)
		binary.BigEndian.PutUint32(p.bhs[24:], r.cmdSN)
		binary.BigEndian.PutUint32(p.bhs[28:], r.expStat)
		p.data = keys
		if err := r.write(&p); err != nil {
			return err
		}
		resp, err := r.read()
		if err != nil {
			return err
		}
		if resp.opcode() != opLoginResp {
			return fmt.Errorf("login: got opcode %#x, want login response", resp.opcode())
		}
		if cls, det := resp.bhs[36], resp.bhs[37]; cls != 0 {
			return fmt.Errorf("login rejected: status class %d detail %d (%q)", cls, det, resp.data)
		}
		r.expStat = binary.BigEndian.Uint32(resp.bhs[24:]) + 1
		r.cmdSN = binary.BigEndian.Uint32(resp.bhs[28:]) // ExpCmdSN
		transit := resp.bhs[1]&0x80 != 0
		rnsg := resp.bhs[1] & 0x03
		switch {
		case transit && rnsg == 3:
			return nil
		case transit && rnsg == 1:
			csg, nsg = 1, 3
			keys = textData("HeaderDigest=None", "DataDigest=None",
				fmt.Sprintf("MaxRecvDataSegmentLength=%d", r.maxRecvD))
		default:
			keys = nil // target wants another round in this stage
		}
	}
	return errors.New("login did not reach full feature phase in 8 rounds")
}

// command runs one SCSI command with a Data-In phase (or none) on LUN lun and
// returns the SCSI status and the data.
func (r *rawInitiator) command(lun uint64, cdb []byte, allocLen uint32) (status byte, data []byte, err error) {
	if len(cdb) > 16 {
		return 0, nil, errors.New("CDB longer than 16 bytes")
	}
	r.itt++
	var p pdu
	p.bhs[0] = opSCSICmd
	p.bhs[1] = 0x80 | 0x01 // Final, SIMPLE
	if allocLen > 0 {
		p.bhs[1] |= 0x40 // Read
	}
	binary.BigEndian.PutUint64(p.bhs[8:], lun<<48) // single-level LUN, peripheral addressing
	binary.BigEndian.PutUint32(p.bhs[16:], r.itt)
	binary.BigEndian.PutUint32(p.bhs[20:], allocLen)
	binary.BigEndian.PutUint32(p.bhs[24:], r.cmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], r.expStat)
	copy(p.bhs[32:48], cdb)
	r.cmdSN++
	if err := r.write(&p); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, 0, allocLen)
	for i := 0; i < 10000; i++ {
		resp, err := r.read()
		if err != nil {
			return 0, nil, err
		}
		switch resp.opcode() {
		case opDataIn:
			off := binary.BigEndian.Uint32(resp.bhs[40:])
			if int(off) != len(buf) || len(buf)+len(resp.data) > int(allocLen) {
				return 0, nil, fmt.Errorf("Data-In at offset %d (+%d) after %d bytes, EDTL %d", off, len(resp.data), len(buf), allocLen)
			}
			buf = append(buf, resp.data...)
			if resp.bhs[1]&0x01 != 0 { // status in the last Data-In
				r.expStat = binary.BigEndian.Uint32(resp.bhs[24:]) + 1
				return resp.bhs[3], buf, nil
			}
		case opSCSIResp:
			r.expStat = binary.BigEndian.Uint32(resp.bhs[24:]) + 1
			if resp.bhs[2] != 0 {
				return 0, nil, fmt.Errorf("SCSI response code %#x", resp.bhs[2])
			}
			return resp.bhs[3], buf, nil
		case opNopIn:
			if err := r.answerNop(resp); err != nil {
				return 0, nil, err
			}
		case opReject:
			return 0, nil, fmt.Errorf("target rejected the command (reason %#x)", resp.bhs[2])
		default:
			return 0, nil, fmt.Errorf("unexpected opcode %#x", resp.opcode())
		}
	}
	return 0, nil, errors.New("no SCSI response after 10000 PDUs")
}

func (r *rawInitiator) answerNop(in *pdu) error {
	ttt := binary.BigEndian.Uint32(in.bhs[20:])
	if ttt == 0xffffffff {
		return nil // unsolicited, no answer wanted
	}
	var p pdu
	p.bhs[0] = 0x40 | opNopOut
	p.bhs[1] = 0x80
	copy(p.bhs[8:16], in.bhs[8:16])
	binary.BigEndian.PutUint32(p.bhs[16:], 0xffffffff)
	binary.BigEndian.PutUint32(p.bhs[20:], ttt)
	binary.BigEndian.PutUint32(p.bhs[24:], r.cmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], r.expStat)
	p.data = in.data
	return r.write(&p)
}

func (r *rawInitiator) logout() error {
	r.itt++
	var p pdu
	p.bhs[0] = 0x40 | opLogoutReq
	p.bhs[1] = 0x80 // close the session
	binary.BigEndian.PutUint32(p.bhs[16:], r.itt)
	binary.BigEndian.PutUint32(p.bhs[24:], r.cmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], r.expStat)
	if err := r.write(&p); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		resp, err := r.read()
		if err != nil {
			return err
		}
		if resp.opcode() == opLogoutResp {
			if resp.bhs[2] != 0 {
				return fmt.Errorf("logout response %d", resp.bhs[2])
			}
			return nil
		}
	}
	return errors.New("no logout response")
}

func (r *rawInitiator) write(p *pdu) error {
	n := len(p.data)
	p.bhs[4] = 0
	p.bhs[5], p.bhs[6], p.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	buf := make([]byte, 0, 48+n+3)
	buf = append(buf, p.bhs[:]...)
	buf = append(buf, p.data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	if _, err := r.conn.Write(buf); err != nil {
		return fmt.Errorf("write PDU: %w", err)
	}
	return nil
}

func (r *rawInitiator) read() (*pdu, error) {
	var p pdu
	if _, err := io.ReadFull(r.conn, p.bhs[:]); err != nil {
		return nil, fmt.Errorf("read BHS: %w", err)
	}
	ahs := int(p.bhs[4]) * 4
	n := int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7])
	if n > maxDataIn {
		return nil, fmt.Errorf("data segment of %d bytes", n)
	}
	padded := (n + 3) &^ 3
	rest := make([]byte, ahs+padded)
	if _, err := io.ReadFull(r.conn, rest); err != nil {
		return nil, fmt.Errorf("read PDU body: %w", err)
	}
	p.data = rest[ahs : ahs+n]
	return &p, nil
}

// deviceIdentification fetches VPD page 0x83 of lun and returns the first
// NAA designator with logical-unit association, as hex.
func deviceIdentification(ctx context.Context, portal, target string, lun uint64) (string, error) {
	r, err := dialRaw(ctx, portal, target, testInitiator+"-raw")
	if err != nil {
		return "", err
	}
	defer r.Close()
	const alloc = 1024
	status, data, err := r.command(lun, []byte{0x12, 0x01, 0x83, alloc >> 8, alloc & 0xff, 0}, alloc)
	if err != nil {
		return "", fmt.Errorf("INQUIRY VPD 0x83: %w", err)
	}
	if status != 0 {
		return "", fmt.Errorf("INQUIRY VPD 0x83: SCSI status %#x", status)
	}
	if err := r.logout(); err != nil {
		return "", fmt.Errorf("logout: %w", err)
	}
	return firstNAA(data)
}

// firstNAA parses a device identification VPD page (SPC-4 7.8.6).
func firstNAA(page []byte) (string, error) {
	if len(page) < 4 || page[1] != 0x83 {
		return "", fmt.Errorf("not a VPD 0x83 page: % x", page)
	}
	end := 4 + int(binary.BigEndian.Uint16(page[2:4]))
	if end > len(page) {
		return "", fmt.Errorf("page length %d exceeds the %d bytes returned", end-4, len(page)-4)
	}
	for off := 4; off+4 <= end; {
		dlen := int(page[off+3])
		if off+4+dlen > end {
			return "", fmt.Errorf("designator at %d overruns the page", off)
		}
		assoc := (page[off+1] >> 4) & 0x03
		typ := page[off+1] & 0x0f
		if typ == 3 && assoc == 0 {
			return hex.EncodeToString(page[off+4 : off+4+dlen]), nil
		}
		off += 4 + dlen
	}
	return "", errors.New("no NAA designator for the logical unit")
}
