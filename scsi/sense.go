package scsi

import (
	"encoding/binary"
	"fmt"
)

// SenseKey is the 4-bit sense key (SPC-5 4.4.8).
type SenseKey byte

const (
	KeyNoSense        SenseKey = 0x0
	KeyRecoveredError SenseKey = 0x1
	KeyNotReady       SenseKey = 0x2
	KeyMediumError    SenseKey = 0x3
	KeyHardwareError  SenseKey = 0x4
	KeyIllegalRequest SenseKey = 0x5
	KeyUnitAttention  SenseKey = 0x6
	KeyDataProtect    SenseKey = 0x7
	KeyBlankCheck     SenseKey = 0x8
	KeyCopyAborted    SenseKey = 0xa
	KeyAbortedCommand SenseKey = 0xb
	KeyVolumeOverflow SenseKey = 0xd
	KeyMiscompare     SenseKey = 0xe
)

// ASC is an additional sense code and qualifier pair, ASC in the high byte.
type ASC uint16

// The additional sense codes costar reports. Names follow SPC's table.
const (
	ASCNoAdditionalSense             ASC = 0x0000
	ASCLUNotReadyManualIntervention  ASC = 0x0403
	ASCLUNotReadyStopped             ASC = 0x0402 // initializing command required
	ASCLUNotAccessibleTransitioning  ASC = 0x040a
	ASCLUNotAccessibleStandby        ASC = 0x040b
	ASCLUNotAccessibleUnavailable    ASC = 0x040c
	ASCWriteError                    ASC = 0x0c00
	ASCInvalidFieldInCmdInfoUnit     ASC = 0x0e03 // Data-Out length disagrees with the CDB
	ASCUnrecoveredReadError          ASC = 0x1100
	ASCMiscompareDuringVerify        ASC = 0x1d00
	ASCParameterListLengthError      ASC = 0x1a00
	ASCInvalidCommandOpcode          ASC = 0x2000
	ASCLBAOutOfRange                 ASC = 0x2100
	ASCInvalidFieldInCDB             ASC = 0x2400
	ASCLUNotSupported                ASC = 0x2500
	ASCInvalidFieldInParameterList   ASC = 0x2600
	ASCParameterNotSupported         ASC = 0x2601
	ASCParameterValueInvalid         ASC = 0x2602
	ASCWriteProtected                ASC = 0x2700
	ASCSpaceAllocationFailedWP       ASC = 0x2707
	ASCPowerOnReset                  ASC = 0x2900
	ASCPowerOnOccurred               ASC = 0x2901
	ASCBusResetOccurred              ASC = 0x2902
	ASCBusDeviceResetOccurred        ASC = 0x2903
	ASCITNexusLoss                   ASC = 0x2907
	ASCModeParametersChanged         ASC = 0x2a01
	ASCReservationsPreempted         ASC = 0x2a03
	ASCReservationsReleased          ASC = 0x2a04
	ASCRegistrationsPreempted        ASC = 0x2a05
	ASCAsymmetricAccessChanged       ASC = 0x2a06
	ASCCapacityDataChanged           ASC = 0x2a09
	ASCCommandsClearedByAnother      ASC = 0x2f00
	ASCSavingParametersNotSupported  ASC = 0x3900
	ASCMediumNotPresent              ASC = 0x3a00
	ASCReportedLUNsDataChanged       ASC = 0x3f0e
	ASCInternalTargetFailure         ASC = 0x4400
	ASCInvalidMessageError           ASC = 0x4900
	ASCOverlappedCommands            ASC = 0x4e00
	ASCThinProvisioningSoftThreshold ASC = 0x3807
	ASCInsufficientRegistrationRes   ASC = 0x5504
	ASCMediumRemovalPrevented        ASC = 0x5302
)

// Sense is decoded fixed-format sense data.
type Sense struct {
	Key  SenseKey
	ASC  ASC
	Info *uint32 // INFORMATION field; sets the VALID bit when non-nil
	// FieldPointer, when non-nil, fills the SENSE KEY SPECIFIC field for
	// ILLEGAL REQUEST: the byte (and optional bit) that was wrong.
	FieldPointer *FieldPointer
}

// FieldPointer locates an invalid field in a CDB or parameter list.
type FieldPointer struct {
	InCDB  bool
	Byte   uint16
	Bit    int8 // -1 when no bit pointer is given
	Stable bool
}

// Error makes Sense usable as an error from inside the LU, so command
// handlers can simply `return scsi.SenseError(...)`.
func (s *Sense) Error() string {
	return fmt.Sprintf("sense key 0x%x asc/ascq %02xh/%02xh", byte(s.Key), byte(s.ASC>>8), byte(s.ASC))
}

// NewSense is a short constructor for the common case.
func NewSense(key SenseKey, asc ASC) *Sense { return &Sense{Key: key, ASC: asc} }

// IllegalRequest returns ILLEGAL REQUEST with the given ASC and, when
// byteOff >= 0, a sense-key-specific pointer into the CDB.
func IllegalRequest(asc ASC, byteOff int) *Sense {
	s := &Sense{Key: KeyIllegalRequest, ASC: asc}
	if byteOff >= 0 {
		s.FieldPointer = &FieldPointer{InCDB: asc != ASCInvalidFieldInParameterList, Byte: uint16(byteOff), Bit: -1}
	}
	return s
}

// WithInfo sets the INFORMATION field (and the VALID bit).
func (s *Sense) WithInfo(v uint32) *Sense { s.Info = &v; return s }

// FixedLen is the length of fixed-format sense data costar emits.
const FixedLen = 18

// Bytes encodes s as fixed-format sense data (response code 70h).
func (s *Sense) Bytes() []byte {
	b := make([]byte, FixedLen)
	b[0] = 0x70
	b[2] = byte(s.Key) & 0x0f
	if s.Info != nil {
		b[0] |= 0x80
		binary.BigEndian.PutUint32(b[3:7], *s.Info)
	}
	b[7] = FixedLen - 8
	b[12] = byte(s.ASC >> 8)
	b[13] = byte(s.ASC)
	if fp := s.FieldPointer; fp != nil {
		b[15] = 0x80 // SKSV
		if fp.InCDB {
			b[15] |= 0x40
		}
		if fp.Bit >= 0 {
			b[15] |= 0x08 | byte(fp.Bit&7)
		}
		binary.BigEndian.PutUint16(b[16:18], fp.Byte)
	}
	return b
}

// ParseSense decodes fixed (70h/71h) or descriptor (72h/73h) sense data.
func ParseSense(b []byte) (*Sense, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("scsi: empty sense data")
	}
	switch b[0] & 0x7f {
	case 0x70, 0x71:
		if len(b) < 14 {
			return nil, fmt.Errorf("scsi: fixed sense data too short (%d bytes)", len(b))
		}
		s := &Sense{Key: SenseKey(b[2] & 0x0f), ASC: ASC(b[12])<<8 | ASC(b[13])}
		if b[0]&0x80 != 0 {
			v := binary.BigEndian.Uint32(b[3:7])
			s.Info = &v
		}
		return s, nil
	case 0x72, 0x73:
		if len(b) < 4 {
			return nil, fmt.Errorf("scsi: descriptor sense data too short (%d bytes)", len(b))
		}
		return &Sense{Key: SenseKey(b[1] & 0x0f), ASC: ASC(b[2])<<8 | ASC(b[3])}, nil
	}
	return nil, fmt.Errorf("scsi: unknown sense response code 0x%02x", b[0])
}
