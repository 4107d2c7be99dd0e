package lu

import (
	"encoding/binary"
	"fmt"

	"github.com/costar-project/costar/scsi"
)

// The replicated state is pr_persist's format, version 3: version 2's
// header and registrations, then
//
//	SCSI-2 reservation: present (u8), then the holder's I_T nexus
//	change: unit attention count (u16), each: ASC/ASCQ (u16), the nexus
//	   that caused it, and the registrations it is for; then the
//	   registrations whose tasks are aborted (PREEMPT AND ABORT)
//
// where an I_T nexus is the initiator's TransportID (u16 length, bytes;
// empty for none), the target port name (u16 length, bytes) and the
// relative target port id (u16), and a change's registration is flags
// (u8: bit 0 ALL_TG_PT), TransportID and target port name. The change
// lets the other nodes raise the same unit attentions as the node that
// made it, on their own sessions.

// journalState is a decoded version 3 state.
type journalState struct {
	pr     *prState
	s2     *nexusID
	change *prOutcome // nil: nothing to notify
}

// encodeJournal serialises the reservation state and the change out
// (nil: none) as version 3.
func encodeJournal(p *prState, s2 *nexusID, out *prOutcome) ([]byte, error) {
	b, err := appendPRBody(nil, p, prPersistVersion3, journalMax)
	if err != nil {
		return nil, err
	}
	if s2 == nil {
		b = append(b, 0)
	} else {
		b = appendNexus(append(b, 1), *s2)
	}
	var uas []prUA
	var aborted []*registration
	if out != nil {
		uas, aborted = out.uas, out.aborted
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(uas)))
	for _, ua := range uas {
		b = binary.BigEndian.AppendUint16(b, uint16(ua.asc))
		b = appendNexus(b, ua.except)
		b = appendChangeRegs(b, ua.regs)
	}
	b = appendChangeRegs(b, aborted)
	if len(b) > journalMax {
		return nil, errPRTooLarge
	}
	return b, nil
}

func appendNexus(b []byte, n nexusID) []byte {
	b = appendStr16(b, string(n.port.AppendTo(nil)))
	b = appendStr16(b, n.tport)
	return binary.BigEndian.AppendUint16(b, n.relPort)
}

func appendChangeRegs(b []byte, regs []*registration) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(regs)))
	for _, g := range regs {
		var fl byte
		if g.allTgPt {
			fl |= 0x01
		}
		b = append(b, fl)
		b = appendStr16(b, string(g.tid.AppendTo(nil)))
		b = appendStr16(b, g.tport)
	}
	return b
}

// decodeJournal parses a replicated state; empty input is no state.
func decodeJournal(b []byte) (journalState, error) {
	if len(b) == 0 {
		return journalState{pr: &prState{}}, nil
	}
	if b[0] != prPersistVersion3 {
		return journalState{}, fmt.Errorf("lu: replicated reservation state: version %d, want %d", b[0], prPersistVersion3)
	}
	p, rest, err := decodePRBody(b)
	if err != nil {
		return journalState{}, err
	}
	st := journalState{pr: p}
	rd := &tlvReader{rest: rest}
	bad := func(what string) (journalState, error) {
		return journalState{}, fmt.Errorf("lu: replicated reservation state: bad %s", what)
	}
	if len(rd.rest) < 1 || rd.rest[0] > 1 {
		return bad("SCSI-2 reservation")
	}
	has := rd.rest[0] == 1
	rd.rest = rd.rest[1:]
	if has {
		n, ok := rd.nexus()
		if !ok || n.port.IsZero() {
			return bad("SCSI-2 reservation")
		}
		st.s2 = &n
	}
	count, ok := rd.u16()
	if !ok || int(count) > maxRegistrations {
		return bad("change")
	}
	out := &prOutcome{}
	for range count {
		asc, ok1 := rd.u16()
		except, ok2 := rd.nexus()
		regs, ok3 := rd.changeRegs()
		if !ok1 || !ok2 || !ok3 {
			return bad("unit attention")
		}
		out.uas = append(out.uas, prUA{asc: scsi.ASC(asc), regs: regs, except: except})
	}
	if out.aborted, ok = rd.changeRegs(); !ok {
		return bad("aborted registrations")
	}
	if len(rd.rest) != 0 {
		return journalState{}, fmt.Errorf("lu: replicated reservation state: %d trailing bytes", len(rd.rest))
	}
	if len(out.uas) > 0 || len(out.aborted) > 0 {
		st.change = out
	}
	return st, nil
}

// tid reads a TransportID that fills its field (empty: none).
func (r *tlvReader) tid() (scsi.TransportID, bool) {
	enc, ok := r.str()
	if !ok || enc == "" {
		return scsi.TransportID{}, ok
	}
	tid, n, err := scsi.ParseTransportID([]byte(enc))
	return tid, err == nil && n == len(enc)
}

// nexus reads an I_T nexus.
func (r *tlvReader) nexus() (nexusID, bool) {
	tid, ok1 := r.tid()
	tport, ok2 := r.str()
	rel, ok3 := r.u16()
	if !ok1 || !ok2 || !ok3 {
		return nexusID{}, false
	}
	n := nexusID{port: tid, tport: tport, relPort: rel}
	if !tid.IsZero() {
		n.proto, n.device = tid.Protocol(), tid.Device()
	}
	return n, true
}

// changeRegs reads a change's registrations.
func (r *tlvReader) changeRegs() ([]*registration, bool) {
	count, ok := r.u16()
	if !ok || int(count) > maxRegistrations {
		return nil, false
	}
	var regs []*registration
	for range count {
		if len(r.rest) < 1 {
			return nil, false
		}
		g := &registration{allTgPt: r.rest[0]&0x01 != 0}
		r.rest = r.rest[1:]
		var ok1, ok2 bool
		g.tid, ok1 = r.tid()
		g.tport, ok2 = r.str()
		if !ok1 || !ok2 || g.tid.IsZero() {
			return nil, false
		}
		regs = append(regs, g)
	}
	return regs, true
}
