package initiator

import (
	"context"
	"encoding/binary"
	"fmt"
)

// SCSI status values.
const (
	StatusGood                = 0x00
	StatusCheckCondition      = 0x02
	StatusBusy                = 0x08
	StatusReservationConflict = 0x18
	StatusTaskSetFull         = 0x28
	StatusTaskAborted         = 0x40
)

// Sense keys.
const (
	KeyNotReady       = 0x2
	KeyIllegalRequest = 0x5
	KeyUnitAttention  = 0x6
	KeyMiscompare     = 0xe
)

// Sense is decoded sense data (fixed or descriptor format).
type Sense struct {
	Key       byte
	ASC, ASCQ byte
	// Info is the INFORMATION field, valid when InfoValid.
	Info      uint64
	InfoValid bool
}

func (s Sense) String() string {
	v := ""
	if s.InfoValid {
		v = fmt.Sprintf(" info %d", s.Info)
	}
	return fmt.Sprintf("key %#x asc/ascq %02xh/%02xh%s", s.Key, s.ASC, s.ASCQ, v)
}

// ParseSense decodes sense data; ok is false when there is none.
func ParseSense(b []byte) (Sense, bool) {
	if len(b) < 1 {
		return Sense{}, false
	}
	switch b[0] & 0x7f {
	case 0x70, 0x71:
		if len(b) < 14 {
			return Sense{}, false
		}
		return Sense{Key: b[2] & 0x0f, ASC: b[12], ASCQ: b[13],
			Info: uint64(binary.BigEndian.Uint32(b[3:7])), InfoValid: b[0]&0x80 != 0}, true
	case 0x72, 0x73:
		if len(b) < 4 {
			return Sense{}, false
		}
		s := Sense{Key: b[1] & 0x0f, ASC: b[2], ASCQ: b[3]}
		if len(b) >= 8 {
			d := b[8:min(len(b), 8+int(b[7]))]
			for len(d) >= 2 && len(d) >= 2+int(d[1]) {
				if d[0] == 0x00 && d[1] >= 10 { // information descriptor
					s.InfoValid = d[2]&0x80 != 0
					s.Info = binary.BigEndian.Uint64(d[4:12])
				}
				d = d[2+int(d[1]):]
			}
		}
		return s, true
	}
	return Sense{}, false
}

// SenseData returns the response's decoded sense data.
func (r Response) SenseData() (Sense, bool) { return ParseSense(r.Sense) }

// Is reports whether the response is CHECK CONDITION with the given sense
// key and ASC/ASCQ.
func (r Response) Is(key, asc, ascq byte) bool {
	s, ok := r.SenseData()
	return r.Status == StatusCheckCondition && ok && s.Key == key && s.ASC == asc && s.ASCQ == ascq
}

func (r Response) String() string {
	if r.Status == StatusCheckCondition {
		if s, ok := r.SenseData(); ok {
			return "CHECK CONDITION " + s.String()
		}
	}
	return fmt.Sprintf("status %#x", r.Status)
}

// CDB builders.

// Read16 is READ (16).
func Read16(lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = 0x88
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// Write16 is WRITE (16).
func Write16(lba uint64, blocks uint32) []byte {
	c := Read16(lba, blocks)
	c[0] = 0x8a
	return c
}

// CompareAndWrite is COMPARE AND WRITE (SBC-3) of blocks blocks; its
// Data-Out is the verify data then the write data.
func CompareAndWrite(lba uint64, blocks uint8) []byte {
	c := make([]byte, 16)
	c[0] = 0x89
	binary.BigEndian.PutUint64(c[2:], lba)
	c[13] = blocks
	return c
}

// TestUnitReady is TEST UNIT READY.
func TestUnitReady() []byte { return make([]byte, 6) }

// Inquiry is INQUIRY (standard data, or a VPD page when evpd).
func Inquiry(evpd bool, page byte, alloc uint16) []byte {
	c := []byte{0x12, 0, page, byte(alloc >> 8), byte(alloc), 0}
	if evpd {
		c[1] = 1
	}
	return c
}

// ReadCapacity16 is READ CAPACITY (16).
func ReadCapacity16() []byte {
	c := make([]byte, 16)
	c[0], c[1] = 0x9e, 0x10
	binary.BigEndian.PutUint32(c[10:], 32)
	return c
}

// ReportTargetPortGroups is REPORT TARGET PORT GROUPS (length-only format).
func ReportTargetPortGroups(alloc uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = 0xa3, 0x0a
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

// TargetPortGroup is one descriptor of REPORT TARGET PORT GROUPS.
type TargetPortGroup struct {
	Group uint16
	State byte // asymmetric access state (0 = active/optimized, 2 = standby)
	Ports []uint16
}

// ParseTargetPortGroups decodes REPORT TARGET PORT GROUPS data.
func ParseTargetPortGroups(data []byte) ([]TargetPortGroup, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("initiator: RTPG data of %d bytes", len(data))
	}
	d := data[4:min(len(data), 4+int(binary.BigEndian.Uint32(data[0:4])))]
	var out []TargetPortGroup
	for len(d) > 0 {
		if len(d) < 8 || len(d) < 8+4*int(d[7]) {
			return nil, fmt.Errorf("initiator: truncated RTPG descriptor % x", d)
		}
		g := TargetPortGroup{Group: binary.BigEndian.Uint16(d[2:4]), State: d[0] & 0x0f}
		for i := range int(d[7]) {
			g.Ports = append(g.Ports, binary.BigEndian.Uint16(d[8+4*i+2:]))
		}
		out = append(out, g)
		d = d[8+4*int(d[7]):]
	}
	return out, nil
}

// Capacity returns the LU's block count and block size (READ CAPACITY 16).
func (s *Session) Capacity(ctx context.Context, lun uint64) (blocks uint64, blockSize uint32, err error) {
	r, err := s.Do(ctx, lun, ReadCapacity16(), nil, 32)
	if err != nil {
		return 0, 0, err
	}
	if r.Status != StatusGood || len(r.Data) < 12 {
		return 0, 0, fmt.Errorf("initiator: READ CAPACITY (16): %v", r)
	}
	return binary.BigEndian.Uint64(r.Data[0:8]) + 1, binary.BigEndian.Uint32(r.Data[8:12]), nil
}

// ClearUnitAttentions sends TEST UNIT READY until it stops reporting unit
// attentions (at most 16 times) and returns the last response.
func (s *Session) ClearUnitAttentions(ctx context.Context, lun uint64) (Response, error) {
	var r Response
	var err error
	for range 16 {
		r, err = s.Do(ctx, lun, TestUnitReady(), nil, 0)
		if err != nil {
			return r, err
		}
		if sn, ok := r.SenseData(); !ok || r.Status != StatusCheckCondition || sn.Key != KeyUnitAttention {
			return r, nil
		}
	}
	return r, fmt.Errorf("initiator: unit attentions keep coming: %v", r)
}
