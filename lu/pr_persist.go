package lu

import (
	"github.com/costar-project/costar/lu/backing"

	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/costar-project/costar/scsi"
)

// Persistent reservation state kept with the LU (the tagPR metadata TLV)
// while APTPL is in force, so that it survives a restart (SPC-4 5.13.5).
// Without APTPL the TLV is empty and a restart forgets the state.
//
//	0  version (u8) = 1
//	1  flags (u8): bit 0 APTPL
//	2  PRGENERATION (u32)
//	6  reservation type (u8), 0 = none
//	7  holder (u16): index into the registrations, 0xffff = none
//	9  registration count (u16)
//	11 registrations: key (u64), flags (u8: bit 0 ALL_TG_PT),
//	   relative target port id (u16), then, each a u16 length and bytes:
//	   version 1: initiator iSCSI name, ISID (12 hex digits or empty) and
//	   target port name; version 2: the initiator TransportID and target
//	   port name.
//
// Version 1 is written while every registration is iSCSI (as every
// release before version 2 wrote it), version 2 otherwise. Version 3 is
// never in the metadata: it is what a ReservationJournal replicates
// (pr_journal.go).
const (
	prPersistVersion  = 1
	prPersistVersion2 = 2
	// prPersistVersion3 is the replicated state (pr_journal.go): version
	// 2 followed by the SCSI-2 reservation and the change's notifications.
	prPersistVersion3 = 3
	// prPersistMax bounds the TLV so the metadata slot keeps room for the
	// rest of the LU's properties.
	prPersistMax = 16 << 10
	noHolder     = 0xffff
)

// errPRTooLarge: the state does not fit here or in the store
// (backing.ErrMetaTooLarge).
var errPRTooLarge = errors.New("lu: persistent reservation state too large to persist")

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// encodePR serialises p for the metadata (version 1 or 2).
func encodePR(p *prState) ([]byte, error) {
	version := byte(prPersistVersion)
	for _, g := range p.regs {
		if g.tid.Protocol() != scsi.ProtocolISCSI {
			version = prPersistVersion2
		}
	}
	return appendPRBody(nil, p, version, prPersistMax)
}

// appendPRBody appends the header and registrations of p in the given
// version; the result may not grow past max bytes.
func appendPRBody(b []byte, p *prState, version byte, max int) ([]byte, error) {
	b = append(b, version, 0)
	if p.aptpl {
		b[1] |= 0x01
	}
	b = binary.BigEndian.AppendUint32(b, p.gen)
	b = append(b, p.resType)
	holder := uint16(noHolder)
	for i, g := range p.regs {
		if g == p.holder {
			holder = uint16(i)
		}
	}
	b = binary.BigEndian.AppendUint16(b, holder)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.regs)))
	for _, g := range p.regs {
		b = binary.BigEndian.AppendUint64(b, g.key)
		var fl byte
		if g.allTgPt {
			fl |= 0x01
		}
		b = append(b, fl)
		b = binary.BigEndian.AppendUint16(b, g.relPort)
		if version == prPersistVersion {
			b = appendStr16(b, g.tid.ISCSIName())
			isid := ""
			if id, ok := g.tid.ISID(); ok {
				isid = hex.EncodeToString(id[:])
			}
			b = appendStr16(b, isid)
		} else {
			b = appendStr16(b, string(g.tid.AppendTo(nil)))
		}
		b = appendStr16(b, g.tport)
		if len(b) > max {
			return nil, errPRTooLarge
		}
	}
	return b, nil
}

// decodePR parses a persisted state (any version; the SCSI-2 holder and
// the change of a version 3 state are dropped). An empty input is no
// state.
func decodePR(b []byte) (*prState, error) {
	p, _, err := decodePRBody(b)
	return p, err
}

