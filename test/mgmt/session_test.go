package mgmt

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
)

// session is a minimal iSCSI initiator session (one connection, one
// command at a time, no digests) that stays logged in, so a test can watch
// a live session's LUN map change.
type session struct {
	t       *testing.T
	conn    net.Conn
	rd      *pdu.Reader
	itt     uint32
	cmdSN   uint32
	expStat uint32
}

// login opens a normal session from initiator to target at portal.
func login(t *testing.T, portal, initiator, target string) *session {
	t.Helper()
	c, err := net.DialTimeout("tcp", portal, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &session{t: t, conn: c, rd: pdu.NewReader(bufio.NewReader(c), 1<<20), itt: 1, cmdSN: 1}
	t.Cleanup(func() { c.Close() })
	stages := []struct {
		csg, nsg uint8
		keys     []pdu.KV
	}{
		{0, 1, []pdu.KV{{Key: "InitiatorName", Value: initiator}, {Key: "SessionType", Value: "Normal"},
			{Key: "TargetName", Value: target}, {Key: "AuthMethod", Value: "None"}}},
		{1, 3, []pdu.KV{{Key: "HeaderDigest", Value: "None"}, {Key: "DataDigest", Value: "None"},
			{Key: "MaxRecvDataSegmentLength", Value: "262144"}, {Key: "InitialR2T", Value: "Yes"}, {Key: "ImmediateData", Value: "No"}}},
	}
	for _, st := range stages {
		for {
			var h pdu.Header
			h.SetOpcode(pdu.OpLoginReq, true)
			h.SetLoginFlags(true, false, st.csg, st.nsg)
			h.SetISID([6]byte{0x80, 0, 0, 0, 0x12, 0x34})
			h.SetITT(s.itt)
			h.SetU32(pdu.OffCmdSN, s.cmdSN)
			h.SetU32(pdu.OffExpStatSN, s.expStat)
			s.send(&h, pdu.EncodeText(st.keys))
			r, _ := s.recv()
			if r.Opcode() != pdu.OpLoginResp {
				t.Fatalf("login: got %v", r.Opcode())
			}
			if r[36] != 0 {
				t.Fatalf("login refused: status class %d detail %d", r[36], r[37])
			}
			s.expStat = r.U32(pdu.OffStatSN) + 1
			if _, nsg := r.LoginStages(); r.Final() && nsg == st.nsg {
				break
			}
			st.keys = nil // the target wants another round in this stage
		}
	}
	return s
}

func (s *session) send(h *pdu.Header, data []byte) {
	s.t.Helper()
	if _, err := s.conn.Write(pdu.AppendPDU(nil, h, nil, data, false, false)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) recv() (pdu.Header, []byte) {
	s.t.Helper()
	var h pdu.Header
	if _, err := s.rd.ReadHeader(&h); err != nil {
		s.t.Fatal(err)
	}
	data := make([]byte, h.DataSegmentLength())
	if err := s.rd.ReadData(&h, data); err != nil {
		s.t.Fatal(err)
	}
	return h, data
}

// command runs a read-direction CDB on lun and returns status, data, sense.
func (s *session) command(lun scsi.LUN, cdb []byte, alloc uint32) (scsi.Status, []byte, []byte) {
	s.t.Helper()
	s.itt++
	var h pdu.Header
	h.SetOpcode(pdu.OpSCSICmd, false)
	h.SetFlags(pdu.FlagFinal | pdu.FlagRead | 1) // ATTR 1: SIMPLE
	h.SetLUN(scsi.EncodeLUN(lun))
	h.SetITT(s.itt)
	h.SetU32(pdu.OffEDTL, alloc)
	h.SetU32(pdu.OffCmdSN, s.cmdSN)
	h.SetU32(pdu.OffExpStatSN, s.expStat)
	copy(h[pdu.OffCDB:pdu.OffCDB+16], cdb)
	s.cmdSN++
	s.send(&h, nil)
	var data []byte
	for {
		r, seg := s.recv()
		switch r.Opcode() {
		case pdu.OpNOPIn:
			if ttt := r.U32(pdu.OffTTT); ttt != pdu.ReservedTag {
				var o pdu.Header
				o.SetOpcode(pdu.OpNOPOut, true)
				o.SetFlags(pdu.FlagFinal)
				o.SetITT(pdu.ReservedTag)
				o.SetU32(pdu.OffTTT, ttt)
				o.SetU32(pdu.OffCmdSN, s.cmdSN)
				o.SetU32(pdu.OffExpStatSN, s.expStat)
				s.send(&o, nil)
			}
		case pdu.OpDataIn:
			data = append(data, seg...)
			if r.Flags()&pdu.FlagStatus != 0 {
				s.expStat = r.U32(pdu.OffStatSN) + 1
				return scsi.Status(r[3]), data, nil
			}
		case pdu.OpSCSIResp:
			s.expStat = r.U32(pdu.OffStatSN) + 1
			var sense []byte
			if len(seg) >= 2 {
				n := int(binary.BigEndian.Uint16(seg))
				sense = seg[2:min(len(seg), 2+n)]
			}
			return scsi.Status(r[3]), data, sense
		default:
			s.t.Fatalf("unexpected %v", r.Opcode())
		}
	}
}

// reportLUNs returns the session's LUNs (REPORT LUNS, select report 0).
func (s *session) reportLUNs() []scsi.LUN {
	s.t.Helper()
	cdb := make([]byte, 12)
	cdb[0] = 0xa0
	binary.BigEndian.PutUint32(cdb[6:], 4096)
	st, data, sense := s.command(0, cdb, 4096)
	if st != scsi.StatusGood || len(data) < 8 {
		s.t.Fatalf("REPORT LUNS: status %v sense %x", st, sense)
	}
	n := min(int(binary.BigEndian.Uint32(data)), len(data)-8) / 8
	var out []scsi.LUN
	for i := range n {
		lun, ok := scsi.DecodeLUN([8]byte(data[8+8*i : 16+8*i]))
		if !ok {
			s.t.Fatalf("bad LUN in REPORT LUNS: %x", data[8+8*i:16+8*i])
		}
		out = append(out, lun)
	}
	slices.Sort(out)
	return out
}

// testUnitReady returns TEST UNIT READY's status and sense key/ASC/ASCQ.
func (s *session) testUnitReady(lun scsi.LUN) (scsi.Status, string) {
	s.t.Helper()
	st, _, sense := s.command(lun, make([]byte, 6), 0)
	if len(sense) >= 14 {
		return st, fmt.Sprintf("%x/%02x/%02x", sense[2]&0x0f, sense[12], sense[13])
	}
	return st, ""
}
