package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
)

// vpdThirdPartyCopy is the Third-party Copy VPD page (SPC-4 7.8.17),
// which 3PC=1 in the standard INQUIRY data promises.
const vpdThirdPartyCopy = 0x8f

// Third-party copy descriptor types (SPC-4 table "Third-party Copy
// descriptor type codes").
const (
	tpcSupportedCommands    = 0x0001
	tpcParameterData        = 0x0004
	tpcSupportedDescriptors = 0x0008
	tpcSupportedCSCDIDs     = 0x000c
	tpcGeneralCopyOps       = 0x8001
)

// thirdPartyCopyVPD describes what EXTENDED COPY (LID1) here supports,
// with the same limits RECEIVE COPY RESULTS OPERATING PARAMETERS reports
// (operatingParameters): the commands and service actions, descriptor
// counts and list length, the descriptor types (E4h identification, 02h
// block to block) and no special CSCD descriptor IDs (segments name
// copy targets by index only).
func (d *Device) thirdPartyCopyVPD() []byte {
	b := []byte{0, vpdThirdPartyCopy, 0, 0}

	// Supported Commands: opcode, service action count, service actions.
	cmds := []byte{
		scsi.OpExtendedCopy, 1, scsi.SAExtendedCopyLID1,
		scsi.OpReceiveCopyRes, 2, scsi.SACopyStatus, scsi.SAOperatingParams,
	}
	b = appendTPCDescriptor(b, tpcSupportedCommands, append([]byte{byte(len(cmds))}, cmds...))

	// Parameter Data.
	pd := make([]byte, 28)
	binary.BigEndian.PutUint16(pd[4:6], xcopyMaxCSCDs)
	binary.BigEndian.PutUint16(pd[6:8], xcopyMaxSegments)
	binary.BigEndian.PutUint32(pd[8:12], xcopyMaxDescListLen)
	// MAXIMUM INLINE DATA LENGTH (pd[12:16]): 0, inline data is refused.
	b = appendTPCDescriptor(b, tpcParameterData, pd)

	// Supported Descriptors: segment and CSCD descriptor type codes.
	b = appendTPCDescriptor(b, tpcSupportedDescriptors, []byte{2, segBlockToBlock, descIdentCSCD})

	// Supported CSCD Descriptor IDs: none beyond list indexes.
	b = appendTPCDescriptor(b, tpcSupportedCSCDIDs, []byte{0, 0})

	// General Copy Operations.
	g := make([]byte, 32)
	binary.BigEndian.PutUint32(g[0:4], xcopyMaxConcurrent) // TOTAL CONCURRENT COPIES
	binary.BigEndian.PutUint32(g[4:8], xcopyMaxConcurrent) // MAXIMUM IDENTIFIED CONCURRENT COPIES
	binary.BigEndian.PutUint32(g[8:12], uint32(min(uint64(maxSegBlocks)*uint64(d.bs), 0xffffffff)))
	g[12] = byte(d.bsShift) // DATA SEGMENT GRANULARITY (log2 bytes)
	// INLINE DATA GRANULARITY (g[13]): 0, no inline data.
	b = appendTPCDescriptor(b, tpcGeneralCopyOps, g)

	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-4))
	return b
}

// appendTPCDescriptor appends a third-party copy descriptor: type,
// length, then the content padded to a multiple of four bytes.
func appendTPCDescriptor(b []byte, typ uint16, content []byte) []byte {
	n := (len(content) + 3) &^ 3
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, content...)
	return append(b, make([]byte, n-len(content))...)
}