// decodePRBody parses the header and registrations and returns what
// follows them (a version 3 state's replication sections).
func decodePRBody(b []byte) (*prState, []byte, error) {
	p := &prState{}
	if len(b) == 0 {
		return p, nil, nil
	}
	if len(b) < 11 || b[0] != prPersistVersion && b[0] != prPersistVersion2 && b[0] != prPersistVersion3 {
		return nil, nil, fmt.Errorf("lu: persistent reservation state: unknown format")
	}
	p.aptpl = b[1]&0x01 != 0
	p.gen = binary.BigEndian.Uint32(b[2:6])
	p.resType = b[6]
	holder := binary.BigEndian.Uint16(b[7:9])
	n := int(binary.BigEndian.Uint16(b[9:11]))
	if n > maxRegistrations {
		return nil, nil, fmt.Errorf("lu: persistent reservation state: %d registrations", n)
	}
	rd := &tlvReader{rest: b[11:]}
	for i := 0; i < n; i++ {
		if len(rd.rest) < 11 {
			return nil, nil, fmt.Errorf("lu: persistent reservation state: truncated registration %d", i)
		}
		g := &registration{key: binary.BigEndian.Uint64(rd.rest[0:8]), allTgPt: rd.rest[8]&0x01 != 0,
			relPort: binary.BigEndian.Uint16(rd.rest[9:11])}
		rd.rest = rd.rest[11:]
		var ok bool
		if b[0] == prPersistVersion {
			g.tid, ok = decodeV1Initiator(rd.str)
		} else {
			g.tid, ok = decodeV2Initiator(rd.str)
		}
		var ok3 bool
		g.tport, ok3 = rd.str()
		if !ok || !ok3 {
			return nil, nil, fmt.Errorf("lu: persistent reservation state: bad registration %d", i)
		}
		p.regs = append(p.regs, g)
	}
	if b[0] != prPersistVersion3 && len(rd.rest) != 0 {
		return nil, nil, fmt.Errorf("lu: persistent reservation state: %d trailing bytes", len(rd.rest))
	}
	switch {
	case p.resType == 0:
	case !validPRType(p.resType) || len(p.regs) == 0:
		return nil, nil, fmt.Errorf("lu: persistent reservation state: bad reservation")
	case p.allRegistrantsType():
	case int(holder) >= len(p.regs):
		return nil, nil, fmt.Errorf("lu: persistent reservation state: bad holder")
	default:
		p.holder = p.regs[holder]
	}
	return p, rd.rest, nil
}

// tlvReader reads length-prefixed fields.
type tlvReader struct{ rest []byte }

// str reads a u16 length and that many bytes.
func (r *tlvReader) str() (string, bool) {
	if len(r.rest) < 2 {
		return "", false
	}
	l := int(binary.BigEndian.Uint16(r.rest[0:2]))
	if l > len(r.rest)-2 {
		return "", false
	}
	s := string(r.rest[2 : 2+l])
	r.rest = r.rest[2+l:]
	return s, true
}

// u16 reads a big-endian u16.
func (r *tlvReader) u16() (uint16, bool) {
	if len(r.rest) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(r.rest)
	r.rest = r.rest[2:]
	return v, true
}

// decodeV1Initiator reads a version 1 initiator, an iSCSI name and an
// optional ISID in hex, into its TransportID.
func decodeV1Initiator(str func() (string, bool)) (scsi.TransportID, bool) {
	name, ok1 := str()
	isidHex, ok2 := str()
	if !ok1 || !ok2 || name == "" {
		return scsi.TransportID{}, false
	}
	if isidHex == "" {
		return scsi.ISCSIDeviceTransportID(name), true
	}
	var isid [6]byte
	if len(isidHex) != 2*len(isid) {
		return scsi.TransportID{}, false
	}
	if _, err := hex.Decode(isid[:], []byte(isidHex)); err != nil {
		return scsi.TransportID{}, false
	}
	return scsi.ISCSIPortTransportID(name, isid), true
}

// decodeV2Initiator reads a version 2 initiator: an encoded TransportID.
func decodeV2Initiator(str func() (string, bool)) (scsi.TransportID, bool) {
	enc, ok := str()
	if !ok {
		return scsi.TransportID{}, false
	}
	tid, n, err := scsi.ParseTransportID([]byte(enc))
	return tid, err == nil && n == len(enc)
}

// storePR writes the persistent reservation TLV durably (the metadata
// store fdatasyncs) before the command that changed it answers GOOD.
func (d *Device) storePR(enc []byte) error {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if d.state.Load()&closingBit != 0 {
		return errClosed
	}
	md := *d.md.Clone()
	md.PR = enc
	if err := d.checkFence(); err != nil {
		return err
	}
	if err := d.store.SaveMeta(&md); err != nil {
		return err
	}
	d.md = md
	return nil
}

// setupReservations initialises the reservation state from the metadata:
// a persistent reservation state stored under APTPL comes back, anything
// else starts empty (SPC-4: without APTPL a restart loses it).
func (d *Device) setupReservations(md *backing.Meta) {
	p, err := decodePR(md.PR)
	if err != nil {
		d.log.Error("lu: ignoring stored persistent reservations", "guid", md.GUID, "err", err)
		p = &prState{}
	}
	if !p.aptpl {
		p = &prState{}
	}
	r := &d.resv
	r.mu.Lock()
	r.s2 = nil
	r.pr = p
	r.publishLocked()
	r.mu.Unlock()
}
