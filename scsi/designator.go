package scsi

// Designator is a designation descriptor of the Device Identification VPD
// page (SPC-4 7.8.6.1) without the header fields that depend on where it
// is reported: protocol identifier, PIV and association.
type Designator struct {
	CodeSet byte // CodeSetBinary, CodeSetASCII or CodeSetUTF8
	Type    byte // DesignatorNAA, DesignatorSCSIName, …
	Value   []byte
}

// Code sets of a designator.
const (
	CodeSetBinary = 0x1
	CodeSetASCII  = 0x2
	CodeSetUTF8   = 0x3
)

// Designator types.
const (
	DesignatorVendor          = 0x0
	DesignatorT10             = 0x1
	DesignatorEUI64           = 0x2
	DesignatorNAA             = 0x3
	DesignatorRelTargetPort   = 0x4
	DesignatorTargetPortGroup = 0x5
	DesignatorLUGroup         = 0x6
	DesignatorMD5             = 0x7
	DesignatorSCSIName        = 0x8
)

// Association says what a designator names.
type Association byte

const (
	AssocLU           Association = 0x0
	AssocTargetPort   Association = 0x1
	AssocTargetDevice Association = 0x2
)

// NameDesignator is a SCSI name string designator: UTF-8, NUL-terminated,
// padded with NULs to a multiple of 4 bytes, at most 256. ok is false for
// a longer name.
func NameDesignator(name string) (d Designator, ok bool) {
	n := (len(name) + 4) &^ 3
	if n > 256 {
		return Designator{}, false
	}
	v := make([]byte, n)
	copy(v, name)
	return Designator{CodeSet: CodeSetUTF8, Type: DesignatorSCSIName, Value: v}, true
}

// Append appends the descriptor. With piv the protocol identifier applies
// (SPC-4: only for target port and target device associations); without
// it the field is zero.
func (d Designator) Append(b []byte, proto ProtocolID, piv bool, assoc Association) []byte {
	b0, b1 := d.CodeSet&0x0f, byte(assoc)<<4|d.Type&0x0f
	if piv {
		b0 |= byte(proto) << 4
		b1 |= 0x80
	}
	b = append(b, b0, b1, 0, byte(len(d.Value)))
	return append(b, d.Value...)
}
