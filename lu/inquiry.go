package lu

import (
	"github.com/costar-project/costar/lu/backing"

	"encoding/binary"
	"strings"

	"github.com/costar-project/costar/stmf"
)

// Standard INQUIRY data.
const (
	stdInquiryLen   = 74
	productRevision = "0100"
)

// Version descriptors claimed in standard INQUIRY data.
var versionDescriptors = [...]uint16{
	0x00a0, // SAM-5
	0x0960, // iSCSI
	0x0460, // SPC-4
	0x04c0, // SBC-3
}

// VPD pages, in the order page 0x00 lists them.
const (
	vpdSupported        = 0x00
	vpdUnitSerial       = 0x80
	vpdDeviceID         = 0x83
	vpdBlockLimits      = 0xb0
	vpdBlockDevChar     = 0xb1
	vpdLogicalBlockProv = 0xb2
)

var supportedVPD = [...]byte{vpdSupported, vpdUnitSerial, vpdDeviceID, vpdBlockLimits, vpdBlockDevChar, vpdLogicalBlockProv}

func padded(s string, n int) []byte {
	b := []byte(strings.Repeat(" ", n))
	copy(b, s)
	return b
}

// newIdentity precomputes the identity answers from metadata.
func (d *Device) newIdentity(md *backing.Meta) *identity {
	id := &identity{vid: md.VendorID, pid: md.ProductID, serial: md.Serial, alias: md.Alias, mgmtURL: md.MgmtURL}

	b := make([]byte, stdInquiryLen)
	b[0] = 0x00 // peripheral qualifier 0, direct access block device
	b[1] = 0x00 // not removable
	b[2] = 0x06 // SPC-4
	b[3] = 0x12 // HISUP, response data format 2
	b[4] = stdInquiryLen - 5
	b[5] |= tpgsImplicit // TPGS 01b: implicit ALUA (stmf answers REPORT TARGET PORT GROUPS)
	b[5] |= 0x08         // 3PC: EXTENDED COPY (xcopy.go)
	b[7] = 0x02          // CMDQUE
	copy(b[8:16], padded(md.VendorID, 8))
	copy(b[16:32], padded(md.ProductID, 16))
	copy(b[32:36], productRevision)
	for i, v := range versionDescriptors {
		binary.BigEndian.PutUint16(b[58+2*i:], v)
	}
	id.stdInquiry = b

	serial := md.Serial
	if serial == "" {
		serial = stmf.GUID(md.GUID).String()
	}
	s := make([]byte, 4, 4+len(serial))
	s[1] = vpdUnitSerial
	binary.BigEndian.PutUint16(s[2:4], uint16(len(serial)))
	id.unitSerial = append(s, serial...)
	return id
}

// inquiry: INQUIRY, standard data and VPD pages.
func (d *Device) inquiry(t *stmf.Task, cdb []byte) *stmf.Result {
	evpd := cdb[1]&0x01 != 0
	page := cdb[2]
	alloc := uint32(binary.BigEndian.Uint16(cdb[3:5]))
	if cdb[1]&0x02 != 0 { // CMDDT (obsolete)
		return fail(invalidField(1, 1))
	}
	if !evpd {
		if page != 0 {
			return fail(invalidField(2, -1))
		}
		return dataIn(truncate(d.ident.Load().stdInquiry, alloc))
	}
	var b []byte
	switch page {
	case vpdSupported:
		b = append([]byte{0, vpdSupported, 0, byte(len(supportedVPD))}, supportedVPD[:]...)
	case vpdUnitSerial:
		b = d.ident.Load().unitSerial
	case vpdDeviceID:
		b = d.deviceIdentification(t)
	case vpdBlockLimits:
		b = d.blockLimits()
	case vpdBlockDevChar:
		b = make([]byte, 64)
		b[1] = vpdBlockDevChar
		b[3] = 0x3c
		// MEDIUM ROTATION RATE 0 (not reported), NOMINAL FORM FACTOR 0.
	case vpdLogicalBlockProv:
		b = d.logicalBlockProvisioning() // thin.go; all 0 when fully provisioned
	default:
		return fail(invalidField(2, -1))
	}
	return dataIn(truncate(b, alloc))
}

