package lu

import (
	"github.com/costar-project/costar/lu/backing"

	"encoding/binary"
	"strings"

	"github.com/costar-project/costar/scsi"
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

var supportedVPD = [...]byte{vpdSupported, vpdUnitSerial, vpdDeviceID, vpdThirdPartyCopy, vpdBlockLimits, vpdBlockDevChar, vpdLogicalBlockProv}

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
		return dataIn(truncate(d.standardInquiry(), alloc))
	}
	var b []byte
	switch page {
	case vpdSupported:
		b = append([]byte{0, vpdSupported, 0, byte(len(supportedVPD))}, supportedVPD[:]...)
	case vpdUnitSerial:
		b = d.ident.Load().unitSerial
	case vpdDeviceID:
		b = d.deviceIdentification(t)
	case vpdThirdPartyCopy:
		b = d.thirdPartyCopyVPD() // xcopy_vpd.go: what 3PC=1 promises
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

// standardInquiry is the standard INQUIRY data with MULTIP set when the
// LU is reachable through more than one target port now (SPC-4 6.6.2):
// the framework knows the ports and views, so it is asked each time.
func (d *Device) standardInquiry() []byte {
	b := d.ident.Load().stdInquiry
	if h := d.hostOf(); h != nil && h.TargetPortCount() > 1 {
		b = append([]byte(nil), b...)
		b[6] |= 0x10 // MULTIP
	}
	return b
}

// Designator header bytes of the LU's NAA designator (EXTENDED COPY's
// CSCD descriptors name LUs by it too).
const (
	codeSetBinary = scsi.CodeSetBinary
	assocLU       = byte(scsi.AssocLU) << 4
	desigNAA      = scsi.DesignatorNAA
)

// deviceIdentification is VPD page 0x83: the LU's NAA designator (its
// GUID), and for the port the command came through, the target port's
// designators and relative target port identifier, its target port group
// and the target device's designators. The port provider chose the port's
// and device's designators, and with PIV the protocol they carry.
func (d *Device) deviceIdentification(t *stmf.Task) []byte {
	b := make([]byte, 4, 128)
	b[1] = vpdDeviceID
	b = scsi.Designator{CodeSet: scsi.CodeSetBinary, Type: scsi.DesignatorNAA, Value: d.guid[:]}.Append(b, 0, false, scsi.AssocLU)
	if t.Session != nil {
		nx := &t.Session.Nexus
		proto, piv := nx.Protocol, nx.Designators.PIV
		for _, ds := range nx.Designators.Port {
			b = ds.Append(b, proto, piv, scsi.AssocTargetPort)
		}
		var rel, tpg [4]byte
		binary.BigEndian.PutUint16(rel[2:4], nx.RelativePortID)
		binary.BigEndian.PutUint16(tpg[2:4], nx.PortGroup)
		b = scsi.Designator{CodeSet: scsi.CodeSetBinary, Type: scsi.DesignatorRelTargetPort, Value: rel[:]}.Append(b, proto, piv, scsi.AssocTargetPort)
		b = scsi.Designator{CodeSet: scsi.CodeSetBinary, Type: scsi.DesignatorTargetPortGroup, Value: tpg[:]}.Append(b, proto, piv, scsi.AssocTargetPort)
		for _, ds := range nx.Designators.Target {
			b = ds.Append(b, proto, piv, scsi.AssocTargetDevice)
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