// Designator header bytes.
const (
	codeSetBinary = 0x1
	codeSetUTF8   = 0x3
	protoISCSI    = 0x5

	assocLU         = 0x00
	assocTargetPort = 0x10
	assocTarget     = 0x20

	desigRelTargetPort = 0x4
	desigNAA           = 0x3
	desigSCSIName      = 0x8

	piv = 0x80
)

func appendDesignator(b []byte, proto, codeSet, assocType byte, val []byte) []byte {
	b = append(b, proto<<4|codeSet, assocType, 0, byte(len(val)))
	return append(b, val...)
}

// scsiNameString returns a SCSI name string designator value: UTF-8, null
// terminated, padded with nulls to a multiple of 4 bytes, at most 256.
func scsiNameString(s string) []byte {
	n := (len(s) + 4) &^ 3
	if n > 256 {
		return nil
	}
	v := make([]byte, n)
	copy(v, s)
	return v
}

// isISCSIName reports whether name looks like an iSCSI name (the port
// names iSCSI uses are "<target name>,t,0x<TPGT>").
func isISCSIName(name string) bool {
	return strings.HasPrefix(name, "iqn.") || strings.HasPrefix(name, "eui.") || strings.HasPrefix(name, "naa.")
}

// deviceIdentification is VPD page 0x83: the LU's NAA designator (its
// GUID), and for the port the command came through, the target port name,
// the relative target port identifier and the target device name.
func (d *Device) deviceIdentification(t *stmf.Task) []byte {
	b := make([]byte, 4, 128)
	b[1] = vpdDeviceID
	b = appendDesignator(b, 0, codeSetBinary, assocLU|desigNAA, d.guid[:])
	if t.Session != nil {
		nx := t.Session.Nexus
		proto, pivBit := byte(0), byte(0)
		if isISCSIName(nx.TargetPort) || isISCSIName(nx.TargetName) {
			proto, pivBit = protoISCSI, piv
		}
		if nx.TargetPort != "" {
			if v := scsiNameString(nx.TargetPort); v != nil {
				b = appendDesignator(b, proto, codeSetUTF8, pivBit|assocTargetPort|desigSCSIName, v)
			}
		}
		var rel [4]byte
		binary.BigEndian.PutUint16(rel[2:4], nx.RelativePortID)
		b = appendDesignator(b, proto, codeSetBinary, pivBit|assocTargetPort|desigRelTargetPort, rel[:])
		b = appendTargetPortGroup(b, proto, pivBit, nx.PortGroup)
		if nx.TargetName != "" {
			if v := scsiNameString(nx.TargetName); v != nil {
				b = appendDesignator(b, proto, codeSetUTF8, pivBit|assocTarget|desigSCSIName, v)
			}
		}
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-4))
	return b
}

// blockLimits is VPD page 0xB0 (SBC-3 length).
func (d *Device) blockLimits() []byte {
	b := make([]byte, 64)
	b[1] = vpdBlockLimits
	b[3] = 0x3c
	b[5] = byte(d.maxCompareAndWrite()) // MAXIMUM COMPARE AND WRITE LENGTH (ats.go)
	gran := uint16(1)
	if d.bs < physBlockSize {
		gran = uint16(physBlockSize / d.bs)
	}
	if u := d.caps.AllocUnit; u != 0 {
		// One allocation unit of the store (a zvol's volblocksize).
		gran = uint16(min(max(u, uint64(d.bs))>>d.bsShift, 0xffff))
	}
	binary.BigEndian.PutUint16(b[6:8], gran)       // OPTIMAL TRANSFER LENGTH GRANULARITY
	binary.BigEndian.PutUint32(b[8:12], d.maxXfer) // MAXIMUM TRANSFER LENGTH
	// OPTIMAL TRANSFER LENGTH, prefetch limits: 0.
	d.provisioningLimits(b) // UNMAP (thin LUs) and WRITE SAME limits, thin.go
	// MAXIMUM ATOMIC TRANSFER LENGTH (atomic.go); ATOMIC ALIGNMENT, ATOMIC
	// TRANSFER LENGTH GRANULARITY and the atomic boundary fields: 0.
	binary.BigEndian.PutUint32(b[44:48], d.maxAtomicBlocks())
	return b
}
